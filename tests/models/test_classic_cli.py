"""The classic architectures through the user's commands: `evaluate` and `predict --model NAME:DIR`."""

import json

import pytest
from tiny_checkpoints import save_tiny_checkpoint

from drywallqa.cli import main

SAMPLE = (16, 3)


@pytest.mark.parametrize("name, kind", [("clipseg", "clipseg"), ("sam3", "sam3")])
def test_zero_shot_evaluate_and_predict_through_the_cli(name, kind, sample, tmp_path, capsys):
    weights = save_tiny_checkpoint(kind, tmp_path / "weights")
    spec = f"{name}:{weights}"
    report = tmp_path / "report.json"
    assert main(["evaluate", "--model", spec, "--data", str(sample.cracks), str(sample.drywall_join),
                 "--split", "valid", "--max-images", "2", "--json", str(report), "--no-progress"]) == 0
    assert set(json.loads(report.read_text())["classes"]) == {"crack", "taping_area"}
    images = sample.cracks / "valid"
    out = tmp_path / "predictions"
    assert main(["predict", str(images), "--model", spec, "--prompt", "segment crack", "--out", str(out), "--no-progress"]) == 0
    assert (out / "results.jsonl").read_text().strip()


def test_missing_weights_is_one_line(tmp_path, capsys):
    assert main(["predict", str(tmp_path), "--model", f"clipseg:{tmp_path / 'nowhere'}", "--prompt", "segment crack",
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1
