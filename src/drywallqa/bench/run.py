"""``drywallqa bench``: every runtime of PromptUNet beside CLIPSeg and SAM, in one run on one machine.

What is measured (:func:`run_benchmark`):

- **Model latency**: batch-1 wall time per call, p50 and p95 over ``iterations`` calls after
  ``warmup`` calls, plus the process CPU time per call (all threads), which a busy machine
  inflates far less than wall time. For PromptUNet a call is
  :meth:`~drywallqa.processing.BatchedPredictor.forward_batch`: uint8 batch in, logits out,
  so the uint8->float step and the copy of the outputs are included. CLIPSeg and SAM get float
  tensors ready at their native size; CLIPSeg gets its prompt as a precomputed conditional
  embedding and SAM one box, so neither pays for text or prompt encoding either.
- **Throughput**: images per second at each batch size in the plan; the best is reported.
- **Peak memory**: growth of the process's peak RSS while the runtime was built and measured
  (``VmHWM`` reset through ``/proc/self/clear_refs``), or ``torch.cuda.max_memory_allocated`` on GPU.
- **Mask agreement** of each PromptUNet runtime with PyTorch fp32 on the same synthetic photos
  (:func:`~drywallqa.export.parity.compare_outputs`).
- **Pipeline**: JPEG bytes -> decode -> resize -> model -> upsample -> threshold -> PNG bytes for a
  640x640 photo, the calls :meth:`~drywallqa.inference.Predictor.predict` makes, timed per stage.
- **Where the time goes**: ONNX Runtime's profiler, summed per operator type.
- **End to end** (:func:`measure_predict_e2e`, :func:`measure_serve_e2e`): ``drywallqa predict``
  over a folder of photos against the model-only throughput of the same predictor at the same
  batch size (the shipped model on its default runtime), and ``drywallqa serve`` under the locust
  load of ``scripts/loadtest.py`` against the server it replaces (a git revision) or its previous
  default configuration, in the same run.

All models have random weights (nothing is downloaded); speed does not depend on the weights.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as _dt
import gc
import json
import math
import os
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Self

import numpy as np

from drywallqa.errors import ConfigError

BENCH_FORMAT_VERSION = 1
PROMPTUNET_LABEL = "promptunet"
CPU_RUNTIMES = (
    "torch-fp32",
    "torch-fp32-channels-last",
    "torch-bf16-channels-last",
    "onnxruntime-fp32",
    "onnxruntime-fp32-1-thread",
    "onnxruntime-int8",
    "onnxruntime-int8-1-thread",
    "tensorrt-fp16",
)
GPU_RUNTIMES = (
    "torch-fp32",
    "torch-fp16-channels-last",
    "torch-fp16-cuda-graphs",
    "torch-compile-fp16",
    "onnxruntime-fp32",
    "tensorrt-fp16",
)
# Everything bench knows; "torch-compile-fp32" is opt-in on CPU (minutes of compilation per shape).
ALL_RUNTIMES = tuple(dict.fromkeys(CPU_RUNTIMES + GPU_RUNTIMES + ("torch-compile-fp32",)))
REFERENCE_RUNTIME = "torch-fp32"
# The latency goal is ONNX Runtime fp32 at batch 1; the thread count is a deployment setting, so the
# goals use whichever of its thread variants ran fastest.
# The CPU goals are checked for each ONNX Runtime precision; int8 counts only beside its accuracy
# cost, which `drywallqa evaluate` measures on a trained model (random weights cannot show it).
GOAL_RUNTIMES = ("onnxruntime-fp32", "onnxruntime-int8")
CPU_GOALS = {"latency_p50_ms": 40.0, "throughput_vs_clipseg": 4.0, "throughput_vs_sam": 200.0}
# The GPU goals of the deployment issue (H200, 448 px): the best PromptUNet runtime against the
# bf16 baselines, and batch-1 latency through CUDA graphs.
GPU_GOALS = {"throughput": 10_000.0, "throughput_vs_clipseg": 4.0, "throughput_vs_sam": 100.0, "latency_p50_ms": 2.0}
GPU_LATENCY_RUNTIME = "torch-fp16-cuda-graphs"


@dataclass(frozen=True)
class MeasurePlan:
    """How many calls to time for one model.

    Attributes:
        warmup: Untimed calls first (lazy initialisation, allocator, kernel choice).
        iterations: Timed batch-1 calls for the latency percentiles.
        batch_sizes: Batch sizes tried for throughput (batch 1 reuses the latency calls).
        throughput_images: Images per batch size for throughput (at least two calls each).
    """

    warmup: int
    iterations: int
    batch_sizes: tuple[int, ...]
    throughput_images: int

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.iterations < 1 or not self.batch_sizes or min(self.batch_sizes) < 1:
            raise ConfigError(f"invalid measure plan {self}: needs warmup >= 0, iterations >= 1, batch sizes >= 1")


@dataclass(frozen=True)
class BenchSettings:
    """What :func:`run_benchmark` measures and how long it spends.

    Attributes:
        quick: Tiny models and sizes, a few calls (for tests; numbers mean nothing).
        device: ``"cpu"`` or ``"cuda"``.
        threads: Torch threads and ONNX Runtime intra-op threads.
        image_size: PromptUNet input side.
        encoder: PromptUNet encoder (``"lite0"``...).
        runtimes: PromptUNet runtimes to try (unavailable ones are skipped with the reason). A
            ``-1-thread`` suffix runs ONNX Runtime with one intra-op thread instead of ``threads``:
            on a machine shared with other work, a second thread mostly spins waiting for the first.
        promptunet: Measure plan of PromptUNet.
        baselines: Also measure CLIPSeg and SAM.
        clipseg_size: CLIPSeg input side (native: 352).
        clipseg: Measure plan of CLIPSeg.
        sam_size: SAM input side (native: 1024).
        sam: Measure plan of SAM.
        pipeline_image_size: Side of the JPEG photo of the end-to-end pipeline.
        pipeline_iterations: Timed pipeline runs per runtime.
        profile_iterations: ONNX Runtime profiled calls (0: no profile).
        end_to_end: Measure ``predict`` and ``serve`` end to end (:func:`measure_predict_e2e`,
            :func:`measure_serve_e2e`).
        e2e_photos: Folder of photos for ``predict`` (its first ``e2e_images`` image files); empty:
            synthetic ``pipeline_image_size`` photos.
        e2e_images: Photos ``predict`` goes through.
        serve_seconds: Seconds of load per server (0: ``serve`` is not measured).
        serve_baseline_rev: Git revision of the server to compare with (e.g. the commit before a
            change); empty: the current code in its previous default configuration (PyTorch, one
            request at a time, no batching).
        seed: Seed of the random weights and inputs.
        note: Free text about the conditions (e.g. "beside a training run"), kept in the report.
        max_seconds: Time budget of the run (0: none). Measurements that would start after it
            is spent are skipped with that reason; one that started runs to its end.
    """

    quick: bool = False
    device: str = "cpu"
    threads: int = 0
    image_size: int = 448
    encoder: str = "lite0"
    runtimes: tuple[str, ...] = ()
    promptunet: MeasurePlan = MeasurePlan(warmup=3, iterations=20, batch_sizes=(1, 2, 4, 8), throughput_images=16)
    baselines: bool = True
    clipseg_size: int = 352
    clipseg: MeasurePlan = MeasurePlan(warmup=1, iterations=5, batch_sizes=(1, 2, 4), throughput_images=4)
    sam_size: int = 1024
    # SAM ViT-B takes seconds per image on a CPU: one warm-up and two timed calls bound the run.
    sam: MeasurePlan = MeasurePlan(warmup=1, iterations=2, batch_sizes=(1,), throughput_images=2)
    pipeline_image_size: int = 640
    pipeline_iterations: int = 10
    profile_iterations: int = 10
    end_to_end: bool = True
    e2e_photos: str = ""
    e2e_images: int = 200
    serve_seconds: float = 60.0
    serve_baseline_rev: str = ""
    seed: int = 0
    note: str = ""
    max_seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.max_seconds < 0:
            raise ConfigError(f"max_seconds must be >= 0 (0: no budget), got {self.max_seconds}")
        if self.device not in ("cpu", "cuda"):
            raise ConfigError(f"device must be 'cpu' or 'cuda', got {self.device!r}")
        unknown = sorted(set(self.runtimes) - set(ALL_RUNTIMES))
        if unknown:
            raise ConfigError(f"unknown runtime(s) {', '.join(unknown)}; expected some of: {', '.join(ALL_RUNTIMES)}")
        if self.e2e_images < 1 or self.serve_seconds < 0:
            raise ConfigError("e2e_images must be >= 1 and serve_seconds >= 0")
        if self.image_size % 32 or self.clipseg_size % 16 or self.sam_size % 16:
            raise ConfigError("image_size must be a multiple of 32, clipseg_size and sam_size multiples of 16")

    @classmethod
    def create(cls, quick: bool = False, device: str | None = None, **overrides: Any) -> BenchSettings:
        """Settings for a full or a ``quick`` run on ``device`` (CUDA when available by default).

        Args:
            quick: Tiny models (64 px, two-layer CLIPSeg and SAM), one warm-up and three timed calls.
            device: ``"cpu"`` or ``"cuda"``.
            **overrides: Any field.
        """
        import torch

        from drywallqa.export.onnx_runtime import available_cores

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        values: dict[str, Any] = {
            "device": device,
            "threads": available_cores(),
            "runtimes": GPU_RUNTIMES if device == "cuda" else CPU_RUNTIMES,
        }
        if device == "cuda":
            # A GPU reaches its throughput at batches of hundreds; batch 1 is the latency case.
            values["promptunet"] = MeasurePlan(warmup=5, iterations=50, batch_sizes=(1, 64, 256), throughput_images=2048)
            values["clipseg"] = MeasurePlan(warmup=3, iterations=20, batch_sizes=(1, 16, 64), throughput_images=256)
            values["sam"] = MeasurePlan(warmup=2, iterations=10, batch_sizes=(1, 4, 16), throughput_images=32)
        if quick:
            tiny = MeasurePlan(warmup=1, iterations=3, batch_sizes=(1, 2), throughput_images=4)
            values.update(
                quick=True, image_size=64, promptunet=tiny, clipseg_size=64, clipseg=tiny, sam_size=64,
                sam=replace(tiny, batch_sizes=(1,)), pipeline_image_size=96, pipeline_iterations=3,
                profile_iterations=2, e2e_images=8, serve_seconds=0.0,
            )
        values.update(overrides)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


# -- timing and memory ----------------------------------------------------------------------------
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


# -- one measured model+runtime -------------------------------------------------------------------
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


# -- PromptUNet runtimes --------------------------------------------------------------------------
@dataclass
class _PromptUNetContext:
    """What every PromptUNet runtime of one run shares: the model, its exports and the inputs."""

    model: Any
    settings: BenchSettings
    workdir: Path
    images: list[np.ndarray]
    prompts: list[str]
    onnx_path: Path | None = None
    int8_path: Path | None = None
    export_error: str = ""

    def batch(self, size: int) -> tuple[np.ndarray, list[str]]:
        """``size`` model-size uint8 images (cycling the samples) and their prompts."""
        from drywallqa.processing import stack_model_inputs

        picks = [i % len(self.images) for i in range(size)]
        stacked = stack_model_inputs([self.images[i] for i in picks], self.settings.image_size)
        return stacked, [self.prompts[i] for i in picks]


def _export_for_runtimes(context: _PromptUNetContext, runtimes: Sequence[str]) -> None:
    """Export the model once, before any timing, when an ONNX Runtime or TensorRT runtime will run."""
    from drywallqa.export.onnx import export_onnx

    if not any(r.startswith(("onnxruntime", "tensorrt")) for r in runtimes):
        return
    try:
        result = export_onnx(context.model, context.workdir / "promptunet.onnx", check=False,
                             int8="onnxruntime-int8" in runtimes, check_images=len(context.images))
    except Exception as exc:  # noqa: BLE001 - recorded as the reason those runtimes are skipped
        context.export_error = f"ONNX export failed: {exc}"
        return
    context.onnx_path, context.int8_path = result.onnx_path, result.int8_path


def _exported_path(context: _PromptUNetContext, int8: bool) -> Path:
    path = context.int8_path if int8 else context.onnx_path
    if path is None:
        raise RuntimeError(context.export_error or "the model was not exported")
    return path


def _runtime_unavailable(runtime: str, settings: BenchSettings) -> str:
    """Why ``runtime`` cannot run here, or ``""``."""
    import torch

    from drywallqa.export.onnx_runtime import default_providers
    from drywallqa.export.trt_runtime import tensorrt_available

    cuda = settings.device == "cuda"
    if cuda and not torch.cuda.is_available():
        return "no CUDA device"
    if runtime.startswith("tensorrt") and not tensorrt_available():
        return "TensorRT not installed or no GPU (see `drywallqa export --format tensorrt` for the trtexec command)"
    if ("cuda-graphs" in runtime or "fp16" in runtime and runtime.startswith("torch")) and not cuda:
        return "GPU only"
    if runtime.endswith("-1-thread") and settings.threads == 1:
        return "the same as the runtime without -1-thread (threads is 1)"
    if runtime.endswith("-1-thread") and cuda:
        return "CPU thread variant"
    if runtime.startswith("onnxruntime-int8") and cuda:
        return "int8 QDQ graphs target the CPU execution provider"
    if runtime.startswith("onnxruntime") and cuda and "CUDAExecutionProvider" not in default_providers():
        return "this onnxruntime build has no CUDAExecutionProvider (pip install onnxruntime-gpu)"
    return ""


def _build_promptunet_predictor(runtime: str, context: _PromptUNetContext):
    """The :class:`~drywallqa.processing.BatchedPredictor` for a runtime label."""
    from drywallqa.export.onnx_runtime import OnnxPredictor
    from drywallqa.export.torch_runtime import TorchRuntimePredictor
    from drywallqa.export.trt_runtime import TensorRTPredictor

    settings = context.settings
    common = {"image_size": settings.image_size, "batch_size": max(settings.promptunet.batch_sizes)}
    if runtime.startswith("torch"):
        precision = "fp16" if "fp16" in runtime else "bf16" if "bf16" in runtime else "fp32"
        return TorchRuntimePredictor(
            context.model, device=settings.device, precision=precision,
            channels_last="channels-last" in runtime or "compile" in runtime or "cuda-graphs" in runtime,
            # Plain torch.compile: max-autotune spends minutes per input shape, more than a bench run has.
            compile="compile" in runtime,
            cuda_graphs="cuda-graphs" in runtime, **common,
        )
    if runtime.startswith("onnxruntime"):
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if settings.device == "cuda" else ["CPUExecutionProvider"]
        path = _exported_path(context, int8="int8" in runtime)
        threads = 1 if runtime.endswith("-1-thread") else settings.threads
        return OnnxPredictor(path, providers=providers, intra_op_threads=threads, **common)
    if runtime.startswith("tensorrt"):
        return TensorRTPredictor(_exported_path(context, int8=False), **common)
    raise ConfigError(f"unknown runtime {runtime!r}")


# -- baselines ------------------------------------------------------------------------------------
def _clipseg_model(quick: bool):
    from transformers import CLIPSegConfig, CLIPSegForImageSegmentation

    if quick:
        config = CLIPSegConfig(
            text_config={"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2, "num_hidden_layers": 2},
            vision_config={"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2,
                           "num_hidden_layers": 2, "image_size": 64, "patch_size": 16},
            projection_dim=32, extract_layers=[1], reduce_dim=16, decoder_num_attention_heads=2,
            decoder_intermediate_size=32,
        )
    else:
        config = CLIPSegConfig()  # rd64: ViT-B/16 CLIP, reduce_dim 64
    return CLIPSegForImageSegmentation(config).eval()


def _sam_model(quick: bool):
    from transformers import SamConfig, SamModel

    if quick:
        config = SamConfig(
            vision_config={"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "mlp_dim": 64,
                           "image_size": 64, "patch_size": 16, "output_channels": 32, "global_attn_indexes": [1],
                           "window_size": 2, "num_pos_feats": 16},
            prompt_encoder_config={"hidden_size": 32, "image_size": 64, "patch_size": 16, "mask_input_channels": 4},
            mask_decoder_config={"hidden_size": 32, "mlp_dim": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                                 "iou_head_hidden_dim": 32},
        )
    else:
        config = SamConfig()  # ViT-B image encoder, 1024 px
    return SamModel(config).eval()


def _baseline_builder(name: str, settings: BenchSettings):
    import torch

    device = torch.device(settings.device)

    def build():
        torch.manual_seed(settings.seed)
        model = (_clipseg_model if name == "clipseg" else _sam_model)(settings.quick).to(device)
        parameters = sum(p.numel() for p in model.parameters())
        size = settings.clipseg_size if name == "clipseg" else settings.sam_size
        inputs: dict[int, dict] = {}

        def run(batch: int):
            if batch not in inputs:
                generator = torch.Generator().manual_seed(settings.seed)
                pixels = torch.rand(batch, 3, size, size, generator=generator).to(device)
                if name == "clipseg":
                    embedding = torch.randn(batch, model.config.projection_dim, generator=generator).to(device)
                    inputs[batch] = {"pixel_values": pixels, "conditional_embeddings": embedding}
                else:
                    box = torch.tensor([[[size * 0.2, size * 0.2, size * 0.7, size * 0.6]]]).repeat(batch, 1, 1)
                    inputs[batch] = {"pixel_values": pixels, "input_boxes": box.to(device), "multimask_output": False}
            # On a GPU the baselines run in bf16 autocast, as they would be deployed there.
            with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
                output = model(**inputs[batch])
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            return output

        return run, parameters

    return build


# -- end-to-end pipeline --------------------------------------------------------------------------
PIPELINE_STAGES = ("decode", "resize", "model", "upsample_threshold", "png_encode")


class _StageClock:
    """Wall times of the :data:`PIPELINE_STAGES` over repeated runs, the first ``warmup`` left out."""

    def __init__(self, warmup: int, iterations: int):
        self.warmup, self.iterations = warmup, iterations
        self.stages: dict[str, list[float]] = {stage: [] for stage in PIPELINE_STAGES}
        self.totals: list[float] = []

    def record(self, step: int, marks: list[float]) -> None:
        """One run's ``perf_counter`` marks: before the first stage and after each."""
        if step < self.warmup:
            return
        for stage, start, end in zip(PIPELINE_STAGES, marks, marks[1:]):
            self.stages[stage].append(end - start)
        self.totals.append(marks[-1] - marks[0])

    def summary(self, png: bytes) -> dict[str, Any]:
        return {
            "p50_ms": float(np.median(self.totals) * 1000),
            "p95_ms": float(np.percentile(self.totals, 95) * 1000),
            "stages_p50_ms": {stage: float(np.median(values) * 1000) for stage, values in self.stages.items()},
            "iterations": self.iterations,
            "mask_png_bytes": len(png),
        }


