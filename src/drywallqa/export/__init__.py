"""Deployment files: ONNX export with a parity check, prompt embeddings beside it, and int8.

This package only writes files; what runs them (ONNX Runtime, TensorRT, PyTorch) is in
:mod:`drywallqa.inference`, and ``drywallqa bench`` is in :mod:`drywallqa.bench`.

- :mod:`~drywallqa.export.onnx`: :func:`export_onnx` writes ``<name>.onnx`` and
  ``<name>.prompts.json`` after checking ONNX Runtime against PyTorch;
- :mod:`~drywallqa.export.wrapper`: the trace-friendly :class:`OnnxSegmentationWrapper`;
- :mod:`~drywallqa.export.quantize`: static int8 (:func:`quantize_onnx_int8`) and the choice of
  calibration photos (:func:`calibration_paths`);
- :mod:`~drywallqa.export.parity`: parity reports and the synthetic photos they run on.

Example:
    >>> from drywallqa.export import export_onnx                         # doctest: +SKIP
    >>> from drywallqa.inference import load_model, load_predictor
    >>> result = export_onnx(load_model("runs/x/model"), "promptunet.onnx", int8=True)
    >>> print(result.summary())
    >>> predictor = load_predictor("promptunet.onnx")                  # OnnxPredictor
    >>> predictor.predict(image, "segment crack")
"""

from drywallqa.export.onnx import (
    DEFAULT_OPSET,
    ExportError,
    OnnxExport,
    export_onnx,
)
from drywallqa.export.parity import (
    ParityReport,
    compare_outputs,
    synthetic_images,
    synthetic_samples,
)
from drywallqa.export.quantize import calibration_paths, quantize_onnx_int8


def __getattr__(name: str):
    # The wrapper is an nn.Module: importing it pulls in torch, which the CLI's parser and the
    # ONNX-only runtime should not pay for.
    if name == "OnnxSegmentationWrapper":
        from drywallqa.export.wrapper import OnnxSegmentationWrapper

        return OnnxSegmentationWrapper
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_OPSET",
    "ExportError",
    "OnnxExport",
    "OnnxSegmentationWrapper",
    "ParityReport",
    "calibration_paths",
    "compare_outputs",
    "export_onnx",
    "quantize_onnx_int8",
    "synthetic_images",
    "synthetic_samples",
]
