"""Pretrained transformers models behind the drywallqa model interface: weights, specs, caches.

What the classic architectures (``clipseg``, ``textsam``, ``sam3``, ``two-stage``) share:

- **Weights** (:func:`load_pretrained`): ``weights`` is a Hugging Face hub id or a local folder.
  A folder is read as is; a hub id is read from the local cache first and downloaded only when
  the hub is reachable and not switched off (``HF_HUB_OFFLINE=1``). Without either the load
  fails with one line saying what to download and how to pass it. SAM checkpoints go through
  the pseudo-mask method's loader (:func:`drywallqa.pseudomask.sam.load_sam`), which follows the
  same rules.
- **Frozen-encoder cache** (:class:`EmbeddingCache`): the frozen image encoder's output per
  image, on disk, keyed by a hash of the encoder input and of the encoder itself, so fine-tuning
  a decoder does not re-run a ViT on images it has seen.
- **A base class** (:class:`TransformersPromptModel`) that brings its own text encoder, keeps
  frozen parts in eval mode, refuses training for zero-shot models and describes itself
  (:attr:`~TransformersPromptModel.display_name`, :attr:`~TransformersPromptModel.metadata`).
- **Specs** (:func:`build_from_spec`): ``"clipseg:DIR"``, ``"sam3"``, a fine-tuned folder or a
  YAML file to a model, for ``drywallqa evaluate/predict --model SPEC``.
- **Tiny checkpoints** (:func:`save_tiny_checkpoint`): randomly initialised transformers
  checkpoints with a tokenizer, for tests and smoke runs without network.

transformers is imported inside functions only, so ``import drywallqa.models`` stays fast.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from drywallqa.errors import ConfigError, DrywallQAError
from drywallqa.files import atomic_write, read_json
from drywallqa.models.base import CONFIG_FILE, PromptModelConfig, PromptSegmentationModel, _is_exporting
from drywallqa.models.registry import available_models, build_model, get_model_class
from drywallqa.models.text import TextEncoder

Loaded = TypeVar("Loaded")

#: Logit given to pixels where a model predicts nothing at all (``sigmoid(-20) ≈ 2e-9``).
EMPTY_LOGIT = -20.0


# -- weights ------------------------------------------------------------------------------------


def looks_like_hub_id(weights: str) -> bool:
    """``org/name`` or ``name`` (letters, digits, ``-_.``), not a path like ``./x`` or ``/x/y``."""
    from drywallqa.pseudomask.sam import _looks_like_hub_id

    return _looks_like_hub_id(weights)


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` forbids network access."""
    from drywallqa.pseudomask.sam import _offline

    return _offline()


def download_hint(weights: str, how_to_pass: str) -> str:
    """The instruction for getting ``weights`` onto a machine without network access."""
    hub_id = weights if looks_like_hub_id(weights) else "<hub id>"
    return (
        f"download them where there is network access with `huggingface-cli download {hub_id} --local-dir DIR`, "
        f"copy DIR here and pass {how_to_pass}"
    )


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' progress bars and warnings while loading local files."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bar_was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bar_was_enabled:
            hf_logging.enable_progress_bar()


