"""End to end: ``drywallqa predict`` over a folder against the model-only throughput of the same
predictor, and ``drywallqa serve`` under ``scripts/loadtest.py``'s load against the server it replaces."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from drywallqa.bench.settings import BenchSettings
from drywallqa.bench.timing import ThreadCPU
from drywallqa.errors import ConfigError

E2E_PROMPT = "segment crack"
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


MODEL_THREAD = "model thread (the runtime's calling thread)"
PIPELINE_WORKERS = "pipeline workers (decode, resize, QA figures, encoders, writes)"
RUNTIME_THREADS = "the runtime's own threads (native thread pools)"
#: Thread roles of an end-to-end run, by the name of the Python thread (see :class:`~drywallqa.bench.timing.ThreadCPU`).
THREAD_ROLES = (("drywallqa-model", MODEL_THREAD), ("drywallqa-predict", PIPELINE_WORKERS),
                ("MainThread", "main thread (setup, tables at the end)"))


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
        ``end_to_end_cpu_ms_per_image``, ``ratio``, ``model_calls``, ``cpu_ms_per_image_by_thread`` (the
        end-to-end run's CPU by thread role, :class:`~drywallqa.bench.timing.ThreadCPU`; empty off Linux),
        ``load_average``.
    """
    from drywallqa.files import read_photo
    from drywallqa.processing import stack_model_inputs
    from drywallqa.serving.predict import predict_images

    inputs = stack_model_inputs([read_photo(p).pixels for p in photos], predictor.image_size)
    before = _model_only(predictor, inputs, prompt)
    started, cpu = time.perf_counter(), _cpu_seconds()
    with ThreadCPU(THREAD_ROLES, native_role=RUNTIME_THREADS) as threads:
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
        "cpu_ms_per_image_by_thread": {role: 1000 * seconds / len(run.records)
                                       for role, seconds in sorted(threads.seconds_by_role().items())},
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }


#: How many photos the per-stage breakdown of predict goes through, one at a time.
STAGE_PHOTOS = 40


def measure_predict_stages(predictor, photos: Sequence[Path], workdir: Path, prompt: str = E2E_PROMPT) -> dict[str, Any]:
    """The process CPU time of each step ``predict`` takes for one photo, one photo at a time.

    The steps are those of :func:`~drywallqa.serving.predict_images` with every output, called
    directly: decode, resize to the model's input, the model, logits to the mask at the photo's
    size, the QA figures, the mask PNG, the overlay (tint and JPEG), the COCO annotations and the
    atomic writes of mask, overlay and record. CPU time counts every thread of the process (the
    runtime's own threads included), so the steps add up to what a photo costs the machine.

    Returns:
        ``photos`` and ``stages``: per step, the median and mean CPU ms per photo, in order.
    """
    from drywallqa.data.prompts import PromptConfig
    from drywallqa.files import atomic_write_bytes, atomic_write_json, read_photo
    from drywallqa.inference import Prediction
    from drywallqa.inference.render import jpeg_bytes, mask_png_bytes
    from drywallqa.qa.rules import QARules

    photos = list(photos)[:STAGE_PHOTOS]
    out = workdir / "predict-stages"
    out.mkdir(parents=True, exist_ok=True)
    spent: dict[str, list[float]] = {}

    def step(name: str, work: Callable[[], Any]) -> Any:
        cpu = time.process_time()  # every thread of the process, at a finer resolution than os.times
        result = work()
        spent.setdefault(name, []).append(1000 * (time.process_time() - cpu))
        return result

    threshold = float(predictor.threshold_for(prompt))
    qa_rules, prompt_config = QARules.default(), PromptConfig.default()  # read once, as predict does
    for index, path in enumerate([photos[0], *photos]):  # the first photo again: a warm-up, not counted
        photo = step("decode", lambda: read_photo(path))
        inputs = step("resize to the model input", lambda: predictor.prepare(photo.pixels))
        logits, confidence = step("model", lambda: predictor.forward_batch(inputs.pixels, [prompt] * len(inputs)))
        result = step("logits to mask", lambda: predictor.finish(inputs.plan, logits, confidence, prompt))
        prediction = step("QA figures", lambda: Prediction.from_result(
            result, photo, image=path, model="bench", threshold=threshold, qa_rules=qa_rules,
            prompt_config=prompt_config))
        png = step("mask PNG", lambda: mask_png_bytes(result.mask))
        overlay = step("overlay (tint + JPEG)", lambda: jpeg_bytes(prediction.plot(), quality=90))
        step("COCO annotations", lambda: prediction.coco_annotations())
        step("writes (mask, overlay, record)", lambda: (atomic_write_bytes(out / "mask.png", png),
                                                         atomic_write_bytes(out / "overlay.jpg", overlay),
                                                         atomic_write_json(out / "record.json", prediction.to_dict(),
                                                                           indent=1)))
        if index == 0:
            spent.clear()
    return {
        "photos": len(photos),
        "stages": [{"stage": name, "cpu_ms_median": float(np.median(values)), "cpu_ms_mean": float(np.mean(values))}
                   for name, values in spent.items()],
    }


