"""The on-device app of ``drywallqa app build`` in headless Chromium (Debian's ``chromium``, driven by
Playwright), with the shipped model and the real onnxruntime-web:

- offline after the first load (the service worker), from a plain static server;
- parity on 20 real photos of ../shared/data with ONNX Runtime in Python (masks IoU >= 0.99,
  figures within 1 %, crack widths and taping figures measured on the photo as predict measures
  them, the same verdicts);
- the live camera on Chromium's fake device, frames/s and milliseconds per frame shown;
- errors as one line: no WebGPU (runs on WebAssembly and says so), no camera, a corrupt photo, a
  prompt the on-device model does not know;
- ``drywallqa serve --app``: both switches, cross-origin isolated, the zip of on-device masks.

Marked ``integration``: each test drives a real model in a browser (seconds per photo on a busy
CPU). Skips without Chromium, Playwright or onnxruntime-web (fetched from npm once when missing).
"""

from __future__ import annotations

import base64
import collections
import functools
import http.server
import io
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from serving_helpers import DarkPixelPredictor, running_server
from test_serving_browser import CHROMIUM, CHROMIUM_FLAGS, FAKE_CAMERA_FLAGS

from drywallqa.data.synthetic import render_sample_image
from drywallqa.errors import DrywallQAError
from drywallqa.files import write_image

pytestmark = pytest.mark.integration
PARITY_PHOTOS = 20
PROMPTS = ("segment crack", "segment taping area")
MIN_IOU = 0.99
FIGURE_TOLERANCE = 0.01  # relative, with the figures' own rounding as the absolute floor
READY = "#device-status:text-matches('loaded in|could not')"
DONE = "#status:text-matches('^Done')"


@pytest.fixture(scope="module")
def app_folder(tmp_path_factory) -> Path:
    """The shipped model's app, built once (its ONNX export is the user cache's, as `predict` uses)."""
    from drywallqa.serving.webapp import build_webapp

    folder = tmp_path_factory.mktemp("webapp") / "app"
    try:
        build_webapp(folder, say=lambda line: None)
    except DrywallQAError as exc:
        pytest.skip(f"the app cannot be built here: {exc}")
    return folder


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def static_url(app_folder):
    """The app on a plain static server (no COOP/COEP headers, nothing drywallqa-specific)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(app_folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def playwright():
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
    with sync_api.sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="module")
def browser(playwright):
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS + FAKE_CAMERA_FLAGS)
    yield browser
    browser.close()


@pytest.fixture
def page(browser):
    """A page in a new context: its own cache and service workers, as a first visit."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    yield page
    context.close()


def sample_photos(folder: Path) -> list[Path]:
    """Two synthetic 640 px wall photos (a crack scene, a joint scene) and a corrupt one."""
    paths = []
    for index, dataset in enumerate(("cracks", "drywall-join")):
        paths.append(write_image(folder / f"wall-{index}.jpg", render_sample_image(dataset, index + 3, size=640).image))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not the rest of a JPEG")
    return paths + [folder / "broken.jpg"]


def open_app(page, url: str) -> str:
    page.goto(url)
    try:
        page.wait_for_selector(READY, timeout=120_000)
    except Exception as exc:  # say what the page shows instead
        raise AssertionError(f"the model did not load: {page.inner_text('#device-status')!r}, {page.errors}") from exc
    return page.inner_text("#device-status")


def inspect_on_device(page, paths, prompts=PROMPTS) -> str:
    page.check("#prompt-crack") if "segment crack" in prompts else page.uncheck("#prompt-crack")
    page.check("#prompt-taping") if "segment taping area" in prompts else page.uncheck("#prompt-taping")
    page.set_input_files("#files", [str(p) for p in paths])
    page.click("#submit")
    page.wait_for_selector(DONE, timeout=600_000)
    return page.inner_text("#status")


