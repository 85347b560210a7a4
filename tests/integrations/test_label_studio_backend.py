"""The Label Studio ML backend over HTTP, with the bodies Label Studio 1.23 sends
(``label_studio/ml/api_connector.py``: ``setup``, ``_prep_prediction_req``; its webhooks)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from labelling_helpers import bar_photo

from drywallqa.cli import main
from drywallqa.data import AnnotatedDataset
from drywallqa.errors import ConfigError
from drywallqa.integrations.label_studio import LabelStudioBackend, brush_targets
from drywallqa.integrations.task_images import TaskImageReader

pytest.importorskip("label_studio_converter", reason='needs the review codec: pip install "drywallqa[label-studio]"')
pytest.importorskip("fastapi", reason='needs FastAPI: pip install "drywallqa[label-studio]"')
from fastapi.testclient import TestClient  # noqa: E402

from drywallqa.integrations.label_studio_app import create_label_studio_app  # noqa: E402
from drywallqa.serving.review import import_brush  # noqa: E402

CONFIG = """<View>
  <Image name="image" value="$image" zoom="true"/>
  <BrushLabels name="tag" toName="image">
    <Label value="Crack" background="#ff0000"/>
    <Label value="Drywall-Join" background="#0000ff"/>
    <Label value="Mould" background="#00ff00"/>
  </BrushLabels>
</View>"""


def task(task_id: int, url: str) -> dict:
    """A task as Label Studio's TaskSimpleSerializer sends it."""
    return {"id": task_id, "data": {"image": url}, "meta": {}, "annotations": [], "predictions": [], "project": 3,
            "inner_id": task_id, "total_annotations": 0, "cancelled_annotations": 0, "total_predictions": 0,
            "is_labeled": False, "overlap": 1, "file_upload": 7, "updated_by": [], "comment_authors": []}


def predict_body(*tasks: dict, config: str = CONFIG) -> dict:
    return {"tasks": list(tasks), "project": "3.1767225600", "label_config": config,
            "params": {"login": None, "password": None, "context": None}}


@pytest.fixture
def backend(dark_bars, photo_tree) -> LabelStudioBackend:
    images = TaskImageReader(upload_dir=photo_tree / "ls-data" / "media" / "upload",
                             local_files_root=photo_tree / "site-photos")
    return LabelStudioBackend(dark_bars, images, model_version="drywallqa-test", corrections=photo_tree / "corrections")


@pytest.fixture
def client(backend) -> TestClient:
    return TestClient(create_label_studio_app(backend))


def decode(region: dict) -> np.ndarray:
    pixels = import_brush().decode_rle(region["value"]["rle"])
    return pixels.reshape(region["original_height"], region["original_width"], 4)[:, :, 3] > 127


def test_health_and_setup(client):
    assert client.get("/health").json()["status"] == "UP"
    assert client.get("/").json()["model_version"] == "drywallqa-test"
    body = {"project": "3.1767225600", "schema": CONFIG, "hostname": "http://localhost:8080", "access_token": "x",
            "extra_params": None}
    assert client.post("/setup", json=body).json() == {"model_version": "drywallqa-test"}
    assert client.get("/metrics").json() == {}


def test_setup_refuses_a_config_without_brush_labels(client):
    polygons = '<View><Image name="image" value="$image"/><PolygonLabels name="p" toName="image"><Label value="Crack"/></PolygonLabels></View>'
    answer = client.post("/setup", json={"project": "3.1", "schema": polygons})
    assert answer.status_code == 400
    assert "BrushLabels" in answer.json()["error"]
    assert client.post("/setup", json={"project": "3.1", "schema": "<View"}).status_code == 400


def test_predict_answers_brush_masks_with_confidence(client, dark_bars, caplog):
    caplog.set_level(logging.WARNING, logger="drywallqa.label_studio")
    urls = ["/data/upload/3/1a2b3c4d-wall.png", "/data/local-files/?d=level-2/room%205.png"]
    answer = client.post("/predict", json=predict_body(task(11, urls[0]), task(12, urls[1])))
    assert answer.status_code == 200
    body = answer.json()
    assert body["model_version"] == "drywallqa-test"
    assert len(body["results"]) == 2
    expected = {"Crack": bar_photo().mean(axis=2) < 60, "Drywall-Join": bar_photo().mean(axis=2) > 240}
    for prediction in body["results"]:
        assert prediction["model_version"] == "drywallqa-test"
        assert prediction["score"] == 0.625  # the lowest of the masks' confidences
        regions = {r["value"]["brushlabels"][0]: r for r in prediction["result"]}
        assert set(regions) == {"Crack", "Drywall-Join"}  # Mould names no prompt class
        for label, region in regions.items():
            assert (region["type"], region["from_name"], region["to_name"]) == ("brushlabels", "tag", "image")
            assert (region["original_width"], region["original_height"]) == (90, 60)
            np.testing.assert_array_equal(decode(region), expected[label])
            assert region["meta"]["text"][0].startswith("QA: ")
        assert regions["Crack"]["score"] == 0.8125
        assert len({r["id"] for r in prediction["result"]}) == 2
    # One model call per photo (both prompts together); the unknown label is logged once.
    assert dark_bars.calls == 2
    client.post("/predict", json=predict_body(task(13, urls[0])))
    mentions = [r for r in caplog.records if "Mould" in r.getMessage()]
    assert len(mentions) == 1 and "no prompt class" in mentions[0].getMessage()


