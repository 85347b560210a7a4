"""Timing and memory: repeated calls timed in wall and CPU time, peak memory growth,
:func:`measure`, which turns one built runtime into a :class:`RuntimeResult`, and
:class:`ThreadCPU`, the CPU time of a block split by thread."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from drywallqa.bench.settings import MeasurePlan


@dataclass
class Timing:
    """Wall and process-CPU seconds of repeated calls."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(self.wall, q) * 1000.0)

    def cpu_p50_ms(self) -> float:
        return float(np.median(self.cpu) * 1000.0)


def time_calls(fn: Callable[[], Any], warmup: int, iterations: int) -> Timing:
    """Call ``fn`` ``warmup`` times untimed, then ``iterations`` times timed."""
    for _ in range(warmup):
        fn()
    timing = Timing()
    for _ in range(iterations):
        cpu0, wall0 = time.process_time(), time.perf_counter()
        fn()
        timing.wall.append(time.perf_counter() - wall0)
        timing.cpu.append(time.process_time() - cpu0)
    return timing


def _proc_status_kib(field_name: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _release_freed_memory() -> None:
    gc.collect()
    # glibc keeps freed arenas mapped; hand them back so the next runtime's growth is visible.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class PeakMemory:
    """Peak memory growth inside a ``with`` block, in MiB.

    CPU: peak RSS (``VmHWM``, reset through ``/proc/self/clear_refs``) minus RSS at entry. Without
    that interface (non-Linux) the lifetime peak from ``resource`` is used, which only shows growth
    beyond earlier peaks (:attr:`method` says which). CUDA: ``torch.cuda.max_memory_allocated``
    minus the allocation at entry (tensors through PyTorch only; ONNX Runtime's and TensorRT's own
    allocations are not seen).
    """

    def __init__(self, device: str = "cpu"):
        self.device = device
        self.peak_mib: float | None = None
        self.method = ""

    def __enter__(self) -> PeakMemory:
        _release_freed_memory()
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._start = torch.cuda.memory_allocated()
            self.method = "torch.cuda.max_memory_allocated delta"
            return self
        try:
            with open("/proc/self/clear_refs", "w", encoding="ascii") as clear_refs:
                clear_refs.write("5")  # 5 = reset the peak RSS (VmHWM) to the current RSS
            self._start = _proc_status_kib("VmRSS")
            self.method = "peak RSS (VmHWM) delta"
        except OSError:
            import resource

            self._start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            self.method = "lifetime peak RSS delta (approximate)"
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()
            self.peak_mib = (torch.cuda.max_memory_allocated() - self._start) / 2**20
        elif self.method.startswith("peak RSS"):
            peak = _proc_status_kib("VmHWM")
            self.peak_mib = None if peak is None or self._start is None else (peak - self._start) / 1024
        else:
            import resource

            self.peak_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - self._start) / 1024



@dataclass
class RuntimeResult:
    """Measurements of one model on one runtime.

    Attributes:
        model: ``"promptunet"``, ``"clipseg"`` or ``"sam"``.
        runtime: Runtime label, e.g. ``"onnxruntime-fp32"``.
        description: What exactly ran (architecture, input).
        input_size: Square input side in pixels.
        parameters: Number of parameters.
        latency_p50_ms: Batch-1 wall time, median.
        latency_p95_ms: Batch-1 wall time, 95th percentile.
        cpu_ms_p50: Batch-1 process CPU time (all threads), median.
        iterations: Timed batch-1 calls.
        throughput: Images per second by batch size.
        best_batch: Batch size with the highest throughput.
        best_throughput: Images per second at :attr:`best_batch`.
        peak_memory_mib: Peak memory growth (see :class:`PeakMemory`).
        memory_method: How memory was measured.
        parity: Mask agreement with PyTorch fp32 (PromptUNet only).
        two_prompts: One photo with one prompt against two (PromptUNet only, see
            :func:`~drywallqa.bench.prompts.measure_two_prompts`).
    """

    model: str
    runtime: str
    description: str
    input_size: int
    parameters: int
    latency_p50_ms: float
    latency_p95_ms: float
    cpu_ms_p50: float
    iterations: int
    throughput: dict[str, float]
    best_batch: int
    best_throughput: float
    peak_memory_mib: float | None
    memory_method: str
    parity: dict | None = None
    two_prompts: dict | None = None


