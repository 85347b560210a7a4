"""scripts/loadtest.py runs end to end (a few seconds, tiny model, few clients): locust drives the
started server on 127.0.0.1, broken requests get their 4xx, slow clients are counted, the table is
written between the markers of a doc."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

# Never imported here: locust patches the standard library for gevent when imported.
if importlib.util.find_spec("locust") is None:
    pytest.skip("the load test needs locust (pip install 'drywallqa[test]')", allow_module_level=True)
pytest.importorskip("uvicorn", reason="the HTTP service needs uvicorn (pip install 'drywallqa[serve]')")

pytestmark = pytest.mark.integration  # a server under locust for seconds, twice

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "loadtest.py"


def test_loadtest_script_smoke(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("before\n<!-- loadtest:begin -->\nold table\n<!-- loadtest:end -->\nafter\n")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--seconds", "4", "--clients", "2", "--slow-clients", "4",
         "--garbage", "0.5", "--out", str(tmp_path / "load.json"), "--doc", str(doc)],
        capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "load.json").read_text())
    assert report["kinds"]["photo"]["by_status"].get("200", 0) >= 1 and report["unexpected"] == {}
    assert all(code.startswith("4") for code in report["kinds"]["garbage"]["by_status"])
    assert report["slow_clients"]["connections opened"] >= 4 and report["server_rss"]["before"] > 0
    text = doc.read_text()
    assert text.startswith("before\n<!-- loadtest:begin -->\nCommand: `python scripts/loadtest.py --tiny")
    assert "| photo |" in text and "Server RSS:" in text and "old table" not in text and text.endswith("after\n")


def test_loadtest_against_a_git_revision_of_the_server(tmp_path):
    if subprocess.run(["git", "-C", str(SCRIPT.parent), "rev-parse", "HEAD"], capture_output=True).returncode != 0:
        pytest.skip("not a git checkout")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--seconds", "3", "--clients", "2", "--slow-clients", "0",
         "--garbage", "0", "--baseline-rev", "HEAD", "--out", str(tmp_path / "load.json")],
        capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "load.json").read_text())
    assert report["model"]["code"].startswith("git revision ") and report["kinds"]["photo"]["answered_200_per_s"] > 0
    assert report["server_cpu_ms_per_photo"] > 0
    bad = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--seconds", "1", "--baseline-rev", "no-such-rev"],
                         capture_output=True, text=True, timeout=240)
    assert bad.returncode != 0 and "--baseline-rev no-such-rev: cannot extract it" in bad.stderr
