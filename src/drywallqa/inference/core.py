"""The one prediction interface every model family and runtime sits behind.

It holds the result type (:class:`SegmentationResult`), the interface (:class:`Predictor`), the
batched base class of every runtime (:class:`BatchedPredictor`), the input checks and the step
from logits to a result (:func:`logits_to_result`).

A :class:`Predictor` takes RGB ``uint8`` images of any size and a text prompt and returns a
:class:`SegmentationResult` at the image's own size. It owns resizing, normalisation (inside the
model), upsampling and thresholding, so evaluation, prediction and serving never special-case an
architecture or a runtime (PyTorch, ONNX Runtime, ...).

Several prompts on one image are one call, ``predictor.predict(image, ["segment crack", "segment
taping area"])``, and many images each with several prompts another (:meth:`Predictor.predict_many`):
a runtime whose model splits into a prompt-free encoder and a prompt-conditioned decoder
(:meth:`BatchedPredictor.encode_batch`, :meth:`BatchedPredictor.decode_batch`) encodes each image
once for all its prompts.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from drywallqa.errors import ConfigError
from drywallqa.processing import (
    check_threshold,
    logit_threshold,
    resize_to_model_input,
    sigmoid,
    stack_model_inputs,
    upsample_logits,
)


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

    def predict_many(
        self, images: Sequence[np.ndarray], prompts: Sequence[str] | Sequence[Sequence[str]], *,
        return_probabilities: bool = False,
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

        Returns:
            Per image, one :class:`SegmentationResult` per prompt, in the order given.

        Raises:
            ConfigError: If per-image prompt lists do not match the images in number.
        """
        per_image = prompts_per_image(prompts, len(images))
        results: list[list[SegmentationResult]] = [[] for _ in images]
        for position in range(max((len(own) for own in per_image), default=0)):
            rows = [i for i, own in enumerate(per_image) if len(own) > position]
            answers = self.predict_batch([images[i] for i in rows], [per_image[i][position] for i in rows],
                                         return_probabilities=return_probabilities)
            for i, answer in zip(rows, answers):
                results[i].append(answer)
        return results

    def predict(
        self, image: np.ndarray, prompt: str | Sequence[str], *, return_probabilities: bool = False
    ) -> SegmentationResult | list[SegmentationResult]:
        """Segment one RGB ``uint8`` ``(H, W, 3)`` image with one prompt, or with several.

        Returns:
            One :class:`SegmentationResult` for a prompt string; one per prompt, in order, for a
            list of prompts (the image encoded once for all of them, see :meth:`predict_many`).
        """
        if isinstance(prompt, str):
            return self.predict_batch([image], [prompt], return_probabilities=return_probabilities)[0]
        return self.predict_many([image], [list(prompt)], return_probabilities=return_probabilities)[0]


def prompts_per_image(prompts: Sequence[str] | Sequence[Sequence[str]], count: int) -> list[list[str]]:
    """The prompts of each of ``count`` images: one shared list, or one list per image (checked).

    Raises:
        ConfigError: If per-image lists do not number ``count``.
    """
    if isinstance(prompts, str) or all(isinstance(p, str) for p in prompts):
        shared = [prompts] if isinstance(prompts, str) else list(prompts)
        return [shared] * count
    if len(prompts) != count:
        raise ConfigError(f"got {count} images but {len(prompts)} prompt lists; give one list per image, or one for all")
    return [[own] if isinstance(own, str) else list(own) for own in prompts]


def _regroup(results: Sequence[SegmentationResult], per_image: Sequence[Sequence[str]]) -> list[list[SegmentationResult]]:
    """Flat per-pair results back into one list per image."""
    grouped, start = [], 0
    for own in per_image:
        grouped.append(list(results[start : start + len(own)]))
        start += len(own)
    return grouped


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


