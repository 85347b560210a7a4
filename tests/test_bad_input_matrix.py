"""Bad input × entry point: every pair gets its documented answer, and nothing is half-written.

Each row names an input (a 16-bit photo, a corrupt JPEG scan, a truncated model file, a read-only
output folder, ...) and an entry point (``predict``, ``evaluate``, ``data inspect``, ``train``,
``report``, ``serve`` and the HTTP API), and says what must come out: the exit code (or HTTP
status) and the one line that names the file or field. After every run, no temporary file is
left behind; a refused run leaves its output folder empty; a run that went on wrote complete
outputs for every image it kept.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from testdata import write_coco

from drywallqa import files
from drywallqa.cli import main

PROMPT = "segment crack"
# (input, entry point, exit code or HTTP status, pattern of the line that must be printed or returned)
MATRIX = [
    ("16-bit PNG", "predict", 0, None),
    ("16-bit PNG", "evaluate", 0, None),
    ("16-bit PNG", "inspect", 0, None),
    ("16-bit PNG", "http", 200, None),
    ("8x8 image", "predict", 0, r"warning: skipped \S+tiny\.png: image too small \(image is 8x8 px"),
    ("8x8 image", "http", 422, r"tiny\.png: image is 8x8 px; drywallqa judges images of at least 32 px"),
    ("corrupt JPEG scan", "predict", 0, r"warning: skipped \S+scan\.jpg: unreadable image \(corrupt or truncated JPEG data"),
    ("corrupt JPEG scan", "evaluate", 0, r"warning: skipped \S+_annotations\.coco\.json: image id=1 \(scan\.jpg\): unreadable image"),
    ("corrupt JPEG scan", "inspect", 0, r"warning: skipped \S+_annotations\.coco\.json: image id=1 \(scan\.jpg\): unreadable image"),
    ("corrupt JPEG scan", "http", 415, r"scan\.jpg: not a readable image \(corrupt or truncated JPEG data"),
    ("huge image", "predict", 0, r"warning: skipped \S+huge\.png: image too large \(image has too many pixels"),
    ("huge image", "inspect", 0, r"warning: skipped \S+_annotations\.coco\.json: image id=1 \(huge\.png\): unreadable image"),
    ("huge image", "http", 413, r"huge\.png: image has too many pixels"),
    ("truncated model.safetensors", "predict", 2, r"^error: \S+model\.safetensors: not a readable safetensors file"),
    ("truncated model.safetensors", "evaluate", 2, r"^error: \S+model\.safetensors: not a readable safetensors file"),
    ("truncated model.safetensors", "train", 2, r"^error: \S+model\.safetensors: not a readable safetensors file"),
    ("truncated model.safetensors", "serve", 2, r"^error: \S+model\.safetensors: not a readable safetensors file"),
    ("read-only output folder", "predict", 2, r"^error: could not write \S+read-only/out/run\.json"),
    ("read-only output folder", "evaluate", 2, r"^error: cannot write to \S+read-only/out: "),
    ("read-only output folder", "inspect", 2, r"^error: could not write \S+read-only/out/inspect\.json"),
    ("read-only output folder", "report", 2, r"^error: could not write \S+read-only/out/report\.html"),
    ("read-only output folder", "train", 2, r"^error: cannot write to \S+read-only/out: "),
    ("COCO width 'wide'", "inspect", 2, r"^error: \S+train/_annotations\.coco\.json: none of its 2 image\(s\) could be used, so split 'train' would be empty \(2 invalid image size\)"),
    ("COCO width 'wide'", "evaluate", 2, r"^error: \S+train/_annotations\.coco\.json: none of its 2 image\(s\) could be used"),
    ("COCO width 'wide'", "train", 2, r"^error: \S+train/_annotations\.coco\.json: none of its 2 image\(s\) could be used"),
    ("broken train split JSON", "inspect", 2, r"^error: \S+train/_annotations\.coco\.json: not valid JSON \(line 1"),
    ("broken train split JSON", "evaluate", 2, r"^error: \S+train/_annotations\.coco\.json: not valid JSON"),
    ("broken train split JSON", "train", 2, r"^error: \S+train/_annotations\.coco\.json: not valid JSON"),
]


def noise(size: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)


def encoded(image: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def bad_file(kind: str) -> tuple[str, bytes]:
    """The name and bytes of the bad image of an input kind."""
    if kind == "16-bit PNG":
        return "grey16.png", encoded((noise()[:, :, 0].astype(np.uint16) * 257), "PNG")
    if kind == "8x8 image":
        return "tiny.png", encoded(noise(8), "PNG")
    if kind == "corrupt JPEG scan":
        data = encoded(noise(), "JPEG")
        return "scan.jpg", data[: len(data) * 2 // 3] + b"\xff\xd9"  # header intact, scan cut and closed
    if kind == "huge image":
        return "huge.png", encoded(noise(120), "PNG")  # over the limits the `limits` fixture scales down
    raise KeyError(kind)


@pytest.fixture
def limits(monkeypatch):
    """PIL's bomb limit and drywallqa's decode limit scaled down, so a 'huge' image is a small file."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5_000)
    monkeypatch.setattr(files, "MAX_DECODE_PIXELS", 5_000)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    from drywallqa.models import build_model

    model = build_model("promptunet", pretrained=False, text_encoder="hashing", image_size=64)
    return model.save_pretrained(tmp_path_factory.mktemp("model") / "tiny")