def page_results(page) -> list[dict]:
    """Every row's photo, prompt, verdicts, figures and mask (base64 of its 0/1 bytes, read back from
    the PNG the page keeps) from the page."""
    return page.evaluate("""() => Promise.all(rows.filter((row) => row.result).map(async (row) => {
        const bits = await maskInside(row.result);
        let text = "";
        for (let i = 0; i < bits.length; i += 8192) text += String.fromCharCode(...bits.subarray(i, i + 8192));
        return { name: row.photo.name, prompt: row.prompt, photo_verdict: row.photo.body.photo_verdict,
                 verdict: row.result.verdict, reasons: row.result.reasons, figures: row.result.figures,
                 size: row.result.mask.size, timing: row.photo.body.timing_ms, mask: btoa(text) };
    }))""")


def test_app_works_offline_after_the_first_load(page, static_url, tmp_path):
    note = open_app(page, static_url)
    # Headless Chromium has no WebGPU adapter: the page says so and runs on WebAssembly.
    assert "WebAssembly (SIMD" in note and "WebGPU" in note
    assert page.is_checked("#where-device") and page.is_disabled("#where-server") and not page.is_visible("#api-links")
    photos = sample_photos(tmp_path)
    status = inspect_on_device(page, photos[:1])
    assert status.startswith("Done: 1 of 1 photo(s) inspected on this device") and "s per photo" in status
    assert page.evaluate("navigator.serviceWorker.ready.then((r) => Boolean(r.active))")
    assert page.evaluate("document.querySelector('link[rel=manifest]') !== null")

    page.context.set_offline(True)
    note = open_app(page, static_url)  # the page, model and runtime all from the service worker's cache
    assert "loaded in" in note
    assert page.evaluate("fetch('not-in-the-app.txt').then(() => 'network', () => 'offline')") == "offline"
    # From the cache the page is cross-origin isolated, whatever the host sent: threads are possible.
    assert page.evaluate("crossOriginIsolated") is True
    status = inspect_on_device(page, photos[:2])
    assert status.startswith("Done: 2 of 2 photo(s) inspected on this device")
    rows = page_results(page)
    assert {(r["name"], r["prompt"]) for r in rows} == {(p.name, q) for p in photos[:2] for q in PROMPTS}
    page.click("#table tbody tr[tabindex]")
    page.wait_for_selector("#detail-caption:text-matches('ms on this device')")
    assert page.get_attribute("#detail-mask", "href").startswith("blob:")
    assert page.errors == []