def test_a_task_whose_photo_is_refused_gets_no_prediction(client, caplog):
    caplog.set_level(logging.WARNING, logger="drywallqa.label_studio")
    tasks = [task(21, "/data/upload/3/1a2b3c4d-wall.png"), task(22, "/data/local-files/?d=../secret.png"),
             task(23, "https://example.com/wall.jpg"), {"id": 24, "data": {"text": "no image"}}]
    results = client.post("/predict", json=predict_body(*tasks)).json()["results"]
    assert len(results) == 4 and results[0]["result"]
    assert results[1:] == [[], [], []]  # Label Studio stores nothing for them (and retries later)
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "task 22" in messages and "leads out of" in messages
    assert "task 23" in messages and "not on this machine" in messages


def test_predict_refuses_a_body_it_cannot_use(client):
    assert client.post("/predict", json={"label_config": CONFIG}).status_code == 400
    assert client.post("/predict", json=predict_body(task(1, "/data/upload/3/1a2b3c4d-wall.png"), config="<View/>")).status_code == 400
    assert client.post("/predict", content=b"not json", headers={"content-type": "application/json"}).status_code == 422


def test_brush_targets_map_labels_through_the_prompt_classes():
    config = ('<View><Image name="a" value="$photo"/><Image name="b" value="$other"/>'
              '<BrushLabels name="one" toName="a"><Label value="cracks"/><Label value="Taping area"/>'
              '<Label value="tape"/><Label value="window"/></BrushLabels>'
              '<BrushLabels name="two" toName="b"><Label value="drywall seam"/></BrushLabels></View>')
    first, second = brush_targets(config)
    assert (first.from_name, first.to_name, first.data_key) == ("one", "a", "photo")
    assert first.prompts == {"cracks": "segment crack", "Taping area": "segment taping area", "tape": "segment taping area"}
    assert first.unknown == ("window",)
    assert (second.data_key, second.prompts) == ("other", {"drywall seam": "segment taping area"})
    with pytest.raises(ConfigError, match="not XML"):
        brush_targets("<View>")


def webhook_body(action: str, task_id: int, url: str, result: list, annotation_id: int = 1) -> dict:
    return {"action": action, "project": {"id": 3, "label_config": CONFIG},
            "task": {"id": task_id, "data": {"image": url}, "project": 3},
            "annotation": {"id": annotation_id, "task": task_id, "result": result, "was_cancelled": False}}


def test_webhook_keeps_corrections_for_review_import(client, photo_tree, tmp_path):
    # The reviewer keeps the predicted crack and draws nothing else: Label Studio sends the annotation.
    prediction = client.post("/predict", json=predict_body(task(31, "/data/upload/3/1a2b3c4d-wall.png"))).json()
    crack = [r for r in prediction["results"][0]["result"] if r["value"]["brushlabels"] == ["Crack"]]
    answer = client.post("/webhook", json=webhook_body("ANNOTATION_CREATED", 31, "/data/upload/3/1a2b3c4d-wall.png", crack))
    assert answer.status_code == 201 and answer.json() == {"result": {"stored": 1}, "status": "ok"}
    second = webhook_body("ANNOTATION_CREATED", 32, "/data/local-files/?d=level-2/room%205.png", [], annotation_id=2)
    assert client.post("/webhook", json=second).json()["result"] == {"stored": 2}
    # An update replaces the task's entry; other events are acknowledged and ignored.
    assert client.post("/webhook", json=webhook_body("ANNOTATION_UPDATED", 32, "/data/local-files/?d=level-2/room%205.png",
                                                      [], annotation_id=2)).json()["result"] == {"stored": 2}
    assert client.post("/webhook", json={"action": "TASKS_CREATED", "tasks": []}).json() == {"status": "Unknown event"}
    corrections = photo_tree / "corrections"
    assert sorted(p.name for p in (corrections / "images").iterdir()) == ["task31-1a2b3c4d-wall.png", "task32-room_5.png"]
    # `drywallqa review import` turns them into a dataset: the crack, and a photo with nothing to segment.
    assert main(["review", "import", str(corrections / "annotations.json"), "--images", str(corrections / "images"),
                 "--out", str(tmp_path / "corrected")]) == 0
    dataset = AnnotatedDataset.load(tmp_path / "corrected")
    by_name = {sample.image_path.name: sample for sample in dataset}
    assert [a.category for a in by_name["task31-1a2b3c4d-wall.png"].annotations] == ["Crack"]
    assert by_name["task32-room_5.png"].annotations == ()
    # A deleted annotation leaves the corrections.
    deleted = webhook_body("ANNOTATION_DELETED", 31, "/data/upload/3/1a2b3c4d-wall.png", crack)
    assert client.post("/webhook", json=deleted).json()["result"] == {"stored": 1}


