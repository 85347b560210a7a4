"""``drywallqa evaluate`` handler with a monkeypatched load_predictor (no model code involved)."""

import argparse
import json

import pytest
from eval_fixtures import LookupPredictor, perfect, synthetic_fixture  # noqa: F401 (fixture)

from drywallqa.cli.evaluate import add_commands


def _parse(argv):
    parser = argparse.ArgumentParser(prog="drywallqa")
    add_commands(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


@pytest.fixture
def fake_model(monkeypatch, synthetic):
    asked = []

    def load_predictor(spec, device=None):
        asked.append((spec, device))
        return LookupPredictor(synthetic, perfect, name=f"fake:{spec}")

    # raising=False: the real load_predictor may not exist yet; the handler imports it lazily.
    monkeypatch.setattr("drywallqa.inference.load_predictor", load_predictor, raising=False)
    return asked


def test_evaluate_writes_json_markdown_plots_and_prints_tables(fake_model, synthetic, tmp_path, capsys):
    pytest.importorskip("matplotlib")  # --out draws plots; not a core dependency
    data = [str(ds.root) for ds in synthetic]
    args = _parse(["evaluate", "--model", "tiny", "--data", *data, "--split", "val", "--json", str(tmp_path / "r.json"),
                   "--out", str(tmp_path / "out"), "--sweep", "train", "--batch-size", "3", "--no-progress"])
    assert args.handler(args) == 0
    assert fake_model == [("tiny", None)]
    out = capsys.readouterr().out
    assert "Segmentation (per-image" in out and "crack" in out and "taping_area" in out
    assert "chosen on split 'train'" in out and "wrote" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["metadata"]["predictor"] == "fake:tiny" and report["metadata"]["split"] == "valid"
    assert report["metadata"]["threshold_split"] == "train"
    written = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"report.md", "report.json", "scores.png", "iou_histogram.png", "threshold_sweep.png"} <= written
    assert all((tmp_path / "out" / name).stat().st_size > 0 for name in written)


def test_default_model_and_max_images(fake_model, synthetic, tmp_path, capsys):
    args = _parse(["evaluate", "--data", str(synthetic[0].root), "--max-images", "1", "--threshold", "0.3",
                   "--json", str(tmp_path / "r.json"), "--no-progress"])
    assert args.handler(args) == 0
    assert fake_model == [(None, None)]  # None = the shipped default model
    meta = json.loads((tmp_path / "r.json").read_text())["metadata"]
    assert (meta["max_images"], meta["threshold"], meta["threshold_source"], meta["images"]) == (1, 0.3, "fixed", 1)


def test_threshold_and_sweep_are_exclusive(capsys):
    with pytest.raises(SystemExit):
        _parse(["evaluate", "--data", "x", "--threshold", "0.4", "--sweep", "train"])
    assert "not allowed with argument" in capsys.readouterr().err