def measure_pipeline(predictor, jpeg: bytes, prompt: str, iterations: int, warmup: int = 2) -> dict[str, Any]:
    """Time JPEG bytes -> mask PNG bytes through a predictor's own stages.

    The stages are the calls :meth:`BatchedPredictor.predict_batch` makes for one image, plus
    decoding (:func:`drywallqa.files.decode_image_bytes`) and PNG encoding
    (:func:`~drywallqa.processing.encode_mask_png`).

    Returns:
        ``{"p50_ms", "p95_ms", "stages_p50_ms": {stage: ms}, "iterations", "mask_png_bytes"}``.
    """
    from drywallqa.files import decode_image_bytes
    from drywallqa.inference import logits_to_result
    from drywallqa.processing import encode_mask_png, stack_model_inputs

    clock = _StageClock(warmup, iterations)
    png = b""
    for step in range(warmup + iterations):
        marks = [time.perf_counter()]
        image = decode_image_bytes(jpeg)
        marks.append(time.perf_counter())
        batch = stack_model_inputs([image], predictor.image_size)
        marks.append(time.perf_counter())
        mask_logits, confidence_logits = predictor.forward_batch(batch, [prompt])
        marks.append(time.perf_counter())
        result = logits_to_result(mask_logits[0], confidence_logits[0], prompt, image.shape, predictor.threshold)
        marks.append(time.perf_counter())
        png = encode_mask_png(result.mask)
        marks.append(time.perf_counter())
        clock.record(step, marks)
    return clock.summary(png)


