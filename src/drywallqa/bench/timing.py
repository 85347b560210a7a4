"""Timing and memory: repeated calls timed in wall and CPU time, peak memory growth, and
:func:`measure`, which turns one built runtime into a :class:`RuntimeResult`."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

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

    def __enter__(self) -> Self:
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
            timing = time_calls(lambda b=batch: run(b), 1, calls)
            throughput[str(batch)] = batch * calls / float(np.sum(timing.wall))
    best_batch = max(throughput, key=throughput.get)
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