def make_dataset(root: Path, kind: str) -> Path:
    """A COCO dataset (train and valid, two 64 px crack images each); the bad input goes into it."""
    name, data = bad_file(kind) if kind in ("16-bit PNG", "corrupt JPEG scan", "huge image") else (None, None)
    for split in ("train", "valid"):
        images, annotations = [], []
        for index in range(2):
            file_name = name if (split == "valid" and index == 1 and name) else f"wall-{split}-{index}.jpg"
            path = root / split / file_name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data if file_name == name else encoded(noise(seed=index), "JPEG"))
            width = "wide" if (kind == "COCO width 'wide'" and split == "train") else 64
            images.append({"id": index, "file_name": file_name, "width": width, "height": 64})
            annotations.append({"id": index, "image_id": index, "category_id": 1, "bbox": [10, 10, 30, 4],
                                "segmentation": [[10, 10, 40, 10, 40, 14, 10, 14]]})
        write_coco(root / split, images, annotations)
    if kind == "broken train split JSON":
        (root / "train" / "_annotations.coco.json").write_text('{"images": [')
    return root


def make_model(folder: Path, tiny_model: Path, kind: str) -> Path:
    if kind != "truncated model.safetensors":
        return tiny_model
    import shutil

    shutil.copytree(tiny_model, folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    return folder


def run_entry(entry: str, kind: str, tmp_path: Path, tiny_model: Path, read_only: Path | None) -> tuple[int, str, Path]:
    """Run one entry point on one input; returns (exit code or HTTP status, its message, output folder)."""
    out = (read_only if read_only else tmp_path) / "out"
    model = make_model(tmp_path / "model", tiny_model, kind)
    dataset = make_dataset(tmp_path / "ds", kind)
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "wall.jpg").write_bytes(encoded(noise(seed=3), "JPEG"))
    if kind in ("16-bit PNG", "8x8 image", "corrupt JPEG scan", "huge image"):
        name, data = bad_file(kind)
        (photos / name).write_bytes(data)
    if entry == "http":
        return http_status(photos, kind) + (out,)
    tiny = ["--set", "model.args.pretrained=false", "--set", "model.args.text_encoder=hashing", "--set",
            "trainer.num_workers=0", "--set", "trainer.max_steps=1", "--image-size", "64", "--batch-size", "2"]
    argv = {
        "predict": ["predict", str(photos), "--prompt", PROMPT, "--model", str(model), "--out", str(out), "--no-progress"],
        "evaluate": ["evaluate", "--data", str(dataset), "--model", str(model), "--out", str(out), "--no-progress"],
        "inspect": ["data", "inspect", str(dataset), "--json", str(out / "inspect.json")],
        "report": ["report", str(predicted_run(tmp_path, photos)), "--out", str(out / "report.html")],
        "train": ["train", "--data", str(dataset), "--out", str(out), "--epochs", "1", "--no-progress", *tiny]
        + (["--init-from", str(model)] if kind == "truncated model.safetensors" else []),
        "serve": ["serve", "--model", str(model)],
    }[entry]
    return main(argv), "", out


def predicted_run(tmp_path: Path, photos: Path) -> Path:
    from serving_helpers import DarkPixelPredictor

    from drywallqa.serving import predict_images

    return predict_images([photos], [PROMPT], tmp_path / "predicted", DarkPixelPredictor()).out


def http_status(photos: Path, kind: str) -> tuple[int, str]:
    pytest.importorskip("multipart", reason="FastAPI forms need python-multipart (pip install 'drywallqa[serve]')")
    from fastapi.testclient import TestClient
    from serving_helpers import DarkPixelPredictor

    from drywallqa.serving import create_app

    name, data = bad_file(kind)
    response = TestClient(create_app(DarkPixelPredictor())).post(
        "/v1/segment", data={"prompt": PROMPT}, files={"image": (name, data, "application/octet-stream")})
    message = response.json()["error"]["message"] if response.status_code >= 400 else ""
    return response.status_code, message


@pytest.fixture
def serving_helpers_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "serving"))


@pytest.mark.parametrize(("kind", "entry", "expected", "message"), MATRIX, ids=[f"{k}-{e}" for k, e, _, _ in MATRIX])
def test_bad_input(kind, entry, expected, message, tmp_path, tiny_model, limits, serving_helpers_on_path, capsys,
                   request):
    read_only = request.getfixturevalue("read_only_dir") if kind == "read-only output folder" else None
    code, said, out = run_entry(entry, kind, tmp_path, tiny_model, read_only)
    captured = capsys.readouterr()
    said = said or captured.err
    assert code == expected, said
    assert "Traceback" not in captured.err
    if message:
        assert re.search(message, said, flags=re.MULTILINE), said
    if expected == 2:
        assert len([line for line in captured.err.splitlines() if line.startswith("error:")]) == 1
    # Nothing half-written: no temporary file anywhere; a refused run wrote nothing at all.
    assert [p for p in tmp_path.rglob("*") if ".tmp" in p.name] == []
    written = [p for p in out.rglob("*") if p.is_file()] if out.is_dir() else []
    if expected == 2:
        assert written == []
    elif entry == "predict":
        records = (out / "results.jsonl").read_text().splitlines()
        assert len(records) == (2 if kind == "16-bit PNG" else 1)  # the bad image is skipped or read
        assert len(list((out / "masks").iterdir())) == len(list((out / "overlays").iterdir())) == len(records)
