"""``load_runtime_predictor(spec, runtime=...)``: one factory for every runtime.

=============  =====================================================  ===============================
runtime        spec                                                   predictor
=============  =====================================================  ===============================
``torch``      model folder (``save_pretrained``) or None (shipped)   :class:`TorchRuntimePredictor`
``onnx``       ``.onnx`` file from ``drywallqa export``               :class:`OnnxPredictor`
``tensorrt``   ``.onnx`` file (engine built once) or ``.plan`` file   :class:`TensorRTPredictor`
=============  =====================================================  ===============================

Without ``runtime`` the spec decides: ``.onnx`` -> ONNX Runtime, ``.plan``/``.engine`` ->
TensorRT, anything else -> PyTorch. :func:`best_available` picks the fastest runtime this machine
offers for a model and says which.
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


def best_available(
    spec: str | os.PathLike | None = None,
    *,
    device: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    say=print,
    **options,
) -> Predictor:
    """The fastest runtime this machine offers for a model, chosen and printed (``say``).

    =============================  =========================================================
    model / machine                runtime
    =============================  =========================================================
    ``.onnx`` or engine file       ONNX Runtime or TensorRT, as the file says
    model folder, CUDA GPU         PyTorch, fp16 autocast, channels-last, CUDA graphs
    model folder, CPU              ONNX Runtime fp32 on an export cached by weight hash
                                   (needs the ``export`` extra), else PyTorch fp32
                                   channels-last
    =============================  =========================================================

    These are the fastest rows without an accuracy cost in ``drywallqa bench``
    (docs/performance.md): on CPU, ONNX Runtime fp32 about twice PyTorch's throughput; on GPU
    the CUDA-graph runtime has the lowest latency. int8 is never chosen for you: its mask
    agreement must be checked on your photos first (``drywallqa export --int8 --calibration``).
    The export is made once per weights file and input size, with its parity check, into
    ``cache_dir`` (default ``$XDG_CACHE_HOME/drywallqa/onnx``).

    Args:
        spec: Model folder, None for the shipped model, or an ``.onnx``/engine file. Other specs
            (``clipseg:DIR``...) run on PyTorch through :func:`~drywallqa.inference.load_predictor`.
        device: ``"cpu"``, ``"cuda"``... (default: CUDA when available).
        cache_dir: Folder of cached ONNX exports.
        say: Called with one line naming the choice and why.
        **options: ``threshold``, ``batch_size`` and ``image_size``, for every runtime.

    Returns:
        A :class:`~drywallqa.inference.BatchedPredictor`.
    """
    import torch

    from drywallqa.inference import load_predictor

    if runtime_for_spec(spec) != "torch":
        predictor = load_runtime_predictor(spec, device=device, **options)
        say(f"runtime: {predictor.name} (the model file's own)")
        return predictor
    if device is not None and str(device) != "cpu" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but torch sees no CUDA GPU here; drop --device or use cpu")
    if torch.cuda.is_available() and (device is None or str(device).startswith("cuda")):
        predictor = load_predictor(spec, device=device, precision="fp16", channels_last=True, cuda_graphs=True, **options)
        say(f"runtime: {predictor.name} (fastest on a GPU without an accuracy cost)")
        return predictor
    why = _onnx_unavailable(spec)
    if why is None:
        try:
            path = _cached_onnx_export(spec, cache_dir, options.get("image_size"))
            from drywallqa.export.onnx_runtime import OnnxPredictor

            predictor = OnnxPredictor(path, device="cpu", embed_unknown_prompts=True, **options)
            say(f"runtime: {predictor.name} (fastest on a CPU without an accuracy cost; export {path})")
            return predictor
        except DrywallQAError as exc:
            why = str(exc)
    predictor = load_predictor(spec, device="cpu", channels_last=True, **options)
    say(f"runtime: {predictor.name} (ONNX Runtime not used: {why})")
    return predictor


def _onnx_unavailable(spec: str | os.PathLike | None) -> str | None:
    """Why a spec cannot go to ONNX Runtime here, or None when it can."""
    import importlib.util

    if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None:
        return 'onnxruntime is not installed (pip install "drywallqa[export]")'
    if spec is not None and not (Path(spec) / "config.json").is_file():
        return f"{spec} is not a model folder"
    return None


def onnx_cache_dir() -> Path:
    """Where :func:`best_available` keeps its ONNX exports: ``$XDG_CACHE_HOME/drywallqa/onnx``."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "drywallqa" / "onnx"


def _cached_onnx_export(spec, cache_dir, image_size: int | None) -> Path:
    """The ONNX export of a model folder at an input size, made once (keyed by a hash of its files)."""
    import dataclasses
    import hashlib

    from drywallqa.export.onnx import export_onnx
    from drywallqa.inference import default_model_path

    folder = Path(str(default_model_path())) if spec is None else Path(spec)
    digest = hashlib.sha256()
    for name in ("config.json", "model.safetensors"):
        if (folder / name).is_file():
            digest.update((folder / name).read_bytes())
    digest.update(str(image_size).encode())
    path = Path(cache_dir or onnx_cache_dir()) / f"{folder.name}-{digest.hexdigest()[:16]}.onnx"
    if not path.is_file():
        model = load_model(spec)
        if image_size:
            model.config = dataclasses.replace(model.config, image_size=int(image_size))
        path.parent.mkdir(parents=True, exist_ok=True)
        export_onnx(model, path)
    return path
