"""Two prompts on one photo: what the second prompt costs, model only and ``drywallqa predict`` end to end.

A runtime whose model splits into a prompt-free encoder and a prompt-conditioned decoder encodes a
photo once for all its prompts (:meth:`~drywallqa.inference.BatchedPredictor.forward_pairs`).
Both measurements put it beside the same runtime running every (photo, prompt) pair as a whole
model run, as every runtime did before the split (:class:`EncodedPerPair`), in the same run.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from drywallqa.bench.timing import Timing
from drywallqa.inference import BatchedPredictor

#: The two prompts of the measurements: a wall checked for cracks and taping areas at once.
TWO_PROMPTS = ("segment crack", "segment taping area")


class EncodedPerPair(BatchedPredictor):
    """A runtime as it ran before the encoder was shared: every (photo, prompt) pair one whole
    model run (:meth:`forward_batch` on the photo repeated per prompt).

    Args:
        inner: The runtime; everything but the sharing is its own.
    """

    def __init__(self, inner: BatchedPredictor):
        self.inner = inner
        self.image_size, self.batch_size, self.threshold = inner.image_size, inner.batch_size, inner.threshold
        self.thresholds, self.name = inner.thresholds, inner.name

    def __getattr__(self, name: str):
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def forward_batch(self, images: np.ndarray, prompts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        return self.inner.forward_batch(images, prompts)


def measure_two_prompts(predictor: BatchedPredictor, image: np.ndarray, warmup: int, iterations: int) -> dict[str, Any]:
    """Model-only cost of one photo with one prompt, with two (encoded once), and with two run per pair.

    The three calls alternate, so a change of the machine's load reaches all three alike.

    Args:
        predictor: The runtime.
        image: ``uint8`` ``(1, S, S, 3)`` at the model's input size.
        warmup: Untimed rounds first.
        iterations: Timed rounds.

    Returns:
        Per case (``one_prompt``, ``two_prompts``, ``two_prompts_per_pair``) the p50 wall ms and the
        median process CPU ms, and ``ratio`` / ``cpu_ratio``: two prompts against one (wall p50,
        CPU median), ``per_pair_ratio``: the same for two prompts run per pair.
    """
    per_pair = EncodedPerPair(predictor)
    cases = {
        "one_prompt": lambda: predictor.forward_batch(image, [TWO_PROMPTS[0]]),
        "two_prompts": lambda: predictor.forward_pairs(image, list(TWO_PROMPTS), [0, 0]),
        "two_prompts_per_pair": lambda: per_pair.forward_pairs(image, list(TWO_PROMPTS), [0, 0]),
    }
    for _ in range(warmup):
        for call in cases.values():
            call()
    timings = {case: Timing() for case in cases}
    for _ in range(iterations):
        for case, call in cases.items():
            cpu, wall = time.process_time(), time.perf_counter()
            call()
            timings[case].wall.append(time.perf_counter() - wall)
            timings[case].cpu.append(time.process_time() - cpu)
    figures: dict[str, Any] = {case: {"p50_ms": t.percentile_ms(50), "cpu_ms": t.cpu_p50_ms()} for case, t in timings.items()}
    one = figures["one_prompt"]
    figures.update(
        prompts=list(TWO_PROMPTS), iterations=iterations,
        ratio=figures["two_prompts"]["p50_ms"] / one["p50_ms"],
        cpu_ratio=figures["two_prompts"]["cpu_ms"] / one["cpu_ms"] if one["cpu_ms"] else None,
        per_pair_ratio=figures["two_prompts_per_pair"]["p50_ms"] / one["p50_ms"],
    )
    return figures


def measure_predict_two_prompts(predictor: BatchedPredictor, photos: Sequence[Path], workdir: Path,
                                one_prompt_photos_per_s: float | None = None, rounds: int = 2) -> dict[str, Any]:
    """``drywallqa predict`` over ``photos`` with two prompts: each pair run whole (as before), then
    each photo encoded once; every output written, as :func:`~drywallqa.bench.end_to_end.measure_predict_e2e`.

    The two runs alternate for ``rounds`` rounds, each into a fresh folder (nothing resumed), and
    each one's time is summed over its rounds: a change of the machine's load during the
    measurement reaches both alike, as in :func:`measure_two_prompts`.

    Returns:
        ``per_pair`` and ``shared``: ``photos_per_s``, ``cpu_ms_per_photo``, ``model_calls`` (per
        round); ``ratio``: shared against per-pair photos/s; ``rounds``; with
        ``one_prompt_photos_per_s`` (the one-prompt run of the same predictor),
        ``cost_vs_one_prompt``: seconds per photo with two prompts against one.
    """
    from drywallqa.serving.predict import predict_images

    runners = {"per_pair": EncodedPerPair(predictor), "shared": predictor}
    spent = {label: {"seconds": 0.0, "cpu": 0.0, "images": 0, "model_calls": 0} for label in runners}
    for round_index in range(rounds):
        for label, runner in runners.items():
            started, cpu = time.perf_counter(), time.process_time()
            run = predict_images(list(photos), list(TWO_PROMPTS),
                                 workdir / f"predict-two-prompts-{label}-{round_index}", runner)
            spent[label]["seconds"] += time.perf_counter() - started
            spent[label]["cpu"] += time.process_time() - cpu
            spent[label]["images"] += run.images
            spent[label]["model_calls"] = run.model_calls
    runs = {label: {"photos_per_s": s["images"] / s["seconds"], "cpu_ms_per_photo": 1000 * s["cpu"] / s["images"],
                    "model_calls": s["model_calls"]} for label, s in spent.items()}
    shared = runs["shared"]["photos_per_s"]
    return {
        "prompts": list(TWO_PROMPTS), "photos": len(photos), "rounds": rounds, **runs,
        "ratio": shared / runs["per_pair"]["photos_per_s"],
        "cost_vs_one_prompt": one_prompt_photos_per_s / shared if one_prompt_photos_per_s else None,
    }
