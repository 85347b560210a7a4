"""What one ``drywallqa bench`` run measured: :class:`BenchReport`, its JSON form and its files.

The JSON file (``--json``) is :meth:`BenchReport.to_dict` plus the ``command`` that produced it;
``--from-json`` reads it back with :meth:`BenchReport.from_dict`, so a report renders the same
from the run and from its file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from drywallqa.bench.settings import BENCH_FORMAT_VERSION

# Keys that the JSON form has only once they were measured.
_OPTIONAL_KEYS = ("video", "end_to_end")


@dataclass
class BenchReport:
    """Measurements of one ``drywallqa bench`` run; ``print`` it for a summary.

    Attributes:
        started: UTC start time, ISO 8601.
        machine: CPU, cores, GPU, library versions, threads and load (what the numbers depend on).
        settings: The :class:`~drywallqa.bench.BenchSettings` as a dict.
        results: One dict per model and runtime (a :class:`~drywallqa.bench.timing.RuntimeResult`).
        skipped: ``{"model", "runtime", "reason"}`` per runtime that did not run.
        pipeline: Per runtime, JPEG bytes to mask PNG timed by stage.
        onnxruntime_profile: ONNX Runtime's per-operator profile, or None.
        video: Per runtime, frames/s of ``drywallqa watch``; None until one was measured.
        end_to_end: ``predict`` over a folder and ``serve`` under load; None when not measured.
        ratios: Per PromptUNet runtime, throughput and latency against CLIPSeg and SAM.
        goals: One row per goal: ``goal``, ``unit``, ``target``, ``value``, ``met``, ``runtime``.
        duration_s: Seconds the run took so far.
        format_version: Version of the JSON form.
        extra: Keys of a loaded file this version does not know, kept when it is written again.
    """

    started: str
    machine: dict[str, Any]
    settings: dict[str, Any]
    results: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    pipeline: dict[str, dict[str, Any]] = field(default_factory=dict)
    onnxruntime_profile: dict[str, Any] | None = None
    video: dict[str, dict[str, Any]] | None = None
    end_to_end: dict[str, Any] | None = None
    ratios: dict[str, dict[str, float]] = field(default_factory=dict)
    goals: list[dict[str, Any]] = field(default_factory=list)
    duration_s: float = 0.0
    format_version: int = BENCH_FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``format_version``, ``started``, ``machine``, ``settings``, ``results``,
        ``skipped``, ``pipeline``, ``onnxruntime_profile``, ``video`` and ``end_to_end`` (when
        measured), ``ratios``, ``goals``, ``duration_s``."""
        data: dict[str, Any] = {
            "format_version": self.format_version, "started": self.started, "machine": self.machine,
            "settings": self.settings, "results": self.results, "skipped": self.skipped, "pipeline": self.pipeline,
            "onnxruntime_profile": self.onnxruntime_profile,
        }
        data.update({key: getattr(self, key) for key in _OPTIONAL_KEYS if getattr(self, key) is not None})
        data.update(ratios=self.ratios, goals=self.goals, duration_s=self.duration_s)
        return {**data, **self.extra}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchReport:
        """A report from its JSON form (without ``command``)."""
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in data.items() if k in known},
                   extra={k: v for k, v in data.items() if k not in known})

    def markdown(self, command: str = "drywallqa bench") -> str:
        """The Markdown report (``docs/performance.md``); see :func:`~drywallqa.bench.render_markdown`."""
        from drywallqa.bench.markdown import render_markdown

        return render_markdown(self, command)

    def __repr__(self) -> str:
        met = [g["met"] for g in self.goals if g.get("met") is not None]
        return (
            f"BenchReport(device={self.settings.get('device')!r}, results={len(self.results)}, "
            f"skipped={len(self.skipped)}, goals_met={sum(met)}/{len(self.goals)}, duration_s={self.duration_s})"
        )

    def __str__(self) -> str:
        lines = [f"drywallqa bench on {self.machine.get('cpu')} ({self.settings.get('device')}), "
                 f"{self.started}, {self.duration_s} s"]
        lines += [result_line(result) for result in self.results]
        lines += [f"  skipped {s['model']} {s['runtime']}: {s['reason']}" for s in self.skipped]
        for goal in self.goals:
            met = "–" if goal["met"] is None else ("met" if goal["met"] else "NOT met")
            value = "–" if goal["value"] is None else f"{goal['value']:.4g}"
            lines.append(f"  goal {goal['goal']} ({goal['runtime']}): {value} {goal['unit']}, "
                         f"target {goal['target']}: {met}")
        return "\n".join(lines)


def result_line(result: dict[str, Any]) -> str:
    """One measured model and runtime on one line (the progress output of ``drywallqa bench``)."""
    return (
        f"  {result['model']} {result['runtime']} @{result['input_size']}: p50 {result['latency_p50_ms']:.1f} ms, "
        f"p95 {result['latency_p95_ms']:.1f} ms, cpu {result['cpu_ms_p50']:.1f} ms, "
        f"{result['best_throughput']:.2f} img/s @ batch {result['best_batch']}"
    )


def write_report(report: BenchReport, json_path: str | os.PathLike | None = None,
                 markdown_path: str | os.PathLike | None = None, command: str = "drywallqa bench") -> list[Path]:
    """Write the JSON (with ``command``) and/or Markdown report atomically; returns the paths written."""
    from drywallqa.files import atomic_write_json, atomic_write_text

    written = []
    if json_path:
        written.append(atomic_write_json(json_path, {**report.to_dict(), "command": command}, indent=2))
    if markdown_path:
        written.append(atomic_write_text(markdown_path, report.markdown(command)))
    return written
