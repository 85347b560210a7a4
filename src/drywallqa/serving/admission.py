"""What a request of the HTTP service goes through before and around its work.

:class:`BodyLimits` (ASGI middleware) refuses bodies over the size limit or too slow to arrive;
:class:`WorkQueue` runs at most ``slots`` requests' work in threads and answers the rest with
:class:`~drywallqa.serving.batching.QueueFull` (503 + ``Retry-After``); :class:`ModelHolder` loads
the model once, on first use; :class:`SharedBatcher` is the one
:class:`~drywallqa.serving.batching.MicroBatcher` all requests share.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi.exceptions import HTTPException

from drywallqa.inference import Predictor
from drywallqa.serving.api_schema import CLOSE_CONNECTION, error_response
from drywallqa.serving.batching import MicroBatcher, QueueFull


class ModelHolder:
    """Loads the predictor once, on first use, safely from many threads.

    Args:
        predictor: An already built predictor (then nothing is loaded).
        spec: Model spec for ``loader`` (None: the shipped model).
        loader: ``loader(spec) -> Predictor``; :func:`drywallqa.inference.load_predictor` with
            ``predictor_kwargs`` by default.
        prompt_config: The prompt classes the predictor looks its per-class thresholds up in
            (:meth:`~drywallqa.inference.Predictor.set_prompt_config`); None leaves the predictor's.
        predictor_kwargs: Passed to the default loader (``threshold``, ``device``, ...).
    """

    def __init__(self, predictor: Predictor | None = None, spec: str | None = None,
                 loader: Callable[[str | None], Predictor] | None = None, *, prompt_config=None,
                 **predictor_kwargs: Any):
        self.prompt_config = prompt_config
        if predictor is not None:
            self._use_prompt_config(predictor)
        self._predictor = predictor
        self._given = predictor is not None
        self.spec = spec
        self._loader = loader
        self._predictor_kwargs = predictor_kwargs
        self._lock = threading.Lock()
        self.load_seconds: float | None = None

    @property
    def loaded(self) -> bool:
        """Whether the predictor is in memory."""
        return self._predictor is not None

    def get(self) -> Predictor:
        """The predictor, loading it on the first call (other callers wait for that load).

        Raises:
            DrywallQAError: If loading fails (the next call tries again).
        """
        if self._predictor is None:
            with self._lock:
                if self._predictor is None:  # another thread may have loaded it while we waited
                    started = time.perf_counter()
                    if self._loader is not None:
                        predictor = self._loader(self.spec)
                    else:
                        from drywallqa.inference import load_predictor

                        predictor = load_predictor(self.spec, **self._predictor_kwargs)
                    self.load_seconds = time.perf_counter() - started
                    self._use_prompt_config(predictor)
                    self._predictor = predictor
        return self._predictor

    def _use_prompt_config(self, predictor: Predictor) -> None:
        if self.prompt_config is not None and isinstance(predictor, Predictor):
            predictor.set_prompt_config(self.prompt_config)

    def describe(self, model_id: str) -> dict:
        """JSON description for ``GET /v1/models`` (does not load the model)."""
        spec = self.spec or ("predictor given to create_app" if self._given else "shipped default")
        info: dict[str, Any] = {"id": model_id, "spec": spec, "loaded": self.loaded}
        if self._predictor is not None:
            predictor = self._predictor
            info.update(architecture=getattr(predictor, "name", type(predictor).__name__),
                        threshold=float(getattr(predictor, "threshold", 0.5)),
                        thresholds=dict(getattr(predictor, "thresholds", {})),
                        image_size=getattr(predictor, "image_size", None))
        return info


class BodyLimits:
    """ASGI middleware: 413 for request bodies over ``limit`` bytes, before they are read whole, and
    408 for a body that has not fully arrived ``timeout_s`` after the request started (a client
    trickling its upload holds a connection and a parser; the server's header deadline covers
    what comes before).

    A declared ``Content-Length`` over the limit is refused at once; a body without one (chunked)
    is counted as it arrives. ``path_limits`` gives some paths limits of their own (``/v1/export``
    takes a whole batch's masks and overlays): ``{path: (bytes, megabytes for messages)}``.
    """

    def __init__(self, app, limit: int, limit_mb: float, timeout_s: float,
                 path_limits: dict[str, tuple[int, float]] | None = None):
        self.app = app
        self.limits = (limit, limit_mb)
        self.path_limits = path_limits or {}
        self.timeout_s = timeout_s

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit, limit_mb = self.path_limits.get(scope.get("path", ""), self.limits)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await error_response(413, self._message(int(declared), limit_mb), headers=CLOSE_CONNECTION)(scope, receive, send)
        received = 0
        deadline = time.monotonic() + self.timeout_s
        body_done = False

        async def counting_receive():
            nonlocal received, body_done
            if body_done:  # after the body: only http.disconnect comes, whenever it comes
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), timeout=max(deadline - time.monotonic(), 0.001))
            except asyncio.TimeoutError:
                raise HTTPException(408, f"the request body did not arrive within {self.timeout_s:g} s", headers=CLOSE_CONNECTION) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, self._message(received, limit_mb), headers=CLOSE_CONNECTION)
                body_done = not message.get("more_body", False)
            return message

        return await self.app(scope, counting_receive, send)

    @staticmethod
    def _message(size: int, limit_mb: float) -> str:
        return f"request body is {size / 1e6:.2g} MB; the limit is {limit_mb:g} MB (send a smaller or more compressed image)"


class WorkQueue:
    """At most ``slots`` functions running in worker threads at once (per event loop), and at most
    ``max_waiting`` callers waiting for a slot: one more gets
    :class:`~drywallqa.serving.batching.QueueFull` at once.

    A caller waiting for a slot holds no thread and no decoded image, so a request that times out
    while queued costs nothing. A function already running cannot be stopped: on time-out its
    caller gets the error at once, the thread finishes in the background and frees its slot then.
    :meth:`close` lets the threads go (the app's shutdown calls it); a later :meth:`run` starts new
    ones. (One semaphore per loop because an asyncio semaphore belongs to the loop it was first used in,
    and test clients run each client in a loop of its own.)
    """

    def __init__(self, slots: int, max_waiting: int):
        self.slots = slots
        self.max_waiting = max_waiting
        self.waiting = 0
        self.executor: ThreadPoolExecutor | None = None  # made on first use, let go by close()
        self.mean_seconds = 1.0  # moving average of a function's run time, for Retry-After
        self._semaphores: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}
        self._lock = threading.Lock()

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        with self._lock:
            for stale in [other for other in self._semaphores if other.is_closed()]:
                del self._semaphores[stale]
            return self._semaphores.setdefault(loop, asyncio.Semaphore(self.slots))

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self.executor is None:
                # Threads of their own: asyncio's default pool has min(32, cores + 4) threads, fewer
                # than the requests that may be in flight, each waiting for its batched model call.
                self.executor = ThreadPoolExecutor(self.slots, thread_name_prefix="drywallqa-request")
            return self.executor

    def close(self) -> None:
        """Let the worker threads go once their functions return (they end by their deadlines)."""
        with self._lock:
            executor, self.executor = self.executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def retry_after(self) -> int:
        """Seconds until the queue has likely drained by one caller."""
        return max(1, math.ceil(self.mean_seconds * (self.waiting + self.slots) / self.slots))

    async def run(self, function: Callable[[], Any]) -> Any:
        semaphore = self._semaphore()
        with self._lock:
            if semaphore.locked() and self.waiting >= self.max_waiting:
                raise QueueFull(self.retry_after())
            self.waiting += 1
        try:
            await semaphore.acquire()
        finally:
            with self._lock:
                self.waiting -= 1
        started = time.perf_counter()
        work = asyncio.get_running_loop().run_in_executor(self._executor(), function)

        def finished(future: asyncio.Future) -> None:
            semaphore.release()
            self.mean_seconds = 0.8 * self.mean_seconds + 0.2 * (time.perf_counter() - started)
            if not future.cancelled():
                future.exception()  # mark retrieved: a timed-out caller no longer awaits it

        work.add_done_callback(finished)
        return await asyncio.shield(work)


class SharedBatcher:
    """The :class:`~drywallqa.serving.batching.MicroBatcher` of the served predictor, made once the
    model is loaded (requests are never refused by it: the work queue bounds what is in flight)."""

    def __init__(self, holder: ModelHolder, max_batch: int | None, max_wait_s: float, max_pairs: int):
        self.holder, self.max_batch, self.max_wait_s, self.max_pairs = holder, max_batch, max_wait_s, max_pairs
        self.batcher: MicroBatcher | None = None
        self._lock = threading.Lock()

    def get(self) -> MicroBatcher:
        if self.batcher is None:
            predictor = self.holder.get()
            with self._lock:
                if self.batcher is None:
                    self.batcher = MicroBatcher(predictor, max_batch=self.max_batch, max_wait_s=self.max_wait_s,
                                                max_queued=self.max_pairs)
        return self.batcher

    def close(self) -> None:
        """Finish the queued pairs and stop the model thread (the app's shutdown); a later
        :meth:`get` starts a new one."""
        with self._lock:
            batcher, self.batcher = self.batcher, None
        if batcher is not None:
            batcher.close()

    def describe(self) -> dict:
        """Batch settings and what the model thread has done, for ``GET /v1/models``."""
        batcher = self.batcher
        if batcher is None:
            return {"max_batch": self.max_batch, "max_wait_ms": round(1000 * self.max_wait_s, 3), "calls": 0}
        stats = batcher.stats
        return {"max_batch": batcher.max_batch, "max_wait_ms": round(1000 * self.max_wait_s, 3), "calls": stats.calls,
                "pairs": stats.pairs, "mean_batch": round(stats.mean_batch, 2)}
