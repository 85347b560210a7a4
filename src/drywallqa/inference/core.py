"""The one prediction interface every model family and runtime sits behind.

It holds the result type (:class:`SegmentationResult`), the interface (:class:`Predictor`), the
batched base class of every runtime (:class:`BatchedPredictor`), the input checks and the step
from logits to a result (:func:`logits_to_result`).

A :class:`Predictor` takes RGB ``uint8`` images of any size and a text prompt and returns a
:class:`SegmentationResult` at the image's own size. It owns resizing, tiling (a large or
elongated photo is judged in tiles at the scale the model learned, see
:mod:`~drywallqa.inference.tiling`), normalisation (inside the model), upsampling and
thresholding, so evaluation, prediction and serving never special-case an architecture or a
runtime (PyTorch, ONNX Runtime, ...).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from drywallqa.errors import ConfigError
from drywallqa.inference.tiling import TilePlan, blend_tiles, check_tile, cut_tiles, plan_tiles
from drywallqa.processing import check_threshold, logit_threshold, sigmoid, upsample_logits


@dataclass
class SegmentationResult:
    """A binary mask for one image and one prompt.

    Attributes:
        prompt: The prompt text.
        mask: ``(H, W)`` bool at the input image's size.
        confidence: The model's own estimate of the mask's IoU, in ``[0, 1]``.
        probabilities: ``(H, W)`` float32 foreground probabilities, when asked for.
        threshold: Probability threshold that produced ``mask``.
        extra: What else the predictor says; batched runtimes give ``extra["tiling"]``, the
            tiles used (:meth:`~drywallqa.inference.tiling.TilePlan.to_dict`).
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



@functools.lru_cache(maxsize=1)
def _default_prompts():
    """The built-in prompt classes, read once (per-class thresholds look a prompt's class up per call)."""
    from drywallqa.data.prompts import PromptConfig

    return PromptConfig.default()


class Predictor:
    """Base class: image(s) + prompt(s) → :class:`SegmentationResult` (s).

    Subclasses implement :meth:`predict_batch`; :meth:`predict` is the one-image convenience.

    Attributes:
        name: Short label of the model and runtime.
        threshold: Probability threshold of prompts whose class has none in :attr:`thresholds`.
        thresholds: Per prompt class (``{"crack": 0.45, ...}``): the calibrated thresholds a model
            folder's ``calibration.json`` gives (see :func:`drywallqa.evaluation.calibrate_thresholds`).
        prompt_config: The prompt classes a prompt's class is looked up in for :attr:`thresholds`
            (a :class:`~drywallqa.data.prompts.PromptConfig`); the built-in ``prompts.yaml`` when
            None. The drivers set the run's own (``--prompts``) with :meth:`set_prompt_config`, so a
            prompt the user's file gives a class gets that class's threshold.
    """

    name: str = "predictor"
    threshold: float = 0.5
    thresholds: dict[str, float] = {}
    prompt_config = None

    def threshold_for(self, prompt: str) -> float:
        """The threshold of ``prompt``: its class's calibrated one, else :attr:`threshold`."""
        if not self.thresholds:
            return self.threshold
        prompt_class = (self.prompt_config or _default_prompts()).class_of(prompt)
        return self.thresholds.get(prompt_class.name, self.threshold) if prompt_class else self.threshold

    def set_prompt_config(self, prompt_config) -> None:
        """Look prompt classes up in ``prompt_config`` (a run's ``--prompts``; None: the built-in ones)."""
        self.prompt_config = prompt_config

    def set_thresholds(self, thresholds: dict[str, float]) -> None:
        """Use these per-class thresholds (each in ``(0, 1)``); an empty mapping clears them."""
        for name, value in thresholds.items():
            check_threshold(value, f"thresholds.{name}")
        self.thresholds = {str(k): float(v) for k, v in thresholds.items()}

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

    def predict(self, image: np.ndarray, prompt: str, *, return_probabilities: bool = False,
                **options) -> SegmentationResult:
        """Segment one RGB ``uint8`` ``(H, W, 3)`` image with one prompt.

        Args:
            image: The image.
            prompt: The prompt.
            return_probabilities: Also return the per-pixel probabilities.
            **options: What :meth:`predict_batch` takes besides; batched runtimes take
                ``mm_per_px`` and ``tile`` (see :meth:`BatchedPredictor.predict_batch`).
        """
        return self.predict_batch([image], [prompt], return_probabilities=return_probabilities, **options)[0]


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