def load_pretrained(load: Callable[[str, bool], Loaded], weights: str, *, what: str, how_to_pass: str) -> Loaded:
    """Call ``load(source, local_files_only)`` on a local folder or a hub id, with one clear error.

    A folder is loaded as is. A hub id is tried in the local cache first (no network), then on
    the hub unless ``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE`` is set.

    Args:
        load: E.g. ``lambda source, local: AutoConfig.from_pretrained(source, local_files_only=local)``.
        weights: Hub id or local folder.
        what: What is loaded, for messages (``"CLIPSeg"``).
        how_to_pass: The option that takes the folder, e.g. ``"--model clipseg:DIR"``.

    Raises:
        DrywallQAError: One line naming the weights, why they cannot be read and the download
            command, when the folder is missing or incomplete or the hub id cannot be had.
    """
    weights = str(weights)
    local = Path(weights).expanduser()
    if local.is_dir():
        sources = [(str(local), True)]
    elif not looks_like_hub_id(weights):
        raise DrywallQAError(f"{what} weights folder {weights} does not exist; {download_hint(weights, how_to_pass)}")
    else:
        sources = [(weights, True)] + ([] if hub_offline() else [(weights, False)])
    last_error: Exception | None = None
    with quiet_transformers():
        for source, local_only in sources:
            try:
                return load(source, local_only)
            except (OSError, ValueError) as exc:
                last_error = exc
    where = "is not a complete checkpoint" if local.is_dir() else "are not available offline"
    first = str(last_error).strip().splitlines()[0][:160] if last_error else ""
    raise DrywallQAError(f"{what} weights {weights} {where} ({first}); {download_hint(weights, how_to_pass)}")


def load_tokenizer(weights: str, *, what: str, how_to_pass: str) -> Any:
    """The tokenizer stored with a checkpoint (``AutoTokenizer``), via :func:`load_pretrained`'s rules."""
    from transformers import AutoTokenizer

    return load_pretrained(
        lambda source, local: AutoTokenizer.from_pretrained(source, local_files_only=local),
        weights, what=what, how_to_pass=how_to_pass,
    )


def architecture_dict(hf_config: Any) -> dict[str, Any]:
    """A transformers config as a JSON-clean dict (tuples become lists), for a drywallqa config."""
    return json.loads(hf_config.to_json_string(use_diff=False))


def load_hf_model(
    model_class: Any,
    config_class: Any,
    *,
    weights: str | None,
    architecture: Mapping[str, Any] | None,
    load_weights: bool,
    what: str,
    how_to_pass: str,
) -> tuple[nn.Module, dict[str, Any]]:
    """Build a transformers model from pretrained weights, or randomly initialised from its config.

    Args:
        model_class: E.g. ``CLIPSegForImageSegmentation``.
        config_class: Its config class, e.g. ``CLIPSegConfig``.
        weights: Hub id or folder of the pretrained checkpoint.
        architecture: The config as a dict (recorded in drywallqa checkpoints); when given and
            ``load_weights`` is False nothing is read from ``weights``.
        load_weights: Read the pretrained weights (else random initialisation: a drywallqa
            checkpoint overwrites them, or a test wants a random model).
        what: For error messages.
        how_to_pass: For error messages.

    Returns:
        ``(model, architecture)`` with the architecture as a JSON-clean dict.
    """
    if load_weights or architecture is None:
        if weights is None:
            raise ConfigError(f"{what}: give weights (a hub id or a folder) or an architecture dict")
        if load_weights:
            model = load_pretrained(
                lambda source, local: model_class.from_pretrained(source, local_files_only=local),
                weights,
                what=what,
                how_to_pass=how_to_pass,
            )
            return model, architecture_dict(model.config)
        hf_config = load_pretrained(
            lambda source, local: config_class.from_pretrained(source, local_files_only=local),
            weights,
            what=what,
            how_to_pass=how_to_pass,
        )
    else:
        hf_config = config_class.from_dict(dict(architecture))
    with quiet_transformers():
        model = model_class(hf_config)
    return model, architecture_dict(model.config)


# -- the frozen-encoder embedding cache ---------------------------------------------------------


