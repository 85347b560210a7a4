#!/usr/bin/env python
"""Profile PromptUNet where it runs (a lent GPU: scripts/device/run.sh calls this before training).

    python scripts/device/profile_model.py [--seconds 60] [--json OUT] [--quick]

Measures, on the shipped model's architecture with random prompt embeddings (speed does not
depend on them), each step inside the time budget and skipping what no longer fits:

1. inference, BatchNorm folded, channels-last, fp16 autocast, batch 256 at 448 px: images/s,
   and the top kernels of one profiled batch (torch.profiler);
2. a training step (forward, loss, backward, fused AdamW) in bf16 autocast, channels-last, at
   the device recipes' batch (32) and size: images/s and its top kernels;
3. the same training step through ``torch.compile``: compile seconds and images/s.

Prints the tables into the call's log and writes ``--json`` after every step: the figures, and
``compile_training`` (true when the compiled step is enough faster to repay its compilation
within a training budget of ``--train-seconds``), which run.sh passes to the recipe of the same
architecture (``trainer.compile``). ``--quick`` shrinks every size for the CPU rehearsal.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(step, images: int, device: torch.device, seconds: float, least: int = 3) -> float:
    """Images/s of ``step`` (warmed up once), timed over at least ``least`` calls or ``seconds``."""
    step()
    _sync(device)
    started, calls = time.perf_counter(), 0
    while calls < least or time.perf_counter() - started < seconds:
        step()
        calls += 1
    _sync(device)
    return round(images * calls / (time.perf_counter() - started), 1)


def _top_kernels(step, device: torch.device, rows: int) -> str:
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        step()
        _sync(device)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="budget of the whole profile")
    parser.add_argument("--train-seconds", type=float, default=300.0, help="training budget compile must repay")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (the CPU rehearsal)")
    args = parser.parse_args(argv)
    started = time.perf_counter()

    def left() -> float:
        return args.seconds - (time.perf_counter() - started)

    from drywallqa.inference import default_model_path
    from drywallqa.inference.folding import fold_batchnorm
    from drywallqa.models import PromptSegmentationModel
    from drywallqa.training.losses import LossConfig, SegmentationLoss

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    size, infer_batch, train_batch = (64, 4, 4) if args.quick else (448, 256, 32)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    half = torch.float16 if device.type == "cuda" else torch.bfloat16
    result: dict = {"device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu", "image_size": size,
                    "inference_batch": infer_batch, "train_batch": train_batch, "compile_training": False}

    def save() -> None:  # after every step: a profile stopped from outside keeps what it measured
        if args.json:
            result["seconds"] = round(time.perf_counter() - started, 1)
            args.json.write_text(json.dumps(result, indent=2))
    model = PromptSegmentationModel.from_pretrained(Path(str(default_model_path())))
    dim = model.embed_dim

    # 1. Inference.
    folded, count = fold_batchnorm(model.eval(), (torch.rand(1, 3, 64, 64), torch.randn(1, dim)))
    folded = folded.to(device).to(memory_format=torch.channels_last)
    pixels = torch.rand(infer_batch, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
    embeddings = torch.randn(infer_batch, dim, device=device)

    def infer():
        with torch.inference_mode(), torch.autocast(device.type, dtype=half):
            folded(pixels, embeddings)

    result["inference"] = {"folded_batchnorms": count, "images_per_s": _rate(infer, infer_batch, device, min(5, left() / 6))}
    print(f"inference, {count} BatchNorms folded, channels-last, {half}, batch {infer_batch} at {size}: "
          f"{result['inference']['images_per_s']:,.0f} images/s")
    print(_top_kernels(infer, device, 15))
    save()

    # 2. Training step, eager.
    trained = PromptSegmentationModel.from_pretrained(Path(str(default_model_path()))).to(device)
    trained = trained.to(memory_format=torch.channels_last).train()
    loss_fn = SegmentationLoss(LossConfig())
    optimizer = torch.optim.AdamW(trained.parameters(), lr=1e-5, fused=device.type == "cuda")
    images = torch.rand(train_batch, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
    masks = (torch.rand(train_batch, 1, size, size, device=device) > 0.9).float()
    prompts = torch.randn(train_batch, dim, device=device)

    def train_step(forward):
        def step():
            with torch.autocast(device.type, dtype=torch.bfloat16):
                out = forward(images, prompts)
            loss = loss_fn(out.mask_logits, masks, out.confidence_logits)["total"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return step

    eager = train_step(trained)
    result["training"] = {"eager_images_per_s": _rate(eager, train_batch, device, min(8, left() / 4))}
    print(f"\ntraining step, bf16 autocast, channels-last, batch {train_batch} at {size}: "
          f"{result['training']['eager_images_per_s']:,.0f} images/s (eager)")
    print(_top_kernels(eager, device, 15))
    save()

    # 3. Training step, compiled (the first call compiles; only when enough of the budget is left).
    if left() > 20 and not args.quick:
        try:
            compiled = train_step(torch.compile(trained, dynamic=False))
            t0 = time.perf_counter()
            compiled()
            _sync(device)
            compile_s = round(time.perf_counter() - t0, 1)
            rate = _rate(compiled, train_batch, device, min(8, max(left() - 5, 1)))
            result["training"].update({"compile_s": compile_s, "compiled_images_per_s": rate})
            eager_rate = result["training"]["eager_images_per_s"]
            # Worth it when the compiled run still trains 10 % more images after paying its compilation.
            result["compile_training"] = rate * max(args.train_seconds - compile_s, 0) > 1.1 * eager_rate * args.train_seconds
            print(f"\ntraining step compiled: {compile_s} s to compile, {rate:,.0f} images/s "
                  f"({rate / eager_rate:.2f}x eager); compile the training: {result['compile_training']}")
        except Exception as error:  # noqa: BLE001 - reported; training then runs eagerly
            result["training"]["compile_error"] = f"{type(error).__name__}: {str(error)[:300]}"
            print(f"\ntraining step compiled: failed ({result['training']['compile_error']})")
    else:
        print("\ntraining step compiled: skipped (" + ("--quick" if args.quick else f"{left():.0f} s left") + ")")
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
