"""`drywallqa report`: one self-contained HTML file, worst first."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
from PIL import Image
from serving_helpers import DarkPixelPredictor, dark_line_image

from drywallqa.cli import main
from drywallqa.files import write_image
from drywallqa.inference import Prediction, Predictions
from drywallqa.qa import QAFigures, Verdict
from drywallqa.serving import predict_images, render_report, write_report
from drywallqa.serving.report import sort_worst_first


def _run(tmp_path):
    photos = tmp_path / "photos"
    write_image(photos / "long.png", dark_line_image(cols=slice(5, 95)))            # 90 px crack: fails worse
    write_image(photos / "short.png", dark_line_image(cols=slice(40, 60)))          # 20 px: passes
    write_image(photos / "medium.png", dark_line_image(cols=slice(20, 70)))         # 50 px: fails
    (photos / "broken.png").write_bytes(b"nope")
    out = tmp_path / "out"
    predict_images([photos], ["segment crack", "segment mould"], out, DarkPixelPredictor())
    return out


def test_report_is_self_contained(tmp_path):
    out = _run(tmp_path)
    html_path = write_report(out, tmp_path / "report.html")
    text = html_path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", text, flags=re.IGNORECASE), "no external URL"
    sources = re.findall(r'\s(?:src|href)="([^"]*)"', text)
    assert sources and all(s.startswith("data:image/jpeg;base64,") for s in sources)
    assert "<link" not in text and "<script" not in text and "@import" not in text
    thumbnail = Image.open(io.BytesIO(base64.b64decode(sources[0].split(",", 1)[1])))
    assert thumbnail.format == "JPEG" and thumbnail.size == (96, 64)
    assert len(sources) == 6                                                       # 3 images x 2 prompts
    assert "broken.png" in text and "Unreadable images" in text


def test_report_rows_go_worst_first(tmp_path):
    out = _run(tmp_path)
    text = write_report(out / "results.jsonl", tmp_path / "r.html").read_text(encoding="utf-8")
    rows = re.findall(r'<tr class="(fail|pass|unchecked)">.*?<div class="file">([^<]+)</div><div>([^<]+)</div>', text)
    assert [(v, f) for v, f, p in rows if p == "segment crack"] == [
        ("fail", "long.png"), ("fail", "medium.png"), ("pass", "short.png")]
    assert [v for v, _, _ in rows] == ["fail", "fail", "pass", "unchecked", "unchecked", "unchecked"]


def _prediction(image: str, verdict: str, severity: float, prompt: str = "p", **fields) -> Prediction:
    return Prediction(image, prompt, "crack", QAFigures("crack", 1.0, 100, 1, confidence=0.5, longest_px=12.0),
                      Verdict(verdict, severity=severity, **fields), 96, 64, overlay_file="overlays/none.jpg")


def test_sort_worst_first_orders_by_verdict_then_severity():
    predictions = [_prediction("a", "pass", 0.9), _prediction("b", "fail", 1.5), _prediction("c", "unchecked", 0.0),
                   _prediction("d", "fail", 4.0), _prediction("e", "pass", 0.2)]
    assert [p.image for p in sort_worst_first(predictions)] == ["d", "b", "a", "e", "c"]


def test_report_escapes_text_and_handles_missing_overlays(tmp_path):
    prediction = _prediction("/x/<script>.jpg", "fail", 1.2, prompt="segment <b>crack</b>",
                             reasons=("longest_px 12 > 10 & more",))
    text = render_report([prediction], tmp_path)
    assert "<script>" not in text and "&lt;script&gt;.jpg" in text and "&amp; more" in text
    assert "overlay missing" in text


def test_report_cli(tmp_path, capsys):
    out = _run(tmp_path)
    assert main(["report", str(out), "--out", str(tmp_path / "cli.html"), "--title", "Site 4 walls"]) == 0
    assert "<title>Site 4 walls</title>" in (tmp_path / "cli.html").read_text(encoding="utf-8")
    assert main(["report", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.html")]) == 2
    assert "no such results file" in capsys.readouterr().err


def test_a_record_scored_against_truth_shows_the_truth_beside_the_prediction(tmp_path):
    """attach_truth: IoU of the saved mask against a known true mask, and the truth overlay in the report."""
    from drywallqa.serving.truth import attach_truth

    image_path = write_image(tmp_path / "wall.png", dark_line_image())
    predict_images([image_path], ["segment crack"], tmp_path / "run", DarkPixelPredictor())
    truth = np.zeros((64, 96), dtype=bool)
    truth[30:33, 10:50] = True  # half of the dark line the predictor finds
    scores = attach_truth(tmp_path / "run", {(str(image_path.resolve()), "crack"): truth})
    assert scores.iou["crack"] == pytest.approx(0.5, abs=0.05)
    (prediction,) = predictions = Predictions.read(tmp_path / "run")
    assert prediction.extra["truth"]["truth_pixels"] == int(truth.sum())
    # The 40 px true crack fails the rules as the 80 px predicted one does: the verdict is right.
    assert prediction.verdict.verdict == prediction.extra["truth"]["verdict"] == "fail"
    assert scores.verdicts_right == scores.scored == {"crack": 1} and scores.wrong == []
    html = render_report(predictions, tmp_path / "run")
    # The truth beside the prediction, with its IoU, and the right verdicts counted (values, not sentences).
    assert html.count('<div class="pair">') == 1 and f"IoU {prediction.extra['truth']['iou']:.2f}" in html
    assert "<b>1 of 1</b>" in html and 'class="wrong"' not in html


def test_a_verdict_is_right_when_it_is_the_true_masks_not_when_every_crack_photo_fails(tmp_path):
    """A crack photo whose true mask holds no crack, or one too short for the rules, should pass:
    a predicted crack there is a wrong verdict, named with both verdicts; judged by the run's rules."""
    from drywallqa.qa.rules import QARules
    from drywallqa.serving.truth import attach_truth

    image_path = write_image(tmp_path / "wall.png", dark_line_image())
    predict_images([image_path], ["segment crack"], tmp_path / "run", DarkPixelPredictor())
    key = (str(image_path.resolve()), "crack")
    hairline = np.zeros((64, 96), dtype=bool)
    hairline[31, 10:20] = True  # 10 px: under the 30 px rule, a pass
    for truth in (np.zeros((64, 96), dtype=bool), hairline):
        scores = attach_truth(tmp_path / "run", {key: truth})
        assert scores.verdicts_right == {"crack": 0} and scores.scored == {"crack": 1}
        assert scores.wrong == [("wall.png", "fail", "pass")]
        assert "verdicts as the exact masks' 0 of 1" in scores.describe("crack")
        html = render_report(Predictions.read(tmp_path / "run"), tmp_path / "run")
        assert html.count('class="wrong"') == 1 and html.count('<span class="badge fail">fail</span>') == 1
    # The run's own rules judge the truth: with no crack rules at all, both are unchecked.
    no_rules = QARules.from_dict({"classes": {}})
    assert attach_truth(tmp_path / "run", {key: hairline}, qa_rules=no_rules).wrong == [("wall.png", "fail", "unchecked")]
