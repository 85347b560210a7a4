"""The web page and the HTML report in headless Chromium (Debian's `chromium`, driven by Playwright).

Skips with the reason when Chromium or Playwright is missing. Screenshots of the page and of the
report go to ``tests/artifacts/serving/`` (git-ignored; ``DRYWALLQA_TEST_ARTIFACTS`` overrides it), for review.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from serving_helpers import DarkPixelPredictor, dark_line_image, running_server

from drywallqa.data.synthetic import render_sample_image
from drywallqa.files import write_image
from drywallqa.inference.render import FIGURE_SET_COLOURS
from drywallqa.qa import photo_verdict as photo_verdict_of
from drywallqa.serving import predict_images, write_report

pytestmark = pytest.mark.integration  # Chromium driven by Playwright

CHROMIUM = os.environ.get("DRYWALLQA_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("DRYWALLQA_TEST_ARTIFACTS") or Path(__file__).resolve().parents[1] / "artifacts" / "serving")
# Headless, sandbox-free (containers run as root), and nothing reaching out to the network.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage"]
# Chromium's own test camera (a moving pattern) granted without a prompt, for the live preview.
FAKE_CAMERA_FLAGS = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory):
    """A Playwright persistent context on the system Chromium with a new, empty profile folder."""
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS + FAKE_CAMERA_FLAGS,
            viewport={"width": 1200, "height": 900},
        )
        yield context
        context.close()


@pytest.fixture(scope="module")
def server_url():
    """The app on uvicorn in a thread, on a free port of 127.0.0.1."""
    pytest.importorskip("uvicorn", reason="the HTTP service needs uvicorn (pip install 'drywallqa[serve]')")
    pytest.importorskip("fastapi", reason="the HTTP service needs FastAPI (pip install 'drywallqa[serve]')")
    from drywallqa.serving import create_app

    # Dark pixels stand in for the model so the screenshot shows the synthetic cracks; the real
    # model path (lazy loading included) is covered by test_serving_api.
    with running_server(create_app(DarkPixelPredictor(level=130), model_id="dark-pixels")) as (port, _):
        yield f"http://127.0.0.1:{port}"


def _photo_folder(tmp_path: Path) -> Path:
    """Three photos in a folder with a sub-folder, and one file that is no image."""
    photos = tmp_path / "wall-7"
    write_image(photos / "crack-a.jpg", render_sample_image("cracks", 2, size=384).image)
    write_image(photos / "corner" / "crack-b.jpg", render_sample_image("cracks", 5, size=320).image)
    write_image(photos / "short-line.png", dark_line_image(cols=slice(45, 55), rows=slice(30, 31)))
    (photos / "notes.jpg").write_text("not an image")
    return photos


def _canvas_pixels(page) -> list[list[int]]:
    """The detail canvas's pixels as [r, g, b] where the mask is, and elsewhere, one of each."""
    return page.evaluate("""() => {
        const canvas = document.getElementById('canvas');
        return Array.from(canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data);
    }""")