def measure(
    model_label: str,
    runtime: str,
    description: str,
    build: Callable[[], tuple[Callable[[int], Any], int]],
    plan: MeasurePlan,
    input_size: int,
    device: str,
) -> RuntimeResult:
    """Build a runtime and time it: batch-1 latency, throughput per batch size, peak memory.

    Args:
        model_label: Model name for the report.
        runtime: Runtime label for the report.
        description: What ran.
        build: Returns ``(run, parameters)`` where ``run(batch_size)`` does one call on ready inputs.
        plan: Calls to time.
        input_size: Input side, for the report.
        device: ``"cpu"`` or ``"cuda"`` (memory method).
    """
    with PeakMemory(device) as memory:
        run, parameters = build()
        latency = time_calls(lambda: run(1), plan.warmup, plan.iterations)
        throughput = {"1": 1.0 / float(np.mean(latency.wall))}
        for batch in plan.batch_sizes:
            if batch == 1:
                continue
            calls = max(2, math.ceil(plan.throughput_images / batch))
            timing = time_calls(functools.partial(run, batch), 1, calls)
            throughput[str(batch)] = batch * calls / float(np.sum(timing.wall))
    best_batch = max(throughput, key=lambda batch: throughput[batch])
    return RuntimeResult(
        model=model_label,
        runtime=runtime,
        description=description,
        input_size=input_size,
        parameters=parameters,
        latency_p50_ms=latency.percentile_ms(50),
        latency_p95_ms=latency.percentile_ms(95),
        cpu_ms_p50=latency.cpu_p50_ms(),
        iterations=plan.iterations,
        throughput=throughput,
        best_batch=int(best_batch),
        best_throughput=throughput[best_batch],
        peak_memory_mib=memory.peak_mib,
        memory_method=memory.method,
    )


class ThreadCPU:
    """CPU seconds of each thread of this process while a block runs, summed by role (Linux only).

    A sampler thread reads every thread's CPU time from ``/proc/self/task`` every ``interval_s``
    and keeps each one's last reading, so threads that start and end inside the block are counted
    (up to one interval of their CPU time may be missed). Python threads are classed by the first
    ``(name prefix, role)`` of ``roles`` their name starts with ("other Python threads" when none
    does), native threads without a Python ``Thread`` (a runtime's thread pools) as
    ``native_role``; the sampler leaves itself out.

    Example:
        >>> with ThreadCPU([("drywallqa-model", "model")]) as threads:   # doctest: +SKIP
        ...     predict_images(...)
        >>> threads.seconds_by_role()                                    # doctest: +SKIP
        {'model': 7.1, 'native threads': 3.3, 'other Python threads': 4.0}
    """

    def __init__(self, roles: Sequence[tuple[str, str]] = (), *, native_role: str = "native threads",
                 interval_s: float = 0.02):
        self.roles = tuple(roles)
        self.native_role = native_role
        self.interval_s = interval_s
        self.available = Path("/proc/self/task").is_dir()
        # Keyed by (thread id, start time): the kernel reuses the ids of ended threads.
        self._start: dict[tuple[int, int], float] = {}
        self._last: dict[tuple[int, int], float] = {}
        self._role: dict[tuple[int, int], str] = {}
        self._stop = threading.Event()  # set by __exit__
        self._sampler: threading.Thread | None = None

    @staticmethod
    def _cpu_by_thread() -> dict[tuple[int, int], float]:
        ticks = os.sysconf("SC_CLK_TCK")
        found = {}
        for tid in os.listdir("/proc/self/task"):
            try:
                fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # the thread ended between the listing and the read
                continue
            # Fields 14, 15 (utime, stime) and 22 (starttime) of proc(5), counted after the name.
            found[(int(tid), int(fields[19]))] = (int(fields[11]) + int(fields[12])) / ticks
        return found

    def _sample(self) -> None:
        readings = self._cpu_by_thread()
        # After the readings: a Python thread shows in /proc a moment before threading knows it.
        python_threads = {t.native_id: t for t in threading.enumerate() if t.native_id is not None}
        for key in readings:
            thread = python_threads.get(key[0])
            if thread is not None:
                self._role[key] = ("sampler" if thread is self._sampler else
                                   next((role for prefix, role in self.roles if thread.name.startswith(prefix)),
                                        "other Python threads"))
            else:  # native, or a Python thread not registered yet: the next sample names it
                self._role.setdefault(key, self.native_role)
        self._last.update(readings)

    def __enter__(self) -> ThreadCPU:
        if not self.available:
            return self
        self._start = self._cpu_by_thread()
        self._stop = threading.Event()

        def run() -> None:
            while not self._stop.wait(self.interval_s):
                self._sample()

        self._sampler = threading.Thread(target=run, name="drywallqa-bench-sampler", daemon=True)
        self._sampler.start()
        self._sample()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.available:
            self._stop.set()
            if self._sampler is not None:
                self._sampler.join()
            self._sample()

    def seconds_by_role(self) -> dict[str, float]:
        """CPU seconds spent inside the block per role (empty where ``/proc`` is missing)."""
        totals: dict[str, float] = {}
        for key, seconds in self._last.items():
            role = self._role[key]
            if role != "sampler":
                totals[role] = totals.get(role, 0.0) + seconds - self._start.get(key, 0.0)
        return totals
