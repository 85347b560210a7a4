"""Bad input × entry point: every pair gets its documented answer, and nothing is half-written.

Each row names an input (a 16-bit photo, a corrupt JPEG scan, a truncated model file, a read-only
output folder, ...) and an entry point (``predict``, ``evaluate``, ``data inspect``, ``train``,
``report``, ``serve`` and the HTTP API), and says what must come out: the exit code (or HTTP
status) and the one line that names the file or field. After every run, no temporary file is
left behind; a refused run leaves its output folder empty; a run that went on wrote complete
outputs for every image it kept.

The second matrix (:data:`PATH_MATRIX`) gives every reader and writer of paths that data names
every hostile name (absolute, ``..``, backslash, drive letter, NUL, over-long): each is skipped
with one warning naming the file and field, or refused with one error line, and nothing is read
from or written to a folder the data does not belong to (:mod:`drywallqa.paths`).
"""

from __future__ import annotations

import io
import json
import re
import shutil
import uuid
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
    ("COCO width 'wide'", "inspect", 2, r"^error: \S+train/_annotations\.coco\.json: none of its 2 image\(s\) could be used, "
                                        r"so split 'train' would be empty \(2 invalid image size\)"),
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


# -- paths named by data: every reader and writer x every hostile name ------------------------------
HOSTILE = ("absolute", "dot-dot", "backslash", "drive letter", "NUL", "over-long")


def hostile_name(kind: str, outside: Path, leaf: str = "evil.jpg") -> str:
    """A name of ``kind`` that, followed as written, leads to ``outside/leaf`` (a real photo) where it can."""
    below = str(outside).lstrip("/") + (f"/{leaf}" if leaf else "")
    return {
        "absolute": f"/{below}",
        "dot-dot": "../" * 20 + below,  # past the root from any folder, then down to the photo
        "backslash": "..\\" * 20 + below.replace("/", "\\"),
        "drive letter": f"C:/{below}",
        "NUL": f"{leaf or 'images'}\x00",
        "over-long": "x" * 300 + (".jpg" if leaf else ""),
    }[kind]


def _coco_inspect(base: Path, name: str, strict: bool) -> tuple[int, Path]:
    root = base / "data" / "ds"
    (root / "train").mkdir(parents=True)
    (root / "train" / "good.jpg").write_bytes(encoded(noise(seed=1), "JPEG"))
    images = [{"id": 0, "file_name": "good.jpg", "width": 64, "height": 64},
              {"id": 1, "file_name": name, "width": 64, "height": 64}]
    write_coco(root / "train", images, [])
    return main(["data", "inspect", str(root), "--json", str(base / "data" / "out" / "inspect.json")]
                + (["--strict"] if strict else [])), base / "data" / "out"


def _yolo(key: str):
    def run(base: Path, name: str, strict: bool) -> tuple[int, Path]:
        import yaml

        root = base / "data" / "ds"
        (root / "train" / "images").mkdir(parents=True)
        (root / "train" / "images" / "good.jpg").write_bytes(encoded(noise(seed=1), "JPEG"))
        spec = {"train": "train/images", "names": ["crack"]}
        spec[key] = name
        (root / "data.yaml").write_text(yaml.safe_dump(spec))
        return main(["data", "inspect", str(root), "--json", str(base / "data" / "out" / "inspect.json")]
                    + (["--strict"] if strict else [])), base / "data" / "out"
    return run


def _materialize_class(layout: str):
    def run(base: Path, name: str, strict: bool) -> tuple[int, Path]:
        root = base / "data" / "ds"
        class_name = name.replace("evil.jpg", "evil")
        if layout == "coco":
            for split in ("train", "valid"):
                (root / split).mkdir(parents=True)
                (root / split / f"{split}.jpg").write_bytes(encoded(noise(seed=len(split)), "JPEG"))
                write_coco(root / split, [{"id": 0, "file_name": f"{split}.jpg", "width": 64, "height": 64}],
                           [{"id": 0, "image_id": 0, "category_id": 1, "bbox": [4, 4, 20, 6], "segmentation": []}],
                           [{"id": 1, "name": class_name, "supercategory": "none"}])
        else:
            for split in ("train", "valid"):
                (root / split / "images").mkdir(parents=True)
                (root / split / "masks").mkdir(parents=True)
                (root / split / "images" / f"{split}.jpg").write_bytes(encoded(noise(seed=len(split)), "JPEG"))
                mask = np.zeros((64, 64), np.uint8)
                mask[10:20, 10:40] = 255
                (root / split / "masks" / f"{split}.png").write_bytes(encoded(mask, "PNG"))
            (root / "classes.txt").write_text(f"background\n{class_name}\n")
        out = base / "data" / "out"
        return main(["trainset", "build", "--data", str(root), "--materialize", str(out)]), out
    return run