def test_batch_upload_table_slider_and_download(browser_context, server_url, tmp_path):
    import zipfile

    from pycocotools.coco import COCO

    folder = _photo_folder(tmp_path)
    page = browser_context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server_url + "/")
    assert page.title().startswith("drywallqa")
    page.set_input_files("#folder", str(folder))  # a whole folder, sub-folders included
    assert "4 photo(s) chosen" in page.inner_text("#drop-text")
    assert page.is_checked("#prompt-crack") and page.is_checked("#prompt-taping")
    page.fill("#mm", "0.5")
    page.click("#submit")
    page.wait_for_selector("#status:text-matches('^Done')", timeout=60_000)  # the page's CSP allows no eval
    assert page.inner_text("#status") == "Done: 3 of 4 photo(s) inspected, 1 with an error (see the table)."
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-page-batch.png"), full_page=True)

    rows = page.locator("#table tbody tr")
    assert rows.count() == 8  # 4 photos x 2 prompts
    names = page.eval_on_selector_all("#table tbody td.name", "cells => cells.map(c => c.textContent)")
    assert sorted(set(names)) == ["wall-7/corner/crack-b.jpg", "wall-7/crack-a.jpg", "wall-7/notes.jpg",
                                  "wall-7/short-line.png"]
    assert page.inner_text("#longest-head") == "longest (mm)"

    # Errors stay with their photo; the filter shows one verdict at a time.
    page.select_option("#filter", "error")
    assert rows.count() == 2 and "error 415" in rows.first.inner_text() and "notes.jpg" in rows.first.inner_text()
    page.select_option("#filter", "fail")
    verdicts = page.eval_on_selector_all("#table tbody .badge", "badges => badges.map(b => b.textContent)")
    assert verdicts and set(verdicts) == {"fail"}
    page.select_option("#filter", "all")
    # Each row shows its photo's verdict: fail where any prompt fails, else pass, else not found.
    photo_verdicts = page.eval_on_selector_all(
        "#table tbody tr", "rows => rows.map(r => [r.cells[0].textContent, r.cells[1].textContent, r.cells[3].textContent])")
    by_photo: dict[str, tuple[set[str], list[str]]] = {}
    for name, photo_verdict, verdict in photo_verdicts:
        by_photo.setdefault(name, (set(), []))[0].add(photo_verdict)
        by_photo[name][1].append(verdict)
    for name, (shown, verdicts) in by_photo.items():
        assert shown == ({""} if name.endswith("notes.jpg") else {photo_verdict_of(verdicts)}), name
    assert page.inner_text("#summary").startswith("photos: ")

    # Sorting: severity descending puts the worst first; missing values (errors) stay last.
    page.click("th[data-sort=severity]")
    page.click("th[data-sort=severity]")
    severities = page.eval_on_selector_all("#table tbody tr td:nth-child(5)", "cells => cells.map(c => c.textContent)")
    numbers = [float(v) for v in severities if v != "–"]
    assert numbers == sorted(numbers, reverse=True) and severities[-2:] == ["–", "–"]

    # One result: the overlay, its opacity, the photo and the mask, the rules that failed, mm figures.
    rows.first.click()
    page.wait_for_selector("#detail:not([hidden])")
    page.wait_for_selector("#canvas[data-view=overlay]", state="attached")
    assert page.inner_text("#detail-verdict") == "FAIL" or page.inner_text("#detail-verdict").lower() == "fail"
    assert page.locator("#detail-reasons li").count() >= 1 and "Rules failed" in page.inner_text("#detail-rules-title")
    assert "longest (mm)" in page.inner_text("#detail-figures")
    page.screenshot(path=str(ARTIFACTS / "web-page-detail.png"), full_page=True)
    moved = page.evaluate("""() => {
        const slider = document.getElementById('opacity');
        slider.value = 100; slider.dispatchEvent(new Event('input'));
    }""")
    page.wait_for_timeout(300)
    full = _canvas_pixels(page)
    page.evaluate("""() => {
        const slider = document.getElementById('opacity');
        slider.value = 0; slider.dispatchEvent(new Event('input'));
    }""")
    page.wait_for_timeout(300)
    none = _canvas_pixels(page)
    assert moved is None and len(full) == len(none)
    changed = sum(1 for i in range(0, len(full), 4) if full[i:i + 3] != none[i:i + 3])
    assert changed > 0
    figure_set = page.inner_text("#detail-class").split(" · ")[1].split()[0]
    colour = list(FIGURE_SET_COLOURS[figure_set])  # the colour predict's overlays use for this figure set
    tinted = sum(1 for i in range(0, len(full), 4) if full[i:i + 3] == colour)
    assert tinted == changed  # at full opacity the mask is its colour, at none the photo
    page.check("input[name=view][value=mask]")
    page.wait_for_selector("#canvas[data-view=mask]", state="attached")
    mask = _canvas_pixels(page)
    assert {tuple(mask[i:i + 3]) for i in range(0, len(mask), 4)} <= {(0, 0, 0), (255, 255, 255)}
    page.check("input[name=view][value=photo]")
    page.wait_for_selector("#canvas[data-view=photo]", state="attached")
    assert page.get_attribute("#detail-mask", "href").startswith("data:image/png;base64,")

    # Everything as one zip: masks, overlays, the tables and COCO, laid out like a predict folder.
    with page.expect_download(timeout=60_000) as download_info:
        page.click("#download")
    archive = tmp_path / "results.zip"
    download_info.value.save_as(archive)
    with zipfile.ZipFile(archive) as zipped:
        names = zipped.namelist()
        zipped.extractall(tmp_path / "unzipped")
    assert len([n for n in names if n.startswith("masks/")]) == 6 and len([n for n in names if n.startswith("overlays/")]) == 6
    assert {"results.csv", "results.jsonl", "coco.json"} <= set(names)
    coco = COCO(str(tmp_path / "unzipped" / "coco.json"))
    assert len(coco.getImgIds()) == 3 and len(coco.getAnnIds()) >= 1
    assert "longest_mm" in (tmp_path / "unzipped" / "results.csv").read_text().splitlines()[0]
    assert "Downloaded drywallqa-results.zip" in page.inner_text("#status")
    assert errors == []
    page.close()


