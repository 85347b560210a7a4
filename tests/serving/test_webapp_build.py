"""``drywallqa app build`` and the runtime fetch, without a browser: the folder it writes, what
``drywallqa serve --app`` serves from it, and the one-line errors.

A tiny random model (hashing text encoder, 64 px) and stand-in onnxruntime-web files keep these
fast; the real model and runtime in Chromium are tests/serving/test_webapp_browser.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from serving_helpers import DarkPixelPredictor, user_prompts

from drywallqa.cli import main
from drywallqa.errors import ConfigError, DrywallQAError
from drywallqa.serving import ort_web
from drywallqa.serving.webapp import WebApp, build_webapp


@pytest.fixture
def fake_runtime(tmp_path, monkeypatch) -> Path:
    """Stand-in onnxruntime-web files in place of the package's (the real ones are megabytes)."""
    folder = tmp_path / "ort_web_dist"
    folder.mkdir()
    files = {}
    for names in ort_web.ORT_WEB_FILES.values():
        for name in names:
            (folder / name).write_text(f"// {name}\n")
            files[name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    (folder / "NOTICE.txt").write_text("onnxruntime-web\n")
    (folder / ort_web.STAMP_FILE).write_text(json.dumps({"version": ort_web.ORT_WEB_VERSION, "files": files}))
    monkeypatch.setattr(ort_web, "vendor_folder", lambda: folder)
    return folder


@pytest.fixture
def onnx_cache(tmp_path, monkeypatch) -> Path:
    """Exports of model folders go to a temporary cache, not the user's."""
    monkeypatch.setenv("DRYWALLQA_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def built_app(tmp_path, tiny_model_dir, fake_runtime, onnx_cache) -> Path:
    build_webapp(tmp_path / "app", model=str(tiny_model_dir), say=lambda line: None)
    return tmp_path / "app"


def test_build_writes_page_model_prompts_runtime_manifest_and_service_worker(built_app, onnx_cache):
    from drywallqa.data import PromptConfig
    from drywallqa.inference.prompt_store import PromptEmbeddings

    app = json.loads((built_app / "app.json").read_text())
    files = sorted(app["files"])
    for name in ("index.html", "favicon.ico", "static/app.js", "static/live.js", "static/modes.js", "static/processing.js",
                 "static/qa.js", "static/ondevice.js", "static/crack_width.js", "static/ridges.js", "static/joint_lines.js",
                 "static/taping_band.js", "static/style.css", "model/model.onnx", "model/model.json", "sw.js", "manifest.webmanifest",
                 "icons/icon-192.png", "icons/icon-512.png", "ort/ort.wasm.min.mjs", "ort/ort-wasm-simd-threaded.wasm",
                 "ort/ort.webgpu.min.mjs", "ort/ort-wasm-simd-threaded.asyncify.wasm"):
        assert name in files, name
    for name, digest in app["files"].items():
        assert hashlib.sha256((built_app / name).read_bytes()).hexdigest() == digest, name
    assert not [p for p in built_app.parent.iterdir() if p.name.startswith(".app-")]  # no staging folder left

    # Every prompt of the prompt classes, with its class, figure set, threshold and the graph's own embedding.
    model = json.loads((built_app / "model" / "model.json").read_text())
    config = PromptConfig.default()
    expected = {p for c in config.classes.values() for p in (c.prompt, *c.paraphrases, *c.heldout)}
    assert {p["text"] for p in model["prompts"]} == expected
    assert model["model"]["image_size"] == 64 and model["model"]["file"] == "model.onnx"
    crack = next(p for p in model["prompts"] if p["text"] == "segment crack")
    assert (crack["class"], crack["figure_set"], crack["kind"], crack["threshold"]) == ("crack", "crack", "canonical", 0.5)
    store = PromptEmbeddings.load(next((onnx_cache / "onnx").glob("*.prompts.json")))  # exported with the graph
    np.testing.assert_array_equal(np.array(crack["embedding"], np.float32), store.lookup(["segment crack"])[0])
    assert model["qa_rules"]["classes"]["crack"]["rules_px"] == [["longest_px", 30.0, None], ["width_max_px", 5.0, None]]
    assert model["runtime"]["backends"] == ["wasm", "webgpu"]

    # The service worker stores the page, model and WebAssembly runtime on install; WebGPU on first use.
    sw = (built_app / "sw.js").read_text()
    build = json.loads(sw[sw.index("const BUILD = ") + len("const BUILD = "):sw.index(";\nconst CACHE")])
    assert build["version"] == app["build"]
    assert "./" in build["precache"] and "model/model.onnx" in build["precache"]
    assert "ort/ort-wasm-simd-threaded.wasm" in build["precache"]
    assert {f"static/{name}" for name in ("crack_width.js", "ridges.js", "joint_lines.js", "taping_band.js")} <= set(build["precache"])
    assert "ort/ort-wasm-simd-threaded.asyncify.wasm" in build["lazy"]
    assert not set(build["precache"]) & set(build["lazy"])

    manifest = json.loads((built_app / "manifest.webmanifest").read_text())
    assert manifest["start_url"] == "./" and manifest["display"] == "standalone"
    for icon in manifest["icons"]:
        size = int(icon["sizes"].split("x")[0])
        assert Image.open(built_app / icon["src"]).size == (size, size)
    # Relative URLs only: the app works from any folder of any static host.
    index = (built_app / "index.html").read_text()
    assert 'src="static/app.js"' in index and 'src="/' not in index and 'href="/' not in index


def test_build_with_the_users_prompts_and_without_webgpu(tmp_path, tiny_model_dir, fake_runtime, onnx_cache):
    """A prompt the user's classes add is embedded at build time (the browser has no text encoder)."""
    result = build_webapp(tmp_path / "app", model=str(tiny_model_dir), prompt_config=user_prompts(tmp_path),
                          webgpu=False, say=lambda line: None)
    model = json.loads((tmp_path / "app" / "model" / "model.json").read_text())
    fissures = next(p for p in model["prompts"] if p["text"] == "mark the fissures")
    assert fissures["class"] == "crack" and len(fissures["embedding"]) == model["model"]["embed_dim"]
    assert result.backends == ("wasm",) and not (tmp_path / "app" / "ort" / "ort.webgpu.min.mjs").exists()
    assert "mark the fissures" in result.prompts and "wrote" in result.summary()


def test_build_refuses_an_existing_folder_unless_overwrite(tmp_path, tiny_model_dir, fake_runtime, onnx_cache, capsys):
    out = tmp_path / "app"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="already exists; pass --overwrite"):
        build_webapp(out, model=str(tiny_model_dir), say=lambda line: None)
    assert (out / "notes.txt").read_text() == "keep me"
    assert main(["app", "build", str(out), "--model", str(tiny_model_dir)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["app", "build", str(out), "--model", str(tiny_model_dir), "--overwrite"]) == 0
    assert not (out / "notes.txt").exists() and (out / "app.json").is_file()
    assert "python -m http.server" in capsys.readouterr().out


def test_build_refuses_a_model_it_cannot_run_in_one_line(tmp_path, capsys):
    assert main(["app", "build", str(tmp_path / "app"), "--model", str(tmp_path)]) == 2
    assert "save_pretrained" in capsys.readouterr().err and not (tmp_path / "app").exists()
    assert main(["app", "build", str(tmp_path / "app"), "--model", str(tmp_path / "missing.onnx")]) == 2
    assert "no such ONNX file" in capsys.readouterr().err


def test_build_without_the_runtime_and_without_npm_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(ort_web, "vendor_folder", lambda: tmp_path / "ort_web_dist")
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    assert main(["app", "build", str(tmp_path / "app")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "npm" in err and "drywallqa app fetch-runtime" in err
    assert not (tmp_path / "app").exists()


def _fake_npm(tmp_path: Path, script: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    npm = bin_dir / "npm"
    npm.write_text("#!/bin/sh\n" + script)
    npm.chmod(npm.stat().st_mode | stat.S_IEXEC)


def test_fetch_refuses_a_tarball_that_is_not_the_pinned_one(tmp_path, monkeypatch):
    """npm answers with a tarball of other bytes (a tampered mirror): nothing is written."""
    tarball = tmp_path / "fake.tgz"
    with tarfile.open(tarball, "w:gz") as tar:
        data = b"// not onnxruntime-web"
        info = tarfile.TarInfo("package/dist/ort.wasm.min.mjs")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    _fake_npm(tmp_path, f'cp {tarball} "$4/onnxruntime-web-{ort_web.ORT_WEB_VERSION}.tgz"\n')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(DrywallQAError, match="does not match the pinned npm integrity"):
        ort_web.fetch_ort_web(tmp_path / "dist")
    assert not (tmp_path / "dist").exists()


def test_fetch_when_the_registry_cannot_be_reached_is_one_line(tmp_path, monkeypatch):
    _fake_npm(tmp_path, 'echo "npm error code ENOTFOUND" >&2\necho "npm error network request failed" >&2\nexit 1\n')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(DrywallQAError) as failure:
        ort_web.fetch_ort_web(tmp_path / "dist")
    message = str(failure.value)
    assert "\n" not in message and "ENOTFOUND" in message and "fetch-runtime" in message


def test_serve_app_serves_the_built_files_with_isolation_headers(built_app):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from drywallqa.serving import create_app

    with TestClient(create_app(DarkPixelPredictor(), webapp_dir=str(built_app))) as client:
        page = client.get("/")
        assert page.headers["cross-origin-opener-policy"] == "same-origin"
        assert page.headers["cross-origin-embedder-policy"] == "require-corp"
        assert "'wasm-unsafe-eval'" in page.headers["content-security-policy"]
        for path, media_type in (("/model/model.json", "application/json"), ("/model/model.onnx", "application/octet-stream"),
                                 ("/ort/ort-wasm-simd-threaded.wasm", "application/wasm"),
                                 ("/ort/ort.wasm.min.mjs", "text/javascript"), ("/sw.js", "text/javascript"),
                                 ("/manifest.webmanifest", "application/manifest+json"), ("/icons/icon-192.png", "image/png"),
                                 ("/static/ondevice.js", "text/javascript"), ("/static/qa.js", "text/javascript")):
            response = client.get(path)
            assert response.status_code == 200 and response.headers["content-type"].startswith(media_type), path
            assert response.headers["cross-origin-embedder-policy"] == "require-corp", path
        assert client.get("/model/model.json").content == (built_app / "model" / "model.json").read_bytes()
        for path in ("/model/nothing.onnx", "/model/..%2Fapp.json", "/ort/..%2F..%2Fapp.json", "/icons/%2E%2E"):
            assert client.get(path).status_code == 404, path
    with TestClient(create_app(DarkPixelPredictor())) as client:  # without --app: no on-device model
        assert client.get("/model/model.json").status_code == 404
        assert client.get("/app.json").json()["files"] == {}


def test_serve_app_refuses_a_folder_that_is_no_app_before_loading_the_model(tmp_path, capsys):
    with pytest.raises(ConfigError, match="not an app folder"):
        WebApp.open(tmp_path)
    assert main(["serve", "--app", str(tmp_path), "--model", "/never/loaded"]) == 2
    assert "not an app folder of `drywallqa app build`" in capsys.readouterr().err


def test_app_without_a_verb_prints_help(capsys):
    assert main(["app"]) == 2
    assert "build" in capsys.readouterr().out


@pytest.mark.integration
def test_a_built_wheel_ships_the_browser_runtime(tmp_path):
    """`pip wheel .` packs the fetched onnxruntime-web files (package data), not only the page."""
    try:
        files = ort_web.ensure_ort_web(say=lambda line: None)
    except DrywallQAError as exc:
        pytest.skip(f"onnxruntime-web cannot be fetched here: {exc}")
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path),
                           str(repo)], capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    import zipfile

    names = zipfile.ZipFile(next(tmp_path.glob("drywallqa-*.whl"))).namelist()
    for name in files:
        assert f"drywallqa/serving/ort_web_dist/{name}" in names, name
    assert "drywallqa/serving/static/ondevice.js" in names and "drywallqa/serving/static/sw.js" in names
