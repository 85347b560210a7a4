"""Inspection product: batch prediction, QA figures and verdicts, HTML reports, HTTP service.

- :func:`inspect_mask` (from :mod:`drywallqa.qa`, re-exported) measures a mask's QA figures for
  its prompt's class and judges them against :class:`QARules`.
- :func:`predict_images` runs a :class:`~drywallqa.inference.Predictor` over image files and
  writes masks, overlays, JSONL/CSV tables and COCO (RLE) for annotation tools, each from the
  pair's :class:`~drywallqa.inference.Prediction` (:func:`read_results` reads the records back;
  :meth:`~drywallqa.inference.Predictions.read` as predictions).
- :func:`write_report` turns a run into one self-contained HTML file.
- :func:`create_app` builds the FastAPI service (``POST /v1/segment`` and a web page).

``create_app`` is imported lazily so that prediction and reports do not need FastAPI.
"""

from drywallqa.qa import MaskInspection, QAFigures, QARules, Verdict, inspect_mask, measure_mask, prompt_class
from drywallqa.serving.predict import PredictionRun, predict_images
from drywallqa.serving.report import render_report, write_report
from drywallqa.serving.results import read_results

__all__ = [
    "MaskInspection", "PredictionRun", "QAFigures", "QARules", "Verdict", "create_app", "inspect_mask",
    "measure_mask", "predict_images", "prompt_class", "read_results", "render_report", "write_report",
]


def __getattr__(name: str):
    if name == "create_app":
        from drywallqa.serving.extra import require_serve_extra

        require_serve_extra()  # FastAPI is only needed by the service: a missing one names the pip command
        from drywallqa.serving.app import create_app

        return create_app
    raise AttributeError(f"module 'drywallqa.serving' has no attribute {name!r}")