def test_report_opens_offline(browser_context, tmp_path):
    photos = tmp_path / "photos"
    write_image(photos / "site-wall.jpg", render_sample_image("cracks", 2, size=384).image)
    write_image(photos / "long-crack.png", dark_line_image(cols=slice(5, 95)))
    write_image(photos / "short-crack.png", dark_line_image(cols=slice(45, 55), rows=slice(30, 31)))
    out = tmp_path / "out"
    # 0.3 mm/px: the long crack is 27 mm long (fails), the short one 3 mm long and its 1 px line,
    # measured on the photo, well under 0.5 mm wide (passes).
    predict_images([photos], ["segment crack"], out, DarkPixelPredictor(level=130), mm_per_px=0.3)
    report = write_report(out, tmp_path / "report.html")

    page = browser_context.new_page()
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(report.as_uri())
    page.wait_for_load_state("load")
    assert all(url.startswith(("file://", "data:")) for url in requests), requests
    loaded = page.evaluate("Array.from(document.images).map(img => img.complete && img.naturalWidth > 0)")
    assert loaded == [True, True, True]
    verdicts = page.eval_on_selector_all("tbody tr", "rows => rows.map(row => row.className)")
    assert verdicts == ["fail", "fail", "pass"]
    assert page.inner_text("tbody tr:last-child .file") == "short-crack.png"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
    page.close()


def test_page_before_an_upload_shows_nothing_broken(browser_context, server_url):
    page = browser_context.new_page()
    errors, missing = [], []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("response", lambda response: missing.append(response.url) if response.status >= 400 else None)
    page.goto(server_url + "/")
    page.wait_for_load_state("load")
    # Before: `.result { display: flex }` beat `hidden`, showing a broken image, a "-" and a live
    # "Download mask" link to "#". Now neither the table, the detail nor the download shows yet.
    for selector in ("#results", "#detail", "#canvas", "#download", "#detail-mask", "#progress",
                     "#live", "#live-video", "#live-overlay", "#live-stop", "#live-details"):
        assert not page.is_visible(selector), selector
    assert page.is_visible("#live-open") and page.is_enabled("#live-open")
    shown_broken = page.evaluate(
        "Array.from(document.images).filter(img => img.getClientRects().length && !(img.complete && img.naturalWidth))"
        ".length")
    assert shown_broken == 0 and page.is_disabled("#submit") and "Choose photos" in page.inner_text("#status")
    # Nothing to inspect in what was chosen: said at once, and Inspect stays off.
    page.set_input_files("#files", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"no photo"}])
    assert page.is_disabled("#submit") and "No image files" in page.inner_text("#status")
    favicon = page.evaluate("fetch('/favicon.ico').then(r => [r.status, r.headers.get('content-type')])")
    assert favicon == [200, "image/x-icon"]
    assert errors == [] and missing == []
    page.close()


def test_api_docs_render_offline_in_chromium(browser_context, server_url):
    page = browser_context.new_page()
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(server_url + "/docs")
    # Swagger UI 4.x answered FastAPI's OpenAPI 3.1 with "Unable to render this definition".
    page.wait_for_selector(".opblock-summary-path[data-path='/v1/segment']", timeout=30_000)
    text = page.inner_text("body")
    assert "Unable to render" not in text and "/healthz" in text
    assert all(url.startswith((server_url, "data:")) for url in requests), requests  # nothing from a CDN
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "api-docs.png"), full_page=True)
    page.close()


AT_LEAST_TWO = "^([2-9]|[1-9][0-9]+)$"


def _camera_tracks(page) -> list[str]:
    """readyState of the tracks of the stream kept by _keep_stream (the page drops its own on Stop)."""
    return page.evaluate("() => window.keptStream.getTracks().map(track => track.readyState)")


def _keep_stream(page) -> None:
    page.evaluate("() => { window.keptStream = document.getElementById('live-video').srcObject; }")


