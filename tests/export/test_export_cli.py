"""``drywallqa export``: the CLI writes the graph, the prompts and the int8 file and prints parity."""

from __future__ import annotations

import json

import pytest

from drywallqa.cli import main
from drywallqa.inference import default_model_path, tensorrt_available

for _module in ("onnx", "onnxruntime"):
    pytest.importorskip(_module, reason='needs the export extra: pip install "drywallqa[export]"')


def test_export_cli_writes_files_and_prints_parity(model_dir, tmp_path, capsys) -> None:
    out = tmp_path / "deploy" / "tiny.onnx"
    summary = tmp_path / "export.json"
    code = main(["export", "--model", str(model_dir), "--out", str(out), "--int8", "--check-images", "2",
                 "--json", str(summary)])
    printed = capsys.readouterr().out
    assert code == 0
    assert out.is_file() and (tmp_path / "deploy" / "tiny.prompts.json").is_file()
    assert (tmp_path / "deploy" / "tiny.int8.onnx").is_file()
    assert "parity onnxruntime fp32 vs PyTorch fp32" in printed and "mask IoU 1.00000" in printed
    assert "parity onnxruntime int8" in printed
    report = json.loads(summary.read_text())
    assert report["parity"]["passed"] is True and report["parity"]["median_split_iou"] >= 0.999
    assert report["int8_parity"]["candidate"] == "onnxruntime int8"


def test_export_cli_missing_model_folder(tmp_path, capsys) -> None:
    assert main(["export", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "no such model folder" in capsys.readouterr().err


@pytest.mark.skipif(default_model_path().is_dir(), reason="a shipped model exists")
def test_export_cli_without_shipped_model(tmp_path, capsys) -> None:
    assert main(["export", "--out", str(tmp_path / "x.onnx")]) == 2
    assert "no shipped model" in capsys.readouterr().err


@pytest.mark.skipif(tensorrt_available(), reason="TensorRT is installed here")
def test_export_cli_tensorrt_absent_keeps_onnx_and_prints_trtexec(model_dir, tmp_path, capsys) -> None:
    out = tmp_path / "tiny.onnx"
    assert main(["export", "--model", str(model_dir), "--format", "tensorrt", "--out", str(out), "--no-check"]) == 2
    assert out.is_file()
    assert "trtexec --onnx=" in capsys.readouterr().err


def test_export_cli_calibrates_int8_on_photo_folders(model_dir, tmp_path, capsys) -> None:
    from drywallqa.data.synthetic import generate_sample_data
    from drywallqa.export import calibration_paths

    sample = generate_sample_data(tmp_path / "sample", images=8, size=64, seed=3).root
    folders = [str(sample / "cracks" / "train"), str(sample / "drywall-join" / "train")]
    # Shared equally between the folders, never more than asked.
    chosen = calibration_paths(folders, 4)
    assert [str(p.parent) for p in chosen] == [folders[0]] * 2 + [folders[1]] * 2
    out = tmp_path / "tiny.onnx"
    args = ["export", "--model", str(model_dir), "--out", str(out), "--int8", "--check-images", "2", "--calibration-images", "4"]
    assert main([*args, *[arg for folder in folders for arg in ("--calibration", folder)]]) == 0
    assert "parity onnxruntime int8 on 4 calibration photo(s)" in capsys.readouterr().out
    assert main([*args, "--calibration", str(tmp_path / "missing")]) == 2
    assert "missing: not a folder" in capsys.readouterr().err
