"""The one loader: a model spec and a runtime in, a :class:`~drywallqa.inference.Predictor` out.

:func:`load_predictor` is the entry point of every driver (``evaluate``, ``predict``, ``serve``,
``watch``) and of notebooks. One private resolver (:func:`_resolve`) picks the runtime predictor:

=============  =====================================================  ===============================
runtime        spec                                                   predictor
=============  =====================================================  ===============================
``torch``      model folder (``save_pretrained``), ``NAME[:WEIGHTS]``,  :class:`ModelPredictor`
               a YAML spec, or None (the shipped model)
``onnx``       ``.onnx`` file from ``drywallqa export``, or a model     :class:`OnnxPredictor`
               folder (exported once into a cache)
``tensorrt``   ``.onnx`` file (engine built once), ``.plan`` file, or   :class:`TensorRTPredictor`
               a model folder (exported once into a cache)
``auto``       the fastest runtime this machine offers that gives the   (one of the above)
               model's own masks (:func:`_best_available`)
=============  =====================================================  ===============================

An exported file runs on the runtime its suffix names (``.onnx`` -> ONNX Runtime,
``.plan``/``.engine`` -> TensorRT) unless another is asked for. Each runtime takes the options
:data:`RUNTIME_OPTIONS` lists; any other option is refused before the model loads.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drywallqa.errors import ConfigError, DrywallQAError
from drywallqa.inference.calibration import CALIBRATION_FILE, read_calibration
from drywallqa.inference.core import BatchedPredictor, Predictor
from drywallqa.inference.graph_io import GRAPH_LAYOUT
from drywallqa.inference.tiling import check_tile
from drywallqa.inference.torch_runtime import ModelPredictor
from drywallqa.inference.tta import TTA_VIEWS, FlipTTAPredictor

if TYPE_CHECKING:
    from drywallqa.models import PromptSegmentationModel

RUNTIMES = ("torch", "onnx", "tensorrt")
#: What ``--runtime`` accepts: a runtime of :data:`RUNTIMES`, or ``auto`` for the fastest one here.
RUNTIME_CHOICES = ("auto", *RUNTIMES)
#: Options every runtime takes; any other option (``precision``, ``compile``...) is PyTorch's own.
COMMON_OPTIONS = ("threshold", "batch_size", "image_size")
#: The keyword options of each runtime's predictor (:class:`ModelPredictor`, :class:`OnnxPredictor`,
#: :class:`TensorRTPredictor`) besides ``device``: what ``load_predictor(..., **options)`` passes on.
RUNTIME_OPTIONS: dict[str, tuple[str, ...]] = {
    "torch": ("image_size", "threshold", "batch_size", "precision", "channels_last", "compile", "cuda_graphs",
              "fold_batchnorm", "pad_batches"),
    "onnx": ("prompts", "threshold", "batch_size", "image_size", "providers", "intra_op_threads", "allow_spinning",
             "embed_unknown_prompts"),
    "tensorrt": ("prompts", "threshold", "batch_size", "image_size"),
}
#: Images per ONNX Runtime call on a CPU when none is asked for. ``drywallqa bench`` measures the
#: most images per second of the fp32 graph at batch 1: the activations of larger batches outgrow
#: the caches (batch 8 costs half as much CPU time again per image).
CPU_BATCH_SIZE = 1
ONNX_SUFFIXES = (".onnx",)
ENGINE_SUFFIXES = (".plan", ".engine")

Say = Callable[[str], object]


def load_predictor(spec: str | os.PathLike | None = None, device: str | None = None,
                   model_args: dict[str, Any] | None = None, tta: str = "none", *, runtime: str = "auto",
                   tile: str | int = "auto", say: Say | None = print, cache_dir: str | os.PathLike | None = None,
                   **options: Any) -> Predictor:
    """Build a :class:`Predictor` from a model spec, on the fastest runtime that gives its own masks.

    Args:
        spec: ``None`` for the shipped default model; a folder written by ``save_pretrained``
            (``config.json`` + ``model.safetensors``); ``NAME[:WEIGHTS]`` for a registered
            architecture built from hub weights (``clipseg:DIR``, ``sam3:DIR``, ``two-stage:DIR``);
            a transformers folder; a YAML spec; or an ``.onnx``/``.plan`` file (ONNX Runtime,
            TensorRT).
        device: Torch device; CUDA when available by default.
        model_args: Extra model config fields (e.g. ``{"boxes": "annotations:DIR"}``); PyTorch only.
        tta: Test-time augmentation, a key of :data:`TTA_VIEWS` (see :class:`FlipTTAPredictor`).
        runtime: ``"auto"``: the fastest runtime here that gives the model's own masks (ONNX
            Runtime on a CPU, from an export of the model folder made once and cached by weight
            hash, when it passes the parity check; PyTorch on CUDA); or ``"torch"``, ``"onnx"``,
            ``"tensorrt"`` (a model folder is exported once into the cache for the last two).
        tile: How photos are tiled (:mod:`~drywallqa.inference.tiling`): ``"auto"`` (photos
            larger or more elongated than a tile are judged in overlapping tiles at the scale
            the model learned), ``"off"`` (every photo stretched to the model's square) or a
            tile side in pixels (>= 64). ``predict(..., tile=...)`` overrides it per call.
        say: Called with one line naming the runtime used and why (None: silent).
        cache_dir: Folder of cached ONNX exports of model folders (default :func:`onnx_cache_dir`).
        **options: Passed to the runtime (:data:`RUNTIME_OPTIONS`: ``threshold``, ``batch_size``,
            ``image_size`` for every runtime; PyTorch's ``precision``, ``compile``... select PyTorch
            under ``"auto"``; ONNX Runtime's ``intra_op_threads``... are dropped when it is not used).

    Raises:
        ConfigError: For an unknown runtime, TTA or tile setting, an option the runtime does not
            take, or model arguments on another runtime (all checked before the model loads).
        DrywallQAError: If the model cannot be found or loaded, with what to do about it.

    Example:
        >>> predictor = load_predictor()                                         # doctest: +SKIP
        >>> predictor = load_predictor("promptunet.onnx")                        # doctest: +SKIP
        >>> predictor = load_predictor("runs/x/model", runtime="torch", precision="bf16")  # doctest: +SKIP
    """
    if tta not in TTA_VIEWS:
        raise ConfigError(f"tta must be one of {', '.join(TTA_VIEWS)}, got {tta!r}")
    tile = check_tile(tile)
    explicit_threshold = options.get("threshold") is not None
    if not explicit_threshold:
        options.pop("threshold", None)
    quiet: Say = say or (lambda line: None)
    predictor, why = _resolve(spec, runtime, device, model_args or {}, cache_dir, options, quiet)
    quiet(f"runtime: {predictor.name} ({why})")
    if tta != "none":
        if not isinstance(predictor, BatchedPredictor):
            raise ConfigError(f"test-time flips need a batched runtime; {predictor.name} is not one")
        predictor = FlipTTAPredictor(predictor, tta)
    if isinstance(predictor, BatchedPredictor):
        predictor.set_tile(tile)
    elif tile != "off":
        raise ConfigError(f"tiling needs a batched runtime; {predictor.name} is not one (use tile='off')")
    if not explicit_threshold:
        # A model folder's calibrated per-class thresholds apply unless a threshold is given.
        predictor.set_thresholds(read_calibration(calibration_file(spec)).get("thresholds", {}))
    predictor.weights_files = weight_files(spec)  # what `predict` resumes by (weights_digest, read lazily)
    return predictor


def _resolve(spec: str | os.PathLike | None, runtime: str, device: str | None, model_args: dict[str, Any],
             cache_dir: str | os.PathLike | None, options: dict[str, Any], say: Say) -> tuple[Predictor, str]:
    """The runtime predictor of a spec, and why it runs there (printed after its name).

    Every path ends in one of three builders: :func:`_model_predictor` (PyTorch),
    :func:`_file_predictor` (an exported file) or :func:`_onnx_predictor` (a model folder's cached
    export); the choice of ``"auto"`` is :func:`_best_available`'s.
    """
    if runtime not in RUNTIME_CHOICES:
        raise ConfigError(f"unknown runtime {runtime!r}; expected one of: {', '.join(RUNTIME_CHOICES)}")
    implied = runtime_for_spec(spec)
    if runtime == "auto" and model_args:
        return _spec_predictor(spec, device, model_args, options), "model arguments need PyTorch"
    if model_args and not (runtime == "torch" and implied == "torch"):
        raise ConfigError(f"model arguments ({', '.join(model_args)}) need --runtime torch, not {runtime}")
    if implied != "torch":  # an exported file: the runtime it names, or the one asked for
        if runtime == "auto":
            _check_cuda(device)
            return _file_predictor(spec, implied, device, options), "the model file's own"
        return _file_predictor(spec, runtime, device, options), f"--runtime {runtime}"
    if runtime == "torch":
        return _spec_predictor(spec, device, model_args, options), "--runtime torch"
    if runtime == "auto":
        return _best_available(spec, device, cache_dir, options, say)
    why = _onnx_unavailable(spec)
    if why is not None:
        raise ConfigError(f"--runtime {runtime} cannot run this model: {why}; use --runtime torch")
    if runtime == "onnx":
        return _onnx_predictor(spec, cache_dir, say, device, options), "--runtime onnx"
    path = _cached_onnx_export(spec, cache_dir, options.get("image_size"), say)
    return _file_predictor(path, "tensorrt", device, options), "--runtime tensorrt"


def _best_available(spec: str | os.PathLike | None, device: str | None, cache_dir: str | os.PathLike | None,
                    options: dict[str, Any], say: Say) -> tuple[Predictor, str]:
    """The fastest runtime this machine offers for a model (not an exported file), and why.

    =============================  =========================================================
    machine                        runtime
    =============================  =========================================================
    CUDA GPU                       PyTorch fp32, channels-last, CUDA graphs
    CPU                            ONNX Runtime fp32 on an export cached by weight hash
                                   (needs the ``export`` extra), else PyTorch fp32
                                   channels-last
    other specs                    PyTorch (``clipseg:DIR``... have no export)
    =============================  =========================================================

    Only runtimes that give the model's own masks are chosen: the ONNX export passes the parity
    rule of :func:`~drywallqa.export.export_onnx` (mask IoU >= 0.999 and logits within 1e-3
    of PyTorch's) or is not used, and on a GPU the model stays in fp32 (fp16 and int8 change
    masks, so they are never chosen for you). The export is made once per weights file and input
    size into ``cache_dir`` (default :func:`onnx_cache_dir`), atomically, so concurrent first runs
    are safe. A PyTorch option (``precision``...) selects PyTorch; ONNX Runtime's own options are
    dropped when PyTorch runs.
    """
    import torch

    _check_cuda(device)
    onnx_only = set(RUNTIME_OPTIONS["onnx"]) - set(COMMON_OPTIONS)
    torch_only = sorted(set(options) - set(COMMON_OPTIONS) - onnx_only)
    torch_options = {k: v for k, v in options.items() if k not in onnx_only}
    cuda = torch.cuda.is_available() and (device is None or str(device).startswith("cuda"))
    if cuda and not torch_only:
        predictor = _spec_predictor(spec, device, {}, {**torch_options, "channels_last": True, "cuda_graphs": True})
        return predictor, "fastest on a GPU with the model's own fp32 masks"
    why = f"PyTorch option(s) {', '.join(torch_only)} given" if torch_only else _onnx_unavailable(spec)
    if why is None and device is not None and not str(device).startswith("cpu"):
        why = f"device {device!r}"
    if why is None:
        try:
            onnx = _onnx_predictor(spec, cache_dir, say, device or "cpu", options)
            return onnx, f"fastest on a CPU with the model's own masks; export {getattr(onnx, 'path', '')}"
        except DrywallQAError as exc:
            why = str(exc)
    predictor = _spec_predictor(spec, device or "cpu", {}, {"channels_last": True, **torch_options})
    return predictor, f"ONNX Runtime not used: {why}"


def _check_cuda(device: str | None) -> None:
    import torch

    if device is not None and str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: no CUDA GPU here (torch.cuda.is_available() is False); drop --device")


def _check_options(runtime: str, options: Mapping[str, Any]) -> None:
    accepted = RUNTIME_OPTIONS[runtime]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(
            f"runtime {runtime!r} does not take option(s) {', '.join(unknown)}; it takes: {', '.join(accepted)}"
        )


def _spec_predictor(spec: str | os.PathLike | None, device: str | None, model_args: dict[str, Any],
                    options: dict[str, Any]) -> Predictor:
    """PyTorch on the model a spec names (a registered architecture, a model folder, a YAML spec,
    or None: the shipped model), or the runtime an exported file's suffix names."""
    from drywallqa.models import build_from_spec

    if runtime_for_spec(spec) != "torch":
        return _file_predictor(spec, runtime_for_spec(spec), device, options)
    _check_options("torch", options)
    model = build_from_spec(spec, model_args) if spec is not None else None
    if model is not None:
        return model_predictor(model, device=device, **options)
    return ModelPredictor(load_model(spec), device=device, **options)


def _file_predictor(spec: str | os.PathLike | None, runtime: str, device: str | None,
                    options: dict[str, Any]) -> Predictor:
    """ONNX Runtime or TensorRT on an exported file, refusing a file the runtime cannot run."""
    from drywallqa.inference.onnx_runtime import OnnxPredictor
    from drywallqa.inference.tensorrt_runtime import TensorRTPredictor

    implied = runtime_for_spec(spec)
    if runtime == "torch":
        raise ConfigError(f"runtime 'torch' needs a model folder, got {spec!r}; use runtime={implied!r} for it")
    if runtime == "onnx" and implied != "onnx":
        raise ConfigError(
            f"runtime 'onnx' needs an .onnx file, got {spec!r}; "
            f"export one first: drywallqa export --model {spec or 'M'} --format onnx --out model.onnx"
        )
    _check_options(runtime, options)
    assert spec is not None  # an exported file's suffix named its runtime
    if runtime == "onnx":
        return OnnxPredictor(spec, device=device, **options)
    return TensorRTPredictor(spec, **options) if device is None else TensorRTPredictor(spec, device=device, **options)


def default_model_path() -> Path:
    """Folder of the model shipped inside the package (``drywallqa/weights/promptunet``)."""
    from importlib import resources

    return Path(str(resources.files("drywallqa").joinpath("weights/promptunet")))


def calibration_file(spec: str | os.PathLike | None) -> Path | None:
    """Where the calibrated thresholds of a spec's weights live: ``calibration.json`` in a model
    folder (the shipped one for None), ``<stem>.calibration.json`` beside an exported runtime file
    (``drywallqa export`` writes it); None for other specs."""
    if spec is None:
        return Path(str(default_model_path())) / CALIBRATION_FILE
    path = Path(str(spec))
    if path.suffix in ONNX_SUFFIXES + ENGINE_SUFFIXES:
        return path.with_suffix(".calibration.json")
    return path / CALIBRATION_FILE if (path / "config.json").is_file() else None


#: Suffixes of the files in a model folder whose bytes make its masks (beside its ``config.json``).
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".onnx", *ENGINE_SUFFIXES, ".yaml", ".yml")
_DIGESTS: dict[tuple[str, int, int], str] = {}


def weight_files(spec: str | os.PathLike | None) -> tuple[Path, ...]:
    """The files whose bytes make a spec's masks: a model folder's ``config.json`` and weight files
    (the shipped folder for None), an exported ``.onnx``/engine file or a YAML spec itself, the folder
    of ``NAME:DIR``; ``()`` when the spec names no file (a hub name)."""
    text = str(default_model_path()) if spec is None else str(spec)
    candidates = [Path(text)] + ([Path(text.split(":", 1)[1])] if ":" in text else [])
    for path in candidates:
        if path.is_file():
            return (path.resolve(),)
        if path.is_dir():
            return tuple(sorted(p.resolve() for p in path.iterdir()
                                if p.is_file() and (p.name == "config.json" or p.suffix.lower() in WEIGHT_SUFFIXES)))
    return ()


def weights_digest(files: tuple[Path, ...] | list[Path]) -> str | None:
    """SHA-256 (first 16 hex digits) of the names and bytes of a model's :func:`weight_files`, or None
    for none. Each file's digest is kept per process by path, modification time and size, so a
    driver that asks per batch (a Ray worker) reads the weights once."""
    import hashlib

    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        stat = Path(path).stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size)
        if key not in _DIGESTS:
            file_digest = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    file_digest.update(block)
            _DIGESTS[key] = file_digest.hexdigest()
        digest.update(f"{Path(path).name}\0{_DIGESTS[key]}\n".encode())
    return digest.hexdigest()[:16]