def _predicted(base: Path) -> tuple[Path, Path, list[dict]]:
    from serving_helpers import DarkPixelPredictor

    from drywallqa.serving import predict_images

    photos = base / "data" / "photos"
    photos.mkdir(parents=True)
    for index in range(2):
        (photos / f"wall-{index}.jpg").write_bytes(encoded(noise(seed=index), "JPEG"))
    run = predict_images([photos], [PROMPT], base / "data" / "pred", DarkPixelPredictor()).out
    records = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    return photos, run, records


def _review_export(field: str):
    def run(base: Path, name: str, strict: bool) -> tuple[int, Path]:
        pytest.importorskip("label_studio_converter", reason="the review extra is not installed")
        photos, pred, records = _predicted(base)
        hostile = {**records[0], "image": str(photos / "wall-0.jpg"), field: name if field == "image" else
                   name.replace("evil.jpg", "evil.png")}
        (pred / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [*records[1:], hostile]))
        out = base / "data" / "review"
        return main(["review", "export", str(pred), "--out", str(out), "--photos", str(photos)]
                    + (["--strict"] if strict else [])), out
    return run


def _review_import(base: Path, name: str, strict: bool) -> tuple[int, Path]:
    pytest.importorskip("label_studio_converter", reason="the review extra is not installed")
    images = base / "data" / "review" / "images"
    images.mkdir(parents=True)
    (images / "good.jpg").write_bytes(encoded(noise(seed=1), "JPEG"))
    tasks = [{"id": 1, "data": {"image": "/data/local-files/?d=images/good.jpg"}, "annotations": [{"result": []}]},
             {"id": 2, "data": {"image": name}, "annotations": [{"result": []}]}]
    export = base / "data" / "export.json"
    export.write_text(json.dumps(tasks))
    out = base / "data" / "out"
    return main(["review", "import", str(export), "--images", str(images), "--out", str(out)]
                + (["--strict"] if strict else [])), out


def _http_export(base: Path, name: str, strict: bool) -> tuple[int, str]:
    pytest.importorskip("multipart", reason="FastAPI forms need python-multipart (pip install 'drywallqa[serve]')")
    from fastapi.testclient import TestClient
    from serving_helpers import DarkPixelPredictor

    from drywallqa.serving import create_app

    items = [{"image": name, "prompt": PROMPT, "width": 64, "height": 64, "confidence": 0.5}]
    mask = encoded(np.zeros((64, 64), np.uint8), "PNG")
    response = TestClient(create_app(DarkPixelPredictor())).post(
        "/v1/export", data={"items": json.dumps(items)}, files=[("mask", ("m.png", mask, "image/png"))])
    return response.status_code, response.json()["error"]["message"] if response.status_code >= 400 else ""