GPU_DECODE_PIPELINE = "torch-fp16-gpu-jpeg-decode"


def measure_gpu_pipeline(model, jpeg: bytes, prompt: str, image_size: int, iterations: int, warmup: int = 3) -> dict[str, Any]:
    """Time JPEG bytes -> mask PNG bytes with every pixel step on the GPU: nvJPEG decoding
    (``torchvision.io.decode_jpeg``), resizing, the fp16 model, upsampling and thresholding;
    only the finished mask comes back for PNG encoding. Same stages and result as
    :func:`measure_pipeline`.

    Raises:
        RuntimeError: If torchvision or its GPU decoder is not available.
    """
    import torch
    import torch.nn.functional as F

    from drywallqa.processing import encode_mask_png

    try:
        from torchvision.io import decode_jpeg
    except ImportError as exc:
        raise RuntimeError("torchvision is not installed (its decode_jpeg does nvJPEG decoding)") from exc
    import copy

    device = torch.device("cuda")
    # A copy: the runtimes measured before may have converted the shared model in place.
    net = copy.deepcopy(model).float().to(device).eval().to(memory_format=torch.channels_last)
    embedding = net.embed_prompts([prompt])
    data = torch.frombuffer(bytearray(jpeg), dtype=torch.uint8)
    clock = _StageClock(warmup, iterations)
    png = b""
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16):
        for step in range(warmup + iterations):
            marks = [time.perf_counter()]
            image = decode_jpeg(data, device=device)  # (3, H, W) uint8 on the GPU
            torch.cuda.synchronize()
            marks.append(time.perf_counter())
            height, width = image.shape[-2:]
            batch = F.interpolate(image[None].float().div_(255.0), size=(image_size, image_size), mode="bilinear",
                                  align_corners=False).contiguous(memory_format=torch.channels_last)
            torch.cuda.synchronize()
            marks.append(time.perf_counter())
            mask_logits, _ = net(batch, embedding)
            torch.cuda.synchronize()
            marks.append(time.perf_counter())
            mask = F.interpolate(mask_logits.float(), size=(height, width), mode="bilinear", align_corners=False)[0, 0] > 0
            mask = mask.cpu().numpy()
            marks.append(time.perf_counter())
            png = encode_mask_png(mask)
            marks.append(time.perf_counter())
            clock.record(step, marks)
    return clock.summary(png)


