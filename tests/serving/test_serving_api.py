"""The HTTP service through FastAPI's TestClient: results, every error, lazy loading, time-out."""

from __future__ import annotations

import base64
import contextlib
import io
import re
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the HTTP service needs FastAPI (pip install 'drywallqa[serve]')")
pytest.importorskip("multipart", reason="FastAPI forms need python-multipart (pip install 'drywallqa[serve]')")
from fastapi.testclient import TestClient
from serving_helpers import DarkPixelPredictor, RampPredictor, dark_line_image, user_prompts

from drywallqa.data.masks import rle_to_mask
from drywallqa.errors import ConfigError, DrywallQAError
from drywallqa.serving import create_app
from drywallqa.serving.admission import ModelHolder


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


LINE_IMAGE = dark_line_image()                     # a 3 x 80 px dark bar on 96 x 64 px
LINE_PNG = png_bytes(LINE_IMAGE)


def segment(client, data=None, files="default", **kwargs):
    files = {"image": ("wall.png", LINE_PNG, "image/png")} if files == "default" else files
    return client.post("/v1/segment", data={"prompt": "segment crack", **(data or {})}, files=files, **kwargs)


@pytest.fixture
def client(dark_predictor):
    # As a server runs it: the app's lifespan too, so its model and worker threads stop after the test.
    with TestClient(create_app(dark_predictor, timeout_s=10)) as client:
        yield client


@pytest.fixture
def open_client():
    """``open_client(app, **kwargs)``: a TestClient running ``app`` as a server does (its lifespan
    included), shut down after the test."""
    with contextlib.ExitStack() as stack:
        yield lambda app, **kwargs: stack.enter_context(TestClient(app, **kwargs))


def test_segment_returns_figures_verdict_and_rle_mask(client):
    response = segment(client, {"mm_per_px": "0.1"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "default" and body["image"] == {"filename": "wall.png", "width": 96, "height": 64,
                                                                "decoded_width": 96, "decoded_height": 64,
                                                                "orientation": 1}
    (result,) = body["results"]
    assert (result["prompt"], result["class"], result["figure_set"]) == ("segment crack", "crack", "crack")
    figures = result["figures"]
    assert figures["components"] == 1 and figures["area_px"] == 240 and figures["confidence"] == 0.75
    # The width is read across the dark line on the photo (width_source "photo"), to sub-pixel precision.
    assert figures["longest_px"] == pytest.approx(80, abs=1) and figures["width_max_px"] == pytest.approx(3, abs=0.05)
    assert figures["longest_mm"] == pytest.approx(8, abs=0.1) and figures["width_max_mm"] == pytest.approx(0.3, abs=0.005)
    assert figures["width_source"] == "photo" and figures["mask_width_max_px"] == pytest.approx(3)
    assert result["verdict"] == "pass" and result["reasons"] == [] and 0 < result["severity"] < 1
    mask = rle_to_mask({"size": result["mask"]["size"], "counts": result["mask"]["counts"]}, 64, 96)
    assert np.array_equal(mask, LINE_IMAGE.mean(axis=2) < 100)
    assert "overlay" not in result or result["overlay"] is None
    assert set(body["timing_ms"]) == {"decode", "load", "predict", "total"}


def test_segment_png_mask_overlay_and_several_prompts(client):
    response = segment(client, {"prompt": ["segment crack", "segment taping area"], "mask_format": "png",
                                "overlay": "true"})
    assert response.status_code == 200, response.text
    crack, taping = response.json()["results"]
    assert crack["verdict"] == "fail" and re.fullmatch(r"longest_px (79\.\d|80) > 30", crack["reasons"][0])  # pixel rules
    assert taping["class"] == "taping_area" and taping["figure_set"] == "joint"
    mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(crack["mask"]["base64"]))))
    assert mask.shape == (64, 96) and mask.dtype == np.uint8 and int((mask == 255).sum()) == 240
    overlay = Image.open(io.BytesIO(base64.b64decode(crack["overlay"]["base64"])))
    assert overlay.format == "JPEG" and overlay.size == (96, 64)