def test_without_a_corrections_folder_fit_only_logs(dark_bars, photo_tree, caplog):
    caplog.set_level(logging.INFO, logger="drywallqa.label_studio")
    backend = LabelStudioBackend(dark_bars, TaskImageReader(upload_dir=photo_tree / "ls-data" / "media" / "upload"))
    client = TestClient(create_label_studio_app(backend))
    answer = client.post("/webhook", json=webhook_body("ANNOTATION_CREATED", 41, "/data/upload/3/1a2b3c4d-wall.png", []))
    assert answer.json()["result"] == {"logged": "ANNOTATION_CREATED"}
    assert client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 3}}).json()["result"] == {
        "logged": "START_TRAINING"}
    assert "--corrections" in caplog.text and "drywallqa train" in caplog.text
    assert not (photo_tree / "corrections").exists()


def test_serve_label_studio_without_the_extra_names_the_pip_command(monkeypatch, capsys):
    from drywallqa.integrations import label_studio_app

    monkeypatch.setitem(label_studio_app.LABEL_STUDIO_MODULES, "label-studio-converter", "no_such_module_here")
    assert main(["review", "serve-label-studio", "--port", "9"]) == 2
    error = capsys.readouterr().err
    assert 'pip install "drywallqa[label-studio]"' in error and "label-studio-converter" in error
    assert len(error.strip().splitlines()) == 1


@pytest.mark.parametrize("args, message", [
    (["--label-studio-data", "/no/such/folder"], "--label-studio-data /no/such/folder: no such folder"),
    (["--local-files-root", "/no/such/folder"], "local files root /no/such/folder: no such folder"),
    (["--label-studio-url", "http://labelstudio.example.com"], "loopback"),
])
def test_serve_label_studio_refuses_bad_options_before_loading_the_model(args, message, capsys, monkeypatch):
    monkeypatch.delenv("LABEL_STUDIO_BASE_DATA_DIR", raising=False)
    assert main(["review", "serve-label-studio", *args]) == 2
    assert message in capsys.readouterr().err


def test_an_annotation_whose_photo_is_refused_is_not_kept(client, photo_tree, caplog):
    caplog.set_level(logging.WARNING, logger="drywallqa.label_studio")
    kept = webhook_body("ANNOTATION_CREATED", 51, "/data/upload/3/1a2b3c4d-wall.png", [])
    assert client.post("/webhook", json=kept).json()["result"] == {"stored": 1}
    refused = webhook_body("ANNOTATION_UPDATED", 51, "/data/upload/../../../secret.png", [])
    assert client.post("/webhook", json=refused).json()["result"] == {"stored": 1}  # the earlier one stays
    assert "task 51: annotation not kept" in caplog.text


def test_the_command_serves_the_backend(photo_tree, tmp_path):
    """`drywallqa review serve-label-studio` with the shipped model answers Label Studio's calls."""
    import os
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "drywallqa.cli", "review", "serve-label-studio", "--port", str(port), "--runtime",
               "torch", "--label-studio-data", str(photo_tree / "ls-data"), "--log-level", "warning"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with open(tmp_path / "backend.log", "wb") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "backend.log").read_text()
            time.sleep(0.5)
        body = predict_body(task(61, "/data/upload/3/1a2b3c4d-wall.png"))
        results = httpx.post(f"http://127.0.0.1:{port}/predict", json=body, timeout=60).json()["results"]
        assert len(results) == 1 and results[0]["model_version"].startswith("drywallqa-")
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert "photos from uploads" in (tmp_path / "backend.log").read_text()
