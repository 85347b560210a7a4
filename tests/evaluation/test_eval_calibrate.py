"""Per-class thresholds chosen on the validation groups, stored in the model folder, used by default."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from drywallqa.cli import main
from drywallqa.inference import CALIBRATION_FILE, load_predictor
from drywallqa.models import build_model


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model trained one epoch on the sample data (its training.json gives the carved splits)."""
    from drywallqa.data.synthetic import generate_sample_data

    root = tmp_path_factory.mktemp("calibrate")
    data = generate_sample_data(root / "data", images=24, size=96, seed=2).root
    flags = ["--set", "model.args.pretrained=false", "--set", "model.args.text_encoder=hashing", "--set",
             "trainer.num_workers=0", "--set", "data.keep_splits=true", "--image-size", "64", "--batch-size", "4"]
    assert main(["train", "--data", str(data), "--out", str(root / "run"), "--epochs", "1", "--no-progress", *flags]) == 0
    return data, root / "run" / "model"


def test_calibrate_writes_per_class_thresholds_that_predict_and_evaluate_use(trained, tmp_path, capsys):
    data, model = trained
    assert main(["calibrate", "--model", str(model), "--data", str(data / "cracks"), str(data / "drywall-join"),
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    calibration = json.loads((model / CALIBRATION_FILE).read_text())
    assert set(calibration["thresholds"]) == {"crack", "taping_area"} and calibration["chosen_on"]["split"] == "valid"
    assert "crack: threshold" in printed and "taping_area: threshold" in printed
    predictor = load_predictor(str(model), device="cpu")
    assert predictor.threshold_for("segment crack") == calibration["thresholds"]["crack"]
    assert predictor.threshold_for("highlight the tape between boards") == calibration["thresholds"]["taping_area"]
    assert predictor.threshold_for("segment mold") == 0.5  # no class: the default
    assert load_predictor(str(model), device="cpu", threshold=0.7).threshold_for("segment crack") == 0.7
    # evaluate reports at the model's own thresholds by default, naming them.
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--model", str(model), "--data", str(data / "cracks"), str(data / "drywall-join"),
                 "--split", "valid", "--json", str(out), "--no-progress"]) == 0
    meta = json.loads(out.read_text())["metadata"]
    assert meta["threshold_source"] == "model" and meta["threshold"] == calibration["thresholds"]


def test_a_broken_calibration_is_one_line(tmp_path, capsys):
    model = build_model("promptunet", pretrained=False, text_encoder="hashing", image_size=64).save_pretrained(tmp_path / "m")
    (model / CALIBRATION_FILE).write_text(json.dumps({"thresholds": {"crack": 1.5}}))
    image_dir = tmp_path / "photos"
    image_dir.mkdir()
    Image.new("RGB", (64, 64), (200, 200, 200)).save(image_dir / "wall.png")
    assert main(["predict", str(image_dir), "--model", str(model), "--prompt", "segment crack", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert CALIBRATION_FILE in err and err.count("\n") == 1


def test_an_export_carries_the_thresholds_of_its_weights(trained, tmp_path):
    data, model = trained
    if not (model / CALIBRATION_FILE).is_file():
        assert main(["calibrate", "--model", str(model), "--data", str(data / "cracks"), str(data / "drywall-join"),
                     "--no-progress"]) == 0
    thresholds = json.loads((model / CALIBRATION_FILE).read_text())["thresholds"]
    assert main(["export", "--model", str(model), "--out", str(tmp_path / "m.onnx")]) == 0
    assert (tmp_path / "m.calibration.json").is_file()
    predictor = load_predictor(str(tmp_path / "m.onnx"))
    assert predictor.threshold_for("segment crack") == thresholds["crack"]
