"""EvalReport outputs: JSON with every field, Markdown, rich table, pandas, PNG plots."""

import io
import json

import pytest
from eval_fixtures import LookupPredictor, shifted, synthetic_fixture  # noqa: F401 (fixture)
from rich.console import Console

from drywallqa.evaluation import EvalReport, evaluate

METADATA_FIELDS = {
    "predictor", "split", "datasets", "images", "threshold", "threshold_source", "threshold_split", "zero_division",
    "box_iou_threshold", "max_images", "timestamp", "version", "predictor_info",
}
CLASS_FIELDS = {
    "class_name", "prompt", "target", "images", "empty_truth_images", "iou", "dice", "iou_pooled", "dice_pooled",
    "box", "confidence", "confidence_iou_pearson", "wrong_prompt_fp_rate", "wrong_prompt_images_with_fp",
    "wrong_prompts", "paraphrases",
}
RECORD_FIELDS = {"image", "dataset", "class_name", "iou", "dice", "confidence", "truth_pixels", "predicted_pixels"}


@pytest.fixture(scope="module")
def report(synthetic) -> EvalReport:
    predictor = LookupPredictor(synthetic, shifted, confidence_fn=lambda s, cls: 0.25 + 0.5 * len(s.annotations) / 3)
    return evaluate(predictor, synthetic, split="valid", sweep_split="train", examples=2, progress=False)


def test_json_has_every_field(report, tmp_path):
    data = json.loads(report.to_json(tmp_path / "r.json").read_text())
    assert set(data) == {"metadata", "definitions", "classes", "sweep", "notes", "leakage", "images"}
    assert data["leakage"]["known"] is False and data["leakage"]["shared_groups"] is None  # no training record given
    assert set(data["metadata"]) == METADATA_FIELDS
    assert data["metadata"]["threshold_source"] == "sweep" and data["metadata"]["threshold_split"] == "train"
    for name, scores in data["classes"].items():
        assert set(scores) == CLASS_FIELDS and scores["class_name"] == name
        assert set(scores["iou"]) == {"mean", "std", "n"}
        assert set(scores["box"]) == {"tp", "fp", "fn", "precision", "recall", "f1", "iou_threshold"}
        assert set(scores["wrong_prompts"][0]) == {"prompt_class", "prompt", "fp_rate", "images_with_fp"}
        assert set(scores["paraphrases"][0]) == {"prompt", "iou", "iou_pooled", "drop"}
    assert {"split", "thresholds", "mean_iou", "per_class", "images", "chosen", "chosen_per_class"} == set(data["sweep"])
    assert len(data["images"]) == len(report.records) and set(data["images"][0]) == RECORD_FIELDS
    assert {"iou", "iou_pooled", "empty_mask_rule", "threshold"} <= set(data["definitions"])


def test_short_repr_names_the_reductions(report):
    text = repr(report)
    assert len(text) < 400 and "per-image" in text and "pooled" in text and "sweep on train" in text


def test_markdown_and_rich_table_say_which_reduction(report):
    # Structure and values, not sentences: a column per reduction, every definition from the report's
    # one source, a row per class, the chosen threshold, the plot link.
    markdown = report.to_markdown(["scores.png"])
    lines = markdown.splitlines()
    headers = [[cell.strip() for cell in line.strip("|").split("|")] for line, below in zip(lines, lines[1:])
               if line.startswith("| ") and below.startswith("|---")]
    assert any({"IoU per-image", "IoU pooled", "Dice per-image", "Dice pooled"} <= set(header) for header in headers)
    assert len(headers) == 4  # segmentation, boxes and confidence, prompt fidelity, paraphrases
    for key, definition in report.to_dict()["definitions"].items():
        assert f"- **{key}**: {definition}" in lines
    assert {"| crack |", "| taping_area |"} <= {line[:line.index("|", 2) + 1] for line in lines if line.startswith("| ")}
    assert f"{report.sweep.chosen:g}" in markdown and f"`{report.sweep.split}`" in markdown
    assert "![scores](scores.png)" in lines
    out = io.StringIO()
    report.render(Console(file=out, width=200))
    text = out.getvalue()
    assert "per-image: mean ± std over images" in text and "taping_area" in text
    assert f"threshold: {report.metadata.threshold:g} (chosen on split 'train'" in text


def test_to_pandas_per_class_and_per_image(report):
    pytest.importorskip("pandas")  # not a core dependency
    frame = report.to_pandas()
    assert list(frame.index) == ["crack", "taping_area"]
    assert {"iou_mean", "iou_std", "iou_pooled", "box_f1", "wrong_prompt_fp_rate"} <= set(frame.columns)
    assert len(report.to_pandas(per_image=True)) == len(report.records)


def test_write_creates_json_markdown_and_every_png(report, tmp_path):
    pytest.importorskip("matplotlib")  # not a core dependency
    written = report.write(tmp_path / "out")
    names = sorted(p.name for p in written["plots"])
    assert names == ["confidence.png", "examples_crack.png", "examples_taping_area.png", "iou_histogram.png",
                     "scores.png", "threshold_sweep.png"]
    for path in [written["json"], written["markdown"], *written["plots"]]:
        assert path.stat().st_size > 0
    for path in written["plots"]:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"({path.name})" in written["markdown"].read_text()
    assert not list((tmp_path / "out").glob(".*tmp*"))  # atomic writes left no temporaries


def test_examples_keep_only_a_few_thumbnails(report):
    for name, sets in report.examples.items():
        assert len(sets["best"]) <= 2 and len(sets["worst"]) <= 2
        best = [ex.record.iou for ex in sets["best"]]
        worst = [ex.record.iou for ex in sets["worst"]]
        assert best == sorted(best, reverse=True) and worst == sorted(worst)
        assert min(best) >= max(worst)
        for ex in sets["best"] + sets["worst"]:
            assert ex.image.shape[:2] == ex.truth.shape == ex.prediction.shape and ex.record.class_name == name
