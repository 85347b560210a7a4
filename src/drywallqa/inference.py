"""The one prediction interface every model family sits behind.

A :class:`Predictor` takes RGB ``uint8`` images of any size and a text prompt and returns a
:class:`SegmentationResult` at the image's own size. It owns resizing, normalisation (inside the
model), upsampling and thresholding, so evaluation, prediction and serving never special-case an
architecture or a runtime (PyTorch, ONNX Runtime, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from drywallqa.errors import ConfigError


@dataclass
class SegmentationResult:
    """A binary mask for one image and one prompt.

    Attributes:
        prompt: The prompt text.
        mask: ``(H, W)`` bool at the input image's size.
        confidence: The model's own estimate of the mask's IoU, in ``[0, 1]``.
        probabilities: ``(H, W)`` float32 foreground probabilities, when asked for.
        threshold: Probability threshold that produced ``mask``.
    """

    prompt: str
    mask: np.ndarray
    confidence: float
    probabilities: np.ndarray | None = None
    threshold: float = 0.5
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mask.ndim != 2 or self.mask.dtype != bool:
            raise ValueError(f"mask must be (H, W) bool, got {self.mask.shape} {self.mask.dtype}")
        if self.probabilities is not None and self.probabilities.shape != self.mask.shape:
            raise ValueError(f"probabilities shape {self.probabilities.shape} != mask shape {self.mask.shape}")

    @property
    def coverage(self) -> float:
        """Share of image pixels in the mask."""
        return float(self.mask.mean()) if self.mask.size else 0.0

    def __repr__(self) -> str:
        h, w = self.mask.shape
        return (
            f"SegmentationResult(prompt={self.prompt!r}, mask={h}x{w}, coverage={self.coverage:.2%}, "
            f"confidence={self.confidence:.3f})"
        )


class Predictor:
    """Base class: image(s) + prompt(s) → :class:`SegmentationResult` (s).

    Subclasses implement :meth:`predict_batch`; :meth:`predict` is the one-image convenience.
    """

    name: str = "predictor"
    threshold: float = 0.5

    def predict_batch(
        self, images: Sequence[np.ndarray], prompts: Sequence[str], *, return_probabilities: bool = False
    ) -> list[SegmentationResult]:
        """Segment ``images[i]`` with ``prompts[i]``.

        Args:
            images: RGB ``uint8`` arrays of shape ``(H, W, 3)``; sizes may differ.
            prompts: One prompt per image.
            return_probabilities: Also return the per-pixel probabilities.
        """
        raise NotImplementedError

    def predict(self, image: np.ndarray, prompt: str, *, return_probabilities: bool = False) -> SegmentationResult:
        """Segment one RGB ``uint8`` ``(H, W, 3)`` image with one prompt."""
        return self.predict_batch([image], [prompt], return_probabilities=return_probabilities)[0]


def check_image(image: np.ndarray) -> np.ndarray:
    """Validate an input image: RGB ``uint8`` ``(H, W, 3)`` (a grey ``(H, W)`` image is expanded)."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ConfigError(f"expected an RGB uint8 image of shape (H, W, 3), got {image.shape} {image.dtype}")
    return image