#: (reader or writer, what it must answer: exit code or HTTP status, pattern of the line naming the file and field)
#: per hostile kind; "strict": the code under --strict (None: no --strict run).
COCO_LINE = r"warning: skipped \S+_annotations\.coco\.json: image id=1 file_name: unsafe file name"
PATH_MATRIX = {
    "COCO file_name": (_coco_inspect, {k: (0, COCO_LINE) for k in HOSTILE}, 2),
    "YOLO split entry": (_yolo("val"), {
        "absolute": (0, r"data\.yaml: key 'val': split folder outside the dataset"),
        "dot-dot": (0, r"data\.yaml: key 'val': split folder outside the dataset"),
        "backslash": (0, r"data\.yaml: key 'val': missing split folder"),
        "drive letter": (0, r"data\.yaml: key 'val': missing split folder"),
        "NUL": (2, r"^error: \S+data\.yaml: key 'val': .* holds a NUL or control character"),
        "over-long": (0, r"data\.yaml: key 'val': missing split folder"),
    }, 2),
    "YOLO path": (_yolo("path"), {
        "absolute": (2, r"^error: \S+data\.yaml: key 'path': .* is outside the dataset folder"),
        "dot-dot": (2, r"^error: \S+data\.yaml: key 'path': .* is outside the dataset folder"),
        "backslash": (0, None),  # a folder of the exporting machine, not here: ignored, as before
        "drive letter": (0, None),
        "NUL": (2, r"^error: \S+data\.yaml: key 'path': .* holds a NUL or control character"),
        "over-long": (0, None),
    }, None),
    "COCO category -> materialized mask": (_materialize_class("coco"), {k: (0, None) for k in HOSTILE}, None),
    "mask-folder class -> materialized mask": (_materialize_class("mask-folder"), {k: (0, None) for k in HOSTILE}, None),
    "review export: record image": (_review_export("image"), {
        k: (0, r"warning: skipped \S+results\.jsonl: record 2 image: photo outside the run's folders") for k in HOSTILE}, 2),
    "review export: record mask": (_review_export("mask"), {
        k: (0, r"warning: skipped \S+results\.jsonl: record 2 mask: mask outside the run's folder") for k in HOSTILE}, 2),
    "review import: Label Studio image": (_review_import, {
        **{k: (0, r"warning: skipped \S+export\.json: task 2: missing image") for k in HOSTILE},
        **{k: (0, r"warning: skipped \S+export\.json: task 2 data\.image: unsafe file name") for k in ("NUL", "over-long")},
    }, 2),
    "HTTP /v1/export image": (_http_export, {k: (422, r"^items\[0\]\.image: expected the photo's file name or relative path")
                                            for k in HOSTILE}, None),
}
#: What the hostile names lead to: a photo, or for these a folder (holding the photo).
NAMES_A_FOLDER = {"YOLO split entry", "YOLO path"}
#: Names that become class names, which are lower-cased with "-" and "_" made one: they lead to a
#: folder of /tmp whose name survives that, and which must not exist afterwards.
CLASS_NAMES = {"COCO category -> materialized mask", "mask-folder class -> materialized mask"}
PATH_CASES = [(entry, kind) for entry in PATH_MATRIX for kind in HOSTILE]


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize(("entry", "kind"), PATH_CASES, ids=[f"{e}-{k}" for e, k in PATH_CASES])
def test_paths_named_by_data_stay_inside_their_folders(entry, kind, tmp_path, capsys, serving_helpers_on_path):
    run, expected, strict_code = PATH_MATRIX[entry]
    code_expected, pattern = expected[kind]
    outside = tmp_path / "outside"
    outside.mkdir()
    evil = encoded(noise(seed=99), "JPEG")
    (outside / "evil.jpg").write_bytes(evil)
    (outside / "evil.png").write_bytes(encoded(np.full((64, 64), 255, np.uint8), "PNG"))
    before = _files(outside)
    escape = Path(f"/tmp/drywallqapwned{uuid.uuid4().hex}")
    name = hostile_name(kind, escape if entry in CLASS_NAMES else outside, "" if entry in NAMES_A_FOLDER else "evil.jpg")
    try:
        code, out = run(tmp_path / "run", name, False)
    finally:
        escaped = escape.exists()
        shutil.rmtree(escape, ignore_errors=True)
    assert not escaped
    captured = capsys.readouterr()
    said = out if isinstance(out, str) else captured.err
    assert code == code_expected, said
    assert "Traceback" not in captured.err
    if pattern:
        assert re.search(pattern, said, flags=re.MULTILINE), said
    if code == 2:
        assert len([line for line in captured.err.splitlines() if line.startswith("error:")]) == 1
    if strict_code is not None and code == 0:  # --strict turns the warning into the one error line
        code, _ = run(tmp_path / "strict", name, True)
        err = capsys.readouterr().err
        assert code == strict_code and "Traceback" not in err
        assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1
    # Nothing written outside the data's own folders, nothing changed outside, the photo outside never copied in.
    assert _files(outside) == before and {p.name for p in tmp_path.iterdir()} <= {"run", "strict", "outside"}
    assert all(evil != data for folder in ("run", "strict") for data in _files(tmp_path / folder).values())
    if isinstance(out, Path) and out.is_dir():
        assert all(out.resolve() in p.resolve().parents for p in out.rglob("*"))


@pytest.mark.parametrize("kind", HOSTILE)
def test_a_report_shows_no_image_a_record_names_outside_its_run(kind, tmp_path, capsys, serving_helpers_on_path):
    # Before: "overlay": "../../photo.jpg" (or an absolute path) was read and embedded in report.html.
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "evil.jpg").write_bytes(encoded(noise(seed=99), "JPEG"))
    _, run, records = _predicted(tmp_path / "run")
    records[0]["overlay"] = hostile_name(kind, outside)
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert main(["report", str(run), "--out", str(tmp_path / "run" / "report.html")]) == 0
    html = (tmp_path / "run" / "report.html").read_text()
    assert html.count("overlay missing") == 1 and html.count('<img class="thumb"') == len(records) - 1
    assert "Traceback" not in capsys.readouterr().err
