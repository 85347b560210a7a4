"""``drywallqa bench``: every runtime of PromptUNet beside CLIPSeg and SAM, in one run on one machine.

What is measured (:func:`run_benchmark`):

- **Model latency**: batch-1 wall time per call, p50 and p95 over ``iterations`` calls after
  ``warmup`` calls, plus the process CPU time per call (all threads), which a busy machine
  inflates far less than wall time. For PromptUNet a call is
  :meth:`~drywallqa.inference.BatchedPredictor.forward_batch`: uint8 batch in, logits out,
  so the uint8->float step and the copy of the outputs are included. CLIPSeg and SAM get float
  tensors ready at their native size; CLIPSeg gets its prompt as a precomputed conditional
  embedding and SAM one box, so neither pays for text or prompt encoding either.
- **Throughput**: images per second at each batch size in the plan; the best is reported.
- **Peak memory**: growth of the process's peak RSS while the runtime was built and measured
  (``VmHWM`` reset through ``/proc/self/clear_refs``), or ``torch.cuda.max_memory_allocated`` on GPU.
- **Mask agreement** of each PromptUNet runtime with PyTorch fp32 on the same synthetic photos
  (:func:`~drywallqa.export.parity.compare_outputs`).
- **Two prompts on one photo** against one, model only, on each PromptUNet runtime: the photo
  encoded once for both (:func:`~drywallqa.bench.prompts.measure_two_prompts`), beside each pair
  run whole as before; and end to end, ``predict`` over the folder with two prompts both ways
  (:func:`~drywallqa.bench.prompts.measure_predict_two_prompts`).
- **Pipeline**: JPEG bytes -> decode -> resize -> model -> upsample -> threshold -> PNG bytes for a
  640x640 photo, the calls :meth:`~drywallqa.inference.Predictor.predict` makes, timed per stage.
- **Where the time goes**: ONNX Runtime's profiler, summed per operator type.
- **End to end** (:func:`~drywallqa.bench.end_to_end.measure_predict_e2e`,
  :func:`~drywallqa.bench.end_to_end.measure_serve_e2e`): ``drywallqa predict`` over a folder of
  photos against the model-only throughput of the same predictor at the same batch size (the
  shipped model on its default runtime), and ``drywallqa serve`` under the locust load of
  ``scripts/loadtest.py`` against the server it replaces (a git revision) or its previous
  default configuration, in the same run; and the seconds per prompt of a 12 MP photo judged
  in tiles (:func:`~drywallqa.bench.end_to_end.measure_large_photo`) beside the same photo untiled.

All models have random weights (nothing is downloaded); speed does not depend on the weights.
This module holds the run itself; the pieces it calls are in :mod:`~drywallqa.bench.timing`,
:mod:`~drywallqa.bench.runtimes`, :mod:`~drywallqa.bench.pipeline` and
:mod:`~drywallqa.bench.end_to_end`; the result is a :class:`~drywallqa.bench.BenchReport`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from drywallqa.bench.end_to_end import measure_end_to_end
from drywallqa.bench.goals import compute_ratios, evaluate_goals
from drywallqa.bench.pipeline import GPU_DECODE_PIPELINE, measure_gpu_pipeline, measure_pipeline, profile_onnx
from drywallqa.bench.report import BenchReport, result_line
from drywallqa.bench.runtimes import (
    PromptUNetContext,
    baseline_builder,
    build_promptunet_predictor,
    export_for_runtimes,
    runtime_unavailable,
)
from drywallqa.bench.settings import PROMPTUNET_LABEL, REFERENCE_RUNTIME, BenchSettings
from drywallqa.bench.timing import RuntimeResult, measure
from drywallqa.hardware import cpu_name


def machine_info(settings: BenchSettings) -> dict[str, Any]:
    """CPU, cores, GPU, library versions, threads and load: what the numbers depend on."""
    import cv2
    import onnxruntime
    import torch
    import transformers

    cpu_model = cpu_name()
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




def run_benchmark(
    settings: BenchSettings | None = None,
    progress: Callable[[str], None] | None = None,
    checkpoint: Callable[[BenchReport], None] | None = None,
) -> BenchReport:
    """Measure CLIPSeg and SAM, every available PromptUNet runtime and the pipeline, in one process.

    Args:
        settings: What to measure; :meth:`BenchSettings.create` by default.
        progress: Called with one line per step (e.g. ``print``).
        checkpoint: Called with the report so far after every measurement, so a run stopped from
            outside (a device call's time limit) still leaves what it measured.

    Returns:
        The :class:`~drywallqa.bench.BenchReport`: print it for a summary, ``markdown()`` for the
        report of ``docs/performance.md``, ``to_dict()`` for the JSON form.
    """
    import torch

    settings = settings or BenchSettings.create()
    run = _Run(settings, progress or (lambda line: None), checkpoint)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        # The baselines first: every ratio needs them, and a budget runs out at the end.
        if settings.baselines:
            _measure_baselines(run)
        _measure_promptunet(run)
    finally:
        torch.set_num_threads(previous_threads)
    with contextlib.suppress(OSError, AttributeError):
        run.report.machine["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    return run.finish()


class _Run:
    """The report of a run in progress, its time budget and its progress and checkpoint callbacks."""

    def __init__(self, settings: BenchSettings, say: Callable[[str], None],
                 checkpoint: Callable[[BenchReport], None] | None):
        self.settings, self.say, self.checkpoint = settings, say, checkpoint
        self.started = time.perf_counter()
        self.report = BenchReport(
            started=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            machine=machine_info(settings),
            settings=settings.to_dict(),
        )

    def skip(self, model: str, runtime: str, reason: str, line: str | None = None) -> None:
        """Record a runtime that did not run, and say why."""
        self.report.skipped.append({"model": model, "runtime": runtime, "reason": reason})
        self.say(line or f"skip {runtime}: {reason}")

    def out_of_time(self, model: str, runtime: str) -> bool:
        """True (and the runtime recorded as skipped) once the time budget is spent."""
        budget = self.settings.max_seconds
        if not budget or time.perf_counter() - self.started < budget:
            return False
        self.skip(model, runtime, f"time budget of {budget:g} s spent", f"skip {model} {runtime}: time budget spent")
        return True

    def measured(self, result: RuntimeResult) -> None:
        """Add a measurement, say it, and hand the report so far to the checkpoint."""
        self.report.results.append(asdict(result))
        self.say(result_line(self.report.results[-1]))
        if self.checkpoint is not None:
            self.checkpoint(self.finish())

    def finish(self) -> BenchReport:
        """The report with ratios, goals and duration computed from what was measured so far."""
        report = self.report
        report.ratios = compute_ratios(report.results)
        report.goals = evaluate_goals(report.to_dict())
        report.duration_s = round(time.perf_counter() - self.started, 1)
        return report


def _measure_baselines(run: _Run) -> None:
    """CLIPSeg and SAM in PyTorch (bf16 autocast on a GPU), each skipped with its reason on failure."""
    import torch

    settings = run.settings
    baseline_runtime = "torch-bf16-autocast" if settings.device == "cuda" else "torch-fp32"
    for name, size, plan, description in (
        ("clipseg", settings.clipseg_size, settings.clipseg,
         "CLIPSeg rd64 (ViT-B/16 CLIP), conditional embedding precomputed" if not settings.quick else "CLIPSeg, tiny config"),
        ("sam", settings.sam_size, settings.sam,
         "SAM ViT-B, one box prompt, image encoder + decoder" if not settings.quick else "SAM, tiny config"),
    ):
        if run.out_of_time(name, baseline_runtime):
            continue
        run.say(f"{name} {baseline_runtime} ...")
        try:
            result = measure(name, baseline_runtime, description, baseline_builder(name, settings), plan, size,
                             settings.device)
        except Exception as exc:  # noqa: BLE001 - e.g. a transformers release that renamed a config field; reported
            run.skip(name, baseline_runtime, f"failed: {exc}", f"skip {name}: failed: {exc}")
            continue
        finally:
            if settings.device == "cuda":
                torch.cuda.empty_cache()
        run.measured(result)


def _measure_promptunet(run: _Run) -> None:
    """PromptUNet on every runtime of the settings, then the GPU pipeline, end to end and the profile."""
    import torch

    from drywallqa.export.parity import synthetic_images, synthetic_samples
    from drywallqa.models import build_model

    settings = run.settings
    torch.manual_seed(settings.seed)
    model = build_model(
        "promptunet", pretrained=False, text_encoder="hashing", encoder=settings.encoder,
        image_size=settings.image_size,
    ).eval()
    images, prompts = synthetic_images(4, size=max(settings.image_size, 64), seed=settings.seed)
    jpeg, jpeg_prompt = synthetic_samples(1, size=settings.pipeline_image_size, seed=settings.seed)[0]
    with tempfile.TemporaryDirectory(prefix="drywallqa-bench-") as tmp:
        context = PromptUNetContext(model, settings, Path(tmp), images, prompts)
        available = [r for r in settings.runtimes if not runtime_unavailable(r, settings)]
        if available:
            run.say("exporting ONNX ...")
            export_for_runtimes(context, available)
        for runtime in settings.runtimes:
            reason = runtime_unavailable(runtime, settings)
            if reason:
                run.skip(PROMPTUNET_LABEL, runtime, reason)
                continue
            if run.out_of_time(PROMPTUNET_LABEL, runtime):
                continue
            run.say(f"promptunet {runtime} ...")
            try:
                result = _measure_promptunet_runtime(run, context, runtime, jpeg, jpeg_prompt)
            except Exception as exc:  # noqa: BLE001 - one runtime failing (e.g. no C++ compiler for torch.compile) must not end the run; the reason is reported
                run.skip(PROMPTUNET_LABEL, runtime, f"failed: {exc}")
                continue
            finally:
                if settings.device == "cuda":
                    torch.cuda.empty_cache()
            run.measured(result)
        if settings.device == "cuda" and not run.out_of_time(PROMPTUNET_LABEL, GPU_DECODE_PIPELINE):
            run.say(f"pipeline {GPU_DECODE_PIPELINE} ...")
            try:
                run.report.pipeline[GPU_DECODE_PIPELINE] = measure_gpu_pipeline(
                    model, jpeg, jpeg_prompt, settings.image_size, settings.pipeline_iterations
                )
            except Exception as exc:  # noqa: BLE001 - reported, the rest of the run stands
                run.skip(PROMPTUNET_LABEL, GPU_DECODE_PIPELINE, f"failed: {exc}")
        if settings.end_to_end and not run.out_of_time(PROMPTUNET_LABEL, "end-to-end"):
            run.report.end_to_end = measure_end_to_end(settings, model, Path(tmp), run.say)
        if settings.profile_iterations and context.onnx_path is not None and settings.device == "cpu":
            run.say("onnxruntime profile ...")
            store_batch, store_prompts = context.batch(1)
            embeddings = model.embed_prompts(store_prompts).numpy()
            # One thread: each kernel's time is its own work, not partly a wait for a busy partner thread.
            run.report.onnxruntime_profile = profile_onnx(
                context.onnx_path, store_batch, embeddings, settings.profile_iterations, threads=1
            )


def _measure_promptunet_runtime(run: _Run, context: PromptUNetContext, runtime: str, jpeg: bytes,
                                jpeg_prompt: str) -> RuntimeResult:
    """One PromptUNet runtime: timing and memory, mask agreement with the reference runtime's outputs
    (:attr:`PromptUNetContext.reference`), the pipeline and ``watch`` frames/s. The predictor is dropped on return, so its buffers (CUDA graphs hold their
    own) are freed before the next runtime is built."""
    from drywallqa.bench.prompts import measure_two_prompts
    from drywallqa.export.parity import compare_outputs
    from drywallqa.serving.video import measure_video  # frames/s of `drywallqa watch`

    settings = run.settings
    holder: dict[str, Any] = {}

    def build():
        predictor = build_promptunet_predictor(runtime, context)
        holder["predictor"] = predictor
        batches = {b: context.batch(b) for b in settings.promptunet.batch_sizes}
        return (lambda b: predictor.forward_batch(*batches[b])), context.model.num_parameters()

    try:
        result = measure(PROMPTUNET_LABEL, runtime, f"PromptUNet-{settings.encoder}, {runtime}", build,
                         settings.promptunet, settings.image_size, settings.device)
        predictor = holder["predictor"]
        outputs = predictor.forward_batch(*context.batch(len(context.images)))
        if runtime == REFERENCE_RUNTIME:
            context.reference = outputs
        if context.reference is not None:
            result.parity = compare_outputs(context.reference, outputs, runtime, max_logit_diff=None).to_dict()
        result.two_prompts = measure_two_prompts(predictor, context.batch(1)[0], settings.promptunet.warmup,
                                                 settings.promptunet.iterations)
        run.report.pipeline[runtime] = measure_pipeline(predictor, jpeg, jpeg_prompt, settings.pipeline_iterations)
        video = measure_video(predictor, context.workdir / runtime, frames=4 * settings.pipeline_iterations,
                              size=settings.pipeline_image_size)
        run.report.video = {**(run.report.video or {}), runtime: video}
        return result
    finally:
        holder.clear()