# -- ONNX Runtime profile -------------------------------------------------------------------------
def profile_onnx(path: Path, batch: np.ndarray, embeddings: np.ndarray, iterations: int, threads: int,
                 warmup: int = 2) -> dict:
    """ONNX Runtime's per-node profile of ``iterations`` calls, summed by operator type and by module.

    Returns:
        ``{"total_ms_per_call", "calls", "by_op_type": [...], "by_module": [...]}``; each list holds
        ``{"name", "ms_per_call", "share"}`` entries, largest first. Modules are the model's
        top-level submodules (``encoder``, ``decoder``, ...), read from the node names.
    """
    from drywallqa.export.onnx_runtime import create_session
    from drywallqa.processing import nhwc_uint8_to_nchw_float

    with tempfile.TemporaryDirectory(prefix="drywallqa-profile-") as tmp:
        session = create_session(path, providers=["CPUExecutionProvider"], intra_op_threads=threads,
                                 profile_prefix=str(Path(tmp) / "ort"))
        feed = {"images": nhwc_uint8_to_nchw_float(batch), "prompt_embeddings": embeddings}
        for _ in range(warmup + iterations):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    # The profile cannot be switched on after the warm-up calls: drop their events instead.
    runs = sorted((e["ts"], e["ts"] + e["dur"]) for e in events if e.get("cat") == "Session" and e.get("name") == "model_run")
    timed_from = runs[warmup - 1][1] if warmup and len(runs) > warmup else 0
    by_op: dict[str, float] = {}
    by_module: dict[str, float] = {}
    for event in events:
        name = event.get("name", "")
        if event.get("cat") != "Node" or not name.endswith("_kernel_time") or event.get("ts", 0) < timed_from:
            continue
        ms = event.get("dur", 0) / 1000.0
        op = event.get("args", {}).get("op_name", "?")
        by_op[op] = by_op.get(op, 0.0) + ms
        parts = [p for p in name.removeprefix("fused ").split("/") if p and p != "model"]
        module = parts[0] if len(parts) > 1 else "(top level)"
        by_module[module] = by_module.get(module, 0.0) + ms
    total = sum(by_op.values()) / iterations

    def ranked(totals: dict[str, float]) -> list[dict[str, Any]]:
        return [
            {"name": key, "ms_per_call": ms / iterations, "share": (ms / iterations) / total if total else 0.0}
            for key, ms in sorted(totals.items(), key=lambda item: -item[1])
        ]

    return {"total_ms_per_call": total, "calls": iterations, "by_op_type": ranked(by_op), "by_module": ranked(by_module)}