def logits_to_result(
    mask_logits: np.ndarray,
    confidence_logit: float,
    prompt: str,
    image_shape: tuple[int, ...],
    threshold: float = 0.5,
    return_probabilities: bool = False,
) -> SegmentationResult:
    """Turn one image's model-resolution logits into a :class:`SegmentationResult` at image size.

    Args:
        mask_logits: float ``(h, w)`` mask logits at the model's input resolution.
        confidence_logit: The model's predicted-IoU logit for this image.
        prompt: The prompt the mask answers.
        image_shape: Shape of the original image, ``(H, W)`` or ``(H, W, 3)``.
        threshold: Probability threshold in ``(0, 1)``.
        return_probabilities: Also return float32 ``(H, W)`` probabilities.

    Returns:
        The result, with ``mask`` of shape ``(H, W)``.
    """
    height, width = image_shape[:2]
    logits = upsample_logits(mask_logits, height, width)
    return SegmentationResult(
        prompt=prompt,
        mask=logits > logit_threshold(threshold),
        confidence=float(sigmoid(np.float32(confidence_logit))),
        probabilities=sigmoid(logits) if return_probabilities else None,
        threshold=threshold,
    )


@dataclass
class PhotoInputs:
    """One photo as a batched runtime takes it: its tile plan and one model input per tile.

    Attributes:
        plan: How the photo is tiled (one stretched tile for a photo that fits one).
        pixels: ``uint8`` ``(n, S, S, 3)``, one model input per tile of ``plan``.
    """

    plan: TilePlan
    pixels: np.ndarray

    def __len__(self) -> int:
        return len(self.plan)


