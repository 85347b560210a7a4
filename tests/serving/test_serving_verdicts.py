"""Photo verdicts over a mixed folder: crack photos fail on their cracks, never on a joint they do not show.

The photos come from the sample-data generator; the predictor answers each photo and prompt with
the generator's exact mask, so the verdicts depend on the QA rules alone. Every output that shows
verdicts is checked: the CLI summary, results.jsonl and CSV, summary.json, COCO, the HTML report,
and the truth check of the quickstart.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from drywallqa.cli import main
from drywallqa.files import read_photo
from drywallqa.inference import Predictions, Predictor, SegmentationResult
from drywallqa.qa import prompt_class
from drywallqa.serving import render_report
from drywallqa.serving.results import read_results
from drywallqa.serving.truth import attach_truth

PROMPTS = ("segment crack", "segment taping area")
PHOTOS_PER_KIND = 10


class ExactMaskPredictor(Predictor):
    """Answers each known photo with its exact mask of the prompt's class (an empty mask if it has none)."""

    name = "exact-masks"

    def __init__(self, truths: dict[tuple[str, str], np.ndarray]):
        self.by_pixels: dict[str, dict[str, np.ndarray]] = {}
        for (path, class_name), mask in truths.items():
            key = hashlib.sha1(read_photo(path).pixels.tobytes()).hexdigest()
            self.by_pixels.setdefault(key, {})[class_name] = mask

    def predict_batch(self, images, prompts, *, return_probabilities=False):
        results = []
        for image, prompt in zip(images, prompts):
            masks = self.by_pixels[hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()]
            mask = masks.get(prompt_class(prompt), np.zeros(image.shape[:2], dtype=bool))
            results.append(SegmentationResult(prompt=prompt, mask=mask, confidence=0.9))
        return results


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory) -> tuple[Path, dict[tuple[str, str], np.ndarray]]:
    """10 photos of a crack and 10 of a taped joint in one folder, and every photo's exact masks
    (``{(resolved path, class): mask}``; a crack photo has no taping mask, a joint photo no crack mask)."""
    from drywallqa.data.synthetic import generate_sample_data
    from drywallqa.serving.truth import sample_data_truths

    root = tmp_path_factory.mktemp("verdicts")
    paths = generate_sample_data(root / "data", images=60, seed=0, size=256)
    truths = {key: mask for split in ("train", "valid") for key, mask in sample_data_truths(paths.root, split).items()}
    folder = root / "mixed"
    folder.mkdir()
    chosen: dict[tuple[str, str], np.ndarray] = {}
    # A crack photo shows a crack; a joint photo shows a joint covering at least 2 % of it.
    for class_name, enough in (("crack", 1), ("taping_area", 0.02 * 256 * 256)):
        shown = sorted(path for (path, name), mask in truths.items() if name == class_name and mask.sum() >= enough)
        for path in shown[:PHOTOS_PER_KIND]:
            copy = shutil.copy(path, folder / Path(path).name)
            chosen[(str(Path(copy).resolve()), class_name)] = truths[(path, class_name)]
    assert len(chosen) == 2 * PHOTOS_PER_KIND
    return folder, chosen


@pytest.fixture
def exact_predictor(mixed_folder, monkeypatch) -> ExactMaskPredictor:
    """The predictor `drywallqa predict` gets in place of a model."""
    import drywallqa.cli.predict as cli_predict

    predictor = ExactMaskPredictor(mixed_folder[1])
    monkeypatch.setattr(cli_predict, "load_model_predictor", lambda *args, **kwargs: predictor)
    return predictor


def predict(folder: Path, out: Path, *options: str) -> int:
    return main(["predict", str(folder), *(x for p in PROMPTS for x in ("--prompt", p)), "--out", str(out),
                 "--no-progress", *options])


def crack_photos(chosen) -> set[str]:
    return {path for path, class_name in chosen if class_name == "crack"}