def model_predictor(model: PromptSegmentationModel, **kwargs: Any) -> ModelPredictor:
    """A :class:`~drywallqa.inference.ModelPredictor` named after the model's :attr:`display_name`.

    The evaluation report records the predictor's name, so e.g. ``textsam+boxes:annotations``
    shows that box prompts came from ground truth. ``predictor.metadata`` holds the model's
    :attr:`~drywallqa.models.transformers_base.TransformersPromptModel.metadata`.

    Args:
        model: Any registered model.
        **kwargs: :class:`~drywallqa.inference.ModelPredictor` arguments (``device``, ``threshold``, ...).
    """
    predictor = ModelPredictor(model, **kwargs)
    # Reports name the model, not the runtime options (those are in ModelPredictor's own name).
    predictor.name = str(getattr(model, "display_name", None) or getattr(model, "name", None) or predictor.name)
    predictor.metadata = dict(getattr(model, "metadata", {}) or {"architecture": predictor.name})
    return predictor


def load_model(spec: str | os.PathLike | None = None) -> PromptSegmentationModel:
    """Load a model folder, or the shipped default model for ``None`` (``load_predictor`` semantics).

    Returns:
        The :class:`~drywallqa.models.PromptSegmentationModel` on CPU, in eval mode.

    Raises:
        DrywallQAError: If there is no such folder, or no shipped model yet, with what to do.
    """
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