class EmbeddingCache:
    """Frozen image-encoder outputs on disk, one safetensors file per image and encoder.

    The key of an entry is a hash of the encoder input of one image (the resized, normalised
    float pixels, so any change in preprocessing misses) and the ``encoder_key`` of the model (a
    hash of the frozen encoder's weights and name), so two models never share entries. Entries
    are written atomically and stored in float32, so a hit returns exactly what the encoder
    computed. Augmented training images differ every epoch and never hit: the cache pays off with
    augmentation off, for validation images, and across runs on the same images.

    Sizes per image: SAM ViT ``256x64x64`` floats (4 MiB), CLIPSeg three ViT-B/16 layers at 352
    px (4.5 MiB).

    Args:
        directory: Cache folder (created on first write).

    Attributes:
        hits: Images served from disk since creation.
        misses: Images computed (and written) since creation.

    Example:
        >>> cache = EmbeddingCache("runs/embedding-cache")                       # doctest: +SKIP
        >>> features = cache.get_or_compute("sam-b:1f2e", pixels, encode)        # doctest: +SKIP
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.hits = 0
        self.misses = 0

    @staticmethod
    def image_key(pixels: Tensor) -> str:
        """Hash of one image's encoder input ``(3, H, W)`` (shape, dtype and values)."""
        array = pixels.detach().to("cpu", torch.float32).contiguous().numpy()
        digest = hashlib.blake2b(digest_size=16)
        digest.update(f"{tuple(array.shape)}".encode())
        digest.update(array.tobytes())
        return digest.hexdigest()

    def path(self, encoder_key: str, image_key: str) -> Path:
        """File of one entry: ``<directory>/<encoder_key>/<2 hex>/<image_key>.safetensors``."""
        return self.directory / encoder_key / image_key[:2] / f"{image_key}.safetensors"

    def get_or_compute(
        self, encoder_key: str, pixels: Tensor, encode: Callable[[Tensor], dict[str, Tensor]]
    ) -> dict[str, Tensor]:
        """Encoder outputs of a batch, reading cached images and computing (and storing) the rest.

        Args:
            encoder_key: Identifies the frozen encoder (see :meth:`TransformersPromptModel.encoder_key`).
            pixels: float ``(B, 3, H, W)``, the encoder input.
            encode: Runs the encoder on a sub-batch; returns batch-first tensors by name.

        Returns:
            The same dict ``encode(pixels)`` would return, on ``pixels.device``.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file, save_file

        keys = [self.image_key(image) for image in pixels]
        found: list[dict[str, Tensor] | None] = []
        for key in keys:
            path = self.path(encoder_key, key)
            entry = None
            if path.is_file():
                try:
                    entry = load_file(str(path))
                except (OSError, SafetensorError) as exc:
                    # A truncated entry (e.g. a killed run on a full disk) is recomputed and replaced.
                    warnings.warn(f"{path}: unreadable embedding cache entry, recomputing ({exc})", stacklevel=2)
            found.append(entry)
        missing = [i for i, entry in enumerate(found) if entry is None]
        if missing:
            computed = encode(pixels[missing])
            for row, index in enumerate(missing):
                entry = {
                    name: value[row].detach().to("cpu", torch.float32).contiguous() for name, value in computed.items()
                }
                atomic_write(self.path(encoder_key, keys[index]), lambda tmp, e=entry: save_file(e, str(tmp)))
                found[index] = entry
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        names = found[0].keys()
        return {name: torch.stack([entry[name] for entry in found]).to(pixels.device) for name in names}

    def __repr__(self) -> str:
        return f"EmbeddingCache({str(self.directory)!r}, hits={self.hits}, misses={self.misses})"


# -- the shared base class ----------------------------------------------------------------------


def check_image_size(image_size: int) -> None:
    """The input side rule of every drywallqa model: a positive multiple of 32."""
    if image_size <= 0 or image_size % 32:
        raise ConfigError(f"image_size must be a positive multiple of 32, got {image_size}")


def resize_pixels(pixels: Tensor, size: int) -> Tensor:
    """Resize ``(B, 3, H, W)`` to ``size x size`` (bilinear, antialiased when shrinking)."""
    if tuple(pixels.shape[-2:]) == (size, size):
        return pixels
    shrinking = pixels.shape[-1] > size or pixels.shape[-2] > size
    return F.interpolate(pixels, size=(size, size), mode="bilinear", align_corners=False, antialias=shrinking)


def upsample_logits(logits: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize ``(B, 1, h, w)`` logits bilinearly to ``size`` (the input resolution)."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)


def probability_to_logit(probability: Tensor, eps: float = 1e-4) -> Tensor:
    """``logit(clamp(p, eps, 1 - eps))``: a score in ``[0, 1]`` as a confidence logit."""
    return torch.logit(probability.clamp(eps, 1.0 - eps))


class TransformersPromptModel(PromptSegmentationModel):
    """Base of the models built on transformers checkpoints (``clipseg``, ``textsam``, ``sam3``, ``two-stage``).

    Differences from :class:`~drywallqa.models.base.PromptSegmentationModel`:

    - the subclass brings its text encoder (CLIPSeg's CLIP text tower, a CLIP checkpoint, a
      prompt-class encoder) instead of building ``config.text_encoder`` by name;
    - :meth:`frozen_modules` stay in eval mode in ``model.train()``, so dropout never touches
      the frozen encoders;
    - zero-shot models (:attr:`trainable` False) raise from :meth:`segment` in training mode,
      which is the call the training loop makes;
    - :attr:`display_name` and :attr:`metadata` describe the configuration for reports (e.g.
      that box prompts came from ground truth);
    - the frozen image encoder's output can be cached on disk (:meth:`encode_images_cached`).

    Attributes:
        trainable: False for zero-shot models: ``drywallqa train`` refuses them.
        zero_shot: Usable straight from pretrained weights (``--model NAME:WEIGHTS``); False when
            some part must be fine-tuned first (textsam's text projection).
    """

    trainable: ClassVar[bool] = True
    zero_shot: ClassVar[bool] = False

    def __init__(
        self,
        config: PromptModelConfig,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        text_encoder: TextEncoder,
    ):
        # The base builds config.text_encoder by name from drywallqa's own encoders; these models
        # bring theirs, so it builds the weight-free one and it is replaced right away.
        super().__init__(PromptModelConfig(text_encoder="hashing", image_size=config.image_size), pixel_mean, pixel_std)
        self.config = config
        self.text_encoder = text_encoder
        self.embedding_cache: EmbeddingCache | None = None
        self._encoder_key: str | None = None

    # -- frozen parts ---------------------------------------------------------------------------
    def frozen_modules(self) -> list[nn.Module]:
        """Pretrained parts that are never trained (kept in eval mode, ``requires_grad`` False)."""
        return []

    def freeze(self) -> None:
        """Set ``requires_grad`` False on :meth:`frozen_modules` and put them in eval mode."""
        for module in self.frozen_modules():
            module.requires_grad_(False)
            module.eval()

    def train(self, mode: bool = True) -> TransformersPromptModel:
        super().train(mode)
        for module in self.frozen_modules():
            module.eval()
        return self

    def segment(self, images: Tensor, prompts: Sequence[str]):
        """:meth:`embed_prompts` then :meth:`forward` (see the base class).

        Raises:
            ConfigError: In training mode with gradients on, for a zero-shot model.
        """
        if not self.trainable and self.training and torch.is_grad_enabled():
            raise ConfigError(
                f"{self.name} is zero-shot: it supports evaluation and prediction only, not training; "
                f"evaluate it with `drywallqa evaluate --model {self.name}:WEIGHTS --data ...`"
            )
        return super().segment(images, prompts)

    # -- the embedding cache --------------------------------------------------------------------
    def image_encoder_module(self) -> nn.Module | None:
        """The frozen image encoder whose outputs may be cached, or None."""
        return None

    def encoder_key(self) -> str:
        """Identifies the frozen image encoder: a hash of its name, input size and weights.

        Computed once (the encoder is frozen); hashing ViT-B's weights takes well under a second.
        """
        if self._encoder_key is None:
            encoder = self.image_encoder_module()
            digest = hashlib.blake2b(digest_size=8)
            digest.update(f"{self.name}:{type(encoder).__name__}:{self.native_image_size}".encode())
            if encoder is not None:
                for name, tensor in encoder.state_dict().items():
                    digest.update(name.encode())
                    digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
            self._encoder_key = f"{self.name}-{digest.hexdigest()}"
        return self._encoder_key

    def enable_embedding_cache(self, directory: str | os.PathLike | None) -> None:
        """Cache the frozen image encoder's outputs under ``directory`` (None switches it off)."""
        self.embedding_cache = EmbeddingCache(directory) if directory else None

    def encode_images_cached(self, pixels: Tensor, encode: Callable[[Tensor], dict[str, Tensor]]) -> dict[str, Tensor]:
        """``encode(pixels)``, through the embedding cache when one is enabled (never while exporting)."""
        if self.embedding_cache is None or _is_exporting():
            return encode(pixels)
        return self.embedding_cache.get_or_compute(self.encoder_key(), pixels, encode)

    # -- description ----------------------------------------------------------------------------
    @property
    def native_image_size(self) -> int:
        """Side of the square input the pretrained network works at (inputs are resized to it)."""
        return self.config.image_size

    @property
    def display_name(self) -> str:
        """Name for reports: the registry name, plus what changes the meaning of the scores."""
        return self.name

    @property
    def metadata(self) -> dict[str, Any]:
        """What a report should record about this model (weights, frozen parts, prompt sources)."""
        return {
            "architecture": self.name,
            "weights": getattr(self.config, "weights", None),
            "trainable": self.trainable,
            "trainable_parameters": self.num_parameters(trainable_only=True),
            "parameters": self.num_parameters(),
        }


# -- specs: what `--model` accepts --------------------------------------------------------------

#: transformers ``model_type`` of a bare checkpoint folder -> the drywallqa model that runs it zero-shot.
ARCHITECTURE_OF_MODEL_TYPE = {"clipseg": "clipseg", "sam3": "sam3", "sam3_video": "sam3"}


def build_from_spec(
    spec: str | os.PathLike | None, overrides: Mapping[str, Any] | None = None
) -> PromptSegmentationModel | None:
    """Build the model a ``--model`` value names, or return None when it names none of these forms.

    Accepted forms:

    - a folder written by ``save_pretrained`` (``drywallqa train`` writes ``RUN/model``), or a
      file in it: loaded with :meth:`PromptSegmentationModel.from_pretrained`;
    - ``NAME`` or ``NAME:WEIGHTS`` for a zero-shot architecture (``clipseg``, ``sam3``,
      ``two-stage``): built with ``weights=WEIGHTS`` (a hub id or a folder; the default
      checkpoint when omitted), e.g. ``clipseg:/models/clipseg-rd64-refined``;
    - a bare transformers checkpoint folder whose ``config.json`` has ``model_type`` clipseg or
      sam3: the same as ``clipseg:DIR`` / ``sam3:DIR``;
    - a YAML file with ``name`` and ``args`` (the ``model`` section of a training config), e.g.
      ``{name: two-stage, args: {weights: DIR, boxes: "coco:det.json", box_images: ann.json}}``.

    Args:
        spec: The ``--model`` value; None returns None (the caller's default model).
        overrides: Config fields applied on top (e.g. ``{"boxes": "annotations:data/cracks"}``);
            for a saved folder only fields that do not change the weights make sense.

    Returns:
        The model in eval mode, or None when ``spec`` is a path that exists but is none of the
        above (the caller reports it), or does not exist and has no ``NAME:`` prefix.

    Raises:
        ConfigError: For ``NAME:...`` with an unknown name or a model that must be fine-tuned
            first (``textsam``, ``promptunet``), or invalid overrides.
        DrywallQAError: When weights cannot be found (one line with the download command).
    """
    if spec is None:
        return None
    overrides = dict(overrides or {})
    text = str(spec)
    path = Path(text).expanduser()
    if path.suffix.lower() in {".yaml", ".yml"} and path.is_file():
        return _build_from_yaml(path, overrides)
    if path.exists():
        directory = path if path.is_dir() else path.parent
        config_path = directory / CONFIG_FILE
        if not config_path.is_file():
            return None
        meta = read_json(config_path)
        if isinstance(meta, dict) and "model" in meta and "config" in meta:
            return _load_with_overrides(directory, overrides)
        model_type = meta.get("model_type", "") if isinstance(meta, dict) else ""
        if model_type in ARCHITECTURE_OF_MODEL_TYPE:
            return _build_zero_shot(ARCHITECTURE_OF_MODEL_TYPE[model_type], str(directory), overrides)
        if model_type in {"sam", "sam2", "sam_hq"}:
            raise ConfigError(
                f"{directory} is a SAM checkpoint, which needs box prompts or a trained text projection: "
                "evaluate it as two-stage with a box source (a YAML spec: name: two-stage, args: "
                f"{{weights: {directory}, "
                f"boxes: coco:FILE, ...}}), or fine-tune "
                f"textsam with `drywallqa train --model textsam --set model.args.weights={directory}`"
            )
        return None
    name, separator, weights = text.partition(":")
    if name in available_models():
        return _build_zero_shot(name, weights or None, overrides)
    if separator and len(name) > 1:  # not a Windows drive letter
        zero_shot = [n for n in available_models() if getattr(get_model_class(n), "zero_shot", False)]
        raise ConfigError(
            f"unknown model {name!r} in {text!r}; expected a model folder, a YAML file, or NAME[:WEIGHTS] "
            f"with NAME one of: {', '.join(zero_shot)}"
        )
    return None


def _build_zero_shot(name: str, weights: str | None, overrides: dict[str, Any]) -> PromptSegmentationModel:
    cls = get_model_class(name)
    if not getattr(cls, "zero_shot", False):
        raise ConfigError(
            f"{name} has parts that must be trained before it can predict; fine-tune it with "
            f"`drywallqa train --model {name} --set model.args.weights=WEIGHTS ...` and pass the run's model folder"
        )
    args = {**({"weights": weights} if weights else {}), **overrides}
    return build_model(name, **args).eval()


def _build_from_yaml(path: Path, overrides: dict[str, Any]) -> PromptSegmentationModel:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    data = data.get("model", data) if isinstance(data, dict) else data
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise ConfigError(f"{path}: expected a mapping with 'name' (a model name) and optional 'args'")
    args = data.get("args") or {}
    if not isinstance(args, dict):
        raise ConfigError(f"{path}: 'args' must be a mapping of config fields")
    return _build_zero_shot(data["name"], None, {**args, **overrides})


def _load_with_overrides(directory: Path, overrides: dict[str, Any]) -> PromptSegmentationModel:
    model = PromptSegmentationModel.from_pretrained(directory)
    if not overrides:
        return model
    cls = type(model)
    valid = {f.name for f in dataclasses.fields(cls.config_class)}
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise ConfigError(
            f"unknown {cls.name} config field(s) {', '.join(unknown)}; expected some of: {', '.join(sorted(valid))}"
        )
    rebuilt = cls(dataclasses.replace(model.config, **overrides), load_pretrained=False)
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    return rebuilt.eval()


# -- tiny checkpoints for tests and smoke runs --------------------------------------------------

TINY_KINDS = ("clipseg", "sam", "sam3", "clip", "grounding-dino")
TINY_COMPLETE_MARKER = "drywallqa-tiny-complete"


def save_tiny_checkpoint(kind: str, directory: str | os.PathLike | None = None) -> Path:
    """Write a tiny randomly initialised transformers checkpoint (config, weights, tokenizer).

    It loads like the real one (``from_pretrained(directory)``) but has a few thousand
    parameters and predicts noise: for tests and smoke runs without network access.

    Args:
        kind: ``"clipseg"`` (CLIPSeg, 64 px), ``"sam"`` (SAM, 128 px), ``"sam3"`` (SAM 3, 112 px),
            ``"clip"`` (a CLIP model, for textsam's ``text_weights``) or ``"grounding-dino"``.
        directory: Output folder (missing or empty); by default a folder per kind and
            transformers version in the system temp folder, reused when it is already complete.

    Returns:
        The folder.
    """
    import tempfile

    import transformers

    if kind not in TINY_KINDS:
        raise ConfigError(f"unknown tiny checkpoint kind {kind!r}; expected one of: {', '.join(TINY_KINDS)}")
    if directory is None:
        directory = Path(tempfile.gettempdir()) / f"drywallqa-tiny-{kind}-transformers-{transformers.__version__}"
    directory = Path(directory)
    if (directory / TINY_COMPLETE_MARKER).is_file():
        return directory
    directory.parent.mkdir(parents=True, exist_ok=True)
    # Built in a scratch folder and renamed into place, so a concurrent or interrupted call never
    # leaves a half-written checkpoint behind the marker.
    scratch = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    torch_state = torch.random.get_rng_state()
    torch.manual_seed(0)
    try:
        with quiet_transformers():
            _TINY_BUILDERS[kind](scratch)
        (scratch / TINY_COMPLETE_MARKER).write_text("ok\n")
        if directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()
        try:
            os.replace(scratch, directory)
        except OSError:
            if not (directory / TINY_COMPLETE_MARKER).is_file():  # not another process's complete copy
                raise
    finally:
        torch.random.set_rng_state(torch_state)
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)
    return directory