def test_on_device_masks_figures_and_verdicts_match_onnx_runtime_in_python(page, static_url, shared_data, app_folder):
    """20 real photos, both prompts: the page's masks, figures and verdicts against `drywallqa predict`'s."""
    from drywallqa.files import read_photo
    from drywallqa.inference import load_predictor
    from drywallqa.qa import inspect_mask, photo_verdict

    photos = (sorted((shared_data / "cracks" / "valid").glob("*.jpg"))[: PARITY_PHOTOS // 2]
              + sorted((shared_data / "drywall-join" / "valid").glob("*.jpg"))[: PARITY_PHOTOS // 2])
    assert len(photos) == PARITY_PHOTOS
    open_app(page, static_url)
    status = inspect_on_device(page, photos)
    assert status.startswith(f"Done: {PARITY_PHOTOS} of {PARITY_PHOTOS} photo(s) inspected on this device"), status
    got = {(row["name"], row["prompt"]): row for row in page_results(page)}

    predictor = load_predictor(None, device="cpu", runtime="onnx", say=None)  # the graph the app carries
    assert predictor.path.read_bytes() == (app_folder / "model" / "model.onnx").read_bytes()
    ious, worst, off, sources, deviations, measured = [], [], [], collections.Counter(), [], collections.Counter()
    for path in photos:
        photo = read_photo(path)
        results = predictor.predict_batch([photo.pixels] * len(PROMPTS), list(PROMPTS))
        verdicts = []
        for prompt, result in zip(PROMPTS, results):
            row = got[(path.name, prompt)]
            mask = np.frombuffer(base64.b64decode(row["mask"]), np.uint8).reshape(row["size"]).astype(bool)
            union = np.logical_or(mask, result.mask).sum()
            iou = np.logical_and(mask, result.mask).sum() / union if union else 1.0
            ious.append(iou)
            # As predict measures it: on the photo at the mask's size (crack widths across the dark
            # line, taping figures on the band refined from the photo).
            inspection = inspect_mask(result.mask, prompt, image=photo.pixels, confidence=result.confidence,
                                      scale=photo.scale)
            expected = inspection.to_dict()
            for name, value in expected["figures"].items():
                floor = 1e-4 if name in ("area_percent", "confidence") else 0.01
                if value is None or isinstance(value, str):  # width_source: "photo" on both sides
                    if row["figures"][name] != value:
                        off.append((path.name, prompt, name, row["figures"][name], value))
                else:
                    if value:
                        deviations.append((abs(row["figures"][name] - value) / abs(value), path.name, prompt, name))
                    if row["figures"][name] != pytest.approx(value, rel=FIGURE_TOLERANCE, abs=floor):
                        off.append((path.name, prompt, name, row["figures"][name], value))
            sources[(prompt, expected["figures"].get("width_source"))] += 1
            measured[prompt] += expected["figures"].get("width_max_px") is not None
            assert row["verdict"] == expected["verdict"], (path.name, prompt, row["figures"], expected["figures"])
            verdicts.append(expected["verdict"])
            worst.append((iou, path.name, prompt))
        assert got[(path.name, PROMPTS[0])]["photo_verdict"] == photo_verdict(verdicts)
    assert min(ious) >= MIN_IOU, sorted(worst)[:3]
    print("width sources:", dict(sources), "with widths:", dict(measured),  # shown with -s
          "largest relative figure deviations:", sorted(deviations, reverse=True)[:5])
    assert off == [], f"{len(off)} figures off by more than {FIGURE_TOLERANCE:.0%}: {off}"
    # Widths measured on the photo, as predict measures them, for both prompts (the page's and
    # Python's width_source agree row by row above).
    assert sources[(PROMPTS[0], "photo")] and sources[(PROMPTS[1], "photo")], dict(sources)
    assert page.errors == []


def test_photos_are_turned_as_python_turns_them(page, static_url, tmp_path):
    """A phone photo held upright (EXIF orientation 6): the page judges it turned, as read_photo does."""
    from oriented_photos import with_orientation

    from drywallqa.files import read_photo
    from drywallqa.inference import load_predictor

    scene = render_sample_image("cracks", 5, size=640).image[:480]  # 640 x 480: a turn shows in the shape
    photo = with_orientation(tmp_path / "upright.jpg", 6, scene)
    open_app(page, static_url)
    inspect_on_device(page, [photo], prompts=("segment crack",))
    row = page_results(page)[0]
    expected = load_predictor(None, device="cpu", runtime="onnx", say=None).predict(read_photo(photo).pixels, "segment crack")
    assert row["size"] == list(expected.mask.shape) == [640, 480]
    mask = np.frombuffer(base64.b64decode(row["mask"]), np.uint8).reshape(row["size"]).astype(bool)
    assert np.logical_and(mask, expected.mask).sum() / np.logical_or(mask, expected.mask).sum() >= MIN_IOU


def test_webgpu_when_the_browser_has_an_adapter(playwright, static_url, tmp_path):
    """SwiftShader's software WebGPU adapter stands in for a GPU: the page picks WebGPU, and its mask
    is ONNX Runtime's in Python (one photo, one prompt: software WebGPU takes tens of seconds a run)."""
    from drywallqa.files import read_photo
    from drywallqa.inference import load_predictor

    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                         args=[*CHROMIUM_FLAGS, "--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader"])
    try:
        page = browser.new_context().new_page()
        page.goto(static_url)
        page.wait_for_selector(READY, timeout=600_000)
        if not page.evaluate("navigator.gpu ? navigator.gpu.requestAdapter().then(Boolean) : false"):
            pytest.skip("this Chromium offers no software WebGPU adapter")
        assert page.inner_text("#device-status").startswith("On this device: WebGPU.")
        photo = sample_photos(tmp_path)[0]
        inspect_on_device(page, [photo], prompts=("segment crack",))
        row = page_results(page)[0]
    finally:
        browser.close()
    mask = np.frombuffer(base64.b64decode(row["mask"]), np.uint8).reshape(row["size"]).astype(bool)
    expected = load_predictor(None, device="cpu", runtime="onnx", say=None).predict(read_photo(photo).pixels, "segment crack")
    assert np.logical_and(mask, expected.mask).sum() / max(np.logical_or(mask, expected.mask).sum(), 1) >= MIN_IOU


def test_live_camera_runs_on_the_device(page, static_url):
    """Chromium's fake camera: frames go to the model in the page, frames/s and ms per frame shown."""
    open_app(page, static_url)
    page.click("#live-open")
    page.wait_for_function("Number(document.getElementById('live-count').textContent) >= 3", timeout=180_000)
    status = page.inner_text("#live-status")
    assert status.startswith("Live on this device (WebAssembly") and " ms." in status
    assert float(page.inner_text("#live-fps")) > 0
    assert page.locator("#live-table tbody tr").count() == 2  # one row per ticked prompt
    assert page.evaluate("document.getElementById('live-overlay').width") > 16  # the masks were drawn
    page.click("#live-stop")
    assert page.inner_text("#live-status") == "Camera stopped."
    assert page.errors == []


def test_errors_are_one_line(page, static_url, playwright, tmp_path):
    open_app(page, static_url)
    # A corrupt photo is an error row among the others; the batch goes on.
    status = inspect_on_device(page, sample_photos(tmp_path))
    assert status == status.splitlines()[0] and ", 1 with an error (see the table)." in status
    page.select_option("#filter", "error")
    error = page.locator("#table tbody .error-text").first.inner_text()
    assert error == "broken.jpg: not a readable image (corrupt, or a format this browser cannot decode)"
    # A prompt without an embedding in the app cannot run here: said before anything runs.
    page.fill("#prompt-custom", "segment mould")
    page.click("#submit")
    message = page.inner_text("#status")
    assert 'does not know "segment mould"' in message and "run on the server" in message and "\n" not in message
    assert page.errors == []

    # No camera on the device (no fake one): one line on the page.
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
    try:
        context = browser.new_context()
        context.grant_permissions(["camera"])
        bare = context.new_page()
        open_app(bare, static_url)
        bare.click("#live-open")
        bare.wait_for_selector("#live-status.error", timeout=30_000)
        assert bare.inner_text("#live-status") in ("No camera found on this device.",
                                                   "The camera could not be opened: another app may be using it.")
    finally:
        browser.close()


def test_serve_app_offers_both_and_zips_on_device_masks(page, app_folder, tmp_path):
    pytest.importorskip("uvicorn")
    from drywallqa.serving import create_app

    photo = sample_photos(tmp_path)[0]
    with running_server(create_app(DarkPixelPredictor(level=130), model_id="dark-pixels", webapp_dir=str(app_folder))) as (port, _):
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector("#where:not([hidden])")
        # The server's page keeps the server as the default, and is cross-origin isolated by its headers.
        assert page.is_checked("#where-server") and page.is_enabled("#where-device")
        assert page.evaluate("crossOriginIsolated") is True and page.is_visible("#api-links")
        page.check("#where-device")
        page.wait_for_selector(READY, timeout=120_000)
        status = inspect_on_device(page, [photo])
        assert "inspected on this device" in status
        assert page.is_enabled("#download")
        with page.expect_download(timeout=120_000) as download:
            page.click("#download")
        names = zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes())).namelist()
        assert len([n for n in names if n.startswith("masks/") and n.endswith(".png")]) == 2, names
        page.check("#where-server")
        status = inspect_on_device(page, [photo])
        assert status == "Done: 1 of 1 photo(s) inspected."  # the server's words: no on-device timing
        assert page.evaluate("photos[0].body.model") == "dark-pixels"
    assert page.errors == []
