"""Dynamic micro-batching: one model thread serving many callers, each with one image and prompt.

:class:`MicroBatcher` is the *batched model* stage of the drivers' reader -> batched model ->
writer pipelines (``drywallqa predict`` over a folder, ``drywallqa serve`` over concurrent
requests). Callers (reader threads, request handlers) :meth:`~MicroBatcher.submit` an image and a
prompt and get a :class:`~concurrent.futures.Future` of its
:class:`~drywallqa.inference.SegmentationResult`; the model thread takes whatever is queued, up to
``max_batch`` pairs (waiting at most ``max_wait_s`` for a batch to fill when the queue runs dry),
and makes one :meth:`~drywallqa.inference.Predictor.predict_batch` call for them. A busy model
thus batches more, an idle one answers a lone request at once, and callers do their decoding,
QA figures and encoding in their own threads while the model runs.

The queue is bounded (``max_queued`` pairs): :meth:`~MicroBatcher.submit` blocks a reader when it
is full (back-pressure), or raises :class:`QueueFull` for a caller that must not wait.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from drywallqa.inference import Predictor, SegmentationResult


class QueueFull(Exception):
    """A bounded queue is full; ``retry_after_s`` estimates when there will be room."""

    def __init__(self, retry_after_s: int):
        super().__init__(retry_after_s)
        self.retry_after_s = retry_after_s


@dataclass
class _Pair:
    image: np.ndarray
    prompt: str
    future: Future = field(default_factory=Future)


_STOP = object()


@dataclass
class BatchStats:
    """What the model thread did: calls, pairs, and seconds spent in the model."""

    calls: int = 0
    pairs: int = 0
    model_seconds: float = 0.0

    @property
    def mean_batch(self) -> float:
        """Pairs per model call."""
        return self.pairs / self.calls if self.calls else 0.0


class MicroBatcher:
    """A model thread that batches single (image, prompt) pairs from many callers.

    Args:
        predictor: Any :class:`~drywallqa.inference.Predictor` (used from the model thread only).
        max_batch: Most pairs per model call; the predictor's ``batch_size`` (else 8) by default.
        max_wait_s: Longest wait for more pairs once one is queued and the model is idle.
        max_queued: Pairs that may wait for the model; :meth:`submit` blocks or raises beyond.

    Use as a context manager, or call :meth:`close`.

    Example:
        >>> with MicroBatcher(predictor) as batcher:                          # doctest: +SKIP
        ...     futures = [batcher.submit(image, "segment crack") for image in images]
        ...     masks = [f.result().mask for f in futures]
    """

    def __init__(self, predictor: Predictor, *, max_batch: int | None = None, max_wait_s: float = 0.005,
                 max_queued: int = 64):
        self.predictor = predictor
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
        """Pairs waiting for the model now."""
        return self._queue.qsize()

    def submit(self, image: np.ndarray, prompt: str, *, block: bool = True) -> Future:
        """Queue one pair; the future gives its :class:`~drywallqa.inference.SegmentationResult`.

        Args:
            image: RGB ``uint8`` ``(H, W, 3)``.
            prompt: The prompt.
            block: Wait for room when the queue is full (a reader); else raise :class:`QueueFull`.

        Raises:
            QueueFull: Without ``block``, when ``max_queued`` pairs are waiting.
            RuntimeError: After :meth:`close`.
        """
        if self._closed:
            raise RuntimeError("the micro-batcher is closed")
        pair = _Pair(image, prompt)
        try:
            self._queue.put(pair, block=block)
        except queue.Full:
            raise QueueFull(self.retry_after()) from None
        return pair.future

    def predict(self, images: Sequence[np.ndarray], prompts: Sequence[str]) -> list[SegmentationResult]:
        """Submit pairs and wait for their results (a drop-in for ``predict_batch`` from any thread)."""
        futures = [self.submit(image, prompt) for image, prompt in zip(images, prompts)]
        return [future.result() for future in futures]

    def retry_after(self) -> int:
        """Seconds until the queued pairs have likely gone through the model."""
        per_pair = self.stats.model_seconds / self.stats.pairs if self.stats.pairs else 1.0
        return max(1, round(per_pair * (self.queued + self.max_batch)))

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
            self._predict(batch)
            if stop:
                return

    def _gather(self, first: _Pair) -> tuple[list[_Pair], bool]:
        """``first`` and whatever else comes within ``max_wait_s``, up to ``max_batch`` pairs."""
        batch = [first]
        deadline = time.monotonic() + self.max_wait_s
        while len(batch) < self.max_batch:
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
            batch.append(item)
        return batch, False

    def _predict(self, batch: list[_Pair]) -> None:
        live = [pair for pair in batch if pair.future.set_running_or_notify_cancel()]
        if not live:
            return
        started = time.perf_counter()
        try:
            results = self.predictor.predict_batch([p.image for p in live], [p.prompt for p in live])
        except Exception:  # noqa: BLE001 - one bad pair (say a prompt a runtime refuses) must not fail the others
            results = None
        self.stats.calls += 1
        self.stats.pairs += len(live)
        self.stats.model_seconds += time.perf_counter() - started
        if results is not None:
            for pair, result in zip(live, results):
                pair.future.set_result(result)
            return
        for pair in live:  # again one by one: each caller gets its own pair's error
            try:
                pair.future.set_result(self.predictor.predict_batch([pair.image], [pair.prompt])[0])
            except Exception as exc:  # noqa: BLE001 - handed to the caller that asked
                pair.future.set_exception(exc)