# -- end to end: predict over a folder, serve under load ------------------------------------------
E2E_PROMPT = "segment crack"
#: The goals of the product-path issue: predict end to end against model-only, serve against the
#: server it replaces (successful photos/s) and its p95 latency under the load.
E2E_GOALS = {"predict_vs_model_only": 0.8, "serve_vs_baseline": 4.0, "serve_p95_ms": 1000.0}
#: How ``bench`` runs the current code as the server it replaces when no git revision is given.
SERVE_PREVIOUS_DEFAULTS = "--runtime torch --concurrency 1 --max-batch 1"


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def _model_only(predictor, inputs: np.ndarray, prompt: str) -> dict[str, float]:
    """Images/s and CPU ms per image of ``forward_batch`` over ``inputs`` (model-size uint8) in
    batches of the predictor's batch size, after one warm-up call."""
    size = int(predictor.batch_size)
    batches = [inputs[i : i + size] for i in range(0, len(inputs), size)]
    predictor.forward_batch(batches[0], [prompt] * len(batches[0]))
    started, cpu = time.perf_counter(), _cpu_seconds()
    for batch in batches:
        predictor.forward_batch(batch, [prompt] * len(batch))
    seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
    return {"images_per_s": len(inputs) / seconds, "cpu_ms_per_image": 1000 * cpu / len(inputs)}


def e2e_photo_files(settings: BenchSettings, workdir: Path) -> tuple[list[Path], str]:
    """The photos ``predict`` goes through and a description: the first ``e2e_images`` image files
    of ``e2e_photos``, or synthetic crack photos (16 renders, cycled) written as JPEG."""
    from drywallqa.files import list_images, write_image

    if settings.e2e_photos:
        found = list_images(settings.e2e_photos)[: settings.e2e_images]
        if not found:
            raise ConfigError(f"{settings.e2e_photos}: no image files for the end-to-end predict run")
        return found, f"{len(found)} photos of {settings.e2e_photos}"
    from drywallqa.data.synthetic import render_sample_image

    size = settings.pipeline_image_size
    renders = [render_sample_image("cracks", i, size=size).image for i in range(min(16, settings.e2e_images))]
    folder = workdir / "e2e-photos"
    files = [write_image(folder / f"wall-{i:04d}.jpg", renders[i % len(renders)], quality=90)
             for i in range(settings.e2e_images)]
    return files, f"{len(files)} synthetic {size}x{size} crack photos (JPEG, 16 distinct)"


