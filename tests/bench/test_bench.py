"""``drywallqa bench``: the quick run writes the report with every expected key; settings are validated."""

from __future__ import annotations

import json
import re
import time

import numpy as np
import pytest

from drywallqa.bench import BenchSettings, PeakMemory
from drywallqa.cli import main
from drywallqa.errors import ConfigError
from drywallqa.inference import tensorrt_available

for _module in ("onnx", "onnxruntime"):
    pytest.importorskip(_module, reason='needs the export extra: pip install "drywallqa[export]"')


@pytest.mark.integration  # PromptUNet, CLIPSeg and SAM on two runtimes, end to end
def test_quick_bench_writes_json_and_markdown(tmp_path, capsys) -> None:
    json_path, markdown_path = tmp_path / "bench.json", tmp_path / "performance.md"
    code = main([
        "bench", "--quick", "--runtimes", "torch-fp32,onnxruntime-fp32,tensorrt-fp16",
        "--json", str(json_path), "--markdown", str(markdown_path), "--note", "test run",
    ])
    assert code == 0
    report = json.loads(json_path.read_text())

    assert {"format_version", "started", "duration_s", "command", "machine", "settings", "results", "skipped",
            "pipeline", "onnxruntime_profile", "ratios", "goals"} <= set(report)
    assert {"cpu", "cores_available", "torch", "onnxruntime", "torch_threads", "onnxruntime_intra_op_threads",
            "load_average_start"} <= set(report["machine"])
    assert report["settings"]["quick"] is True and report["settings"]["note"] == "test run"
    runs = {(r["model"], r["runtime"]): r for r in report["results"]}
    assert set(runs) == {("promptunet", "torch-fp32"), ("promptunet", "onnxruntime-fp32"),
                         ("clipseg", "torch-fp32"), ("sam", "torch-fp32")}
    for result in runs.values():
        assert 0 < result["latency_p50_ms"] <= result["latency_p95_ms"]
        assert result["best_throughput"] > 0 and str(result["best_batch"]) in result["throughput"]
        assert result["cpu_ms_p50"] >= 0 and result["parameters"] > 0
        assert result["peak_memory_mib"] is not None
    assert runs[("promptunet", "onnxruntime-fp32")]["parity"]["median_split_iou"] >= 0.999
    if not tensorrt_available():
        assert [(s["runtime"], "TensorRT" in s["reason"]) for s in report["skipped"]] == [("tensorrt-fp16", True)]
    for runtime in ("torch-fp32", "onnxruntime-fp32"):
        assert set(report["ratios"][runtime]) == {
            "throughput_vs_clipseg", "throughput_vs_sam", "latency_vs_clipseg", "latency_vs_sam"}
        assert set(report["pipeline"][runtime]["stages_p50_ms"]) == {
            "decode", "resize", "model", "upsample_threshold", "png_encode"}
    assert [g["goal"] for g in report["goals"]] == [
        "ONNX Runtime batch-1 p50 latency", "throughput vs CLIPSeg rd64", "throughput vs SAM ViT-B",
        "predict end to end vs model-only (batch 1)", "two prompts on one photo vs one prompt, model only",
        "predict with two prompts: photos/s vs each pair run whole"]
    for runtime in ("torch-fp32", "onnxruntime-fp32"):  # two prompts on one photo, beside one and beside per pair
        two = runs[("promptunet", runtime)]["two_prompts"]
        assert two["ratio"] > 0 and two["per_pair_ratio"] > 0 and two["prompts"] == ["segment crack", "segment taping area"]
    two_prompts = report["end_to_end"]["predict_two_prompts"]
    assert two_prompts["ratio"] > 0 and two_prompts["shared"]["model_calls"] >= 1 and two_prompts["photos"] == 8
    assert "## Two prompts on one photo" in markdown_path.read_text().splitlines()
    predict = report["end_to_end"]["predict"]
    assert predict["images"] == 8 and predict["ratio"] > 0 and predict["runtime"].endswith("onnxruntime-fp32")
    assert predict["model_only"]["before"]["images_per_s"] > 0 and predict["model_calls"] >= 1
    steps = {s["stage"]: s for s in predict["steps"]["stages"]}
    assert predict["steps"]["photos"] == 8 and {"decode", "model", "QA figures", "overlay (tint + JPEG)",
                                                 "COCO annotations", "writes (mask, overlay, record)"} <= set(steps)
    assert steps["model"]["cpu_ms_median"] > 0
    large = report["end_to_end"]["large_photo"]  # a large photo's seconds per prompt, tiled and not
    assert large["auto"]["tiles"] > 1 and large["off"]["tiles"] == 1 and large["cores"] >= 1
    assert large["auto"]["seconds_per_prompt"] > 0 and large["off"]["seconds_per_prompt"] > 0
    assert report["end_to_end"]["serve_skipped"].startswith("not asked for")
    assert report["onnxruntime_profile"]["by_op_type"][0]["share"] > 0

    # The Markdown's structure and figures, not its sentences: its sections, and a table row per goal.
    markdown = markdown_path.read_text()
    headings = [line for line in markdown.splitlines() if line.startswith("#")]
    assert headings[0] == "# Performance" and "## Goals (CPU)" in headings
    assert sum(heading.startswith("## End to end") for heading in headings) >= 1
    rows = [line for line in markdown.splitlines() if line.startswith("| ")]
    for goal in report["goals"]:
        assert any(row.startswith(f"| {goal['goal']} ({goal['runtime']}) | {goal['target']} ") for row in rows), goal
    assert "drywallqa bench --quick" in markdown  # the command that makes it
    assert str(json_path) in capsys.readouterr().out

    rendered = tmp_path / "again.md"
    assert main(["bench", "--from-json", str(json_path), "--markdown", str(rendered)]) == 0
    assert rendered.read_text() == markdown  # the report is a pure function of the JSON