class BatchedPredictor(Predictor):
    """A :class:`Predictor` whose runtime only maps a uint8 batch to logits.

    :meth:`predict_batch` validates the inputs, cuts each photo into its tiles (:meth:`prepare`:
    one stretched input for a photo that fits one tile, see :mod:`~drywallqa.inference.tiling`),
    runs :meth:`forward_batch` on the tiles of all photos in chunks of :attr:`batch_size` and
    blends and post-processes each photo's tiles (:meth:`finish`). Subclasses set
    :attr:`image_size`, :attr:`threshold`, :attr:`batch_size` and :attr:`name`, and implement
    :meth:`forward_batch`.

    Attributes:
        name: Short label of the model and runtime, e.g. ``"promptunet/onnxruntime"``.
        image_size: Side of the square model input.
        threshold: Probability threshold of the mask, in ``(0, 1)``.
        batch_size: Model inputs (tiles) per :meth:`forward_batch` call.
        tile: ``"auto"``, ``"off"`` (a runtime's own default: every photo stretched to the model's
            square) or a tile side in pixels; :func:`~drywallqa.inference.load_predictor` sets
            ``"auto"``.
    """

    image_size: int = 448
    batch_size: int = 8
    tile: str | int = "off"

    def forward_batch(self, images: np.ndarray, prompts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Run the model on a batch already at the model's input size (the batched array path).

        Args:
            images: ``uint8`` ``(B, S, S, 3)`` RGB, ``S`` a multiple of 32 (usually :attr:`image_size`).
            prompts: ``B`` prompts.

        Returns:
            ``(mask_logits, confidence_logits)``: float32 ``(B, S, S)`` and ``(B,)`` NumPy arrays.
        """
        raise NotImplementedError

    def set_tile(self, tile: str | int) -> None:
        """Use this tile setting from now on (see :func:`~drywallqa.inference.tiling.check_tile`)."""
        self.tile = check_tile(tile)

    def prepare(self, image: np.ndarray, *, mm_per_px: float | None = None,
                tile: str | int | None = None) -> PhotoInputs:
        """One photo as :meth:`forward_batch` takes it: checked, planned and cut into tiles.

        With :meth:`finish`, the halves of :meth:`predict_batch` around the model call, for drivers
        that cut and post-process in their own threads while one thread runs the model
        (:class:`drywallqa.serving.batching.MicroBatcher`).

        Args:
            image: RGB ``uint8`` ``(H, W, 3)``.
            mm_per_px: Millimetres per pixel of ``image`` (sets the tile scale in ``auto`` mode).
            tile: This photo's tile setting; :attr:`tile` when None.
        """
        image = check_image(image)
        plan = plan_tiles(image, self.image_size, self.tile if tile is None else tile, mm_per_px=mm_per_px)
        return PhotoInputs(plan, cut_tiles(image, plan))

    def finish(self, plan: TilePlan, mask_logits: np.ndarray, confidence_logits: np.ndarray, prompt: str,
               return_probabilities: bool = False) -> SegmentationResult:
        """One photo's tile outputs as its :class:`SegmentationResult` at the photo's size.

        Args:
            plan: The photo's plan (:attr:`PhotoInputs.plan`).
            mask_logits: float ``(n, S, S)``, one per tile.
            confidence_logits: ``(n,)``.
            prompt: The prompt the tiles answer.
            return_probabilities: Also return per-pixel probabilities.
        """
        logits, confidence = blend_tiles(plan, mask_logits, confidence_logits)
        result = logits_to_result(logits, confidence, prompt, plan.image_shape, self.threshold_for(prompt),
                                  return_probabilities)
        result.extra["tiling"] = plan.to_dict()
        return result

    def predict_batch(
        self, images: Sequence[np.ndarray], prompts: Sequence[str], *, return_probabilities: bool = False,
        mm_per_px: float | None = None, tile: str | int | None = None,
    ) -> list[SegmentationResult]:
        """Segment ``images[i]`` with ``prompts[i]``.

        Args:
            images: RGB ``uint8`` ``(H, W, 3)`` arrays; sizes may differ. The same array given
                for several prompts is planned and cut once.
            prompts: One prompt per image.
            return_probabilities: Also return per-pixel probabilities.
            mm_per_px: Millimetres per pixel of the images (sets the tile scale in ``auto`` mode).
            tile: Tile setting of this call; :attr:`tile` when None.

        Returns:
            One :class:`SegmentationResult` per image, at that image's size.

        Raises:
            ConfigError: If the counts differ, an image is not RGB uint8, a prompt is empty or the
                tile setting is bad.
        """
        if len(images) != len(prompts):
            raise ConfigError(f"got {len(images)} images but {len(prompts)} prompts; give one prompt per image")
        prompts = [check_prompt(p) for p in prompts]
        prepared: dict[int, PhotoInputs] = {}
        for image in images:
            if id(image) not in prepared:
                prepared[id(image)] = self.prepare(image, mm_per_px=mm_per_px, tile=tile)
        photos = [prepared[id(image)] for image in images]
        # Every tile of every (photo, prompt) pair, in order, through the model in chunks.
        owners = [(index, k) for index, photo in enumerate(photos) for k in range(len(photo))]
        mask_logits: list[np.ndarray] = []
        confidence_logits: list[np.ndarray] = []
        for start in range(0, len(owners), self.batch_size):
            chunk = owners[start : start + self.batch_size]
            logits, confidence = self.forward_batch(
                np.ascontiguousarray(np.stack([photos[i].pixels[k] for i, k in chunk])), [prompts[i] for i, _ in chunk])
            mask_logits.extend(logits)
            confidence_logits.extend(confidence)
        results: list[SegmentationResult] = []
        start = 0
        for photo, prompt in zip(photos, prompts):
            stop = start + len(photo)
            results.append(self.finish(photo.plan, np.stack(mask_logits[start:stop]),
                                       np.asarray(confidence_logits[start:stop]), prompt, return_probabilities))
            start = stop
        return results
