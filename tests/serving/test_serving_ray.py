"""``drywallqa predict --engine ray``: a local Ray with 2 workers writes what a local run writes."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from drywallqa.cli import main

PROMPTS = ["--prompt", "segment crack", "--prompt", "segment taping area"]


def test_missing_ray_names_the_pip_command(photo_folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)
    assert main(["predict", str(photo_folder), *PROMPTS, "--engine", "ray", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and 'pip install "drywallqa[ray]"' in err and err.count("\n") == 1


def test_unreachable_cluster_is_one_line_exit_2(photo_folder, tmp_path, capsys):
    pytest.importorskip("ray")
    assert main(["predict", str(photo_folder), *PROMPTS, "--engine", "ray", "--address", "127.0.0.1:9",
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "cannot reach the Ray cluster at 127.0.0.1:9" in err and err.count("\n") == 1


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray of 2 CPUs, started by the test and stopped after the module."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


@pytest.mark.integration
def test_ray_engine_writes_the_local_outputs_and_resumes(local_ray, photo_folder, tiny_model_dir, tmp_path, capsys):
    (photo_folder / "broken.jpg").write_bytes(b"not a jpeg")
    model = ["--model", str(tiny_model_dir), "--no-progress"]
    assert main(["predict", str(photo_folder), *PROMPTS, *model, "--out", str(tmp_path / "local")]) == 0
    ray_args = ["predict", photo_folder.as_uri(), *PROMPTS, *model, "--out", str(tmp_path / "ray"), "--engine", "ray",
                "--ray-workers", "2", "--ray-batch-size", "2"]
    assert main(ray_args) == 0
    printed = capsys.readouterr().out
    assert "4 image(s), 8 mask(s): 8 predicted, 0 already done" in printed and "skipped 1 " in printed
    local, ray = tmp_path / "local", tmp_path / "ray"
    for name in ("results.jsonl", "results.csv", "coco.json"):
        assert (ray / name).read_text() == (local / name).read_text(), name
    for folder in ("masks", "overlays", "records"):
        assert sorted(p.name for p in (ray / folder).iterdir()) == sorted(p.name for p in (local / folder).iterdir())
    assert all((ray / "masks" / p.name).read_bytes() == p.read_bytes() for p in (local / "masks").iterdir())
    summary = json.loads((ray / "summary.json").read_text())
    assert summary["engine"] == "ray" and summary["workers"] == 2 and summary["predicted"] == 8
    local_summary = json.loads((local / "summary.json").read_text())
    for key in ("model", "weights", "runtime", "threshold", "class_thresholds", "tta", "prompts", "qa_rules"):
        assert summary[key] == local_summary[key], key  # recorded like a local run's
    assert [s["file"] for s in summary["skipped_images"]] == [str(photo_folder / "broken.jpg")]
    # A rerun resumes: every pair is already done, on Ray as locally.
    assert main(ray_args) == 0
    assert "0 predicted, 8 already done" in capsys.readouterr().out
    assert main(["predict", str(photo_folder), *PROMPTS, *model, "--out", str(ray)]) == 0
    assert "0 predicted, 8 already done" in capsys.readouterr().out


def test_a_worker_batch_writes_its_pairs_under_the_runs_names_and_leaves_the_tables_to_the_driver(tmp_path,
                                                                                                   tiny_model_dir):
    """A worker (Ray Data's callable class, called here without Ray): two photos of one stem in two
    batches keep apart, and no batch writes results.jsonl, CSV, COCO or summary.json."""
    from serving_helpers import dark_line_image

    from drywallqa.files import write_image
    from drywallqa.serving.inputs import output_keys
    from drywallqa.serving.ray_engine import PredictBatch

    a, b = (tmp_path / "in" / site / "wall.png" for site in ("a", "b"))
    for path in (a, b):
        write_image(path, dark_line_image())
    keys = {str(path): key for path, key in output_keys([a.resolve(), b.resolve()]).items()}
    out = tmp_path / "out"
    worker = PredictBatch(str(out), ["segment crack"], model=str(tiny_model_dir), predictor_options={"device": "cpu"},
                          predict_options={"model_id": "tiny"}, keys=keys)
    rows = [worker({"index": np.array([index]), "path": np.array([str(path.resolve())])})
            for index, path in enumerate((a, b))]
    assert len(list((out / "masks").iterdir())) == len(list((out / "records").iterdir())) == 2
    assert not [name for name in ("results.jsonl", "results.csv", "coco.json", "summary.json") if (out / name).exists()]
    counts = [json.loads(data) for kind, data in zip(rows[0]["kind"], rows[0]["data"]) if kind == "counts"]
    settings = counts[0]["settings"]
    assert settings["model"] == "tiny" and len(settings["weights"]) == 16 and settings["runtime"] and "tta" in settings