def test_mixed_folder_fails_the_crack_photos_and_passes_the_joint_photos(mixed_folder, exact_predictor, tmp_path, capsys):
    folder, chosen = mixed_folder
    out = tmp_path / "out"
    assert predict(folder, out) == 0
    printed = capsys.readouterr().out.splitlines()
    # The photos' verdicts come first; per mask, the crack photos' taping is `not found`, not a fail.
    assert printed[0] == "photos: 10 fail, 10 pass, 0 not found, 0 unchecked"
    assert printed[1].endswith("masks: 10 fail, 20 pass, 10 not found, 0 unchecked")

    records, _ = read_results(out)
    cracks = crack_photos(chosen)
    by_photo = {}
    for record in records:
        crack_photo = str(Path(record["image"]).resolve()) in cracks
        by_photo[record["image"]] = record["photo_verdict"]
        expected = {("crack", True): "fail", ("taping_area", True): "not found",
                    ("crack", False): "pass", ("taping_area", False): "pass"}[(record["class"], crack_photo)]
        assert record["verdict"] == expected, record
        assert record["photo_verdict"] == ("fail" if crack_photo else "pass")
        assert list(record)[:2] == ["image", "photo_verdict"]
    assert len(by_photo) == 20

    with open(out / "results.csv", newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0])[:3] == ["image", "photo_verdict", "prompt"]
    assert [(r["image"], r["photo_verdict"], r["verdict"]) for r in rows] == \
        [(r["image"], r["photo_verdict"], r["verdict"]) for r in records]

    summary = json.loads((out / "summary.json").read_text())
    assert summary["photo_verdicts"] == {"fail": 10, "pass": 10, "not found": 0, "unchecked": 0}
    assert summary["verdicts"] == {"fail": 10, "pass": 20, "not found": 10, "unchecked": 0}
    assert summary["qa_rules"] == "built-in qa-rules.yaml" and "thresholds" not in summary

    coco = json.loads((out / "coco.json").read_text())
    assert coco["info"]["photo_verdicts"] == summary["photo_verdicts"]
    assert {(folder / image["file_name"]).resolve().as_posix(): image["photo_verdict"] for image in coco["images"]} == \
        {Path(image).resolve().as_posix(): verdict for image, verdict in by_photo.items()}

    # The report: the real fails (the cracks) on top, the photo's verdict beside each row.
    html = render_report(Predictions.read(out), out)
    rows = re.findall(r'<tr class="([a-z-]+)">.*?<div>([^<]+)</div>.*?photo: ([a-z ]+)</div>', html)
    assert [row[0] for row in rows[:10]] == ["fail"] * 10 and {row[1] for row in rows[:10]} == {"segment crack"}
    assert "fail" not in [row[0] for row in rows[10:]]
    assert {row[0] for row in rows if row[1] == "segment taping area" and row[2] == "fail"} == {"not-found"}


@pytest.mark.parametrize("flag", ["--qa-rules", "--thresholds"])
def test_required_taping_restores_fails_for_a_joint_only_folder(mixed_folder, exact_predictor, tmp_path, capsys, flag):
    """`required: true` for taping: a photo without a joint fails again (the old behaviour), by the
    new flag or the old one (which says it was renamed)."""
    from importlib import resources

    folder, chosen = mixed_folder
    # What the built-in file's comment tells a user to do: copy it and set `required: true`.
    builtin = resources.files("drywallqa").joinpath("configs/qa-rules.yaml").read_text(encoding="utf-8")
    assert builtin.count("required: false") == 1
    rules = tmp_path / "joint-photos.yaml"
    rules.write_text(builtin.replace("required: false", "required: true"))
    assert predict(folder, tmp_path / "out", flag, str(rules)) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0] == "photos: 10 fail, 10 pass, 0 not found, 0 unchecked"
    assert captured.out.splitlines()[1].endswith("masks: 20 fail, 20 pass, 0 not found, 0 unchecked")
    assert ("--thresholds is now --qa-rules" in captured.err) == (flag == "--thresholds")
    records, _ = read_results(tmp_path / "out")
    cracks = crack_photos(chosen)
    taping = [r for r in records if r["class"] == "taping_area" and str(Path(r["image"]).resolve()) in cracks]
    assert len(taping) == 10 and all(r["verdict"] == "fail" and r["severity"] == 100 for r in taping)
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["qa_rules"] == str(rules)


def test_truth_check_uses_the_same_states(mixed_folder, exact_predictor, tmp_path):
    """An empty true taping mask is `not found` by the built-in rules, `fail` when taping is required:
    a prediction that finds nothing there is right either way."""
    from drywallqa.qa import QARules

    folder, chosen = mixed_folder
    out = tmp_path / "out"
    assert predict(folder, out) == 0
    truths = dict(chosen)
    for path in crack_photos(chosen):
        truths[(path, "taping_area")] = np.zeros_like(chosen[(path, "crack")])
    scores = attach_truth(out, truths)
    assert scores.wrong == [] and scores.verdicts_right == {"crack": 10, "taping_area": 20}
    records, _ = read_results(out)
    empty = [r for r in records if r["class"] == "taping_area" and r["truth"]["truth_pixels"] == 0]
    assert len(empty) == 10 and {r["truth"]["verdict"] for r in empty} == {"not found"}

    required = QARules.from_dict({"classes": {"taping_area": {"figures": "joint", "min_area_percent": 1.0,
                                                              "required": True}}})
    attach_truth(out, truths, qa_rules=required)
    records, _ = read_results(out)
    assert {r["truth"]["verdict"] for r in records if r["class"] == "taping_area" and r["truth"]["truth_pixels"] == 0} \
        == {"fail"}


