"""Dynamic micro-batching: one model thread serving many callers, each with a photo and its prompts.

:class:`MicroBatcher` is the *batched model* stage of the drivers' reader -> batched model ->
writer pipelines (``drywallqa predict`` over a folder, ``drywallqa serve`` over concurrent
requests). Callers (reader threads, request handlers) hand it images and prompts with
:meth:`~MicroBatcher.predict`; the model thread takes whatever photos are queued, up to
``max_batch`` (waiting at most ``max_wait_s`` for a batch to fill when the queue runs dry), and
makes one model call for them and all their prompts. A busy model thus batches more, an idle one
answers a lone request at once.

The pairs of one call that share an image (the same array: ``predict([photo] * 2, ["segment
crack", "segment taping area"])``) are queued together, a tile at a time: the model encodes each
tile once and decodes each of the photo's prompts on it (:meth:`~drywallqa.inference.BatchedPredictor.forward_pairs`; a predictor
with its own :meth:`~drywallqa.inference.Predictor.predict_many`, a tiling wrapper say, gets the
photos with their prompts; any other, the pairs in one ``predict_batch`` call).

The model thread does nothing but model calls. For a
:class:`~drywallqa.inference.BatchedPredictor` the callers cut their images into the model's
inputs (:meth:`~drywallqa.inference.BatchedPredictor.prepare`: one per tile, see
:mod:`~drywallqa.inference.tiling`) before queueing them, one pair per tile, and blend the
logits into masks at their images' size (:meth:`~drywallqa.inference.BatchedPredictor.finish`)
when they come back, each in its own thread: done in the model thread, that work, waiting for the
interpreter among a dozen busy callers, took a fifth of its time. Any other predictor gets whole
images through ``predict_batch``.

The queue is bounded (``max_queued`` tiles, each with its photo's prompts; a photo that fits
one tile is one): a reader blocks when it is full (back-pressure); a caller that must not wait
gets :class:`QueueFull`. A caller with a deadline (an HTTP request's time-out) waits no longer
than it: it gets :class:`DeadlineExceeded`, its pairs still queued are dropped, and the model
thread never runs a pair whose deadline has passed.

A model call that fails is tried again pair by pair, so that one pair the runtime refuses fails
alone; after :data:`SOLO_FAILURES_IN_A_ROW` of those calls fail in a row the model itself is taken
to be failing, and the batch's other pairs get its error without more calls.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from drywallqa.inference import BatchedPredictor, PhotoInputs, Predictor, SegmentationResult, check_image, check_prompt

#: Failed pair-by-pair calls in a row after which a failed batch's other pairs get its error.
SOLO_FAILURES_IN_A_ROW = 2


class DeadlineExceeded(TimeoutError):
    """A caller's deadline passed before the model answered its pairs."""


class QueueFull(Exception):
    """A bounded queue is full; ``retry_after_s`` estimates when there will be room."""

    def __init__(self, retry_after_s: int):
        super().__init__(retry_after_s)
        self.retry_after_s = retry_after_s


@dataclass
class _Pair:
    image: np.ndarray  # the model's input (batched predictors) or the whole image; one array per photo
    prompt: str
    deadline: float | None = None  # time.monotonic() after which nobody waits for the answer
    future: Future = field(default_factory=Future)

    def expired(self, now: float) -> bool:
        return self.deadline is not None and now > self.deadline


_STOP = object()


@dataclass
class BatchStats:
    """What the model thread did: calls, pairs, photos (each encoded once a call) and seconds in the model."""

    calls: int = 0
    pairs: int = 0
    model_seconds: float = 0.0
    images: int = 0

    @property
    def mean_batch(self) -> float:
        """Pairs per model call."""
        return self.pairs / self.calls if self.calls else 0.0