class BatchedPredictor(Predictor):
    """A :class:`Predictor` whose runtime only maps a uint8 batch to logits.

    :meth:`predict_batch` validates the inputs, resizes them with :func:`resize_to_model_input`,
    runs :meth:`forward_batch` in chunks of :attr:`batch_size` and post-processes each image with
    :func:`logits_to_result`. Subclasses set :attr:`image_size`, :attr:`threshold`,
    :attr:`batch_size` and :attr:`name`, and implement :meth:`forward_batch`.

    Several prompts per image go through :meth:`forward_pairs`: :meth:`encode_batch` once per
    image, :meth:`decode_batch` per prompt. A runtime whose model has a prompt-free encoder
    implements those two; the defaults (features = the images, decoding = :meth:`forward_batch` on
    each pair's image) keep every other runtime working, at one full model run per pair.

    Attributes:
        name: Short label of the model and runtime, e.g. ``"promptunet/onnxruntime"``.
        image_size: Side of the square model input.
        threshold: Probability threshold of the mask, in ``(0, 1)``.
        batch_size: Images per :meth:`forward_batch` call.
    """

    image_size: int = 448
    batch_size: int = 8

    def forward_batch(self, images: np.ndarray, prompts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Run the model on a batch already at the model's input size (the batched array path).

        Args:
            images: ``uint8`` ``(B, S, S, 3)`` RGB, ``S`` a multiple of 32 (usually :attr:`image_size`).
            prompts: ``B`` prompts.

        Returns:
            ``(mask_logits, confidence_logits)``: float32 ``(B, S, S)`` and ``(B,)`` NumPy arrays.
        """
        raise NotImplementedError

    def encode_batch(self, images: np.ndarray):
        """The prompt-free part of the model on a batch, once per image (the default: no split).

        Args:
            images: ``uint8`` ``(N, S, S, 3)`` RGB at the model's input size.

        Returns:
            The runtime's features of the ``N`` images, only for :meth:`decode_batch`; by default
            the images themselves.
        """
        return images

    def decode_batch(self, features, prompts: Sequence[str], image_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
        the pairs decoded in chunks of :attr:`batch_size` (:meth:`decode_batch`).

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
        step = max(1, int(self.batch_size))
        outputs = [self.decode_batch(features, list(prompts[start : start + step]), index[start : start + step])
                   for start in range(0, len(index), step)]
        return np.concatenate([o[0] for o in outputs]), np.concatenate([o[1] for o in outputs])

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """One image as :meth:`forward_batch` takes it: checked and stretched to :attr:`image_size`.

        With :meth:`finish`, the halves of :meth:`predict_batch` around the model call, for drivers
        that resize and post-process in their own threads while one thread runs the model
        (:class:`drywallqa.serving.batching.MicroBatcher`).
        """
        return resize_to_model_input(check_image(image), self.image_size)

    def finish(self, mask_logits: np.ndarray, confidence_logit: float, prompt: str, image_shape: tuple[int, ...],
               return_probabilities: bool = False) -> SegmentationResult:
        """One image's model output as its :class:`SegmentationResult` at the image's size."""
        return logits_to_result(mask_logits, confidence_logit, prompt, image_shape, self.threshold_for(prompt),
                                return_probabilities)

    def predict_batch(
        self, images: Sequence[np.ndarray], prompts: Sequence[str], *, return_probabilities: bool = False
    ) -> list[SegmentationResult]:
        """Segment ``images[i]`` with ``prompts[i]``.

        Args:
            images: RGB ``uint8`` ``(H, W, 3)`` arrays; sizes may differ.
            prompts: One prompt per image.
            return_probabilities: Also return per-pixel probabilities.

        Returns:
            One :class:`SegmentationResult` per image, at that image's size.

        Raises:
            ConfigError: If the counts differ, an image is not RGB uint8 or a prompt is empty.
        """
        if len(images) != len(prompts):
            raise ConfigError(f"got {len(images)} images but {len(prompts)} prompts; give one prompt per image")
        prompts = [check_prompt(p) for p in prompts]
        images = [check_image(image) for image in images]
        results: list[SegmentationResult] = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            chunk_prompts = prompts[start : start + len(chunk)]
            mask_logits, confidence_logits = self.forward_batch(stack_model_inputs(chunk, self.image_size), chunk_prompts)
            for image, prompt, logits, confidence in zip(chunk, chunk_prompts, mask_logits, confidence_logits):
                results.append(self.finish(logits, confidence, prompt, image.shape, return_probabilities))
        return results

    def predict_many(
        self, images: Sequence[np.ndarray], prompts: Sequence[str] | Sequence[Sequence[str]], *,
        return_probabilities: bool = False,
    ) -> list[list[SegmentationResult]]:
        """Segment every image with each of its prompts, encoding each image once.

        Images go in chunks of :attr:`batch_size`, each chunk through :meth:`forward_pairs` with
        all its images' prompts. Arguments and errors as :meth:`Predictor.predict_many`.

        Returns:
            Per image, one :class:`SegmentationResult` per prompt, at that image's size.
        """
        per_image = [[check_prompt(p) for p in own] for own in prompts_per_image(prompts, len(images))]
        images = [check_image(image) for image in images]
        results: list[list[SegmentationResult]] = []
        for start in range(0, len(images), self.batch_size):
            chunk, chunk_prompts = images[start : start + self.batch_size], per_image[start : start + self.batch_size]
            index = [i for i, own in enumerate(chunk_prompts) for _ in own]
            flat = [prompt for own in chunk_prompts for prompt in own]
            if not flat:
                results += [[] for _ in chunk]
                continue
            mask_logits, confidence_logits = self.forward_pairs(stack_model_inputs(chunk, self.image_size), flat, index)
            pairs = [self.finish(logits, confidence, prompt, chunk[i].shape, return_probabilities)
                     for i, prompt, logits, confidence in zip(index, flat, mask_logits, confidence_logits)]
            results += _regroup(pairs, chunk_prompts)
        return results
