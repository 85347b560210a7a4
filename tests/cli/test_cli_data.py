"""`drywallqa data inspect` / `data split` through the real entry point."""

import csv
import json
import subprocess
import sys

import pytest
from testdata import write_coco, write_jpeg

from drywallqa.cli import main


def _two_split_dataset(root):
    splits = {"train": ["a_jpg.rf." + "1" * 32, "a_jpg.rf." + "2" * 32, "b_jpg.rf." + "3" * 32],
              "valid": ["a_jpg.rf." + "4" * 32, "c_jpg.rf." + "5" * 32]}
    for split, names in splits.items():
        images = []
        for i, name in enumerate(names):
            write_jpeg(root / split / f"{name}.jpg")
            images.append({"id": i, "file_name": f"{name}.jpg", "width": 32, "height": 24})
        anns = [{"id": 0, "image_id": 0, "category_id": 1, "bbox": [1, 1, 4, 4], "segmentation": []}]
        write_coco(root / split, images, anns)
    return root


def test_inspect_json_reports_counts_and_leakage(tmp_path, capsys):
    root = _two_split_dataset(tmp_path / "joints")
    assert main(["data", "inspect", str(root), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    (ds,) = report["datasets"]
    splits = {s["split"]: s for s in ds["splits"]}
    assert splits["train"]["images"] == 3 and splits["valid"]["images"] == 2
    assert splits["train"]["box_only_annotations"] == 1 and splits["train"]["background_images"] == 2
    assert splits["train"]["groups"] == 2
    assert ds["shared_groups"] == {"a": ["train", "valid"]}


def test_inspect_table_names_leaked_groups(tmp_path, capsys):
    root = _two_split_dataset(tmp_path / "joints")
    assert main(["data", "inspect", str(root), "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "leakage" in out and "a" in out and (tmp_path / "r.json").is_file()


def test_split_keeps_groups_together(tmp_path, capsys):
    root = _two_split_dataset(tmp_path / "joints")
    out = tmp_path / "split.csv"
    assert main(["data", "split", str(root), "--fractions", "0.5,0.5", "--seed", "1", "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 5
    split_of_group = {}
    for row in rows:
        assert split_of_group.setdefault(row["group"], row["split"]) == row["split"]
    assert "groups in more than one split: 0" in capsys.readouterr().out


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad" / "train"
    bad.mkdir(parents=True)
    (bad / "_annotations.coco.json").write_text("{broken")
    proc = subprocess.run([sys.executable, "-m", "drywallqa.cli", "data", "inspect", str(tmp_path / "bad")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "not valid JSON" in proc.stderr and "Traceback" not in proc.stderr


def test_strict_turns_a_skip_into_exit_2(tmp_path, capsys):
    root = _two_split_dataset(tmp_path / "joints")
    (root / "train" / ("b_jpg.rf." + "3" * 32 + ".jpg")).write_bytes(b"garbage")
    assert main(["data", "inspect", str(root), "--json"]) == 0
    assert "skipped" in capsys.readouterr().err
    assert main(["data", "inspect", str(root), "--strict"]) == 2
    assert "strict mode" in capsys.readouterr().err


@pytest.mark.shared_data
def test_real_datasets_counts_and_drywall_leakage(shared_data, capsys):
    assert main(["data", "inspect", str(shared_data / "cracks"), str(shared_data / "drywall-join"), "--json"]) == 0
    report = {d["name"]: d for d in json.loads(capsys.readouterr().out)["datasets"]}
    images = {name: {s["split"]: s["images"] for s in d["splits"]} for name, d in report.items()}
    assert images == {"cracks": {"train": 829, "valid": 201, "test": 4}, "drywall-join": {"train": 778, "valid": 202}}
    shared = report["drywall-join"]["shared_groups"]
    assert len(shared) > 50 and all(v == ["train", "valid"] for v in shared.values())
    assert report["drywall-join"]["splits"][0]["box_only_annotations"] == 1025
    assert not report["cracks"]["skipped"] and not report["drywall-join"]["skipped"]
