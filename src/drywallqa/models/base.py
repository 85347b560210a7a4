"""The interface every text-prompted segmentation model shares.

A model maps RGB images in ``[0, 1]`` and one prompt embedding per image to mask logits at input
resolution plus a predicted-IoU logit (:class:`ModelOutput`). Normalisation happens inside
:meth:`PromptSegmentationModel.forward`, so an exported graph takes raw ``[0, 1]`` pixels. Prompt
strings never enter ``forward``: :meth:`~PromptSegmentationModel.embed_prompts` turns them into a
tensor first, which keeps the graph trace- and ONNX-friendly.

``forward`` is :meth:`~PromptSegmentationModel.encode` (the prompt-independent part, once per
image) followed by :meth:`~PromptSegmentationModel.decode` (once per prompt), as segment-anything
splits its image encoder from its mask decoder: several prompts on one photo share one encoding.
A model without such a split keeps working: its features are the normalised pixels and its
decoder is the whole network.

Checkpoints are folders with ``config.json`` (registry name + config) and ``model.safetensors``.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from drywallqa.errors import ConfigError, DrywallQAError
from drywallqa.files import atomic_write, atomic_write_json, read_json
from drywallqa.models.registry import get_model_class
from drywallqa.models.text import TEXT_ENCODERS, TextEncoder, build_text_encoder

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CHECKPOINT_FORMAT_VERSION = 1
#: Input side of every model unless its config says otherwise (the SAM family works at 1024).
DEFAULT_IMAGE_SIZE = 448
#: Input sides are multiples of this (five stride-2 stages) ...
IMAGE_SIZE_DIVISOR = 32
#: ... and at most this: a larger square input is a config mistake, not a model.
MAX_IMAGE_SIZE = 4096


def check_image_size(image_size: object, field: str = "image_size") -> None:
    """The input side rule of every drywallqa model: a multiple of 32 in ``[32, 4096]``.

    Raises:
        ConfigError: Naming ``field``, the rule and the value.
    """
    if (
        isinstance(image_size, bool)
        or not isinstance(image_size, numbers.Integral)
        or not IMAGE_SIZE_DIVISOR <= int(image_size) <= MAX_IMAGE_SIZE
        or int(image_size) % IMAGE_SIZE_DIVISOR
    ):
        raise ConfigError(
            f"{field} must be a positive multiple of {IMAGE_SIZE_DIVISOR} up to {MAX_IMAGE_SIZE}, got {image_size!r}"
        )


class ModelOutput(NamedTuple):
    """What every model returns (a tuple, so traced and exported graphs have two outputs).

    Attributes:
        mask_logits: float ``(B, 1, H, W)`` at input resolution; ``sigmoid > 0.5`` is the mask.
        confidence_logits: float ``(B,)``; ``sigmoid`` is the predicted IoU of the mask in ``[0, 1]``.
    """

    mask_logits: Tensor
    confidence_logits: Tensor


#: What :meth:`PromptSegmentationModel.encode` returns: prompt-independent tensors, batch first
#: (PromptUNet: its encoder's feature maps; a model without a split: the normalised pixels).
ImageFeatures = tuple[Tensor, ...]


@dataclasses.dataclass
class PromptModelConfig:
    """Fields every model config has; architectures subclass it and add their own.

    Attributes:
        text_encoder: ``"minilm"`` (all-MiniLM-L6-v2) or ``"hashing"`` (weight-free, for tests).
        image_size: Side of the square training and inference input, a multiple of 32.
    """

    text_encoder: str = "minilm"
    image_size: int = DEFAULT_IMAGE_SIZE

    def __post_init__(self) -> None:
        if self.text_encoder not in TEXT_ENCODERS:
            raise ConfigError(
                f"unknown text_encoder {self.text_encoder!r}; expected one of: {', '.join(TEXT_ENCODERS)}"
            )
        check_image_size(self.image_size)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PromptModelConfig:
        """Inverse of :meth:`to_dict`; lists become tuples.

        Raises:
            ConfigError: For unknown fields, listing the valid ones.
        """
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(valid))
        if unknown:
            raise ConfigError(
                f"unknown {cls.__name__} field(s) {', '.join(unknown)}; expected some of: {', '.join(valid)}"
            )
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return cls(**fields)


#: How a registered architecture is built: ``cls(config, *, load_pretrained=True)`` (the base
#: class's own ``__init__`` takes the normalisation constants instead).
ModelFactory = Callable[..., "PromptSegmentationModel"]


class PromptSegmentationModel(nn.Module):
    """Base class of the registered architectures: ``(images, prompt embeddings) -> ModelOutput``.

    Subclasses are registered with :func:`~drywallqa.models.registry.register_model`, set
    :attr:`config_class`, take ``(config, *, load_pretrained=True)`` (``from_pretrained`` passes
    False so no ImageNet weights are read), call ``super().__init__(config, pixel_mean, pixel_std)``
    with the normalisation their backbone expects, and implement :meth:`forward_normalized`, or
    :meth:`encode_normalized` and :meth:`decode_features` when part of the network does not depend
    on the prompt (then several prompts on one image share that part: :meth:`encode` once,
    :meth:`decode` per prompt).

    The text encoder is a plain attribute, not a submodule: it is frozen, shared by all
    architectures and reloaded from its package, so it stays out of ``state_dict()``,
    ``parameters()`` and checkpoints, and runs on CPU.

    Attributes:
        name: Registry name, written into checkpoints (set by ``register_model``).
        config: The config dataclass the model was built from.
        size_divisor: Input height and width must be multiples of this.
        text_encoder: Embeds prompt strings, caching each one.
    """

    name: ClassVar[str] = ""
    config_class: ClassVar[type[PromptModelConfig]] = PromptModelConfig
    size_divisor: ClassVar[int] = IMAGE_SIZE_DIVISOR
    # State-dict key prefixes of the parts that start from pretrained weights (read from their
    # packages when the config says ``pretrained``); a training pack carries exactly these.
    pretrained_prefixes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: PromptModelConfig, pixel_mean: Sequence[float], pixel_std: Sequence[float]):
        super().__init__()
        self.config = config
        self.text_encoder: TextEncoder = build_text_encoder(config.text_encoder)
        # Constants of the pretrained weights, not learned: kept out of checkpoints.
        self.register_buffer(
            "pixel_mean", torch.tensor(pixel_mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer(
            "pixel_std", torch.tensor(pixel_std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False
        )

    @property
    def default_image_size(self) -> int:
        """Side of the square input the model is trained and served at."""
        return self.config.image_size

    @property
    def embed_dim(self) -> int:
        """Size ``D`` of the prompt embeddings :meth:`forward` expects."""
        return self.text_encoder.dim

    def forward(self, images: Tensor, prompt_embeddings: Tensor) -> ModelOutput:
        """Segment what each image's prompt describes.

        Args:
            images: float ``(B, 3, H, W)`` RGB in ``[0, 1]``; ``H`` and ``W`` multiples of
                :attr:`size_divisor`.
            prompt_embeddings: float ``(B, D)`` from :meth:`embed_prompts`.

        Returns:
            :class:`ModelOutput` with ``mask_logits`` ``(B, 1, H, W)`` and ``confidence_logits`` ``(B,)``.

        Raises:
            ValueError: If shapes are wrong; for a bad size the message names the padded size to use.
        """
        if not _is_exporting():
            self.check_inputs(images, prompt_embeddings)
        pixels = (images - self.pixel_mean) / self.pixel_std
        return self.decode_features(self.encode_normalized(pixels), prompt_embeddings)

    def encode(self, images: Tensor) -> ImageFeatures:
        """The prompt-independent part of :meth:`forward`, once per image.

        Args:
            images: float ``(N, 3, H, W)`` RGB in ``[0, 1]``; ``H`` and ``W`` multiples of
                :attr:`size_divisor`.

        Returns:
            :data:`ImageFeatures`, each tensor with ``N`` rows, for :meth:`decode`.

        Raises:
            ValueError: If the shape is wrong (see :meth:`check_input_shape`).
        """
        if not _is_exporting():
            self.check_input_shape(images)
        return tuple(self.encode_normalized((images - self.pixel_mean) / self.pixel_std))

    def decode(self, features: ImageFeatures, prompt_embeddings: Tensor, image_index: Tensor | None = None) -> ModelOutput:
        """The prompt-dependent part of :meth:`forward`: ``forward(x, e) == decode(encode(x), e)``.

        Args:
            features: :meth:`encode` of ``N`` images.
            prompt_embeddings: float ``(M, D)``, one prompt per mask asked for.
            image_index: int64 ``(M,)``: row ``m`` decodes image ``image_index[m]`` with prompt
                ``m``, so one encoding serves each of its image's prompts; None when ``M == N``
                and prompt ``m`` is image ``m``'s.

        Returns:
            :class:`ModelOutput` with ``M`` rows.

        Raises:
            ValueError: If the number of prompts does not fit the features or the index.
        """
        if image_index is not None:
            features = tuple(feature.index_select(0, image_index) for feature in features)
        if not _is_exporting():
            expected = (features[0].shape[0], self.embed_dim)
            if tuple(prompt_embeddings.shape) != expected:
                raise ValueError(
                    f"prompt_embeddings must have shape (M, D) = {expected}, got {tuple(prompt_embeddings.shape)}"
                )
        return self.decode_features(features, prompt_embeddings)

    def encode_normalized(self, pixels: Tensor) -> ImageFeatures:
        """Architecture-specific part of :meth:`encode`, on normalised pixels ``(N, 3, H, W)``.

        The default is no split: the features are the pixels and :meth:`decode_features` runs
        the whole :meth:`forward_normalized` once per prompt.
        """
        return (pixels,)

    def decode_features(self, features: ImageFeatures, prompt_embeddings: Tensor) -> ModelOutput:
        """Architecture-specific part of :meth:`decode`: one row of ``features`` per prompt."""
        return self.forward_normalized(features[0], prompt_embeddings)

    def forward_normalized(self, pixels: Tensor, prompt_embeddings: Tensor) -> ModelOutput:
        """Architecture-specific part of :meth:`forward`, on normalised pixels ``(B, 3, H, W)``.

        Subclasses implement this, or :meth:`encode_normalized` and :meth:`decode_features`
        (whose composition it then is).
        """
        if type(self).decode_features is PromptSegmentationModel.decode_features:
            raise NotImplementedError(f"{type(self).__name__} implements neither forward_normalized nor decode_features")
        return self.decode_features(self.encode_normalized(pixels), prompt_embeddings)

    def check_input_shape(self, images: Tensor) -> None:
        """Check that ``images`` is ``(B, 3, H, W)`` with ``H`` and ``W`` multiples of :attr:`size_divisor`.

        Raises:
            ValueError: Naming the expected and actual shape, or the nearest padded size.
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must have shape (B, 3, H, W), got {tuple(images.shape)}")
        if not images.is_floating_point():
            raise ValueError(
                f"images must be float RGB in [0, 1], got dtype {images.dtype}; divide uint8 images by 255"
            )
        height, width = images.shape[-2:]
        d = self.size_divisor
        if height % d or width % d:
            padded = (math.ceil(height / d) * d, math.ceil(width / d) * d)
            raise ValueError(
                f"image height and width must be multiples of {d}, got {height}x{width} (HxW); "
                f"pad the images to {padded[0]}x{padded[1]}"
            )

    def check_inputs(self, images: Tensor, prompt_embeddings: Tensor) -> None:
        """:meth:`check_input_shape`, plus ``prompt_embeddings`` must be ``(B, D)``.

        Raises:
            ValueError: Naming the expected and actual shape.
        """
        self.check_input_shape(images)
        expected = (images.shape[0], self.embed_dim)
        if tuple(prompt_embeddings.shape) != expected:
            raise ValueError(
                f"prompt_embeddings must have shape (B, D) = {expected}, got {tuple(prompt_embeddings.shape)}"
            )

    @torch.no_grad()
    def embed_prompts(self, prompts: Sequence[str]) -> Tensor:
        """Embed prompt strings with the frozen text encoder (cached per string).

        Args:
            prompts: One prompt per image, e.g. ``["segment crack", "segment taping area"]``.

        Returns:
            ``(len(prompts), D)`` on the model's device and dtype, no grad.
        """
        return self.text_encoder.encode(prompts).to(device=self.pixel_mean.device, dtype=self.pixel_mean.dtype)

    def segment(self, images: Tensor, prompts: Sequence[str]) -> ModelOutput:
        """:meth:`embed_prompts` then :meth:`forward`.

        Args:
            images: float ``(B, 3, H, W)`` RGB in ``[0, 1]``.
            prompts: ``B`` prompts, or one prompt used for every image.

        Raises:
            ValueError: If the number of prompts is neither ``B`` nor 1.
        """
        if isinstance(prompts, str):
            prompts = [prompts]
        batch = images.shape[0]
        if len(prompts) == 1 and batch != 1:
            prompts = list(prompts) * batch
        if len(prompts) != batch:
            raise ValueError(f"expected {batch} prompts (one per image) or 1, got {len(prompts)}")
        output: ModelOutput = self(images, self.embed_prompts(prompts))
        return output

    def pretrained_state(self) -> dict[str, Tensor]:
        """The weights of the pretrained parts (keys under :attr:`pretrained_prefixes`), on CPU."""
        return {
            key: value.detach().cpu().contiguous()
            for key, value in self.state_dict().items()
            if key.startswith(self.pretrained_prefixes)
        }

    def load_pretrained_state(self, state: dict[str, Tensor], source: str = "pretrained weights") -> None:
        """Load what :meth:`pretrained_state` returned, into a model built without pretrained weights.

        Raises:
            ConfigError: If ``state`` does not hold exactly the pretrained parts of this model
                (another architecture or encoder), naming ``source`` and the first mismatch.
        """
        expected = set(self.pretrained_state())
        if not expected:
            raise ConfigError(f"{source}: {self.name} has no pretrained parts to load")
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unexpected:
            problem = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
            raise ConfigError(f"{source}: not the pretrained weights of this {self.name} model ({problem})")
        try:
            self.load_state_dict(state, strict=False)
        except RuntimeError as exc:
            raise ConfigError(f"{source}: weights do not fit this {self.name} model ({str(exc).splitlines()[-1].strip()})") from exc

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Parameter count (the frozen text encoder is not part of the model)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def save_pretrained(self, directory: str | os.PathLike, fp16: bool = False) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``directory``, each atomically.

        Args:
            directory: Output folder, created if missing; existing files are replaced.
            fp16: Store floating-point tensors as float16 (half the size); they are cast back to
                the model's dtype on load.

        Returns:
            The folder.
        """
        save_file = _import_safetensors().save_file
        directory = Path(directory)
        dtype = "float16" if fp16 else "float32"
        tensors = {
            key: (value.half() if fp16 and value.is_floating_point() else value).detach().cpu().contiguous()
            for key, value in self.state_dict().items()
        }
        # Weights first: a folder whose config.json exists always has matching weights.
        atomic_write(
            directory / WEIGHTS_FILE,
            lambda tmp: save_file(tensors, str(tmp), metadata={"model": self.name, "dtype": dtype}),
        )
        meta = {
            "model": self.name,
            "format_version": CHECKPOINT_FORMAT_VERSION,
            "dtype": dtype,
            "config": self.config.to_dict(),
        }
        atomic_write_json(directory / CONFIG_FILE, meta, indent=2)
        return directory

    @classmethod
    def from_pretrained(
        cls, path: str | os.PathLike, map_location: str | torch.device = "cpu"
    ) -> PromptSegmentationModel:
        """Load a folder written by :meth:`save_pretrained`, building the class named in its config.

        Called on the base class it returns whichever registered architecture the checkpoint holds;
        called on a subclass it also checks the checkpoint is of that class. No pretrained encoder
        weights are read: the checkpoint overwrites every weight.

        Args:
            path: The checkpoint folder, or a file inside it.
            map_location: Device to load onto.

        Returns:
            The model in eval mode.

        Raises:
            ConfigError: If files are missing, the model name is unknown or of another class, or
                the weights do not fit the config.
        """
        directory = Path(path)
        if directory.is_file():
            directory = directory.parent
        config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
        for required in (config_path, weights_path):
            if not required.is_file():
                raise ConfigError(f"{directory}: no {required.name}; expected a folder written by save_pretrained()")
        meta = read_json(config_path)
        if not isinstance(meta, dict) or "model" not in meta or "config" not in meta:
            raise ConfigError(f"{config_path}: not a drywallqa model config (needs 'model' and 'config' keys)")
        model_cls = get_model_class(meta["model"])
        if not issubclass(model_cls, cls):
            raise ConfigError(
                f"{config_path} holds a {meta['model']!r} model, not {cls.name!r}; "
                "load it with PromptSegmentationModel.from_pretrained"
            )
        build: ModelFactory = model_cls
        model = build(model_cls.config_class.from_dict(meta["config"]), load_pretrained=False)
        safetensors_torch = _import_safetensors()
        from safetensors import SafetensorError

        try:
            state_dict = safetensors_torch.load_file(str(weights_path), device=str(map_location))
        except (SafetensorError, OSError) as exc:  # truncated or not a safetensors file
            raise ConfigError(f"{weights_path}: not a readable safetensors file ({exc}); save or copy the model again") from exc
        try:
            model.load_state_dict(state_dict, strict=True)
        except RuntimeError as exc:
            first_problem = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
            raise ConfigError(
                f"{weights_path}: weights do not match the config in {CONFIG_FILE} ({first_problem})"
            ) from exc
        loaded: PromptSegmentationModel = model.to(map_location).eval()
        return loaded


def _is_exporting() -> bool:
    """True while tracing, scripting, compiling or exporting, where Python checks must not run."""
    return bool(
        torch.jit.is_tracing()
        or torch.jit.is_scripting()
        or torch.compiler.is_compiling()
        or torch.onnx.is_in_onnx_export()
    )


def _import_safetensors() -> Any:
    try:
        import safetensors.torch
    except ImportError as exc:
        raise DrywallQAError("saving and loading models needs safetensors: pip install safetensors") from exc
    return safetensors.torch