def measure_predict_e2e(predictor, photos: Sequence[Path], workdir: Path, prompt: str = E2E_PROMPT) -> dict[str, Any]:
    """``drywallqa predict`` over ``photos`` beside the model-only throughput of the same predictor.

    Model-only is :meth:`~drywallqa.inference.BatchedPredictor.forward_batch` on the photos
    already resized to the model's input, in batches of the predictor's batch size; it is measured
    before and after the end-to-end run and averaged, so a change of the machine's load during the
    run shows in the two figures. End to end is :func:`~drywallqa.serving.predict_images` with its
    default outputs (masks, overlays, records, JSONL, CSV, COCO, summary) into a new folder:
    decoding, resizing, the model, QA figures, encoders and writes, with the predictor loaded.

    Returns:
        ``runtime``, ``batch_size``, ``images``, ``model_only`` (before, after: images/s and CPU ms
        per image), ``model_only_images_per_s`` (their mean), ``end_to_end_images_per_s``,
        ``end_to_end_cpu_ms_per_image``, ``ratio``, ``model_calls``, ``load_average``.
    """
    from drywallqa.files import read_photo
    from drywallqa.processing import stack_model_inputs
    from drywallqa.serving.predict import predict_images

    inputs = stack_model_inputs([read_photo(p).pixels for p in photos], predictor.image_size)
    before = _model_only(predictor, inputs, prompt)
    started, cpu = time.perf_counter(), _cpu_seconds()
    run = predict_images(list(photos), [prompt], workdir / "predict-out", predictor)
    seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
    after = _model_only(predictor, inputs, prompt)
    model_only = (before["images_per_s"] + after["images_per_s"]) / 2
    end_to_end = len(run.records) / seconds
    return {
        "runtime": predictor.name, "batch_size": int(predictor.batch_size), "images": len(run.records),
        "model_only": {"before": before, "after": after}, "model_only_images_per_s": model_only,
        "end_to_end_images_per_s": end_to_end, "end_to_end_cpu_ms_per_image": 1000 * cpu / len(run.records),
        "ratio": end_to_end / model_only, "model_calls": run.model_calls,
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }


def loadtest_script() -> Path | None:
    """``scripts/loadtest.py`` of the source checkout this package runs from, if there is one."""
    script = Path(__file__).resolve().parents[3] / "scripts" / "loadtest.py"
    return script if script.is_file() else None


def measure_serve_e2e(seconds: float, baseline_rev: str = "", quick: bool = False,
                      say: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    """``drywallqa serve`` under ``scripts/loadtest.py``'s load: the server it replaces, then this one.

    The baseline is the server of git revision ``baseline_rev`` or, without one, this code in its
    previous default configuration (:data:`SERVE_PREVIOUS_DEFAULTS`); each gets ``seconds`` of
    the same load (16 clients, a quarter of their requests broken, 200 slow clients; ``quick``: a
    tiny model, 2 clients, no slow ones).

    Returns:
        ``{"baseline": run, "current": run, "photos_per_s_ratio", "cpu_per_photo_ratio"}``, each run
        with ``photos_per_s`` (photos answered 200 per second), ``p50_ms``, ``p95_ms``,
        ``cpu_ms_per_photo``, ``batching``, ``server``, the load averages and the full ``report``.

    Raises:
        RuntimeError: Without locust or outside a source checkout, or when a load test fails.
    """
    import importlib.util
    import subprocess
    import sys

    script = loadtest_script()
    if script is None:
        raise RuntimeError("scripts/loadtest.py is not here: run bench from a source checkout")
    if importlib.util.find_spec("locust") is None:
        raise RuntimeError("the load test needs locust (pip install 'drywallqa[test]')")
    runs: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="drywallqa-serve-e2e-") as tmp:
        for label, extra in (("baseline", ["--baseline-rev", baseline_rev] if baseline_rev
                              else ["--server-args", SERVE_PREVIOUS_DEFAULTS]), ("current", [])):
            out = Path(tmp) / f"{label}.json"
            command = [sys.executable, str(script), "--seconds", f"{seconds:g}", "--out", str(out), *extra]
            if quick:
                command += ["--tiny", "--clients", "2", "--slow-clients", "0", "--garbage", "0"]
            say(f"serve {label}: {' '.join(command[1:])} ...")
            result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 900)
            if result.returncode != 0 or not out.is_file():
                raise RuntimeError(f"the {label} load test failed: {(result.stderr or result.stdout)[-600:]}")
            report = json.loads(out.read_text())
            photo = report["kinds"]["photo"]
            runs[label] = {
                "photos_per_s": photo["answered_200_per_s"], "p50_ms": photo["p50_ms"], "p95_ms": photo["p95_ms"],
                "cpu_ms_per_photo": report.get("server_cpu_ms_per_photo"), "batching": report.get("batching"),
                "server": report["model"].get("server_command"), "code": report["model"].get("code", "this checkout"),
                "load_average_before": report["machine_before"]["load_average_1_5_15"],
                "load_average_after": report["load_average_after_1_5_15"], "report": report,
            }
    baseline, current = runs["baseline"], runs["current"]
    cpu_ratio = (baseline["cpu_ms_per_photo"] / current["cpu_ms_per_photo"]
                 if baseline["cpu_ms_per_photo"] and current["cpu_ms_per_photo"] else None)
    return {**runs, "seconds": seconds, "baseline_rev": baseline_rev,
            "photos_per_s_ratio": current["photos_per_s"] / baseline["photos_per_s"] if baseline["photos_per_s"] else None,
            "cpu_per_photo_ratio": cpu_ratio}