def _tiny_clip_tokenizer(directory: Path) -> int:
    """A character-level CLIP tokenizer (lower-case letters and digits); returns its vocab size."""
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for char in "abcdefghijklmnopqrstuvwxyz0123456789":
        vocab[char] = len(vocab)
        vocab[char + "</w>"] = len(vocab)
    CLIPTokenizer(vocab=vocab, merges=[]).save_pretrained(directory)
    return len(vocab)


def _tiny_clip_text_config(vocab_size: int) -> dict[str, Any]:
    # eos_token_id=1 is the tiny vocabulary's <|endoftext|>: CLIP pools at the first eos token.
    return {
        "vocab_size": vocab_size,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": 16,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "pad_token_id": 1,
        "projection_dim": 16,
    }


def _save_tiny_clipseg(directory: Path) -> None:
    from transformers import CLIPSegConfig, CLIPSegForImageSegmentation

    vocab_size = _tiny_clip_tokenizer(directory)
    text = _tiny_clip_text_config(vocab_size)
    text.pop("projection_dim")
    config = CLIPSegConfig(
        text_config=text,
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 3,
            "num_attention_heads": 2,
            "image_size": 64,
            "patch_size": 16,
        },
        projection_dim=16,
        extract_layers=[0, 1, 2],
        reduce_dim=16,
        decoder_num_attention_heads=2,
        decoder_intermediate_size=32,
    )
    CLIPSegForImageSegmentation(config).save_pretrained(directory)


