"""Photos as a viewer shows them through predict, the HTTP API and watch: EXIF orientations 1-8,
HEIC/HEIF with and without the heic extra, and photos too thin to judge once decoded reduced."""

from __future__ import annotations

import base64
import io
import json
import struct
import sys

import numpy as np
import pytest
from oriented_photos import FAKE_HEIC, heic_bytes, pattern, shown, with_orientation
from PIL import Image

from drywallqa.data.masks import rle_to_mask
from drywallqa.errors import DataError
from drywallqa.image_codecs import orient
from drywallqa.serving import predict_images
from drywallqa.serving.video_source import VideoSource

PROMPT = "segment crack"
ORIENTATIONS = range(1, 9)


def dark(image: np.ndarray) -> np.ndarray:
    """What :class:`~serving_helpers.DarkPixelPredictor` (level 100) masks: a pixel function of the
    photo, so a mask aligned with the photo a viewer sees is known exactly."""
    return image.mean(axis=2) < 100


@pytest.fixture
def oriented_folder(tmp_path):
    """The same asymmetric pattern stored under each EXIF orientation 1-8, as JPEGs."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for orientation in ORIENTATIONS:
        with_orientation(folder / f"o{orientation}.jpg", orientation)
    return folder


def test_predict_masks_overlays_and_coco_are_in_the_orientation_shown(oriented_folder, tmp_path, dark_predictor):
    out = tmp_path / "out"
    run = predict_images([oriented_folder], [PROMPT], out, dark_predictor)
    assert len(run.records) == 8 and not run.issues
    coco = json.loads((out / "coco.json").read_text())
    coco_images = {entry["file_name"]: entry for entry in coco["images"]}
    for record in run.records:
        path = oriented_folder / record["image"].rsplit("/", 1)[-1]
        expected = dark(shown(path))
        height, width = expected.shape
        assert record["image_orientation"] == int(path.stem[1:])
        assert (record["image_width"], record["image_height"]) == (width, height)
        assert np.array_equal(np.asarray(Image.open(out / record["mask"])) > 0, expected)
        assert Image.open(out / record["overlay"]).size == (width, height)
        entry = coco_images[path.name]
        assert (entry["width"], entry["height"]) == (width, height)
        union = np.zeros((height, width), dtype=bool)
        for annotation in coco["annotations"]:
            if annotation["image_id"] == entry["id"]:
                union |= rle_to_mask(annotation["segmentation"], height, width)
        assert np.array_equal(union, expected)
    # A rerun measures the saved masks again: the records, orientation included, stay as they are.
    rerun = predict_images([oriented_folder], [PROMPT], out, dark_predictor)
    assert rerun.resumed == 8 and rerun.records == run.records
    assert "image_orientation" in (out / "results.csv").read_text().splitlines()[0]


@pytest.fixture
def client(dark_predictor):
    pytest.importorskip("fastapi", reason="the HTTP service needs FastAPI (pip install 'drywallqa[serve]')")
    pytest.importorskip("multipart", reason="FastAPI forms need python-multipart (pip install 'drywallqa[serve]')")
    from fastapi.testclient import TestClient

    from drywallqa.serving import create_app

    return TestClient(create_app(dark_predictor, timeout_s=10))


def segment(client, name: str, data: bytes, kind: str = "image/jpeg"):
    return client.post("/v1/segment", data={"prompt": PROMPT, "mask_format": "png", "overlay": "true"},
                       files={"image": (name, data, kind)})


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_http_masks_and_overlays_are_in_the_orientation_shown(client, tmp_path, orientation):
    path = with_orientation(tmp_path / "upload.jpg", orientation)
    expected = dark(shown(path))
    response = segment(client, "upload.jpg", path.read_bytes())
    assert response.status_code == 200, response.text
    body = response.json()
    height, width = expected.shape
    assert body["image"] == {"filename": "upload.jpg", "width": width, "height": height, "decoded_width": width,
                             "decoded_height": height, "orientation": orientation}
    (result,) = body["results"]
    mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(result["mask"]["base64"])))) > 0
    assert np.array_equal(mask, expected) and result["figures"]["area_px"] == int(expected.sum())
    overlay = Image.open(io.BytesIO(base64.b64decode(result["overlay"]["base64"])))
    assert overlay.size == (width, height)


# -- too thin once decoded reduced ----------------------------------------------------------------------
def test_thin_strip_is_skipped_by_predict_and_refused_by_http(tmp_path, dark_predictor, client, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.new("RGB", (100_000, 40), (200, 200, 200)).save(folder / "strip.png")
    Image.fromarray(pattern()).save(folder / "wall.png")
    run = predict_images([folder], [PROMPT], tmp_path / "out", dark_predictor)
    assert len(run.records) == 1 and run.issues.counts() == {"image too small": 1}
    err = capsys.readouterr().err
    assert "strip.png: image too small (image is 100000x40 px, decoded reduced to 4096x2; drywallqa judges" in err
    with pytest.raises(DataError, match=r"none of the 1 input image\(s\) could be read"):   # alone: exit 2
        predict_images([folder / "strip.png"], [PROMPT], tmp_path / "out-2", dark_predictor)
    response = segment(client, "strip.png", (folder / "strip.png").read_bytes(), "image/png")
    assert response.status_code == 422
    assert "strip.png: image is 100000x40 px, decoded reduced to 4096x2" in response.json()["error"]["message"]


# -- HEIC/HEIF ------------------------------------------------------------------------------------------
def test_heic_without_the_extra_is_skipped_by_name_and_refused_by_http(tmp_path, dark_predictor, client, capsys,
                                                                         monkeypatch):
    monkeypatch.setitem(sys.modules, "pillow_heif", None)                   # as if not installed
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "IMG_0001.HEIC").write_bytes(FAKE_HEIC)
    (folder / "IMG_0002.heif").write_bytes(FAKE_HEIC)
    Image.fromarray(pattern()).save(folder / "wall.jpg")
    run = predict_images([folder], [PROMPT], tmp_path / "out", dark_predictor)
    assert len(run.records) == 1 and run.issues.counts() == {"HEIC/HEIF needs drywallqa[heic]": 2}
    err = capsys.readouterr().err
    assert 'IMG_0001.HEIC: HEIC/HEIF needs drywallqa[heic] (HEIC/HEIF photos need pillow-heif: pip install "drywallqa[heic]")' in err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert sorted(item["file"].rsplit("/", 1)[-1] for item in summary["skipped_images"]) == ["IMG_0001.HEIC", "IMG_0002.heif"]
    response = segment(client, "IMG_0001.HEIC", FAKE_HEIC, "image/heic")
    assert response.status_code == 415
    assert 'IMG_0001.HEIC: HEIC/HEIF photos need pillow-heif: pip install "drywallqa[heic]"' in response.json()["error"]["message"]


def test_heic_with_the_extra_is_judged_as_shown(tmp_path, dark_predictor, client):
    data = heic_bytes(pattern(), orientation=6)
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "IMG_0001.heic").write_bytes(data)
    (record,) = predict_images([folder], [PROMPT], tmp_path / "out", dark_predictor).records
    assert (record["image_width"], record["image_height"]) == (64, 96)        # turned by libheif, once
    mask = np.asarray(Image.open(tmp_path / "out" / record["mask"])) > 0
    assert np.mean(mask == dark(orient(pattern(), 6))) > 0.97                 # HEVC is lossy at the block edges
    response = segment(client, "IMG_0001.heic", data, "image/heic")
    assert response.status_code == 200, response.text
    assert (response.json()["image"]["width"], response.json()["image"]["height"]) == (64, 96)


# -- watch: frames as a player shows them -------------------------------------------------------------
def rotated_video(path, degrees_clockwise: int = 90):
    """A short MP4 whose track header says: show the frames turned by 90 degrees clockwise (as a
    phone filming upright writes it); frames are :func:`pattern`."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (96, 64))
    for _ in range(3):
        writer.write(pattern()[:, :, ::-1])
    writer.release()
    data = bytearray(path.read_bytes())
    header = data.find(b"tkhd")
    assert header > 0 and data[header + 4] == 0                               # a version 0 track header
    matrix = header + 4 + 4 + 5 * 4 + 8 + 2 * 4                                # after times, ids, layer and volume
    assert degrees_clockwise == 90
    data[matrix : matrix + 36] = struct.pack(">9i", 0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)
    path.write_bytes(bytes(data))
    return path


