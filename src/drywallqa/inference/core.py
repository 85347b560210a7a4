"""The one prediction interface every model family and runtime sits behind.

It holds the result type (:class:`SegmentationResult`), the interface (:class:`Predictor`), the
batched base class of every runtime (:class:`BatchedPredictor`), the input checks and the step
from logits to a result (:func:`logits_to_result`).

A :class:`Predictor` takes RGB ``uint8`` images of any size and a text prompt and returns a
:class:`SegmentationResult` at the image's own size. It owns resizing, tiling (a large or elongated
photo is judged in tiles at the scale the model learned, see :mod:`~drywallqa.inference.tiling`),
normalisation (inside the model), upsampling and thresholding, so evaluation, prediction and serving
never special-case an architecture or a runtime (PyTorch, ONNX Runtime, ...).

Several prompts on one image are one call, ``predictor.predict(image, ["segment crack", "segment
taping area"])``, and many images each with several prompts another (:meth:`Predictor.predict_many`):
a runtime whose model splits into a prompt-free encoder and a prompt-conditioned decoder
(:meth:`BatchedPredictor.encode_batch`, :meth:`~BatchedPredictor.decode_batch`) encodes each tile of
an image once for all its prompts.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from drywallqa.data.prompts import PromptConfig
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
def _default_prompts() -> PromptConfig:
    """The built-in prompt classes, read once (per-class thresholds look a prompt's class up per call)."""
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
    # Set by load_predictor: the files a run resumes by (their digest), and the model's own metadata.
    weights_files: tuple[Path, ...]
    metadata: dict[str, Any]

    def threshold_for(self, prompt: str) -> float:
        """The threshold of ``prompt``: its class's calibrated one, else :attr:`threshold`."""
        if not self.thresholds:
            return self.threshold
        prompt_class = (self.prompt_config or _default_prompts()).class_of(prompt)
        return self.thresholds.get(prompt_class.name, self.threshold) if prompt_class else self.threshold

    def set_prompt_config(self, prompt_config: PromptConfig | None) -> None:
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

    def predict_many(
        self, images: Sequence[np.ndarray], prompts: Sequence[str] | Sequence[Sequence[str]], *,
        return_probabilities: bool = False, mm_per_px: float | None = None, tile: str | int | None = None,
    ) -> list[list[SegmentationResult]]:
        """Segment every image with each of its prompts.

        This base class calls :meth:`predict_batch` once per prompt position (each image's first
        prompt, then each image's second...), so no call holds more pairs than images;
        :class:`BatchedPredictor` encodes each image once for all its prompts.

        Args:
            images: RGB ``uint8`` ``(H, W, 3)`` arrays; sizes may differ.
            prompts: One list of prompts for every image (``["segment crack", "segment taping
                area"]``), or one list per image.
            return_probabilities: Also return per-pixel probabilities.
            mm_per_px: For batched runtimes: the tile scale (see :meth:`BatchedPredictor.predict_batch`).
            tile: For batched runtimes: the tile setting of this call.

        Returns:
            Per image, one :class:`SegmentationResult` per prompt, in the order given.

        Raises:
            ConfigError: If per-image prompt lists do not match the images in number.
        """
        per_image = prompts_per_image(prompts, len(images))
        options = {k: v for k, v in (("mm_per_px", mm_per_px), ("tile", tile)) if v is not None}  # an unbatched one takes neither
        results: list[list[SegmentationResult]] = [[] for _ in images]
        for position in range(max((len(own) for own in per_image), default=0)):
            rows = [i for i, own in enumerate(per_image) if len(own) > position]
            answers = self.predict_batch([images[i] for i in rows], [per_image[i][position] for i in rows],
                                         return_probabilities=return_probabilities, **options)
            for i, answer in zip(rows, answers):
                results[i].append(answer)
        return results

    def predict(
        self, image: np.ndarray, prompt: str | Sequence[str], *, return_probabilities: bool = False, **options: Any
    ) -> SegmentationResult | list[SegmentationResult]:
        """Segment one RGB ``uint8`` ``(H, W, 3)`` image with one prompt, or with several.

        ``**options`` are what :meth:`predict_batch` takes besides; batched runtimes take
        ``mm_per_px`` and ``tile`` (see :meth:`BatchedPredictor.predict_batch`).

        Returns:
            One :class:`SegmentationResult` for a prompt string; one per prompt, in order, for a
            list of prompts (the image encoded once for all of them, see :meth:`predict_many`).
        """
        if isinstance(prompt, str):
            return self.predict_batch([image], [prompt], return_probabilities=return_probabilities, **options)[0]
        return self.predict_many([image], [list(prompt)], return_probabilities=return_probabilities, **options)[0]


def prompts_per_image(prompts: Sequence[str] | Sequence[Sequence[str]], count: int) -> list[list[str]]:
    """The prompts of each of ``count`` images: one shared list, or one list per image (checked).

    Raises:
        ConfigError: If per-image lists do not number ``count``.
    """
    if isinstance(prompts, str) or all(isinstance(p, str) for p in prompts):
        shared = [prompts] if isinstance(prompts, str) else [p for p in prompts if isinstance(p, str)]  # every one, as checked
        return [shared] * count
    if len(prompts) != count:
        raise ConfigError(f"got {count} images but {len(prompts)} prompt lists; give one list per image, or one for all")
    return [[own] if isinstance(own, str) else list(own) for own in prompts]



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

    :meth:`predict_batch` validates the inputs, cuts each photo into its tiles (:meth:`prepare`: one
    stretched input for a photo that fits one tile, see :mod:`~drywallqa.inference.tiling`), runs
    :meth:`forward_batch` on the tiles of all photos in chunks of :attr:`batch_size` and blends and
    post-processes each photo's tiles (:meth:`finish`). Subclasses set :attr:`image_size`,
    :attr:`threshold`, :attr:`batch_size` and :attr:`name`, and implement :meth:`forward_batch`.

    Several prompts per image go through :meth:`forward_pairs`: :meth:`encode_batch` once per
    image, :meth:`decode_batch` per prompt. A runtime whose model has a prompt-free encoder
    implements those two; the defaults (features = the images, decoding = :meth:`forward_batch` on
    each pair's image) keep every other runtime working, at one full model run per pair.

    Attributes:
        name: Short label of the model and runtime, e.g. ``"promptunet/onnxruntime"``.
        image_size: Side of the square model input.
        threshold: Probability threshold of the mask, in ``(0, 1)``.
        batch_size: Model inputs (tiles) per :meth:`forward_batch` call.
        decode_batch_size: Pairs per :meth:`decode_batch` call (None: :attr:`batch_size`); 1 on a
            CPU, where two pairs in one call cost more than two calls of one (caches outgrown).
        tile: ``"auto"``, ``"off"`` (a runtime's own default: every photo stretched to the model's
            square) or a tile side in pixels; :func:`~drywallqa.inference.load_predictor` sets ``"auto"``.
    """

    image_size: int = 448
    batch_size: int = 8
    decode_batch_size: int | None = None
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

    def encode_batch(self, images: np.ndarray) -> Any:
        """The prompt-free part of the model on a batch, once per image (the default: no split).

        Args:
            images: ``uint8`` ``(N, S, S, 3)`` RGB at the model's input size.

        Returns:
            The runtime's features of the ``N`` images, only for :meth:`decode_batch`; by default
            the images themselves.
        """
        return images

    def decode_batch(self, features: Any, prompts: Sequence[str], image_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The prompt-conditioned part: pair ``m`` is image ``image_index[m]`` of ``features`` with ``prompts[m]``.

        The default runs :meth:`forward_batch` on each pair's image (a whole model run per pair).

        Returns:
            ``(mask_logits, confidence_logits)``: float32 ``(M, S, S)`` and ``(M,)``.
        """
        return self.forward_batch(np.ascontiguousarray(features[np.asarray(image_index)]), prompts)

    def forward_pairs(self, images: np.ndarray, prompts: Sequence[str], image_index: Sequence[int] | np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
        """Run the model on ``M`` (image, prompt) pairs over ``N`` images, encoding each image once.

        One prompt per image in order (``image_index == range(N)``) is :meth:`forward_batch`, the
        path of a single prompt. Otherwise the images are encoded once (:meth:`encode_batch`) and
        the pairs decoded in chunks of :attr:`decode_batch_size` (:meth:`decode_batch`).

        Args:
            images: ``uint8`` ``(N, S, S, 3)`` RGB at the model's input size.
            prompts: ``M`` prompts.
            image_index: ``M`` indices into ``images``: pair ``m`` is ``images[image_index[m]]``
                with ``prompts[m]``.

        Returns:
            ``(mask_logits, confidence_logits)``: float32 ``(M, S, S)`` and ``(M,)``.

        Raises:
            ConfigError: If ``image_index`` does not give one valid image per prompt.
        """
        index = np.asarray(image_index, dtype=np.int64).reshape(-1)
        if len(index) != len(prompts) or (len(index) and not 0 <= index.min() <= index.max() < len(images)):
            raise ConfigError(f"image_index must give one image of 0..{len(images) - 1} per prompt, got {index.tolist()} "
                              f"for {len(prompts)} prompts")
        if not len(index):
            return np.zeros((0, *images.shape[1:3]), np.float32), np.zeros(0, np.float32)
        if len(index) == len(images) and np.array_equal(index, np.arange(len(images))):
            return self.forward_batch(images, prompts)
        features = self.encode_batch(images)
        step = max(1, int(self.decode_batch_size or self.batch_size))
        outputs = [self.decode_batch(features, list(prompts[start : start + step]), index[start : start + step])
                   for start in range(0, len(index), step)]
        return np.concatenate([o[0] for o in outputs]), np.concatenate([o[1] for o in outputs])

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

    def predict_many(
        self, images: Sequence[np.ndarray], prompts: Sequence[str] | Sequence[Sequence[str]], *,
        return_probabilities: bool = False, mm_per_px: float | None = None, tile: str | int | None = None,
    ) -> list[list[SegmentationResult]]:
        """Segment every image with each of its prompts, encoding each tile of an image once.

        Each image is planned and cut (:meth:`prepare`); the tiles of all images go in chunks of
        at most :attr:`batch_size` through :meth:`forward_pairs`, one pair per (tile, prompt),
        and each (image, prompt) is blended over its tiles (:meth:`finish`). Arguments and errors
        as :meth:`Predictor.predict_many` and :meth:`predict_batch`.

        Returns:
            Per image, one :class:`SegmentationResult` per prompt, at that image's size.
        """
        per_image = [[check_prompt(p) for p in own] for own in prompts_per_image(prompts, len(images))]
        photos = [self.prepare(image, mm_per_px=mm_per_px, tile=tile) for image in images]
        step = max(1, int(self.batch_size))
        # Per image and prompt, its tiles' (mask logits, confidence logits), filled chunk by chunk in tile order.
        outputs: list[list[list[tuple[np.ndarray, np.ndarray]]]] = [[[] for _ in own] for own in per_image]
        chunk: list[tuple[int, int, int]] = []  # (image, first tile, stop tile)
        for i, photo in enumerate(photos):
            for first in range(0, len(photo) if per_image[i] else 0, step):
                stop = min(first + step, len(photo))
                if chunk and sum(b - a for _, a, b in chunk) + stop - first > step:
                    self._forward_tiles(photos, per_image, chunk, outputs)
                    chunk = []
                chunk.append((i, first, stop))
        if chunk:
            self._forward_tiles(photos, per_image, chunk, outputs)
        return [[self.finish(photo.plan, np.concatenate([m for m, _ in parts]), np.concatenate([c for _, c in parts]),
                             prompt, return_probabilities) for prompt, parts in zip(own, answers)]
                for photo, own, answers in zip(photos, per_image, outputs)]

    def _forward_tiles(self, photos: Sequence[PhotoInputs], per_image: Sequence[Sequence[str]],
                       chunk: Sequence[tuple[int, int, int]], outputs: list) -> None:
        """One :meth:`forward_pairs` call over the chunk's tiles, each encoded once for its image's prompts."""
        offsets = np.cumsum([0] + [stop - first for _, first, stop in chunk])
        # Pairs in (slice, prompt, tile) order: each (image, prompt)'s tiles of a slice are consecutive.
        index = [offsets[n] + k for n, (i, first, stop) in enumerate(chunk) for _ in per_image[i] for k in range(stop - first)]
        flat = [prompt for i, first, stop in chunk for prompt in per_image[i] for _ in range(stop - first)]
        pixels = np.ascontiguousarray(np.concatenate([photos[i].pixels[first:stop] for i, first, stop in chunk]))
        mask_logits, confidence_logits = self.forward_pairs(pixels, flat, index)
        start = 0
        for i, first, stop in chunk:
            for answer in outputs[i]:
                answer.append((mask_logits[start : start + stop - first], confidence_logits[start : start + stop - first]))
                start += stop - first
