"""The one rule for paths that data names and names made from data (drywallqa.paths)."""

from __future__ import annotations

import os

import pytest

from drywallqa.errors import IssueLog
from drywallqa.paths import (
    MAX_COMPONENT_BYTES,
    UnsafePathError,
    check_data_path,
    data_file,
    is_inside,
    safe_component,
    safe_relative_path,
)

HOSTILE_NAMES = {
    "absolute": ("/etc/passwd", "absolute path"),
    "dot-dot": ("../../etc/passwd", "climbs out"),
    "dot-dot inside": ("train/../../x.jpg", "climbs out"),
    "backslash": ("..\\..\\evil.jpg", "backslash"),
    "drive letter": ("C:/Windows/evil.jpg", "drive letter"),
    "drive letter, no slash": ("C:evil.jpg", "drive letter"),
    "NUL": ("a\x00.jpg", "NUL"),
    "over-long": ("x" * 300 + ".jpg", "over-long"),
    "empty": ("", "not a file name"),
    "dot": (".", "the folder itself"),
    "not a string": (3, "not a file name"),
}


@pytest.mark.parametrize("name, message", HOSTILE_NAMES.values(), ids=HOSTILE_NAMES)
def test_a_hostile_data_path_is_refused_saying_why(name, message):
    with pytest.raises(UnsafePathError, match=message):
        check_data_path(name)


def test_a_plain_relative_path_is_kept_inside_its_folder(tmp_path):
    assert data_file("train/./a b.jpg", tmp_path) == tmp_path / "train" / "a b.jpg"
    assert data_file("é.jpg", tmp_path).parent == tmp_path


def test_is_inside_resolves_dot_dot_and_linked_folders(tmp_path):
    (tmp_path / "ds" / "sub").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", tmp_path / "ds" / "link")
    os.symlink(tmp_path / "outside" / "x.jpg", tmp_path / "ds" / "x.jpg")
    assert is_inside(tmp_path / "ds" / "sub" / "a.jpg", tmp_path / "ds")
    assert is_inside(tmp_path / "ds" / "x.jpg", tmp_path / "ds")  # a linked file made by the folder's maker
    assert not is_inside(tmp_path / "ds" / "sub" / ".." / ".." / "a.jpg", tmp_path / "ds")
    assert not is_inside(tmp_path / "ds" / "link" / "a.jpg", tmp_path / "ds")
    assert not is_inside("/etc/passwd", tmp_path / "ds")
    assert not is_inside(str(tmp_path / "ds" / "a\x00"), tmp_path / "ds")


@pytest.mark.parametrize("text", ["../../../../tmp/x/pwned", "..\\..\\evil", "C:/evil.jpg", "a\x00b", "x" * 400, ".", "..",
                                  "", "NUL", "con.png", "e\u0301.jpg", " .hidden. "])
def test_safe_component_is_one_harmless_part(text):
    name = safe_component(text)
    assert name and name not in (".", "..") and "/" not in name and "\\" not in name and "\x00" not in name
    assert ":" not in name and len(name.encode()) <= MAX_COMPONENT_BYTES and name == name.strip(" .")
    assert name.split(".")[0].upper() not in {"CON", "NUL"}
    assert name == safe_component(text)  # stable


def test_safe_component_keeps_plain_names_and_keeps_changed_names_apart():
    assert safe_component("crack") == "crack" and safe_component("IMG 0001.jpg") == "IMG 0001.jpg"
    assert safe_component("a/b") != safe_component("a_b") != safe_component("a:b") != safe_component("a/b")
    assert safe_component("x:y.jpg").endswith(".jpg")
    assert safe_relative_path("../a/./b.jpg").as_posix() == "a/b.jpg"


def test_repeated_warnings_are_capped_then_counted(capsys):
    log = IssueLog()
    for index in range(5000):
        log.skip("big.json", f"image {index}", "image entry without id or file_name")
    log.skip("big.json", "annotation 1", "zero-area box")
    log.report_hidden()
    log.report_hidden()  # said once
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 20 + 1 + 1
    assert "4980 more: image entry without id or file_name" in lines[-1]
    assert log.counts() == {"image entry without id or file_name": 5000, "zero-area box": 1} and len(log) == 5001
    assert len(log.issues) <= 1001  # kept entries are bounded too
    assert log.counts("big.json") == log.counts() and log.counts("other.json") == {}
