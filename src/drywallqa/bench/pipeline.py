"""Where the time of one photo goes: JPEG bytes to mask PNG stage by stage (on the CPU path and with
every pixel step on the GPU), and ONNX Runtime's own per-operator profile."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

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



def profile_onnx(path: Path, batch: np.ndarray, embeddings: np.ndarray, iterations: int, threads: int,
                 warmup: int = 2) -> dict:
    """ONNX Runtime's per-node profile of ``iterations`` calls, summed by operator type and by module.

    Returns:
        ``{"total_ms_per_call", "calls", "by_op_type": [...], "by_module": [...]}``; each list holds
        ``{"name", "ms_per_call", "share"}`` entries, largest first. Modules are the model's
        top-level submodules (``encoder``, ``decoder``, ...), read from the node names.
    """
    from drywallqa.inference.onnx_runtime import create_session
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
