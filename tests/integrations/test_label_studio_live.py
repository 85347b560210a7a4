"""End to end against a real Label Studio started here: project, backend, photos, predictions, a
submitted annotation, and the corrections it leaves for training.

Label Studio pins older numpy and OpenCV than drywallqa uses, so it lives in a virtual
environment of its own: ``python -m venv LSVENV && LSVENV/bin/pip install label-studio``, then
``DRYWALLQA_LABEL_STUDIO=LSVENV/bin/label-studio`` (or ``label-studio`` on PATH). Without it the
test skips. It runs Label Studio on sqlite in a temporary folder on 127.0.0.1 and the shipped
model on PyTorch (about a minute on two cores, most of it Label Studio's start).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from testdata import SHARED_DATA

from drywallqa.files import list_images, read_photo

pytestmark = pytest.mark.integration

LABEL_STUDIO = os.environ.get("DRYWALLQA_LABEL_STUDIO") or shutil.which("label-studio")
if not LABEL_STUDIO:
    pytest.skip("Label Studio is not installed: pip install label-studio into a venv of its own and set "
                "DRYWALLQA_LABEL_STUDIO=VENV/bin/label-studio", allow_module_level=True)
httpx = pytest.importorskip("httpx")
pytest.importorskip("label_studio_converter")
pytest.importorskip("fastapi")

TOKEN = "0123456789abcdef0123456789abcdef01234567"
AUTH = {"Authorization": f"Token {TOKEN}"}
CONFIG = ('<View><Image name="image" value="$image"/><BrushLabels name="tag" toName="image">'
          '<Label value="Crack"/><Label value="Drywall-Join"/><Label value="Mould"/></BrushLabels></View>')
# Label Studio 1.23 refuses ML backends and webhooks on reserved addresses: allow loopback only.
NOT_LOOPBACK = "10.0.0.0/8,100.64.0.0/10,169.254.0.0/16,172.16.0.0/12,192.168.0.0/16,fc00::/7,fe80::/10"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[Path]:
    """Two real photos (a crack, a joint) when ../shared/data is here, else two sample-data photos."""
    if (SHARED_DATA / "cracks").is_dir():
        return [list_images(SHARED_DATA / name / "train")[0] for name in ("cracks", "drywall-join")]
    from drywallqa.data import generate_sample_data

    sample = generate_sample_data(tmp_path_factory.mktemp("sample") / "data", images=8, size=256)
    return [list_images(root / "train")[0] for root in sample.dataset_roots]


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory):
    """Label Studio on sqlite in a temporary folder, on 127.0.0.1; yields ``(url, data folder)``."""
    root = tmp_path_factory.mktemp("label-studio")
    port = free_port()
    env = {**os.environ, "HOME": str(root), "LATEST_VERSION_CHECK": "false", "COLLECT_ANALYTICS": "false",
           "ML_BLOCK_LOCAL_IP": "false", "USE_DEFAULT_BANNED_SUBNETS": "false",
           "USER_ADDITIONAL_BANNED_SUBNETS": NOT_LOOPBACK, "LABEL_STUDIO_BASE_DATA_DIR": str(root / "data")}
    command = [LABEL_STUDIO, "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port),
               "--data-dir", str(root / "data"), "--username", "tester@example.com", "--password", "tester-pass-1",
               "--user-token", TOKEN, "--enable-legacy-api-token"]
    with open(root / "label-studio.log", "wb") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Label Studio did not start: {(root / 'label-studio.log').read_text()[-2000:]}")
            time.sleep(1)
        yield url, root / "data"
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture(scope="module")
def backend_url(label_studio, tmp_path_factory):
    """The backend with the shipped model, served on 127.0.0.1 as ``review serve-label-studio`` does."""
    import uvicorn

    from drywallqa.inference import load_predictor
    from drywallqa.integrations.label_studio import LabelStudioBackend
    from drywallqa.integrations.label_studio_app import create_label_studio_app
    from drywallqa.integrations.task_images import TaskImageReader
    from drywallqa.serving.server import server_config

    _, data = label_studio
    predictor = load_predictor(runtime="torch", say=None)
    backend = LabelStudioBackend(predictor, TaskImageReader(upload_dir=data / "media" / "upload"),
                                 model_version="drywallqa-live", corrections=tmp_path_factory.mktemp("corrections"))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(server_config(create_label_studio_app(backend), port=sock.getsockname()[1],
                                          log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "the backend did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}", backend
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


def test_label_studio_gets_the_models_masks_and_sends_back_corrections(label_studio, backend_url, photos, tmp_path):
    from drywallqa.serving.review import import_brush

    url, data = label_studio
    ml_url, backend = backend_url
    with httpx.Client(base_url=url, headers=AUTH, timeout=120) as ls:
        project = ls.post("/api/projects", json={"title": "walls", "label_config": CONFIG}).json()
        connected = ls.post("/api/ml", json={"url": ml_url, "project": project["id"], "title": "drywallqa"})
        assert connected.status_code == 201, connected.text
        assert connected.json()["readable_state"] == "Connected"
        files = [(f"file{i}", (p.name, p.read_bytes(), "application/octet-stream")) for i, p in enumerate(photos)]
        assert ls.post(f"/api/projects/{project['id']}/import", files=files).json()["task_count"] == len(photos)
        tasks = ls.get("/api/tasks", params={"project": project["id"]}).json()["tasks"]
        retrieved = ls.post("/api/dm/actions", params={"id": "retrieve_tasks_predictions", "project": project["id"]},
                            json={"selectedItems": {"all": True, "excluded": []}})
        assert retrieved.status_code == 200, retrieved.text
        brush = import_brush()
        for task in tasks:
            predictions = ls.get("/api/predictions", params={"task": task["id"]}).json()
            assert len(predictions) == 1
            prediction = predictions[0]
            assert prediction["model_version"] == "drywallqa-live"
            # The masks Label Studio stored are the model's own masks for the uploaded photo.
            photo = read_photo(data / "media" / "upload" / task["data"]["image"].split("/data/upload/", 1)[1])
            prompts = {"Crack": "segment crack", "Drywall-Join": "segment taping area"}
            outcomes = backend.predictor.predict_batch([photo.pixels] * 2, list(prompts.values()))  # as the backend calls it
            scores = []
            for label, own in zip(prompts, outcomes):
                scores.append(round(own.confidence, 4))
                regions = [r for r in prediction["result"] if r["value"]["brushlabels"] == [label]]
                assert len(regions) == int(own.mask.any())
                for region in regions:
                    assert (region["original_width"], region["original_height"]) == (photo.width, photo.height)
                    alpha = brush.decode_rle(region["value"]["rle"]).reshape(photo.height, photo.width, 4)[:, :, 3] > 127
                    np.testing.assert_array_equal(alpha, own.mask)
                    assert region["score"] == pytest.approx(own.confidence, abs=1e-4)
                    assert region["meta"]["text"][0].startswith("QA: ")
            assert prediction["score"] == pytest.approx(min(scores), abs=1e-4)
            assert not [r for r in prediction["result"] if r["value"]["brushlabels"] == ["Mould"]]
        # A reviewer submits the first task's prediction as its annotation: Label Studio's webhook
        # reaches the backend, which keeps it for `drywallqa review import`.
        first = ls.get("/api/predictions", params={"task": tasks[0]["id"]}).json()[0]
        submitted = ls.post(f"/api/tasks/{tasks[0]['id']}/annotations", json={"result": first["result"]})
        assert submitted.status_code == 201, submitted.text
    corrections = backend.corrections / "annotations.json"
    deadline = time.monotonic() + 60
    while not corrections.is_file() and time.monotonic() < deadline:
        time.sleep(0.5)
    from drywallqa.cli import main

    assert main(["review", "import", str(corrections), "--images", str(backend.corrections / "images"),
                 "--out", str(tmp_path / "corrected")]) == 0