def test_watch_frames_of_a_rotated_video_and_of_a_photo_are_turned(tmp_path):
    video = VideoSource(str(rotated_video(tmp_path / "upright.mp4")))
    frame = video.read()
    video.close()
    assert frame.shape == (96, 64, 3) and (video.width, video.height, video.orientation) == (64, 96, 6)
    assert np.mean(dark(frame) == dark(orient(pattern(), 6))) > 0.97         # mp4v is lossy at the block edges
    photo = VideoSource(str(with_orientation(tmp_path / "still.jpg", 8)))
    first, after = photo.read(), photo.read()
    photo.close()
    assert np.array_equal(first, shown(tmp_path / "still.jpg")) and after is None and photo.orientation == 8


# -- review: the photos go out as shown, like their masks ----------------------------------------------
def test_review_export_writes_turned_photos_beside_their_masks(oriented_folder, tmp_path, dark_predictor):
    pytest.importorskip("label_studio_converter", reason="the review loop needs label-studio-converter")
    from label_studio_converter import brush

    from drywallqa.serving.review import export_review

    predict_images([oriented_folder], [PROMPT], tmp_path / "out", dark_predictor)
    export_review(tmp_path / "out", tmp_path / "review", count=8, photos=oriented_folder)
    tasks = json.loads((tmp_path / "review" / "label-studio" / "tasks.json").read_text())
    assert len(tasks) == 8
    for task in tasks:
        name = task["data"]["drywallqa_image"]
        copy = np.asarray(Image.open(tmp_path / "review" / "images" / name).convert("RGB"))
        assert np.array_equal(shown(tmp_path / "review" / "images" / name), copy)      # no EXIF turn left
        assert np.mean(np.abs(copy.astype(int) - shown(oriented_folder / name)) < 16) > 0.99
        (region,) = task["predictions"][0]["result"]
        assert (region["original_width"], region["original_height"]) == (copy.shape[1], copy.shape[0])
        mask = brush.decode_rle(region["value"]["rle"]).reshape(copy.shape[0], copy.shape[1], 4)[:, :, 3] > 127
        assert np.array_equal(mask, dark(shown(oriented_folder / name)))


def test_truth_masks_in_file_order_are_turned_to_meet_the_predictions(oriented_folder, tmp_path, dark_predictor):
    from drywallqa.files import read_image
    from drywallqa.serving.truth import attach_truth

    predict_images([oriented_folder], [PROMPT], tmp_path / "out", dark_predictor)
    # True masks as a dataset gives them: in the file's pixel order.
    truths = {(str(path.resolve()), "crack"): dark(read_image(path)) for path in oriented_folder.glob("*.jpg")}
    scores = attach_truth(tmp_path / "out", truths)
    assert scores.scored == {"crack": 8} and scores.iou == {"crack": 1.0} and not scores.wrong