class MicroBatcher:
    """A model thread that batches the (image, prompt) pairs of many callers, a photo's prompts together.

    Args:
        predictor: Any :class:`~drywallqa.inference.Predictor` (its model runs in the model thread only).
        max_batch: Most tiles per model call (each with all its photo's prompts; a photo that fits
            one tile is one); the predictor's
            ``batch_size`` (else 8) by default.
        max_wait_s: Longest wait for more photos once one is queued and the model is idle.
        max_queued: Photos that may wait for the model; :meth:`predict` blocks or raises beyond.

    Use as a context manager, or call :meth:`close`.

    Example:
        >>> with MicroBatcher(predictor) as batcher:                          # doctest: +SKIP
        ...     # from many threads at once:
        ...     results = batcher.predict([image, image], ["segment crack", "segment taping area"])
    """

    def __init__(self, predictor: Predictor, *, max_batch: int | None = None, max_wait_s: float = 0.005,
                 max_queued: int = 64):
        self.predictor: Any = predictor  # a BatchedPredictor when self.batched
        self.batched = isinstance(predictor, BatchedPredictor)
        self.max_batch = max(1, int(max_batch or getattr(predictor, "batch_size", 8) or 8))
        self.max_wait_s = max(0.0, float(max_wait_s))
        self.stats = BatchStats()
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, int(max_queued)))
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="drywallqa-model", daemon=True)
        self._thread.start()

    def __enter__(self) -> MicroBatcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def queued(self) -> int:
        """Photos waiting for the model now."""
        return self._queue.qsize()

    def predict(self, images: Sequence[np.ndarray], prompts: Sequence[str], *, block: bool = True,
                deadline: float | None = None, mm_per_px: float | None = None,
                tile: str | int | None = None) -> list[SegmentationResult]:
        """Segment ``images[i]`` with ``prompts[i]`` in the model thread, batched with other callers' pairs.

        Safe to call from many threads at once; a drop-in for ``predict_batch``. Pairs that give
        the same image array are one photo to the model: encoded once for all its prompts.

        Args:
            images: RGB ``uint8`` ``(H, W, 3)`` arrays; the same array given for several prompts
                is tiled once.
            prompts: One prompt per image.
            block: Wait for room when the queue is full (a reader); else raise :class:`QueueFull`
                (only when not even the first pair finds room: the other tiles of a photo let in
                wait for theirs).
            deadline: A :func:`time.monotonic` time to wait no longer than (None: as long as it takes).
            mm_per_px: Millimetres per pixel of the images, for the tile scale (batched predictors).
            tile: Tile setting of this call; the predictor's when None (batched predictors).

        Raises:
            QueueFull: Without ``block``, when ``max_queued`` tiles are waiting.
            DeadlineExceeded: When ``deadline`` passes first; the pairs not yet in the model are dropped.
            ConfigError: For a bad image or prompt (that pair's error: the others are unaffected).
            RuntimeError: After :meth:`close`.
        """
        if self._closed:
            raise RuntimeError("the micro-batcher is closed")
        if self.batched:
            prompts = [check_prompt(prompt) for prompt in prompts]
        # By (the caller's array, tile): one model input, encoded once for all its prompts.
        groups: dict[tuple[int, int], list[_Pair]] = {}
        pairs: list[_Pair] = []
        if self.batched:
            prepared: dict[int, tuple[PhotoInputs, list[np.ndarray]]] = {}
            for image in images:  # one plan and one set of tiles per photo, whatever its prompts
                if id(image) not in prepared:
                    photo = self.predictor.prepare(image, mm_per_px=mm_per_px, tile=tile)
                    prepared[id(image)] = (photo, list(photo.pixels))
            photos = [prepared[id(image)][0] for image in images]
            for image, prompt in zip(images, prompts):
                for k, tile_pixels in enumerate(prepared[id(image)][1]):
                    pairs.append(_Pair(tile_pixels, prompt, deadline))
                    groups.setdefault((id(image), k), []).append(pairs[-1])
        else:
            checked: dict[int, np.ndarray] = {}
            for image, prompt in zip(images, prompts):
                if id(image) not in checked:
                    checked[id(image)] = check_image(image)
                pairs.append(_Pair(checked[id(image)], prompt, deadline))
                groups.setdefault((id(image), 0), []).append(pairs[-1])
        if deadline is not None and time.monotonic() > deadline:
            raise DeadlineExceeded("the deadline passed before the pairs reached the model's queue")
        try:
            for index, group in enumerate(groups.values()):
                self._put(group, block or index > 0, deadline)  # a photo's other tiles wait for their room
            outputs = [self._wait(pair, deadline) for pair in pairs]
        except BaseException:
            for pair in pairs:
                pair.future.cancel()  # the model thread skips a cancelled pair; one in the model finishes unread
            raise
        if not self.batched:
            return outputs
        results, start = [], 0
        for photo, prompt in zip(photos, prompts):
            tiles = outputs[start : start + len(photo)]
            start += len(photo)
            results.append(self.predictor.finish(photo.plan, np.stack([logits for logits, _ in tiles]),
                                                 np.array([confidence for _, confidence in tiles]), prompt))
        return results

    def _put(self, photo: list[_Pair], block: bool, deadline: float | None) -> None:
        try:
            self._queue.put(photo, block=block, timeout=self._remaining(deadline) if block else None)
        except queue.Full:
            if block:
                raise DeadlineExceeded("the deadline passed while waiting for room in the model's queue") from None
            raise QueueFull(self.retry_after()) from None

    def _wait(self, pair: _Pair, deadline: float | None):
        try:
            return pair.future.result(timeout=self._remaining(deadline))
        except FutureTimeout:
            if pair.future.done():  # the pair's own error (a deadline the model thread found passed, say)
                raise
            raise DeadlineExceeded("the deadline passed before the model answered") from None

    @staticmethod
    def _remaining(deadline: float | None) -> float | None:
        """Seconds left until ``deadline`` (0 once it has passed), or None for no deadline."""
        return None if deadline is None else max(0.0, deadline - time.monotonic())

    def retry_after(self) -> int:
        """Seconds until the queued photos have likely gone through the model."""
        per_photo = self.stats.model_seconds / self.stats.images if self.stats.images else 1.0
        return max(1, round(per_photo * (self.queued + self.max_batch)))

    def close(self) -> None:
        """Finish the queued pairs and stop the model thread."""
        if not self._closed:
            self._closed = True
            self._queue.put(_STOP)
            self._thread.join()

    # -- the model thread -----------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch, stop = self._gather(first)
            self._call(batch)
            if stop:
                return

    def _gather(self, first: list[_Pair]) -> tuple[list[_Pair], bool]:
        """The pairs of ``first`` and of whatever photos come within ``max_wait_s``, up to ``max_batch`` photos."""
        batch, photos = list(first), 1
        deadline = time.monotonic() + self.max_wait_s
        while photos < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            if item is _STOP:
                return batch, True
            batch += item
            photos += 1
        return batch, False

    def _model(self, pairs: list[_Pair]) -> list:
        """One model call, each photo once with all its prompts: ``(mask logits, confidence logit)``
        per pair, or whole results."""
        rows: dict[int, int] = {}
        for pair in pairs:
            rows.setdefault(id(pair.image), len(rows))
        index = [rows[id(pair.image)] for pair in pairs]
        inputs = list({id(pair.image): pair.image for pair in pairs}.values())
        self.stats.images += len(inputs)
        if not self.batched and type(self.predictor).predict_many is Predictor.predict_many:
            return self.predictor.predict_batch([p.image for p in pairs], [p.prompt for p in pairs])
        if not self.batched:  # a predictor of its own that shares work between a photo's prompts
            per_photo: list[list[str]] = [[] for _ in inputs]
            for pair, row in zip(pairs, index):
                per_photo[row].append(pair.prompt)
            results = [iter(photo) for photo in self.predictor.predict_many(inputs, per_photo)]
            return [next(results[row]) for row in index]
        mask_logits, confidence_logits = self.predictor.forward_pairs(np.stack(inputs), [p.prompt for p in pairs], index)
        return list(zip(mask_logits, confidence_logits))

    def _call(self, batch: list[_Pair]) -> None:
        now = time.monotonic()
        live = []
        for pair in batch:
            if not pair.future.set_running_or_notify_cancel():
                continue  # its caller gave up
            if pair.expired(now):  # nobody waits for it any more: no model time for it
                pair.future.set_exception(DeadlineExceeded("the deadline passed while the pair waited for the model"))
            else:
                live.append(pair)
        if not live:
            return
        started = time.perf_counter()
        try:
            outputs, error = self._model(live), None
        except Exception as exc:  # noqa: BLE001 - one bad pair (a prompt a runtime refuses) must not fail the others
            outputs, error = None, exc
        self.stats.calls += 1
        self.stats.pairs += len(live)
        self.stats.model_seconds += time.perf_counter() - started
        if outputs is not None:
            for pair, output in zip(live, outputs):
                pair.future.set_result(output)
            return
        if len(live) == 1:
            live[0].future.set_exception(error)
            return
        failures_in_a_row = 0
        for pair in live:  # again one by one, so each caller gets its own pair's error
            if failures_in_a_row >= SOLO_FAILURES_IN_A_ROW:
                pair.future.set_exception(error)  # the model fails whatever it gets: no more calls
            elif pair.expired(time.monotonic()):
                pair.future.set_exception(DeadlineExceeded("the deadline passed while the pair waited for the model"))
            else:
                self.stats.calls += 1
                try:
                    pair.future.set_result(self._model([pair])[0])
                    failures_in_a_row = 0
                except Exception as exc:  # noqa: BLE001 - handed to the caller that asked
                    pair.future.set_exception(exc)
                    failures_in_a_row += 1