def _onnx_predictor(spec: str | os.PathLike | None, cache_dir: str | os.PathLike | None, say: Say,
                    device: str | None, options: dict[str, Any]) -> Predictor:
    """ONNX Runtime on the cached export of a model folder; prompts outside the export are embedded."""
    from drywallqa.inference.onnx_runtime import OnnxPredictor

    _check_options("onnx", options)
    path = _cached_onnx_export(spec, cache_dir, options.get("image_size"), say)
    # The drivers decode, measure and write in threads beside the model: an idle ONNX Runtime thread
    # spinning for work would take the core they need (see create_session).
    options = {"allow_spinning": False, "embed_unknown_prompts": True, "device": device, **options}
    if device is not None and device.startswith("cpu"):
        options.setdefault("batch_size", CPU_BATCH_SIZE)
    return OnnxPredictor(path, **{k: v for k, v in options.items() if v is not None})


def _onnx_unavailable(spec: str | os.PathLike | None) -> str | None:
    """Why a spec cannot go to ONNX Runtime here, or None when it can."""
    import importlib.util
    import json

    if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None:
        return 'onnxruntime is not installed (pip install "drywallqa[export]")'
    folder = Path(spec) if spec is not None else None
    if folder is not None and not (folder / "model.safetensors").is_file():
        return f"{spec} is not a model folder of save_pretrained"
    if folder is not None:
        try:
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            config = None
        if not isinstance(config, dict) or "format_version" not in config:
            return f"{spec} is not a model folder of save_pretrained (a transformers checkpoint runs on PyTorch)"
    return None