def _save_tiny_sam(directory: Path) -> None:
    from transformers import SamConfig, SamImageProcessor, SamModel, SamProcessor

    config = SamConfig(
        vision_config={
            "hidden_size": 32,
            "output_channels": 16,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 128,
            "patch_size": 16,
            "mlp_dim": 64,
            "window_size": 4,
            "global_attn_indexes": [1],
            "num_pos_feats": 8,
        },
        prompt_encoder_config={
            "hidden_size": 16,
            "image_size": 128,
            "image_embedding_size": 8,
            "mask_input_channels": 4,
        },
        mask_decoder_config={
            "hidden_size": 16,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "mlp_dim": 32,
            "iou_head_hidden_dim": 16,
        },
    )
    SamModel(config).save_pretrained(directory)
    processor = SamProcessor(SamImageProcessor(size={"longest_edge": 128}, pad_size={"height": 128, "width": 128}))
    processor.save_pretrained(directory)


def _save_tiny_sam3(directory: Path) -> None:
    from transformers import Sam3Config, Sam3Model

    vocab_size = _tiny_clip_tokenizer(directory)
    config = Sam3Config(
        vision_config={
            "backbone_config": {
                "model_type": "sam3_vit_model",
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "image_size": 112,
                "patch_size": 14,
                "window_size": 4,
                "global_attn_indexes": [1],
                "pretrain_image_size": 56,
            },
            "fpn_hidden_size": 32,
            "backbone_feature_sizes": [[32, 32], [16, 16], [8, 8]],
        },
        text_config=_tiny_clip_text_config(vocab_size),
        geometry_encoder_config={"hidden_size": 32, "num_layers": 1, "num_attention_heads": 2, "intermediate_size": 64},
        detr_encoder_config={"hidden_size": 32, "num_layers": 1, "num_attention_heads": 2, "intermediate_size": 64},
        detr_decoder_config={
            "hidden_size": 32,
            "num_layers": 2,
            "num_queries": 8,
            "num_attention_heads": 2,
            "intermediate_size": 64,
        },
        mask_decoder_config={"hidden_size": 32, "num_upsampling_stages": 3, "num_attention_heads": 2},
    )
    Sam3Model(config).save_pretrained(directory)


