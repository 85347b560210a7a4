"""The goals ``drywallqa bench`` checks and the ratios they rest on: PromptUNet against CLIPSeg and SAM
measured in the same run, on the CPU, on the GPU, and end to end.

Every function here reads the report's JSON form (see :meth:`~drywallqa.bench.BenchReport.to_dict`),
so a report loaded from an earlier run's file is checked the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from drywallqa.bench.settings import PROMPTUNET_LABEL

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
#: The goals of the product-path issue: predict end to end against model-only, serve against the
#: server it replaces (successful photos/s) and its p95 latency under the load.
E2E_GOALS = {"predict_vs_model_only": 0.8, "serve_vs_baseline": 4.0, "serve_p95_ms": 1000.0}
#: The goals of encoding a photo once for all its prompts: a second prompt's model-only cost (two
#: prompts against one, on the runtime of the CPU or GPU goals), and predict's photos/s with two
#: prompts against the same runtime running each pair whole (as before).
PROMPT_GOALS = {"two_prompts_vs_one": 1.35, "predict_two_prompts_vs_per_pair": 1.4}


def compute_ratios(results: Sequence[dict]) -> dict[str, dict[str, float]]:
    """Per PromptUNet runtime: throughput and batch-1 latency relative to CLIPSeg and SAM (same run).

    Returns:
        ``{runtime: {"throughput_vs_clipseg", "throughput_vs_sam", "latency_vs_clipseg",
        "latency_vs_sam"}}``; a ratio > 1 means PromptUNet is that many times faster.
    """
    baselines = {r["model"]: r for r in results if r["model"] != PROMPTUNET_LABEL}
    ratios: dict[str, dict[str, float]] = {}
    for result in results:
        if result["model"] != PROMPTUNET_LABEL:
            continue
        entry = {}
        for name, baseline in baselines.items():
            entry[f"throughput_vs_{name}"] = result["best_throughput"] / baseline["best_throughput"]
            entry[f"latency_vs_{name}"] = baseline["latency_p50_ms"] / result["latency_p50_ms"]
        ratios[result["runtime"]] = entry
    return ratios


def goal_result(results: Sequence[dict], family: str = GOAL_RUNTIMES[0]) -> dict | None:
    """The fastest (batch-1 p50) PromptUNet result among the thread variants of one runtime family."""
    candidates = [r for r in results if r["model"] == PROMPTUNET_LABEL and r["runtime"].startswith(family)]
    return min(candidates, key=lambda r: r["latency_p50_ms"], default=None)


def evaluate_goals(report: dict) -> list[dict[str, Any]]:
    """The goals of the deployment issue for the report's device (see :func:`_cpu_goals`, :func:`_gpu_goals`)."""
    device = report.get("settings", {}).get("device", "cpu")
    return (_gpu_goals(report) if device == "cuda" else _cpu_goals(report)) + _e2e_goals(report) + _prompt_goals(report)


def _prompt_goals(report: dict) -> list[dict[str, Any]]:
    """A photo encoded once for all its prompts: model only on the goal runtime (the fastest
    ONNX Runtime fp32 variant on a CPU, the highest-throughput runtime on a GPU), and predict."""
    promptunet = [r for r in report["results"] if r["model"] == PROMPTUNET_LABEL]
    if report.get("settings", {}).get("device") == "cuda":
        result = max(promptunet, key=lambda r: r["best_throughput"], default=None)
    else:
        result = goal_result(report["results"])
    rows = []
    if promptunet:
        two = (result or {}).get("two_prompts") or {}
        rows.append(_goal_row("two prompts on one photo vs one prompt, model only", "x", "<=",
                              PROMPT_GOALS["two_prompts_vs_one"], two.get("ratio"),
                              result["runtime"] if result else GOAL_RUNTIMES[0]))
    predict = (report.get("end_to_end") or {}).get("predict_two_prompts")
    if predict:
        runtime = (report["end_to_end"].get("predict") or {}).get("runtime", "default")
        rows.append(_goal_row("predict with two prompts: photos/s vs each pair run whole", "x", ">=",
                              PROMPT_GOALS["predict_two_prompts_vs_per_pair"], predict["ratio"], runtime))
    return rows