def test_health_models_and_openapi(client):
    assert client.get("/healthz").json() == {"status": "ok", "version": "0.1.0", "model": "default", "model_loaded": True}
    models = client.get("/v1/models").json()
    assert models["default"] == "default" and models["models"][0]["architecture"] == "dark-pixels"
    assert client.get("/v1/models/default").status_code == 200
    schema = client.get("/openapi.json").json()
    assert "/v1/segment" in schema["paths"] and "413" in schema["paths"]["/v1/segment"]["post"]["responses"]


def test_api_docs_page_works_offline(client):
    page = client.get("/docs")
    assert page.status_code == 200 and "swagger" in page.text.lower()
    assets = [ref for ref in ("/docs-assets/swagger-ui-bundle.js", "/docs-assets/swagger-ui.css") if ref in page.text]
    assert 'PACKAGE_VERSION:"5.' in client.get("/docs-assets/swagger-ui-bundle.js").text  # 4.x cannot read OpenAPI 3.1
    assert len(assets) == 2 and "cdn" not in page.text  # nothing loads from the internet
    for ref in assets:
        asset = client.get(ref)
        assert asset.status_code == 200 and len(asset.content) > 10_000
    assert client.get("/docs-assets/secrets.txt").status_code == 404
    assert client.get("/docs-assets/..%2F__init__.py").status_code == 404


BAD_REQUESTS = [
    # (case, form data, files, status, message fragment)
    ("text file", {}, {"image": ("notes.txt", b"hello", "text/plain")}, 415, "not a readable image"),
    ("truncated jpeg", {}, {"image": ("x.jpg", b"\xff\xd8\xff\xe0garbage", "image/jpeg")}, 415, "not a readable image"),
    ("empty file", {}, {"image": ("x.jpg", b"", "image/jpeg")}, 422, "empty"),
    ("no image", {}, None, 422, "image"),
    ("no prompt", {"prompt": []}, "default", 422, "prompt"),
    ("empty prompt", {"prompt": "   "}, "default", 422, "prompt is empty"),
    ("overlong prompt", {"prompt": "crack " * 50}, "default", 422, "the limit is 200"),
    ("too many prompts", {"prompt": [f"segment crack {i}" for i in range(9)]}, "default", 422, "at most 8"),
    ("bad mask format", {"mask_format": "gif"}, "default", 422, "mask_format"),
    ("bad scale", {"mm_per_px": "-2"}, "default", 422, "mm_per_px"),
    ("non-number scale", {"mm_per_px": "wide"}, "default", 422, "mm_per_px"),
    ("unknown model", {"model": "sam-huge"}, "default", 404, "unknown model 'sam-huge'"),
]