def _save_tiny_clip(directory: Path) -> None:
    from transformers import CLIPConfig, CLIPModel

    vocab_size = _tiny_clip_tokenizer(directory)
    text = {**_tiny_clip_text_config(vocab_size), "projection_dim": 24}
    config = CLIPConfig(
        text_config=text,
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 16,
            "projection_dim": 24,
        },
        projection_dim=24,
    )
    CLIPModel(config).save_pretrained(directory)


def _save_tiny_grounding_dino(directory: Path) -> None:
    from transformers import (
        BertTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessorPil,
        GroundingDinoProcessor,
    )

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "segment", "crack", "taping", "area", "a", "the"]
    (directory / "vocab.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(str(directory / "vocab.txt"))
    config = GroundingDinoConfig(
        backbone_config={
            "model_type": "swin",
            "embed_dim": 16,
            "depths": [1, 1, 1, 1],
            "num_heads": [1, 1, 1, 1],
            "window_size": 4,
            "image_size": 64,
            "out_indices": [2, 3, 4],
        },
        text_config={
            "model_type": "bert",
            "vocab_size": len(words),
            "hidden_size": 16,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 32,
            "max_position_embeddings": 64,
        },
        d_model=32,
        encoder_layers=1,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        num_queries=8,
        num_feature_levels=3,
        encoder_n_points=2,
        decoder_n_points=2,
        max_text_len=16,
    )
    GroundingDinoForObjectDetection(config).save_pretrained(directory)
    image_processor = GroundingDinoImageProcessorPil(size={"shortest_edge": 64, "longest_edge": 64})
    GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(directory)


_TINY_BUILDERS: dict[str, Callable[[Path], None]] = {
    "clipseg": _save_tiny_clipseg,
    "sam": _save_tiny_sam,
    "sam3": _save_tiny_sam3,
    "clip": _save_tiny_clip,
    "grounding-dino": _save_tiny_grounding_dino,
}


def soft_mask_iou(mask_logits: Tensor) -> Tensor:
    """Expected IoU of the thresholded mask if pixels were foreground with their probability.

    ``(sum_{m} p + 1) / (|m| + sum_{not m} p + 1)`` with ``m = p > 0.5``: near 1 for confident,
    sharp masks (including a confident empty one), lower for hesitant ones. The ``+ 1`` (one
    pixel) keeps empty predictions finite.

    Args:
        mask_logits: ``(B, 1, H, W)``.

    Returns:
        ``(B,)`` in ``(0, 1]``.
    """
    probabilities = torch.sigmoid(mask_logits.float())
    predicted = (probabilities > 0.5).to(probabilities.dtype)
    intersection = (probabilities * predicted).sum(dim=(1, 2, 3))
    union = predicted.sum(dim=(1, 2, 3)) + (probabilities * (1 - predicted)).sum(dim=(1, 2, 3))
    return (intersection + 1.0) / (union + 1.0)