def _measure_end_to_end(settings: BenchSettings, model, workdir: Path, say: Callable[[str], None]) -> dict[str, Any]:
    """The end-to-end section: predict with the shipped model's default runtime (``quick``: the
    bench's tiny model), then serve; a part that cannot run is recorded with its reason."""
    from drywallqa.inference import load_predictor

    section: dict[str, Any] = {}
    try:
        spec = str(model.save_pretrained(workdir / "e2e-model")) if settings.quick else None
        photos, source = e2e_photo_files(settings, workdir)
        predictor = load_predictor(spec, device=settings.device, say=say)
        say(f"predict end to end over {source} ...")
        section["predict"] = {**measure_predict_e2e(predictor, photos, workdir), "photos": source,
                              "model": "tiny random promptunet" if settings.quick else "shipped"}
    except Exception as exc:  # noqa: BLE001 - reported; the rest of the report stands
        section["predict_skipped"] = f"failed: {exc}"
        say(f"skip predict end to end: {exc}")
    if settings.serve_seconds:
        try:
            section["serve"] = measure_serve_e2e(settings.serve_seconds, settings.serve_baseline_rev, settings.quick, say)
        except Exception as exc:  # noqa: BLE001 - reported; the rest of the report stands
            section["serve_skipped"] = str(exc)
            say(f"skip serve end to end: {exc}")
    else:
        section["serve_skipped"] = "not asked for (serve_seconds 0)"
    return section


# -- machine --------------------------------------------------------------------------------------
def machine_info(settings: BenchSettings) -> dict[str, Any]:
    """CPU, cores, GPU, library versions, threads and load: what the numbers depend on."""
    import cv2
    import onnxruntime
    import torch
    import transformers

    cpu_model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    memory_gib = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        memory_gib = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    info: dict[str, Any] = {
        "cpu": cpu_model,
        "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_count": os.cpu_count(),
        "memory_gib": round(memory_gib, 1) if memory_gib else None,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "onnxruntime_providers": onnxruntime.get_available_providers(),
        "transformers": transformers.__version__,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "torch_threads": torch.get_num_threads(),
        "onnxruntime_intra_op_threads": settings.threads,
        "niceness": os.nice(0) if hasattr(os, "nice") else None,
    }
    with contextlib.suppress(OSError, AttributeError):
        info["load_average_start"] = [round(x, 2) for x in os.getloadavg()]
    return info


