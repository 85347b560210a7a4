"""``load_runtime_predictor(spec, runtime=...)``: one factory for every runtime.

=============  =====================================================  ===============================
runtime        spec                                                   predictor
=============  =====================================================  ===============================
``torch``      model folder (``save_pretrained``) or None (shipped)   :class:`TorchRuntimePredictor`
``onnx``       ``.onnx`` file from ``drywallqa export``               :class:`OnnxPredictor`
``tensorrt``   ``.onnx`` file (engine built once) or ``.plan`` file   :class:`TensorRTPredictor`
=============  =====================================================  ===============================

Without ``runtime`` the spec decides: ``.onnx`` -> ONNX Runtime, ``.plan``/``.engine`` ->
TensorRT, anything else -> PyTorch.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path

from drywallqa.errors import ConfigError, DrywallQAError
from drywallqa.inference import Predictor

RUNTIMES = ("torch", "onnx", "tensorrt")
ONNX_SUFFIXES = (".onnx",)
ENGINE_SUFFIXES = (".plan", ".engine")


def load_model(spec: str | os.PathLike | None = None):
    """Load a model folder, or the shipped default model for ``None`` (``load_predictor`` semantics).

    Returns:
        The :class:`~drywallqa.models.PromptSegmentationModel` on CPU, in eval mode.

    Raises:
        DrywallQAError: If there is no such folder, or no shipped model yet, with what to do.
    """
    from drywallqa.inference import default_model_path
    from drywallqa.models import PromptSegmentationModel

    path = Path(str(default_model_path())) if spec is None else Path(spec)
    if not path.exists():
        if spec is None:
            raise DrywallQAError(
                f"no shipped model at {path}; train one with `drywallqa train` and pass --model RUN/model"
            )
        raise DrywallQAError(
            f"{path}: no such model folder (expected config.json + model.safetensors from save_pretrained)"
        )
    return PromptSegmentationModel.from_pretrained(path, map_location="cpu")


def runtime_for_spec(spec: str | os.PathLike | None) -> str:
    """The runtime a spec implies: ``"onnx"`` for ``.onnx``, ``"tensorrt"`` for ``.plan``/``.engine``, else ``"torch"``."""
    suffix = Path(str(spec)).suffix.lower() if spec is not None else ""
    if suffix in ONNX_SUFFIXES:
        return "onnx"
    if suffix in ENGINE_SUFFIXES:
        return "tensorrt"
    return "torch"


def load_runtime_predictor(
    spec: str | os.PathLike | None = None, runtime: str | None = None, **options
) -> Predictor:
    """Build a :class:`~drywallqa.inference.Predictor` for a model spec on a chosen runtime.

    Args:
        spec: Model folder or None (shipped model) for ``"torch"``; ``.onnx`` file for
            ``"onnx"``; ``.onnx`` or engine file for ``"tensorrt"``.
        runtime: ``"torch"``, ``"onnx"`` or ``"tensorrt"``; implied by ``spec`` when None.
        **options: Keyword arguments of the runtime's predictor, e.g. ``threshold``,
            ``batch_size``, ``device``, ``precision``, ``channels_last``, ``compile``,
            ``cuda_graphs`` (torch); ``providers``, ``intra_op_threads``,
            ``embed_unknown_prompts`` (onnx).

    Raises:
        ConfigError: For an unknown runtime, a spec that does not fit it, or an option the
            runtime does not take (listing the ones it does).
        DrywallQAError: If the model cannot be loaded (TensorRT: when it is not installed, with
            the ``trtexec`` command to use instead).

    Example:
        >>> predictor = load_runtime_predictor("promptunet.onnx")                   # doctest: +SKIP
        >>> predictor = load_runtime_predictor("runs/x/model", "torch", precision="bf16")  # doctest: +SKIP
    """
    from drywallqa.export.onnx_runtime import OnnxPredictor
    from drywallqa.export.torch_runtime import TorchRuntimePredictor
    from drywallqa.export.trt_runtime import TensorRTPredictor

    runtime = runtime or runtime_for_spec(spec)
    if runtime not in RUNTIMES:
        raise ConfigError(f"unknown runtime {runtime!r}; expected one of: {', '.join(RUNTIMES)}")
    implied = runtime_for_spec(spec)
    if runtime == "onnx" and implied != "onnx":
        raise ConfigError(
            f"runtime 'onnx' needs an .onnx file, got {spec!r}; "
            f"export one first: drywallqa export --model {spec or 'M'} --format onnx --out model.onnx"
        )
    if runtime == "tensorrt" and implied == "torch":
        raise ConfigError(
            f"runtime 'tensorrt' needs an .onnx or engine file, got {spec!r}; "
            f"export one first: drywallqa export --model {spec or 'M'} --format onnx --out model.onnx"
        )
    if runtime == "torch" and implied != "torch":
        raise ConfigError(f"runtime 'torch' needs a model folder, got {spec!r}; use runtime={implied!r} for it")

    predictor_class = {"torch": TorchRuntimePredictor, "onnx": OnnxPredictor, "tensorrt": TensorRTPredictor}[runtime]
    accepted = [name for name in inspect.signature(predictor_class).parameters if name not in ("model", "path")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(
            f"runtime {runtime!r} does not take option(s) {', '.join(unknown)}; it takes: {', '.join(accepted)}"
        )
    if runtime == "torch":
        return TorchRuntimePredictor(load_model(spec), **options)
    return predictor_class(spec, **options)