def check_prompt(prompt: str, max_length: int = 200) -> str:
    """Validate a prompt: non-empty after stripping, at most ``max_length`` characters."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise ConfigError("prompt is empty: give a text such as 'segment crack'")
    if len(prompt) > max_length:
        raise ConfigError(f"prompt is {len(prompt)} characters long; the limit is {max_length}")
    return prompt.strip()


class ModelPredictor(Predictor):
    """A :class:`Predictor` over any registered PyTorch model.

    Images are resized (stretched) to the model's square input, as in training, and the mask
    logits are resized back to each image's own size before the sigmoid and threshold, so thin
    structures keep sub-pixel edges.

    Args:
        model: A :class:`~drywallqa.models.PromptSegmentationModel`.
        image_size: Square input side; the model's ``default_image_size`` by default.
        device: ``"cpu"``, ``"cuda"``, ... (default: CUDA when available).
        threshold: Probability threshold of the mask.
        batch_size: Images per forward pass.
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (autocast; the latter two on GPU).

    Example:
        >>> predictor = load_predictor("runs/promptunet/model")          # doctest: +SKIP
        >>> predictor.predict(image, "segment crack")                    # doctest: +SKIP
        SegmentationResult(prompt='segment crack', mask=640x640, coverage=1.20%, confidence=0.612)
    """

    def __init__(self, model, image_size: int | None = None, device: str | None = None, threshold: float = 0.5,
                 batch_size: int = 16, precision: str = "fp32"):
        import torch

        if precision not in {"fp32", "bf16", "fp16"}:
            raise ConfigError(f"precision must be fp32, bf16 or fp16, got {precision!r}")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.to(self.device).eval()
        self.image_size = int(image_size or model.default_image_size)
        if self.image_size % model.size_divisor:
            raise ConfigError(f"image_size must be a multiple of {model.size_divisor}, got {self.image_size}")
        self.threshold = float(threshold)
        self.batch_size = int(batch_size)
        self.precision = precision
        self.name = getattr(model, "name", type(model).__name__)

    def predict_batch(self, images, prompts, *, return_probabilities: bool = False):
        import cv2
        import torch
        import torch.nn.functional as F

        if len(images) != len(prompts):
            raise ConfigError(f"got {len(images)} images but {len(prompts)} prompts; give one prompt per image")
        prompts = [check_prompt(p) for p in prompts]
        images = [check_image(im) for im in images]
        results: list[SegmentationResult] = []
        size = self.image_size
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            resized = np.stack([
                im if im.shape[:2] == (size, size)
                else cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA if min(im.shape[:2]) > size else cv2.INTER_LINEAR)
                for im in chunk
            ])
            batch = torch.from_numpy(resized).to(self.device).permute(0, 3, 1, 2).float().div_(255)
            with torch.inference_mode(), torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None):
                out = self.model.segment(batch, prompts[start : start + len(chunk)])
            logits = out.mask_logits.float()
            confidence = torch.sigmoid(out.confidence_logits.float()).cpu().numpy()
            for i, im in enumerate(chunk):
                h, w = im.shape[:2]
                lg = logits[i : i + 1]
                if (h, w) != tuple(lg.shape[-2:]):
                    lg = F.interpolate(lg, size=(h, w), mode="bilinear", align_corners=False)
                prob = torch.sigmoid(lg[0, 0]).cpu().numpy()
                results.append(SegmentationResult(
                    prompt=prompts[start + i], mask=prob > self.threshold, confidence=float(confidence[i]),
                    probabilities=prob.astype(np.float32) if return_probabilities else None, threshold=self.threshold,
                ))
        return results


def default_model_path():
    """Folder of the model shipped inside the package (``drywallqa/weights/promptunet``)."""
    from importlib import resources

    return resources.files("drywallqa").joinpath("weights/promptunet")


def load_predictor(spec: str | None = None, device: str | None = None, **kwargs) -> Predictor:
    """Build a :class:`Predictor` from a model spec.

    Args:
        spec: ``None`` for the shipped default model, or a folder written by ``save_pretrained``
            (``config.json`` + ``model.safetensors``).
        device: Torch device; CUDA when available by default.
        **kwargs: Passed to :class:`ModelPredictor` (``threshold``, ``image_size``, ...).

    Raises:
        DrywallQAError: If the model cannot be found or loaded, with what to do about it.
    """
    from pathlib import Path

    from drywallqa.errors import DrywallQAError
    from drywallqa.models import PromptSegmentationModel

    path = Path(str(default_model_path())) if spec is None else Path(spec)
    if not path.exists():
        if spec is None:
            raise DrywallQAError(f"no shipped model at {path}; train one with `drywallqa train` and pass --model RUN/model")
        raise DrywallQAError(f"{path}: no such model folder (expected config.json + model.safetensors from save_pretrained)")
    model = PromptSegmentationModel.from_pretrained(path, map_location="cpu")
    return ModelPredictor(model, device=device, **kwargs)