def test_unknown_runtime_is_rejected() -> None:
    with pytest.raises(ConfigError, match="unknown runtime.*openvino.*expected some of"):
        BenchSettings.create(quick=True, device="cpu", runtimes=("openvino",))


def test_bench_cli_reports_unknown_runtime(capsys) -> None:
    assert main(["bench", "--quick", "--runtimes", "openvino"]) == 2
    assert "unknown runtime(s) openvino" in capsys.readouterr().err


def test_peak_memory_sees_an_allocation() -> None:
    with PeakMemory("cpu") as memory:
        block = np.ones(40 * 2**20 // 8)  # 40 MiB of float64
        block += 1
    del block
    assert memory.peak_mib is not None and memory.peak_mib >= 35


def test_goals_are_checked_per_onnxruntime_precision() -> None:
    from drywallqa.bench.goals import compute_ratios, evaluate_goals

    def result(model, runtime, p50, throughput):
        return {"model": model, "runtime": runtime, "latency_p50_ms": p50, "best_throughput": throughput}

    results = [result("promptunet", "onnxruntime-fp32", 22.0, 45.0), result("promptunet", "onnxruntime-fp32-1-thread", 38.0, 27.0),
               result("promptunet", "onnxruntime-int8", 13.0, 80.0), result("clipseg", "torch-fp32", 90.0, 15.0),
               result("sam", "torch-fp32", 5600.0, 0.18)]
    report = {"results": results, "ratios": compute_ratios(results)}
    goals = {(g["runtime"], g["goal"]): g["met"] for g in evaluate_goals(report)}
    assert goals[("onnxruntime-fp32", "throughput vs CLIPSeg rd64")] is False  # 3x
    assert goals[("onnxruntime-int8", "throughput vs CLIPSeg rd64")] is True  # 5.3x
    assert not any(runtime.endswith("-1-thread") for runtime, _ in goals)  # the faster variant is the one checked
    no_int8 = [r for r in results if "int8" not in r["runtime"]]
    assert {g["runtime"] for g in evaluate_goals({"results": no_int8, "ratios": compute_ratios(no_int8)})} == {"onnxruntime-fp32"}


def test_serve_section_of_the_report() -> None:
    from drywallqa.bench.goals import evaluate_goals
    from drywallqa.bench.markdown import _end_to_end_section

    def run(photos_per_s, p95, cpu, code, batching):
        return {"photos_per_s": photos_per_s, "p50_ms": p95 / 2, "p95_ms": p95, "cpu_ms_per_photo": cpu, "code": code,
                "batching": batching, "load_average_before": [1.0, 1.0, 1.0], "load_average_after": [1.5, 1.0, 1.0],
                "report": {"load": {"clients": 16, "photo": "synthetic cracks 640x640 JPEG", "garbage": 0.25,
                                    "slow_clients": 200}}}

    serve = {"baseline": run(6.0, 2500, 300.0, "git revision abc1234 (abc1234)", None),
             "current": run(30.0, 800, 60.0, "this checkout", {"calls": 100, "pairs": 600, "mean_batch": 6.0}),
             "seconds": 60, "baseline_rev": "abc1234", "photos_per_s_ratio": 5.0, "cpu_per_photo_ratio": 5.0}
    report = {"settings": {"device": "cpu"}, "results": [], "ratios": {}, "end_to_end": {"serve": serve}}
    goals = evaluate_goals(report)[-2:]
    assert [(g["goal"], g["value"], g["met"]) for g in goals] == [
        ("serve successful photos/s vs the server it replaces", 5.0, True), ("serve p95 latency under the load", 800, True)]

    text = "\n".join(_end_to_end_section(report))
    assert "git revision abc1234" in text and "| current | this checkout | 30.00 | 400 | 800 | 60.0 | 6.00 |" in text
    assert "5.00x" in text  # the ratio of the two runs' photos/s


def test_thread_cpu_counts_each_role_and_threads_that_end_inside_the_block() -> None:
    """A model thread and short-lived worker threads are counted by role, even after they end."""
    import sys
    import threading

    from drywallqa.bench.end_to_end import THREAD_ROLES
    from drywallqa.bench.timing import ThreadCPU

    if not sys.platform.startswith("linux"):
        pytest.skip("/proc/self/task is Linux-only")

    done = threading.Event()

    def burn(seconds: float) -> None:
        end = time.thread_time() + seconds
        while time.thread_time() < end:
            pass
        done.wait()  # alive until the sampler has seen its CPU time, however busy the machine

    with ThreadCPU(THREAD_ROLES, interval_s=0.01) as threads:
        model = threading.Thread(target=burn, args=(0.3,), name="drywallqa-model")
        workers = [threading.Thread(target=burn, args=(0.1,), name=f"drywallqa-predict_{i}") for i in range(3)]
        for thread in (model, *workers):
            thread.start()
        while sum(threads.seconds_by_role().values()) < 0.55:  # the sampler's readings so far
            time.sleep(0.01)
        done.set()
        for thread in (model, *workers):
            thread.join()
    by_role = threads.seconds_by_role()
    model_role = next(role for role in by_role if role.startswith("model thread"))
    workers_role = next(role for role in by_role if role.startswith("pipeline workers"))
    assert by_role[model_role] == pytest.approx(0.3, abs=0.08)
    assert by_role[workers_role] == pytest.approx(0.3, abs=0.1)  # three threads, all ended before the block did
    assert "sampler" not in by_role


def test_end_to_end_section_splits_the_cpu_by_thread() -> None:
    from drywallqa.bench.markdown import _end_to_end_section

    predict = {"photos": "200 photos", "model": "shipped", "runtime": "promptunet/onnxruntime-fp32", "batch_size": 1,
               "load_average": [1.0, 1.0, 1.0], "images": 200, "model_calls": 200, "ratio": 0.7,
               "end_to_end_images_per_s": 35.0, "end_to_end_cpu_ms_per_image": 50.0,
               "model_only": {"before": {"images_per_s": 50.0, "cpu_ms_per_image": 31.0},
                              "after": {"images_per_s": 50.0, "cpu_ms_per_image": 31.0}},
               "steps": {"photos": 40, "stages": [{"stage": "model", "cpu_ms_median": 31.0, "cpu_ms_mean": 31.0},
                                                  {"stage": "decode", "cpu_ms_median": 1.0, "cpu_ms_mean": 1.0},
                                                  {"stage": "QA figures", "cpu_ms_median": 11.0, "cpu_ms_mean": 11.0}]},
               "cpu_ms_per_image_by_thread": {"model thread (the runtime's calling thread)": 21.0,
                                              "pipeline workers (decode, resize, QA figures, encoders, writes)": 16.0,
                                              "the runtime's own threads (native thread pools)": 11.0}}
    text = "\n".join(_end_to_end_section({"end_to_end": {"predict": predict}}))
    assert "| pipeline workers (decode, resize, QA figures, encoders, writes) | 16.00 |" in text
    assert "| all | 48.00 |" in text
    # The figures the text derives: the model's CPU in the run (model thread + the runtime's own
    # threads) beside model-only, and the workers' CPU beside the same steps measured alone.
    assert re.search(r"\b32\.0 ms\b", text) and re.search(r"\b31\.0 ms\b", text)
    assert re.search(r"\b16\.0 ms\b", text) and re.search(r"\b12\.0 ms\b", text)


def test_bench_refuses_a_missing_photo_folder_or_revision_at_once(tmp_path, capsys) -> None:
    assert main(["bench", "--quick", "--e2e-photos", str(tmp_path / "nowhere")]) == 2
    assert "--e2e-photos" in capsys.readouterr().err
    assert main(["bench", "--quick", "--serve-baseline", "no-such-revision-xyz"]) == 2
    assert "--serve-baseline no-such-revision-xyz: not a commit" in capsys.readouterr().err