def onnx_cache_dir() -> Path:
    """Where exports of model folders are cached (see :func:`drywallqa.files.user_cache_dir`)."""
    from drywallqa.files import user_cache_dir

    return user_cache_dir("onnx")


def _cached_onnx_export(spec: str | os.PathLike | None, cache_dir: str | os.PathLike | None,
                        image_size: int | None, say: Say = print) -> Path:
    """The ONNX export of a model folder at an input size, made once (keyed by a hash of its files).

    :func:`~drywallqa.export.export_onnx` writes the graph last and atomically, after its
    parity check, so a file under the key is always a complete export that passed.
    """
    import dataclasses
    import hashlib

    # The one import of a higher layer: the cache is filled by the exporter, on first use only.
    from drywallqa.export.onnx import export_onnx

    folder = Path(str(default_model_path())) if spec is None else Path(spec)
    digest = hashlib.sha256()
    for name in ("config.json", "model.safetensors"):
        if (folder / name).is_file():
            digest.update((folder / name).read_bytes())
    digest.update(str(image_size).encode())
    # A new layout of the exported graphs (graph_io.GRAPH_LAYOUT) makes a new key: older exports are made again.
    digest.update(f"graph layout {GRAPH_LAYOUT}".encode())
    path = Path(cache_dir or onnx_cache_dir()) / f"{folder.name}-{digest.hexdigest()[:16]}.onnx"
    if not path.is_file():
        say(f"exporting {folder} to ONNX once, with its parity check, into {path.parent} ...")
        model = load_model(spec)
        if image_size:
            model.config = dataclasses.replace(model.config, image_size=int(image_size))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DrywallQAError(f"{path.parent}: cannot write the ONNX cache ({exc.strerror or exc}); "
                                 "set DRYWALLQA_CACHE to a writable folder") from exc
        export_onnx(model, path)
    return path
