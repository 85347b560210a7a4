"""The README's main job, `drywallqa quickstart`, end to end (with a tiny model for speed)."""

import json

import numpy as np

from drywallqa.cli import main
from drywallqa.models import build_model


def test_quickstart_writes_data_predictions_and_reports(tmp_path, capsys):
    model_dir = build_model("promptunet", pretrained=False, text_encoder="hashing", image_size=64).save_pretrained(tmp_path / "model")
    out = tmp_path / "qs"
    assert main(["quickstart", str(out), "--images", "24", "--model", str(model_dir)]) == 0
    printed = capsys.readouterr().out
    assert "[4/4]" in printed and "leakage drywall-join" in printed
    assert printed.count("mask IoU against the generator's exact masks") == 2
    for name in ("cracks", "drywall-join"):
        assert (out / f"report-{name}.html").stat().st_size > 1000
        assert (out / "predictions" / name / "results.jsonl").is_file()
        # Every prediction is scored against the true mask, which the report shows beside it.
        records = [json.loads(line) for line in (out / "predictions" / name / "results.jsonl").read_text().splitlines()]
        assert records and all(0.0 <= r["truth"]["iou"] <= 1.0 for r in records)
        assert all((out / "predictions" / name / r["truth"]["overlay"]).is_file() for r in records)
        html = (out / f"report-{name}.html").read_text()
        assert html.count('<div class="pair">') == len(records)  # each prediction beside its true mask
        assert f"<b>{np.mean([r['truth']['iou'] for r in records]):.2f}</b>" in html  # their mean IoU
    # A rerun resumes: nothing is predicted again.
    assert main(["quickstart", str(out), "--images", "24", "--model", str(model_dir)]) == 0
