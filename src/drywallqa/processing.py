"""Pre- and post-processing shared by every predictor and runtime, in NumPy and OpenCV (no torch).

Every predictor behaves alike: each image (or each tile of a large one, see
:mod:`drywallqa.inference.tiling`) is stretched to the model's square input (area interpolation
when shrinking, bilinear when enlarging), the mask logits are resized bilinearly (half-pixel
centres, ``align_corners=False``) back to the image's own size, and a pixel is foreground when
``sigmoid(logit) > threshold``. The threshold is applied to the logits
(``logit > log(t / (1 - t))``), which is the same test without a full-resolution sigmoid; the
sigmoid only runs when probabilities are asked for.

:class:`drywallqa.inference.BatchedPredictor` applies them around each runtime's forward pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from drywallqa.errors import ConfigError

# PNG compression 1 of 9: binary masks shrink almost as much as at 9, at a fraction of the time.
MASK_PNG_COMPRESSION = 1


def resize_to_model_input(image: np.ndarray, size: int) -> np.ndarray:
    """Stretch an image to the model's square input, as in training.

    Args:
        image: RGB ``uint8`` ``(H, W, 3)``.
        size: Side of the square model input.

    Returns:
        RGB ``uint8`` ``(size, size, 3)``; ``image`` itself when it already has that size.
    """
    import cv2

    if image.shape[:2] == (size, size):
        return image
    # Area averaging when shrinking avoids aliasing thin cracks away; bilinear when enlarging.
    interpolation = cv2.INTER_AREA if min(image.shape[:2]) > size else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interpolation)


def resize_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize an image to ``(height, width)`` with the interpolation :func:`resize_to_model_input` uses.

    Args:
        image: RGB ``uint8`` ``(H, W, 3)``.
        height: Rows of the result.
        width: Columns of the result.

    Returns:
        RGB ``uint8`` ``(height, width, 3)``; ``image`` itself when it already has that size.
    """
    import cv2

    if image.shape[:2] == (height, width):
        return image
    interpolation = cv2.INTER_AREA if image.shape[0] > height and image.shape[1] > width else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


def stack_model_inputs(images: Sequence[np.ndarray], size: int) -> np.ndarray:
    """Resize every image with :func:`resize_to_model_input` and stack them.

    Args:
        images: RGB ``uint8`` ``(H, W, 3)`` arrays of any sizes.
        size: Side of the square model input.

    Returns:
        ``uint8`` ``(B, size, size, 3)`` (NHWC), C-contiguous.
    """
    return np.ascontiguousarray(np.stack([resize_to_model_input(image, size) for image in images]))


def nhwc_uint8_to_nchw_float(batch: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``uint8`` ``(B, H, W, 3)`` -> float32 ``(B, 3, H, W)`` in ``[0, 1]``, the models' input format.

    Args:
        batch: ``uint8`` NHWC images.
        out: Optional float32 ``(B, 3, H, W)`` buffer to write into (saves an allocation per call).

    Returns:
        The float32 NCHW array (``out`` when given).
    """
    if batch.ndim != 4 or batch.shape[3] != 3 or batch.dtype != np.uint8:
        raise ValueError(f"batch must be uint8 (B, H, W, 3), got {batch.shape} {batch.dtype}")
    if out is None:
        out = np.empty((batch.shape[0], 3, *batch.shape[1:3]), dtype=np.float32)
    # One pass: the transposed view is read once, cast and scaled straight into the output.
    np.multiply(batch.transpose(0, 3, 1, 2), np.float32(1.0 / 255.0), out=out, casting="unsafe")
    return out


def check_threshold(threshold: float, name: str = "threshold") -> float:
    """The one check of a mask threshold: a probability strictly between 0 and 1 (at 0 or 1 every
    pixel, or none, would be foreground whatever the model says).

    Raises:
        ConfigError: Naming ``name`` (e.g. ``thresholds.crack``) when it is not.
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 < threshold < 1.0:
        raise ConfigError(f"{name} must be a probability strictly between 0 and 1, got {threshold!r}")
    return float(threshold)


def foreground(probabilities: np.ndarray, threshold: float) -> np.ndarray:
    """The one comparison that turns probabilities into a mask: foreground where ``p > threshold``.

    Every runtime thresholds logits with :func:`logit_threshold`, which gives the same mask.
    """
    return probabilities > threshold


def logit_threshold(threshold: float) -> float:
    """The logit ``log(t / (1 - t))`` with ``sigmoid(logit) > t`` exactly when ``logit > log(t / (1 - t))``.

    Raises:
        ConfigError: If ``threshold`` is not strictly between 0 and 1.
    """
    threshold = check_threshold(threshold)
    return math.log(threshold / (1.0 - threshold))


def prompt_threshold(predictor, prompt: str) -> float:
    """The probability threshold ``predictor`` applies to ``prompt``: its per-class one
    (``Predictor.threshold_for``), else its ``threshold``, else 0.5 (any object with ``predict_batch``)."""
    threshold_for = getattr(predictor, "threshold_for", None)
    return float(threshold_for(prompt)) if threshold_for else float(getattr(predictor, "threshold", 0.5))


def upsample_logits(logits: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize ``(h, w)`` float32 logits bilinearly (half-pixel centres) to ``(height, width)``.

    Matches ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)`` to about
    ``2e-4`` in the logits (OpenCV's interpolation weights are rounded), so a mask can only differ
    from the torch one at pixels whose logit is within that of the threshold.
    """
    import cv2

    if logits.shape == (height, width):
        return logits
    return cv2.resize(np.ascontiguousarray(logits, dtype=np.float32), (width, height), interpolation=cv2.INTER_LINEAR)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable float32 logistic function."""
    x = np.asarray(x, dtype=np.float32)
    # exp of a non-positive number never overflows; mirror it for the positive half.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(np.float32)


def encode_mask_png(mask: np.ndarray) -> bytes:
    """Encode a bool ``(H, W)`` mask as an 8-bit PNG (0 background, 255 foreground).

    Rows unfiltered and run-length deflate: a binary mask is long runs of 0 and 255, which this
    stores in about half the bytes of zlib's default at a third of the time of adaptive filtering
    (OpenCV before 4.11 has no filter option and uses its default).
    """
    import cv2

    params = [cv2.IMWRITE_PNG_COMPRESSION, MASK_PNG_COMPRESSION]
    if hasattr(cv2, "IMWRITE_PNG_FILTER"):
        params += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
    ok, buffer = cv2.imencode(".png", np.asarray(mask, dtype=bool).view(np.uint8) * np.uint8(255), params)
    if not ok:
        raise ValueError(f"could not PNG-encode a mask of shape {mask.shape}")
    return buffer.tobytes()