def _e2e_goals(report: dict) -> list[dict[str, Any]]:
    """The product path: predict against model-only, serve against the server it replaces."""
    section = report.get("end_to_end") or {}
    rows = []
    predict = section.get("predict")
    if predict:
        rows.append(_goal_row(f"predict end to end vs model-only (batch {predict['batch_size']})", "x", ">=",
                              E2E_GOALS["predict_vs_model_only"], predict["ratio"], predict["runtime"]))
    serve = section.get("serve")
    if serve:
        rows += [
            _goal_row("serve successful photos/s vs the server it replaces", "x", ">=", E2E_GOALS["serve_vs_baseline"],
                      serve["photos_per_s_ratio"], "serve"),
            _goal_row("serve p95 latency under the load", "ms", "<=", E2E_GOALS["serve_p95_ms"],
                      serve["current"]["p95_ms"], "serve"),
        ]
    return rows


def _goal_row(name: str, unit: str, op: str, target: float, value: float | None, runtime: str) -> dict[str, Any]:
    met = None if value is None else (value <= target if op == "<=" else value >= target)
    return {"goal": name, "unit": unit, "target": f"{op} {target:g}", "value": value, "met": met, "runtime": runtime}


def _cpu_goals(report: dict) -> list[dict[str, Any]]:
    """The CPU goals, checked on the fastest variant of each ONNX Runtime precision."""
    rows = []
    for family in GOAL_RUNTIMES:
        result = goal_result(report["results"], family)
        if result is None and family != GOAL_RUNTIMES[0]:
            continue  # only fp32 is reported as missing; int8 is optional
        runtime = result["runtime"] if result else family
        ratios = report["ratios"].get(runtime, {})
        rows += [
            _goal_row("ONNX Runtime batch-1 p50 latency", "ms", "<=", CPU_GOALS["latency_p50_ms"],
                      result["latency_p50_ms"] if result else None, runtime),
            _goal_row("throughput vs CLIPSeg rd64", "x", ">=", CPU_GOALS["throughput_vs_clipseg"],
                      ratios.get("throughput_vs_clipseg"), runtime),
            _goal_row("throughput vs SAM ViT-B", "x", ">=", CPU_GOALS["throughput_vs_sam"], ratios.get("throughput_vs_sam"), runtime),
        ]
    return rows


def _gpu_goals(report: dict) -> list[dict[str, Any]]:
    """The GPU goals: the highest-throughput PromptUNet runtime, and batch-1 latency through CUDA graphs."""
    promptunet = [r for r in report["results"] if r["model"] == PROMPTUNET_LABEL]
    best = max(promptunet, key=lambda r: r["best_throughput"], default=None)
    runtime = best["runtime"] if best else "any"
    ratios = report["ratios"].get(runtime, {})
    graphs = next((r for r in promptunet if r["runtime"] == GPU_LATENCY_RUNTIME), None)
    return [
        _goal_row(f"throughput at {report['settings']['image_size']} px", "img/s", ">=", GPU_GOALS["throughput"],
                  best["best_throughput"] if best else None, runtime),
        _goal_row("throughput vs CLIPSeg rd64 (bf16)", "x", ">=", GPU_GOALS["throughput_vs_clipseg"],
                  ratios.get("throughput_vs_clipseg"), runtime),
        _goal_row("throughput vs SAM ViT-B (bf16)", "x", ">=", GPU_GOALS["throughput_vs_sam"], ratios.get("throughput_vs_sam"), runtime),
        _goal_row("batch-1 p50 latency", "ms", "<=", GPU_GOALS["latency_p50_ms"],
                  graphs["latency_p50_ms"] if graphs else None, GPU_LATENCY_RUNTIME),
    ]