#: The large photo of :func:`measure_large_photo`: a 12 MP phone photo's size.
LARGE_PHOTO_SIZE = (3000, 4000)
#: The quick run's: still large enough for a few tiles.
QUICK_LARGE_PHOTO_SIZE = (960, 1280)


def large_photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A sharp synthetic wall photo of ``height`` x ``width``: synthetic crack renders of 1000 px side by side."""
    from drywallqa.data.synthetic import render_sample_image

    side = min(1000, height, width)
    rows, cols = -(-height // side), -(-width // side)
    renders = [render_sample_image("cracks", (seed, i), size=side).image for i in range(rows * cols)]
    grid = np.concatenate([np.concatenate(renders[r * cols : (r + 1) * cols], axis=1) for r in range(rows)], axis=0)
    return np.ascontiguousarray(grid[:height, :width])


def measure_large_photo(predictor, size: tuple[int, int] = LARGE_PHOTO_SIZE, prompt: str = E2E_PROMPT,
                        repeats: int = 2) -> dict[str, Any]:
    """Seconds per prompt of one large photo (a 12 MP phone photo's size), tiled ``auto`` and untiled.

    The photo is sharp (:func:`large_photo`), so ``auto`` judges it in tiles of 640 px
    (:mod:`~drywallqa.inference.tiling`): planning, cutting, the model on every tile, blending and
    the mask at full size; ``predict(..., tile=...)`` timed ``repeats`` times after one warm-up
    call, the median kept.

    Returns:
        ``width``, ``height``, ``megapixels``, ``cores``, ``runtime``, and per tile setting
        (``auto``, ``off``): ``tiles``, ``tile_px``, ``seconds_per_prompt``.
    """
    from drywallqa.inference.onnx_runtime import available_cores

    photo = large_photo(*size)
    modes = {}
    for tile in ("auto", "off"):
        predictor.predict(photo, prompt, tile=tile)  # warm-up: first-call costs, the detail measure's imports
        seconds = []
        for _ in range(repeats):
            started = time.perf_counter()
            result = predictor.predict(photo, prompt, tile=tile)
            seconds.append(time.perf_counter() - started)
        tiling = result.extra.get("tiling", {})
        modes[tile] = {"tiles": tiling.get("tiles", 1), "tile_px": tiling.get("tile_px"),
                       "seconds_per_prompt": float(np.median(seconds))}
    return {"width": size[1], "height": size[0], "megapixels": round(size[0] * size[1] / 1e6, 1),
            "cores": available_cores(), "runtime": predictor.name, "repeats": repeats, **modes}


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


def measure_end_to_end(settings: BenchSettings, model, workdir: Path, say: Callable[[str], None]) -> dict[str, Any]:
    """The end-to-end section: predict with the shipped model's default runtime (``quick``: the
    bench's tiny model) with one prompt, then two, then serve; a part that cannot run is recorded
    with its reason."""
    from drywallqa.bench.prompts import measure_predict_two_prompts
    from drywallqa.inference import BatchedPredictor, load_predictor

    section: dict[str, Any] = {}
    try:
        spec = str(model.save_pretrained(workdir / "e2e-model")) if settings.quick else None
        photos, source = e2e_photo_files(settings, workdir)
        predictor = load_predictor(spec, device=settings.device, say=say)
        say(f"predict end to end over {source} ...")
        section["predict"] = {**measure_predict_e2e(predictor, photos, workdir), "photos": source,
                              "model": "tiny random promptunet" if settings.quick else "shipped"}
        say("predict, step by step ...")
        section["predict"]["steps"] = measure_predict_stages(predictor, photos, workdir)
        say("predict with two prompts, each pair run whole and each photo encoded once ...")
        assert isinstance(predictor, BatchedPredictor)  # every runtime load_predictor gives is batched
        section["predict_two_prompts"] = measure_predict_two_prompts(
            predictor, photos, workdir, section["predict"]["end_to_end_images_per_s"], rounds=1 if settings.quick else 2)
    except Exception as exc:  # noqa: BLE001 - reported; the rest of the report stands
        section["predict_skipped"] = f"failed: {exc}"
        say(f"skip predict end to end: {exc}")
    else:
        size = QUICK_LARGE_PHOTO_SIZE if settings.quick else LARGE_PHOTO_SIZE
        say(f"a {size[1]}x{size[0]} photo, tiled and untiled ...")
        try:
            section["large_photo"] = measure_large_photo(predictor, size, repeats=1 if settings.quick else 2)
        except Exception as exc:  # noqa: BLE001 - reported; the rest of the report stands
            section["large_photo_skipped"] = f"failed: {exc}"
    if settings.serve_seconds:
        try:
            section["serve"] = measure_serve_e2e(settings.serve_seconds, settings.serve_baseline_rev, settings.quick, say)
        except Exception as exc:  # noqa: BLE001 - reported; the rest of the report stands
            section["serve_skipped"] = str(exc)
            say(f"skip serve end to end: {exc}")
    else:
        section["serve_skipped"] = "not asked for (serve_seconds 0)"
    return section