# -- the run --------------------------------------------------------------------------------------
def run_benchmark(
    settings: BenchSettings | None = None,
    progress: Callable[[str], None] | None = None,
    checkpoint: Callable[[dict], None] | None = None,
) -> dict:
    """Measure CLIPSeg and SAM, every available PromptUNet runtime and the pipeline, in one process.

    Args:
        settings: What to measure; :meth:`BenchSettings.create` by default.
        progress: Called with one line per step (e.g. ``print``).
        checkpoint: Called with the report so far after every measurement, so a run stopped from
            outside (a device call's time limit) still leaves what it measured.

    Returns:
        A JSON-ready dict: ``machine``, ``settings``, ``results`` (one per model and runtime),
        ``skipped``, ``pipeline``, ``video`` (frames/s of ``drywallqa watch``), ``end_to_end``,
        ``onnxruntime_profile``, ``ratios``, ``goals``, ``started``, ``duration_s``, ``format_version``. :func:`~drywallqa.export.bench_report.render_markdown`
        turns it into a report.
    """
    import torch

    from drywallqa.export.parity import (
        compare_outputs,
        synthetic_images,
        synthetic_samples,
    )
    from drywallqa.models import build_model
    from drywallqa.serving.video import measure_video  # frames/s of `drywallqa watch`

    settings = settings or BenchSettings.create()
    say = progress or (lambda line: None)
    started = time.perf_counter()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    report: dict[str, Any] = {
        "format_version": BENCH_FORMAT_VERSION,
        "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(settings),
        "settings": settings.to_dict(),
        "results": [],
        "skipped": [],
        "pipeline": {},
        "onnxruntime_profile": None,
    }

    def out_of_time(model: str, runtime: str) -> bool:
        if not settings.max_seconds or time.perf_counter() - started < settings.max_seconds:
            return False
        report["skipped"].append({"model": model, "runtime": runtime,
                                  "reason": f"time budget of {settings.max_seconds:g} s spent"})
        say(f"skip {model} {runtime}: time budget spent")
        return True

    def measured(result: RuntimeResult) -> None:
        report["results"].append(asdict(result))
        say(_result_line(result))
        if checkpoint is not None:
            checkpoint(_finish(report, settings, started))

    try:
        # The baselines first: every ratio needs them, and a budget runs out at the end.
        if settings.baselines:
            baseline_runtime = "torch-bf16-autocast" if settings.device == "cuda" else "torch-fp32"
            for name, size, plan, description in (
                ("clipseg", settings.clipseg_size, settings.clipseg,
                 "CLIPSeg rd64 (ViT-B/16 CLIP), conditional embedding precomputed" if not settings.quick else "CLIPSeg, tiny config"),
                ("sam", settings.sam_size, settings.sam,
                 "SAM ViT-B, one box prompt, image encoder + decoder" if not settings.quick else "SAM, tiny config"),
            ):
                if out_of_time(name, baseline_runtime):
                    continue
                say(f"{name} {baseline_runtime} ...")
                try:
                    result = measure(name, baseline_runtime, description, _baseline_builder(name, settings), plan, size,
                                     settings.device)
                except Exception as exc:  # noqa: BLE001 - e.g. a transformers release that renamed a config field; reported
                    report["skipped"].append({"model": name, "runtime": baseline_runtime, "reason": f"failed: {exc}"})
                    say(f"skip {name}: failed: {exc}")
                    continue
                finally:
                    if settings.device == "cuda":
                        torch.cuda.empty_cache()
                measured(result)
        torch.manual_seed(settings.seed)
        model = build_model(
            "promptunet", pretrained=False, text_encoder="hashing", encoder=settings.encoder,
            image_size=settings.image_size,
        ).eval()
        images, prompts = synthetic_images(4, size=max(settings.image_size, 64), seed=settings.seed)
        jpeg, jpeg_prompt = synthetic_samples(1, size=settings.pipeline_image_size, seed=settings.seed)[0]
        with tempfile.TemporaryDirectory(prefix="drywallqa-bench-") as tmp:
            context = _PromptUNetContext(model, settings, Path(tmp), images, prompts)
            available = [r for r in settings.runtimes if not _runtime_unavailable(r, settings)]
            if available:
                say("exporting ONNX ...")
                _export_for_runtimes(context, available)
            reference = None
            for runtime in settings.runtimes:
                reason = _runtime_unavailable(runtime, settings)
                if reason:
                    report["skipped"].append({"model": PROMPTUNET_LABEL, "runtime": runtime, "reason": reason})
                    say(f"skip {runtime}: {reason}")
                    continue
                if out_of_time(PROMPTUNET_LABEL, runtime):
                    continue
                say(f"promptunet {runtime} ...")
                holder: dict[str, Any] = {}
                predictor = None

                def build(runtime=runtime, holder=holder):
                    predictor = _build_promptunet_predictor(runtime, context)
                    holder["predictor"] = predictor
                    batches = {b: context.batch(b) for b in settings.promptunet.batch_sizes}
                    return (lambda b: predictor.forward_batch(*batches[b])), model.num_parameters()

                try:
                    result = measure(PROMPTUNET_LABEL, runtime, f"PromptUNet-{settings.encoder}, {runtime}", build,
                                     settings.promptunet, settings.image_size, settings.device)
                    predictor = holder["predictor"]
                    outputs = predictor.forward_batch(*context.batch(len(images)))
                    if runtime == REFERENCE_RUNTIME:
                        reference = outputs
                    if reference is not None:
                        result.parity = compare_outputs(reference, outputs, runtime, max_logit_diff=None).to_dict()
                    report["pipeline"][runtime] = measure_pipeline(
                        predictor, jpeg, jpeg_prompt, settings.pipeline_iterations
                    )
                    report.setdefault("video", {})[runtime] = measure_video(
                        predictor, Path(tmp) / runtime, frames=4 * settings.pipeline_iterations,
                        size=settings.pipeline_image_size)
                except Exception as exc:  # noqa: BLE001 - one runtime failing (e.g. no C++ compiler for torch.compile) must not end the run; the reason is reported
                    report["skipped"].append({"model": PROMPTUNET_LABEL, "runtime": runtime, "reason": f"failed: {exc}"})
                    say(f"skip {runtime}: failed: {exc}")
                    continue
                finally:
                    holder.clear()
                    predictor = None  # free its buffers (CUDA graphs hold their own) before the next runtime
                    if settings.device == "cuda":
                        torch.cuda.empty_cache()
                measured(result)
            if settings.device == "cuda" and not out_of_time(PROMPTUNET_LABEL, GPU_DECODE_PIPELINE):
                say(f"pipeline {GPU_DECODE_PIPELINE} ...")
                try:
                    report["pipeline"][GPU_DECODE_PIPELINE] = measure_gpu_pipeline(
                        model, jpeg, jpeg_prompt, settings.image_size, settings.pipeline_iterations
                    )
                except Exception as exc:  # noqa: BLE001 - reported, the rest of the run stands
                    report["skipped"].append({"model": PROMPTUNET_LABEL, "runtime": GPU_DECODE_PIPELINE, "reason": f"failed: {exc}"})
                    say(f"skip {GPU_DECODE_PIPELINE}: failed: {exc}")
            if settings.end_to_end and not out_of_time(PROMPTUNET_LABEL, "end-to-end"):
                report["end_to_end"] = _measure_end_to_end(settings, model, Path(tmp), say)
            if settings.profile_iterations and context.onnx_path is not None and settings.device == "cpu":
                say("onnxruntime profile ...")
                store_batch, store_prompts = context.batch(1)
                embeddings = model.embed_prompts(store_prompts).numpy()
                # One thread: each kernel's time is its own work, not partly a wait for a busy partner thread.
                report["onnxruntime_profile"] = profile_onnx(
                    context.onnx_path, store_batch, embeddings, settings.profile_iterations, threads=1
                )
    finally:
        torch.set_num_threads(previous_threads)
    with contextlib.suppress(OSError, AttributeError):
        report["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    return _finish(report, settings, started)


def _finish(report: dict, settings: BenchSettings, started: float) -> dict:
    """The report with ratios, goals and duration computed from what was measured so far."""
    from drywallqa.export.bench_report import compute_ratios, evaluate_goals

    report["ratios"] = compute_ratios(report["results"])
    report["goals"] = evaluate_goals(report)
    report["duration_s"] = round(time.perf_counter() - started, 1)
    return report


def _result_line(result: RuntimeResult) -> str:
    return (
        f"  {result.model} {result.runtime} @{result.input_size}: p50 {result.latency_p50_ms:.1f} ms, "
        f"p95 {result.latency_p95_ms:.1f} ms, cpu {result.cpu_ms_p50:.1f} ms, "
        f"{result.best_throughput:.2f} img/s @ batch {result.best_batch}"
    )
