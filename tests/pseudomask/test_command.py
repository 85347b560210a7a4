"""python -m drywallqa.pseudomask (the arguments `drywallqa masks` uses)."""

from __future__ import annotations

import json

import pytest

from drywallqa.data import AnnotatedDataset
from drywallqa.errors import ConfigError
from drywallqa.pseudomask.command import main, parse_options


def test_make_then_resume(sample_data, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    args = [str(sample_data.drywall_join), "--method", "ridge", "--out", str(out), "--workers", "1", "--no-progress"]
    assert main(args) == 0
    assert "ridge pseudo-masks" in capsys.readouterr().out
    assert main(args + ["--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["made"] == 0 and summary["resumed"] == summary["images"] > 0
    assert len(AnnotatedDataset.load(out, quiet=True)) == summary["images"]


def test_evaluate_with_preview_and_json(sample_data, tmp_path, capsys) -> None:
    code = main([str(sample_data.cracks), "--evaluate", "--method", "box,ridge", "--preview", str(tmp_path / "g.png"),
                 "--json", str(tmp_path / "s.json"), "--limit", "3", "--workers", "1", "--no-progress",
                 "--option", "ridge.width_offset=2"])
    assert code == 0
    assert "| cracks | crack | ridge |" in capsys.readouterr().out
    report = json.loads((tmp_path / "s.json").read_text())
    assert report["settings"]["methods"]["ridge"]["params"]["crack"]["width_offset"] == 2
    assert (tmp_path / "g.png").is_file()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--method", "snake", "--out", "o"], "unknown pseudo-mask method 'snake'"),
        (["--method", "box,ridge", "--out", "o"], "one method"),
        (["--method", "box"], "--out OUT is required"),
        (["--method", "box", "--out", "o", "--option", "novalue"], "KEY=VALUE"),
        (["--method", "sam", "--weights", "/no/such/dir", "--out", "o"], "huggingface-cli download"),
    ],
)
def test_errors_are_one_line_and_exit_2(sample_data, tmp_path, capsys, args, message) -> None:
    args = [a if a != "o" else str(tmp_path / "o") for a in args]
    assert main([str(sample_data.drywall_join), *args, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_parse_options() -> None:
    assert parse_options(["iterations=3", "ridge.polarity=bright", "grabcut.margin=0.2"], ["grabcut", "ridge"]) == {
        "grabcut": {"iterations": 3, "margin": 0.2}, "ridge": {"iterations": 3, "polarity": "bright"},
    }
    with pytest.raises(ConfigError, match="not run"):
        parse_options(["sam.multimask=true"], ["box"])