@pytest.mark.parametrize("command", ["predict", "serve", "watch"])
@pytest.mark.parametrize(("text", "field"), [
    ("classes: {crack: {figures: crack, must_show: true}}", r"classes\.crack: unknown key\(s\) must_show"),
    ("classes: {taping_area: {figures: joint, required: 'yes'}}", r"classes\.taping_area\.required: expected true or false"),
    ("classes: {stain: {required: true}}", r"classes\.stain\.required: 'stain' is not a prompt class"),
])
def test_a_bad_rules_file_is_one_line_and_exit_2_before_the_model_loads(tmp_path, monkeypatch, capsys, command, text, field):
    import importlib

    module = importlib.import_module(f"drywallqa.cli.{command}")

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the QA rules were checked")

    monkeypatch.setattr(module, "load_model_predictor", no_model, raising=False)
    monkeypatch.setattr("drywallqa.cli.common.load_model_predictor", no_model)
    rules = tmp_path / "rules.yaml"
    rules.write_text(text)
    argv = {"predict": ["predict", str(tmp_path), "--prompt", "segment crack", "--out", str(tmp_path / "out")],
            "serve": ["serve"], "watch": ["watch", str(tmp_path / "no-video.mp4"), "--prompt", "segment crack"]}[command]
    assert main([*argv, "--qa-rules", str(rules)]) == 2
    err = capsys.readouterr().err.strip()
    assert re.fullmatch(rf"error: {re.escape(str(rules))}: {field}.*", err), err
    assert not (tmp_path / "out").exists()


def test_required_on_a_class_of_the_users_prompts_is_accepted(mixed_folder, exact_predictor, tmp_path, capsys):
    """`required` may name a class the user's --prompts adds; the built-in classes stay judged."""
    folder, _ = mixed_folder
    prompts = tmp_path / "prompts.yaml"
    prompts.write_text("classes:\n  crack: {prompt: segment crack}\n  taping_area: {prompt: segment taping area}\n"
                       "  stain: {prompt: segment stain}\n")
    rules = tmp_path / "rules.yaml"
    rules.write_text("classes:\n  crack: {figures: crack, defect: true, fail_if_px: {longest_px: {above: 30}}}\n"
                     "  stain: {figures: area, required: true}\n")
    assert predict(folder, tmp_path / "out", "--qa-rules", str(rules), "--prompts", str(prompts)) == 0
    # taping_area has no rules in this file: unchecked; the photo verdict is the crack's.
    assert capsys.readouterr().out.splitlines()[0] == "photos: 10 fail, 10 pass, 0 not found, 0 unchecked"


def test_http_api_answers_the_photo_verdict_first(dark_predictor):
    """POST /v1/segment: the photo's verdict, then each prompt's; the schema lists the four states."""
    pytest.importorskip("fastapi", reason="the HTTP service needs FastAPI (pip install 'drywallqa[serve]')")
    pytest.importorskip("multipart", reason="FastAPI forms need python-multipart (pip install 'drywallqa[serve]')")
    import io

    from fastapi.testclient import TestClient
    from PIL import Image
    from serving_helpers import dark_line_image

    from drywallqa.serving import create_app

    client = TestClient(create_app(dark_predictor, timeout_s=10))

    def segment(image: np.ndarray) -> dict:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        response = client.post("/v1/segment", data={"prompt": list(PROMPTS)},
                               files={"image": ("wall.png", buffer.getvalue(), "image/png")})
        assert response.status_code == 200, response.text
        return response.json()

    crack = segment(dark_line_image())                    # an 80 px dark line: a long crack, and "taping" found
    assert list(crack)[0] == "photo_verdict" and crack["photo_verdict"] == "fail"
    assert [r["verdict"] for r in crack["results"]] == ["fail", "pass"]
    bare = segment(np.full((64, 96, 3), 200, dtype=np.uint8))  # a bare wall: no crack, no joint
    assert (bare["photo_verdict"], [r["verdict"] for r in bare["results"]]) == ("pass", ["pass", "not found"])
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    assert schema["SegmentResponse"]["properties"]["photo_verdict"]["enum"] == ["fail", "pass", "not found", "unchecked"]
    assert schema["SegmentResult"]["properties"]["verdict"]["enum"] == ["fail", "pass", "not found", "unchecked"]
