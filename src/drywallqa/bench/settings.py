"""What ``drywallqa bench`` measures and how long it spends: :class:`BenchSettings`, the runtime labels
and the per-model :class:`MeasurePlan`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

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

        from drywallqa.inference.onnx_runtime import available_cores

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

