"""The pseudo-mask method interface: an image and its boxes in, one mask per box out.

Every method (filled box, GrabCut, ridge filters, SAM, a trained drywallqa model) subclasses
:class:`PseudoMaskMethod` and implements :meth:`PseudoMaskMethod.predict_boxes`. The base class
validates the inputs and confines each returned mask to its box, so a method can never paint
outside the box it was given.

Box pixel convention: a box ``(x1, y1, x2, y2)`` covers the pixel window
``[floor(x1), ceil(x2)) x [floor(y1), ceil(y2))`` clipped to the image (:func:`box_window`), the
same window :func:`drywallqa.data.formats.coco.samples_to_coco` confines replacement masks to.
For the integer boxes of Roboflow exports this is exactly ``w x h`` pixels.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from drywallqa.errors import ConfigError


def box_window(box, height: int, width: int) -> tuple[int, int, int, int]:
    """Pixel window ``(ya, yb, xa, xb)`` (exclusive ends) of an xyxy box, clipped to the image.

    Example:
        >>> box_window((2.5, 0, 10, 5.2), 100, 8)
        (0, 6, 2, 8)
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    xa, ya = max(math.floor(x1), 0), max(math.floor(y1), 0)
    xb, yb = min(math.ceil(x2), width), min(math.ceil(y2), height)
    return ya, max(yb, ya), xa, max(xb, xa)


def box_masks(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Filled boxes as ``(N, height, width)`` bool, one per box (see :func:`box_window`)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    out = np.zeros((len(boxes), height, width), dtype=bool)
    for i, box in enumerate(boxes):
        ya, yb, xa, xb = box_window(box, height, width)
        out[i, ya:yb, xa:xb] = True
    return out


class PseudoMaskMethod:
    """Base class: turn the boxes of one image into one bool mask per box.

    Subclasses set :attr:`name` and implement :meth:`predict_boxes`. Call the instance, not
    :meth:`predict_boxes`: ``__call__`` checks shapes and dtypes and confines every mask to its box.

    Attributes:
        name: Registry name of the method.
        uses_torch: True for methods that run a network; :func:`make_pseudo_masks` runs those in
            the main process (one model copy, torch's own threads) instead of a worker pool.
    """

    name: ClassVar[str] = "base"
    uses_torch: ClassVar[bool] = False

    def __call__(self, image: np.ndarray, boxes: np.ndarray, class_name: str) -> np.ndarray:
        """Masks for the boxes of one image.

        Args:
            image: RGB ``uint8`` array of shape ``(H, W, 3)``.
            boxes: ``(N, 4)`` float ``(x1, y1, x2, y2)`` pixel boxes (``N`` may be 0).
            class_name: Prompt class of the boxes (e.g. ``"crack"``, ``"taping_area"``); methods
                may tune their behaviour per class.

        Returns:
            ``(N, H, W)`` bool, mask ``i`` True only inside box ``i``.

        Raises:
            ValueError: If ``image`` or ``boxes`` has the wrong shape or dtype.
        """
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be RGB uint8 (H, W, 3), got {image.dtype} {image.shape}")
        boxes = np.asarray(boxes, dtype=np.float64)
        if boxes.size == 0:
            boxes = boxes.reshape(0, 4)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"boxes must be (N, 4) xyxy, got shape {boxes.shape}")
        height, width = image.shape[:2]
        if len(boxes) == 0:
            return np.zeros((0, height, width), dtype=bool)
        masks = np.asarray(self.predict_boxes(image, boxes, class_name))
        if masks.shape != (len(boxes), height, width):
            raise ValueError(
                f"{type(self).__name__}.predict_boxes returned shape {masks.shape}, "
                f"expected {(len(boxes), height, width)}"
            )
        return masks.astype(bool, copy=False) & box_masks(boxes, height, width)

    def predict_boxes(self, image: np.ndarray, boxes: np.ndarray, class_name: str) -> np.ndarray:
        """Subclass hook with validated inputs; returns ``(N, H, W)`` bool (need not be confined)."""
        raise NotImplementedError

    def config(self) -> dict:
        """The method's parameters, JSON-ready (written next to generated masks for provenance)."""
        return {}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({params})"


def check_no_weights(name: str, weights: object) -> None:
    """Raise :class:`ConfigError` when weights are passed to a method that has none."""
    if weights is not None:
        raise ConfigError(f"pseudo-mask method {name!r} takes no weights (got weights={weights!r}); "
                          "weights are for the 'sam' and 'model' methods")


def predict_annotations(method: PseudoMaskMethod, image: np.ndarray, annotations) -> list[np.ndarray]:
    """Run ``method`` on the boxes of ``annotations`` (one call per class, in the image).

    Args:
        method: The pseudo-mask method.
        image: RGB ``uint8`` ``(H, W, 3)``.
        annotations: :class:`drywallqa.data.Annotation` objects of this image.

    Returns:
        One ``(H, W)`` bool mask per annotation, in order.
    """
    masks: list[np.ndarray | None] = [None] * len(annotations)
    by_class: dict[str, list[int]] = {}
    for i, ann in enumerate(annotations):
        by_class.setdefault(ann.class_name, []).append(i)
    for class_name, indices in by_class.items():
        boxes = np.array([annotations[i].box for i in indices], dtype=np.float64).reshape(-1, 4)
        for i, mask in zip(indices, method(image, boxes, class_name)):
            masks[i] = mask
    return masks  # type: ignore[return-value]


def worker_context():
    """The multiprocessing context of worker pools: ``forkserver`` where available, else ``spawn``.

    Not ``fork``: a process that has already run OpenCV (or torch) holds thread pools whose
    locks a forked child inherits without the threads, and the child's first OpenCV call can
    hang forever. Workers start from a clean interpreter instead; they receive the method
    object by pickling.
    """
    import multiprocessing

    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def imap_in_workers(function, items: list, workers: int, initializer, initargs: tuple, max_chunksize: int):
    """Yield ``function(item)`` for every item, unordered, from a :func:`worker_context` pool.

    Small chunks keep the progress bar moving; the pool is terminated if the consumer stops
    early or fails (Ctrl-C, an error), and joined in every case.
    """
    workers = min(workers, len(items))
    chunksize = max(1, min(max_chunksize, len(items) // (workers * 8)))
    pool = worker_context().Pool(workers, initializer=initializer, initargs=initargs)
    try:
        yield from pool.imap_unordered(function, items, chunksize=chunksize)
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()
