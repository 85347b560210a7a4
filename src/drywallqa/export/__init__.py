"""Deployment: ONNX export with a parity check, int8, TensorRT, fast runtimes and the benchmark.

Every runtime sits behind the one :class:`~drywallqa.inference.Predictor` interface and shares
the pre- and post-processing of :mod:`drywallqa.processing`, so masks agree across them.

Example:
    >>> from drywallqa.export import export_onnx, load_model, load_runtime_predictor   # doctest: +SKIP
    >>> result = export_onnx(load_model("runs/x/model"), "promptunet.onnx", int8=True)
    >>> print(result.summary())
    >>> predictor = load_runtime_predictor("promptunet.onnx")          # OnnxPredictor
    >>> predictor.predict(image, "segment crack")
"""

from drywallqa.export.factory import (
    RUNTIMES,
    load_model,
    load_runtime_predictor,
    runtime_for_spec,
)
from drywallqa.export.onnx import (
    DEFAULT_OPSET,
    ExportError,
    OnnxExport,
    export_onnx,
    read_metadata,
)
from drywallqa.export.onnx_runtime import OnnxPredictor, create_session
from drywallqa.export.parity import (
    ParityReport,
    compare_outputs,
    synthetic_images,
    synthetic_samples,
)
from drywallqa.inference import BatchedPredictor
from drywallqa.export.prompt_store import PromptEmbeddings
from drywallqa.export.quantize import quantize_onnx_int8
from drywallqa.export.torch_runtime import TorchRuntimePredictor
from drywallqa.export.trt_runtime import (
    TensorRTPredictor,
    TensorRTUnavailable,
    build_tensorrt_engine,
    tensorrt_available,
    trtexec_command,
)


def __getattr__(name: str):
    # The wrapper is an nn.Module: importing it pulls in torch, which the CLI's parser and the
    # ONNX-only runtime should not pay for.
    if name == "OnnxSegmentationWrapper":
        from drywallqa.export.wrapper import OnnxSegmentationWrapper

        return OnnxSegmentationWrapper
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_OPSET",
    "RUNTIMES",
    "BatchedPredictor",
    "ExportError",
    "OnnxExport",
    "OnnxPredictor",
    "OnnxSegmentationWrapper",
    "ParityReport",
    "PromptEmbeddings",
    "TensorRTPredictor",
    "TensorRTUnavailable",
    "TorchRuntimePredictor",
    "build_tensorrt_engine",
    "compare_outputs",
    "create_session",
    "export_onnx",
    "load_model",
    "load_runtime_predictor",
    "quantize_onnx_int8",
    "read_metadata",
    "runtime_for_spec",
    "synthetic_images",
    "synthetic_samples",
    "tensorrt_available",
    "trtexec_command",
]