@pytest.mark.parametrize(("case", "data", "files", "status", "message"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_bad_requests_get_json_errors(client, case, data, files, status, message):
    response = segment(client, data, files)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["status"] == status and message in error["message"] and error["code"]


def test_unknown_paths_and_models_are_404_json(client):
    assert client.get("/v1/models/nope").json()["error"]["status"] == 404
    response = client.get("/v2/segment")
    assert response.status_code == 404 and "no such path" in response.json()["error"]["message"]


def test_upload_size_limit(open_client, dark_predictor):
    client = open_client(create_app(dark_predictor, max_upload_mb=0.1))
    noise = np.random.default_rng(0).integers(0, 255, (400, 400, 3), dtype=np.uint8)
    big = png_bytes(noise)                                                     # ~480 kB
    response = segment(client, files={"image": ("big.png", big, "image/png")})
    assert response.status_code == 413 and "the limit is 0.1 MB" in response.json()["error"]["message"]

    # A body without Content-Length (chunked) is counted as it arrives.
    boundary = "b0undary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\nsegment crack\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"big.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + big + f"\r\n--{boundary}--\r\n".encode()
    chunks = (body[i:i + 65536] for i in range(0, len(body), 65536))
    response = client.post("/v1/segment", content=chunks,
                           headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert response.status_code == 413 and response.json()["error"]["code"] == "payload_too_large"
    assert segment(client).status_code == 200                                   # small uploads still pass


def test_image_pixel_limit(open_client, dark_predictor):
    client = open_client(create_app(dark_predictor, max_image_pixels=1000))
    response = segment(client)
    assert response.status_code == 413 and "megapixels" in response.json()["error"]["message"]


class BlockedPredictor(DarkPixelPredictor):
    """A prediction that lasts until the test releases it (or 30 s), so that the 504 is seen to come
    while the model is still busy, however slow the machine, without timing anything."""

    def __init__(self):
        super().__init__()
        self.release, self.finished = threading.Event(), threading.Event()

    def predict_batch(self, images, prompts, *, return_probabilities=False):
        self.release.wait(30)
        self.finished.set()
        return super().predict_batch(images, prompts, return_probabilities=return_probabilities)


def test_slow_prediction_times_out_with_504():
    blocked = BlockedPredictor()
    # One event loop for the whole block, as in a real server: the abandoned worker thread does not
    # hold the response back (a client per request would wait for it when closing its loop).
    with TestClient(create_app(blocked, timeout_s=0.2)) as client:
        response = segment(client)
        assert response.status_code == 504 and "longer than 0.2 s" in response.json()["error"]["message"]
        assert not blocked.finished.is_set()  # the answer did not wait for the model
        assert client.get("/healthz").status_code == 200
        blocked.release.set()


def test_model_is_loaded_lazily_once_and_shared(open_client, tiny_model_dir):
    app = create_app(model_spec=str(tiny_model_dir), model_id="tiny")
    client = open_client(app)
    assert client.get("/healthz").json()["model_loaded"] is False
    described = client.get("/v1/models").json()["models"][0]
    assert {k: described[k] for k in ("id", "spec", "loaded")} == {"id": "tiny", "spec": str(tiny_model_dir), "loaded": False}
    assert described["batching"]["calls"] == 0
    responses = []
    threads = [threading.Thread(target=lambda: responses.append(segment(client, {"model": "tiny"}))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert client.get("/healthz").json()["model_loaded"] is True
    predictor = app.state.model.get()
    assert predictor is app.state.model.get() and predictor.image_size == 64


def test_model_holder_loads_once_under_concurrency():
    loads = []

    def slow_loader(spec):
        loads.append(spec)
        time.sleep(0.05)
        return DarkPixelPredictor()

    holder = ModelHolder(spec="m", loader=slow_loader)
    got = []
    threads = [threading.Thread(target=lambda: got.append(holder.get())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert loads == ["m"] and len({id(p) for p in got}) == 1


def test_model_that_cannot_load_is_503(open_client, tmp_path):
    client = open_client(create_app(model_spec=str(tmp_path / "no-model")))
    response = segment(client)
    assert response.status_code == 503 and "no such model folder" in response.json()["error"]["message"]


def test_web_page_is_served_from_the_package_without_external_urls(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert 'id="files"' in page.text and 'id="folder"' in page.text and 'id="canvas"' in page.text
    for name, kind in (("app.js", "javascript"), ("live.js", "javascript"), ("style.css", "css")):
        asset = client.get(f"/static/{name}")
        assert asset.status_code == 200 and kind in asset.headers["content-type"]
        assert not re.search(r"https?://", asset.text)
    assert not re.search(r"https?://", page.text)
    assert client.get("/static/..%2Fapp.py").status_code == 404


def test_create_app_rejects_bad_limits(dark_predictor):
    with pytest.raises(DrywallQAError, match="positive"):
        create_app(dark_predictor, max_upload_mb=0)


def test_serve_cli_wires_the_options_and_fails_fast_on_a_bad_model(open_client, tiny_model_dir, monkeypatch, capsys):
    import uvicorn

    from drywallqa.cli import main

    started = {}
    monkeypatch.setattr(uvicorn.Server, "run", lambda self: started.update(config=self.config))
    assert main(["serve", "--model", str(tiny_model_dir), "--model-id", "tiny", "--port", "8123",
                 "--max-upload-mb", "2", "--threshold", "0.7", "--header-timeout", "3", "--max-connections", "40"]) == 0
    config = started["config"]
    assert (config.host, config.port) == ("127.0.0.1", 8123)
    assert (config.http.header_timeout_s, config.http.max_connections) == (3.0, 40)
    client = open_client(config.app)
    assert client.get("/healthz").json()["model_loaded"] is True
    assert client.get("/v1/models/tiny").json()["threshold"] == 0.7
    assert "serving" in capsys.readouterr().out

    assert main(["serve", "--model", "/no/such/model"]) == 2
    assert "no such model folder" in capsys.readouterr().err


def test_serve_cli_https_options(tiny_model_dir, monkeypatch, capsys, tmp_path):
    """--ssl-certfile/--ssl-keyfile reach uvicorn (the live camera needs https off localhost).

    Half a pair, or a missing file, fails in one line before the model loads."""
    import uvicorn

    from drywallqa.cli import main

    started = {}
    monkeypatch.setattr(uvicorn.Server, "run", lambda self: started.update(config=self.config))
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("certificate")
    key.write_text("key")
    assert main(["serve", "--model", str(tiny_model_dir), "--ssl-certfile", str(cert), "--ssl-keyfile", str(key)]) == 0
    assert (started["config"].ssl_certfile, started["config"].ssl_keyfile) == (str(cert), str(key))
    assert "on https://127.0.0.1:8000/" in capsys.readouterr().out

    assert main(["serve", "--model", "/never/loaded", "--ssl-certfile", str(cert)]) == 2
    assert "needs both --ssl-certfile and --ssl-keyfile" in capsys.readouterr().err
    assert main(["serve", "--model", "/never/loaded", "--ssl-certfile", str(cert), "--ssl-keyfile", "/no/key.pem"]) == 2
    assert "--ssl-keyfile: no such file" in capsys.readouterr().err


@pytest.mark.parametrize("module", ["uvicorn", "fastapi", "python_multipart", "fastapi_offline"])
def test_serve_without_the_serve_extra_names_the_pip_command(monkeypatch, capsys, module):
    """After the README's quickstart install (no [serve] extra): one line and the command, exit 2."""
    from drywallqa.cli import main

    monkeypatch.setitem(sys.modules, module, None)  # import fails as if the package were not installed
    assert main(["serve", "--model", "/never/loaded"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "the HTTP service needs" in err and "add them with: pip install 'fastapi>=" in err
    assert "'fastapi-offline>=" in err and "uvicorn" in err


def test_page_assets_and_favicon(client):
    favicon = client.get("/favicon.ico")
    assert favicon.status_code == 200 and favicon.headers["content-type"] == "image/x-icon"
    assert Image.open(io.BytesIO(favicon.content)).format == "ICO"
    css = client.get("/static/style.css").text
    assert "[hidden] { display: none !important; }" in css  # .result's display:flex must not show it


def test_unknown_prompt_is_flagged_and_refused_in_strict_mode(open_client, dark_predictor):
    client = open_client(create_app(dark_predictor))
    body = segment(client, {"prompt": ["segment mold", "segment crack"]}).json()
    mold, crack = body["results"]
    assert (mold["prompt_known"], mold["class"], mold["verdict"]) == (False, None, "unchecked")
    assert crack["prompt_known"] is True
    (warning,) = body["warnings"]
    assert "'segment mold' matches no known class (known: crack, taping_area)" in warning and "prompts.yaml" in warning
    response = segment(client, {"prompt": "segment mold", "strict_prompts": "true"})
    assert response.status_code == 422 and "matches no known class" in response.json()["error"]["message"]
    strict = open_client(create_app(dark_predictor, strict_prompts=True))
    assert segment(strict, {"prompt": "segment mold"}).status_code == 422
    assert segment(strict, {"prompt": "segment mold", "strict_prompts": "false"}).status_code == 200
    assert segment(strict).status_code == 200


def upload(name: str, data: bytes, kind: str = "image/png"):
    return {"image": (name, data, kind)}


def test_uploads_of_every_bit_depth_and_size(open_client, dark_predictor):
    client = open_client(create_app(dark_predictor))
    grey16 = io.BytesIO()
    Image.fromarray(LINE_IMAGE[:, :, 0].astype(np.uint16) * 257).save(grey16, format="PNG")
    result = segment(client, files=upload("grey16.png", grey16.getvalue())).json()["results"][0]
    assert result["figures"]["area_px"] == 240 and result["verdict"] == "fail"  # not all white and PASS

    tiny = segment(client, files=upload("tiny.png", png_bytes(LINE_IMAGE[:8, :8])))
    assert tiny.status_code == 422 and "tiny.png: image is 8x8 px" in tiny.json()["error"]["message"]

    noise = np.random.default_rng(0).integers(0, 255, (64, 96, 3), dtype=np.uint8)
    jpeg = io.BytesIO()
    Image.fromarray(noise).save(jpeg, format="JPEG", quality=90)
    cut = jpeg.getvalue()[: len(jpeg.getvalue()) * 2 // 3] + b"\xff\xd9"
    corrupt = segment(client, files=upload("scan.jpg", cut, "image/jpeg"))
    assert corrupt.status_code == 415 and "corrupt or truncated JPEG data" in corrupt.json()["error"]["message"]


def test_large_upload_is_decoded_reduced(open_client, dark_predictor):
    from drywallqa.files import PHOTO_MAX_SIDE

    wide = np.full((64, 2 * PHOTO_MAX_SIDE + 8, 3), 200, dtype=np.uint8)
    wide[20:36, 100:8100] = 20                                                     # 8000 x 16 px bar
    body = segment(open_client(create_app(dark_predictor)), files=upload("wide.png", png_bytes(wide))).json()
    assert (body["image"]["width"], body["image"]["height"]) == (wide.shape[1], 64)
    assert body["image"]["decoded_width"] <= PHOTO_MAX_SIDE
    (result,) = body["results"]
    assert result["mask"]["size"] == [body["image"]["decoded_height"], body["image"]["decoded_width"]]
    assert result["figures"]["longest_px"] == pytest.approx(8000, rel=0.01)            # in the upload's pixels


def test_full_queue_is_503_with_retry_after():
    slow = DarkPixelPredictor(delay_s=0.5)
    with TestClient(create_app(slow, max_queued=1, max_concurrent_predictions=1, timeout_s=20)) as client:
        responses = segment_at_once(client, 5)
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 2 and statuses.count(503) == 3, statuses   # one running, one waiting
    busy = next(r for r in responses if r.status_code == 503)
    assert int(busy.headers["retry-after"]) >= 1 and "the server is busy" in busy.json()["error"]["message"]
    assert slow.calls == 2


def segment_at_once(client, count: int) -> list:
    """``count`` requests sent together from threads; their responses."""
    responses = []
    threads = [threading.Thread(target=lambda: responses.append(segment(client))) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return responses


def test_concurrent_requests_share_batched_model_calls():
    class Recording(DarkPixelPredictor):
        sizes: list[int] = []

        def predict_batch(self, images, prompts, **kwargs):
            self.sizes.append(len(images))
            return super().predict_batch(images, prompts)

    slow = Recording(delay_s=0.3)
    with TestClient(create_app(slow, max_concurrent_predictions=8, max_batch=8, batch_wait_s=0.05)) as client:
        responses = segment_at_once(client, 8)
        batching = client.get("/v1/models").json()["models"][0]["batching"]
    assert [r.status_code for r in responses] == [200] * 8
    assert sum(slow.sizes) == 8 and len(slow.sizes) <= 4, slow.sizes      # not one call per request
    assert batching["pairs"] == 8 and batching["max_batch"] == 8 and batching["mean_batch"] >= 2
    with pytest.raises(ConfigError, match="max_batch >= 1"):
        create_app(slow, max_batch=0)


def test_page_overlay_colours_are_predicts():
    from drywallqa.inference.render import FIGURE_SET_COLOURS
    from drywallqa.serving.page import static_folder

    script = (static_folder() / "app.js").read_text()
    found = re.search(r"const FIGURE_SET_COLOURS = \{(.*?)\};", script).group(1)
    colours = {name: tuple(int(v) for v in rgb.split(",")) for name, rgb in re.findall(r"(\w+): \[([\d, ]+)\]", found)}
    assert colours == FIGURE_SET_COLOURS


def _png(mask: np.ndarray) -> bytes:
    from drywallqa.processing import encode_mask_png

    return encode_mask_png(mask)


def test_export_zips_masks_overlays_and_tables_like_predict(client):
    import json
    import zipfile

    from drywallqa.inference.render import jpeg_bytes

    mask = np.zeros((64, 96), dtype=bool)
    mask[30:33, 10:90] = True
    items = [{"image": "site/wall-1.jpg", "prompt": "segment crack", "width": 192, "height": 128, "confidence": 0.8},
             {"image": "site/wall-1.jpg", "prompt": "segment taping area", "width": 192, "height": 128, "confidence": 0.6},
             {"image": "other/wall-1.jpg", "prompt": "segment crack", "width": 96, "height": 64, "confidence": None}]
    overlay = jpeg_bytes(dark_line_image())
    files = [("mask", (f"m{i}.png", _png(mask), "image/png")) for i in range(3)]
    files += [("overlay", (f"o{i}.jpg", overlay, "image/jpeg")) for i in range(3)]
    response = client.post("/v1/export", data={"items": json.dumps(items), "mm_per_px": "0.5"}, files=files)
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        names = sorted(archive.namelist())
        records = [json.loads(line) for line in archive.read("results.jsonl").decode().splitlines()]
        coco = json.loads(archive.read("coco.json"))
    # Two photos named wall-1 get distinct names, as in a predict folder.
    assert len([n for n in names if n.startswith("masks/")]) == 3 and len(set(names)) == len(names)
    assert {"results.csv", "coco.json", "results.jsonl"} <= set(names)
    first = records[0]
    # Figures measured again from the mask, in the file's pixels (the mask is the half-size decoded one).
    assert first["figures"]["longest_px"] == pytest.approx(160, abs=2) and first["figures"]["longest_mm"] == pytest.approx(80, abs=1)
    assert first["verdict"] == "fail" and first["figures"]["confidence"] == 0.8 and first["overlay"].startswith("overlays/")
    assert [img["file_name"] for img in coco["images"]] == ["site/wall-1.jpg", "other/wall-1.jpg"]


@pytest.mark.parametrize("case, items, masks, message", [
    ("not json", "[", 1, "items: not JSON"),
    ("count", '[{"image": "a.jpg", "prompt": "segment crack", "width": 96, "height": 64}]', 2, "mask: got 2 masks for 1 items"),
    ("path", '[{"image": "../a.jpg", "prompt": "segment crack", "width": 96, "height": 64}]', 1, "items[0].image"),
    ("size", '[{"image": "a.jpg", "prompt": "segment crack", "width": 0, "height": 64}]', 1, "width and height"),
    ("prompt", '[{"image": "a.jpg", "prompt": " ", "width": 96, "height": 64}]', 1, "items[0].prompt: prompt is empty"),
    ("too big", '[{"image": "a.jpg", "prompt": "segment crack", "width": 48, "height": 32}]', 1, "larger than its image"),
])
def test_export_refuses_what_it_cannot_package(client, case, items, masks, message):
    files = [("mask", (f"m{i}.png", _png(np.zeros((64, 96), dtype=bool)), "image/png")) for i in range(masks)]
    response = client.post("/v1/export", data={"items": items}, files=files)
    assert response.status_code == 422 and message in response.json()["error"]["message"], response.text
    not_png = client.post("/v1/export", data={"items": '[{"image": "a.jpg", "prompt": "crack", "width": 96, "height": 64}]'},
                          files=[("mask", ("m.png", b"GIF89a", "image/png"))])
    assert not_png.status_code == 422 and "mask[0]: not a PNG" in not_png.json()["error"]["message"]


def test_export_has_a_body_limit_of_its_own(open_client, dark_predictor):
    client = open_client(create_app(dark_predictor, max_upload_mb=0.001, max_export_mb=0.05))
    small = [("mask", ("m.png", _png(np.zeros((64, 96), dtype=bool)), "image/png"))]
    items = '[{"image": "a.jpg", "prompt": "segment crack", "width": 96, "height": 64}]'
    assert client.post("/v1/export", data={"items": items}, files=small).status_code == 200  # over the upload limit
    big = [("mask", ("m.png", b"\x89PNG" + bytes(60_000), "image/png"))]
    response = client.post("/v1/export", data={"items": items}, files=big)
    assert response.status_code == 413 and "the limit is 0.05 MB" in response.json()["error"]["message"]


def test_several_images_or_repeated_fields_are_refused_never_dropped(client):
    two = [("image", ("a.png", LINE_PNG, "image/png")), ("image", ("b.png", LINE_PNG, "image/png"))]
    response = segment(client, files=two)
    message = response.json()["error"]["message"]
    assert response.status_code == 422 and "image: got 2 files; send one photo per request" in message
    response = segment(client, {"mm_per_px": ["0.1", "0.5"]})
    assert response.status_code == 422 and "mm_per_px: got 2 values" in response.json()["error"]["message"]
    responses = client.get("/openapi.json").json()["paths"]["/v1/segment"]["post"]["responses"]
    assert {"422", "500"} <= set(responses)


def test_scale_far_from_photos_of_walls_is_warned_about_or_refused(client):
    body = segment(client, {"mm_per_px": "0.0006"}).json()
    assert body["results"][0]["figures"]["longest_mm"] == pytest.approx(0.048, abs=0.001)
    (warning,) = body["warnings"]
    assert "mm_per_px 0.0006 is outside the scale of photos of walls" in warning
    response = segment(client, {"mm_per_px": "1e308"})
    assert response.status_code == 422 and "no photo's scale" in response.json()["error"]["message"]
    assert segment(client, {"mm_per_px": "0.5"}).json()["warnings"] == []


def export_one(client, mask_png: bytes, item: dict | None = None):
    import json

    item = {"image": "a.jpg", "prompt": "segment crack", "width": 96, "height": 64, **(item or {})}
    files = [("mask", ("m.png", mask_png, "image/png"))]
    return client.post("/v1/export", data={"items": json.dumps([item])}, files=files)


def test_export_reads_a_zero_one_mask_as_mask(client):
    import json
    import zipfile

    mask = np.zeros((64, 96), dtype=np.uint8)
    mask[30:33, 10:90] = 1
    response = export_one(client, png_bytes(mask))
    assert response.status_code == 200, response.text
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        (record,) = [json.loads(line) for line in archive.read("results.jsonl").decode().splitlines()]
    assert record["figures"]["area_px"] == 240 and record["verdict"] == "fail"


def test_export_of_an_absurd_size_is_422_json(client):
    response = client.post("/v1/export", files=[("mask", ("m.png", _png(np.zeros((64, 96), dtype=bool)), "image/png"))],
                           data={"items": '[{"image": "a.jpg", "prompt": "segment crack", "width": 1' + "0" * 400
                                          + ', "height": 64}]'})
    assert response.status_code == 422 and "width x height" in response.json()["error"]["message"]


class BrokenPredictor(DarkPixelPredictor):
    """A model that fails with an error no check foresaw."""

    def predict_batch(self, images, prompts, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")


def test_every_internal_error_is_the_json_envelope():
    with TestClient(create_app(BrokenPredictor()), raise_server_exceptions=False) as client:
        response = segment(client)
    assert response.status_code == 500 and response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == "internal_error" and "RuntimeError" in error["message"] and "CUDA" not in error["message"]


def model_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "drywallqa-model"]


def test_shutdown_stops_the_model_thread_and_the_worker_threads(dark_predictor):
    before = set(model_threads())
    app = create_app(dark_predictor)
    with TestClient(app) as client:
        assert segment(client).status_code == 200
        batcher, executor = app.state.batching.batcher, app.state.work_queue.executor
        assert batcher is not None and executor is not None and set(model_threads()) - before
    assert app.state.batching.batcher is None and app.state.work_queue.executor is None
    assert batcher._closed and not batcher._thread.is_alive() and executor._shutdown
    assert set(model_threads()) <= before
    with TestClient(app) as client:  # the app can be started again: new threads, stopped again
        assert segment(client).status_code == 200
    assert set(model_threads()) <= before


def test_a_timed_out_request_leaves_no_work_behind():
    slow = DarkPixelPredictor(delay_s=1.0)
    app = create_app(slow, timeout_s=0.3, max_batch=1)
    with TestClient(app) as client:
        responses = segment_at_once(client, 2)  # one in the model for 1 s, one queued behind it
        assert [r.status_code for r in responses] == [504, 504]
        batcher = app.state.batching.batcher
    batcher.close()  # once the model thread is done with what was queued:
    assert slow.calls == 1  # the queued request's pair was dropped, not predicted for nobody


def test_the_servers_prompt_file_picks_the_class_threshold_of_its_prompts(open_client, tmp_path):
    predictor = RampPredictor()
    predictor.set_thresholds({"crack": 0.9})
    client = open_client(create_app(predictor, prompt_config=user_prompts(tmp_path)))
    alias, canonical = segment(client, {"prompt": ["mark the fissures", "segment crack"]}).json()["results"]
    assert alias["class"] == "crack" and alias["prompt_known"] is True
    assert alias["figures"]["area_px"] == canonical["figures"]["area_px"] < 96 * 64 * 0.15
