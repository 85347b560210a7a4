"""``drywallqa bench``: PromptUNet on every available runtime beside CLIPSeg and SAM, in one run.

- :mod:`~drywallqa.bench.settings`: :class:`BenchSettings` and the per-model :class:`MeasurePlan`;
- :mod:`~drywallqa.bench.timing`: timed calls, :class:`PeakMemory` and one runtime's measurement;
- :mod:`~drywallqa.bench.runtimes`: the PromptUNet runtimes and the CLIPSeg and SAM baselines;
- :mod:`~drywallqa.bench.pipeline`: JPEG to mask PNG by stage, and ONNX Runtime's profile;
- :mod:`~drywallqa.bench.end_to_end`: ``predict`` over a folder and ``serve`` under load;
- :mod:`~drywallqa.bench.prompts`: two prompts on one photo against one, model only and end to end;
- :mod:`~drywallqa.bench.run`: :func:`run_benchmark`, the run itself;
- :mod:`~drywallqa.bench.report`, :mod:`~drywallqa.bench.goals`, :mod:`~drywallqa.bench.markdown`:
  the :class:`BenchReport` it returns, the goals it is checked against, and its Markdown form.

Example:
    >>> from drywallqa.bench import BenchSettings, run_benchmark          # doctest: +SKIP
    >>> report = run_benchmark(BenchSettings.create(quick=True), progress=print)
    >>> print(report)                     # one line per model and runtime, then the goals
    >>> report.to_dict()["results"][0]["latency_p50_ms"]
"""

from drywallqa.bench.markdown import render_markdown
from drywallqa.bench.report import BenchReport, write_report
from drywallqa.bench.run import run_benchmark
from drywallqa.bench.settings import BenchSettings, MeasurePlan
from drywallqa.bench.timing import PeakMemory

__all__ = ["BenchReport", "BenchSettings", "MeasurePlan", "PeakMemory", "render_markdown", "run_benchmark", "write_report"]