def test_live_camera_preview_draws_answers_and_stops(browser_context, server_url):
    page = browser_context.new_page()
    errors, in_flight, most_in_flight = [], [0], [0]
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    def sent(request):
        if request.url.endswith("/v1/segment"):
            in_flight[0] += 1
            most_in_flight[0] = max(most_in_flight[0], in_flight[0])

    def back(request):
        if request.url.endswith("/v1/segment"):
            in_flight[0] -= 1

    page.on("request", sent)
    page.on("requestfinished", back)
    page.on("requestfailed", back)
    page.goto(server_url + "/")
    page.fill("#mm", "0.5")
    page.click("#live-open")
    page.wait_for_selector(f"#live-count:text-matches('{AT_LEAST_TWO}')", timeout=60_000)
    assert page.is_visible("#live-video") and page.is_visible("#live-stop") and not page.is_visible("#live-start")
    assert "error" not in page.get_attribute("#live-status", "class").split()
    assert page.inner_text("#live-status").startswith("Live:")
    assert page.inner_text("#live-verdict").lower() in {"fail", "pass", "not found", "unchecked"}
    prompts = page.eval_on_selector_all("#live-table tbody td:first-child", "cells => cells.map(c => c.textContent)")
    assert prompts == ["segment crack", "segment taping area"]
    assert page.inner_text("#live-longest-head") == "longest (mm)"
    assert float(page.inner_text("#live-fps")) > 0
    # The frames sent are at most 640 px on the long side, with the camera's aspect; the overlay
    # canvas has the mask's size and lies exactly over the video.
    sizes = page.evaluate("""() => {
        const video = document.getElementById('live-video'), overlay = document.getElementById('live-overlay');
        const a = video.getBoundingClientRect(), b = overlay.getBoundingClientRect();
        return [video.videoWidth, video.videoHeight, overlay.width, overlay.height,
                [a.x, a.y, a.width, a.height].map(Math.round), [b.x, b.y, b.width, b.height].map(Math.round)];
    }""")
    video_w, video_h, mask_w, mask_h, video_box, overlay_box = sizes
    assert max(mask_w, mask_h) == min(640, max(video_w, video_h))
    assert abs(mask_w / mask_h - video_w / video_h) < 0.01 and video_box == overlay_box
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-page-live.png"), full_page=True)

    _keep_stream(page)
    assert _camera_tracks(page) == ["live"]
    page.click("#live-stop")
    assert _camera_tracks(page) == ["ended"]  # the camera is released
    assert page.inner_text("#live-status") == "Camera stopped."
    assert not page.is_visible("#live-video") and page.is_visible("#live-start")
    answers = int(page.inner_text("#live-count"))
    page.wait_for_timeout(500)
    assert int(page.inner_text("#live-count")) == answers  # nothing drawn after Stop
    assert most_in_flight[0] == 1  # one request at a time: a slow server never gets a queue
    assert errors == []
    page.close()


def test_live_camera_errors_are_one_line(browser_context, server_url):
    # Permission denied: one line, the Start button back, nothing else shown.
    page = browser_context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.add_init_script("""navigator.mediaDevices.getUserMedia =
        () => Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));""")
    page.goto(server_url + "/")
    page.click("#live-open")
    page.wait_for_selector("#live-status.error")
    assert page.inner_text("#live-status").startswith("Camera access was denied: allow the camera")
    assert page.is_visible("#live-start") and page.is_enabled("#live-start")
    for selector in ("#live-stop", "#live-video", "#live-details"):
        assert not page.is_visible(selector), selector
    page.close()

    # No camera API (a page over plain http from another machine): the line says why.
    page = browser_context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.add_init_script("""Object.defineProperty(Navigator.prototype, 'mediaDevices', { get: () => undefined });
        Object.defineProperty(window, 'isSecureContext', { get: () => false });""")
    page.goto(server_url + "/")
    page.click("#live-open")
    page.wait_for_selector("#live-status.error")
    assert page.inner_text("#live-status").startswith("The camera needs a secure page: open it over https or on localhost")
    page.close()

    # The server busy (503), then refusing (422): the busy line, then one error line and the camera released.
    page = browser_context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    answers = iter([(503, {"Retry-After": "1"}, "the server is busy (1 running, 0 waiting); retry after 1 s"),
                    (422, {}, "prompt: at most 8 prompts per request")])

    def refuse(route):
        status, headers, message = next(answers, (422, {}, "prompt: at most 8 prompts per request"))
        route.fulfill(status=status, headers=headers, content_type="application/json",
                      body=json.dumps({"error": {"status": status, "code": "refused", "message": message}}))

    page.route("**/v1/segment", refuse)
    page.goto(server_url + "/")
    page.click("#live-open")
    page.wait_for_selector("#live-status:text-matches('busy')", timeout=30_000)
    assert page.inner_text("#live-status") == "The server is busy: next frame in 1 s."
    _keep_stream(page)
    page.wait_for_selector("#live-status:text-matches('error 422')", timeout=30_000)
    assert page.inner_text("#live-status") == ("Camera stopped: the server answered error 422: "
                                               "prompt: at most 8 prompts per request")
    assert _camera_tracks(page) == ["ended"] and page.is_visible("#live-start") and not page.is_visible("#live-video")
    assert errors == []
    page.close()
