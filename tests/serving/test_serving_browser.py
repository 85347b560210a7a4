"""The web page and the HTML report in headless Chromium (Debian's `chromium`, driven by Playwright).

Skips with the reason when Chromium or Playwright is missing. Screenshots of the page and of the
report go to ``artifacts/serving/`` (git-ignored; ``DRYWALLQA_TEST_ARTIFACTS`` overrides it).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from serving_helpers import DarkPixelPredictor, dark_line_image, running_server

from drywallqa.data.synthetic import render_sample_image
from drywallqa.files import write_image
from drywallqa.serving import predict_images, write_report

CHROMIUM = os.environ.get("DRYWALLQA_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("DRYWALLQA_TEST_ARTIFACTS") or Path(__file__).resolve().parents[2] / "artifacts" / "serving")
# Headless, sandbox-free (containers run as root), and nothing reaching out to the network.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory):
    """A Playwright persistent context on the system Chromium with a new, empty profile folder."""
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS,
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


def test_page_uploads_a_photo_and_shows_the_overlay(browser_context, server_url, tmp_path):
    photo = write_image(tmp_path / "wall-with-cracks.jpg", render_sample_image("cracks", 2, size=384).image)
    page = browser_context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server_url + "/")
    assert page.title().startswith("drywallqa")
    page.set_input_files("#file", str(photo))
    page.fill("#prompt", "segment crack")
    page.fill("#mm", "0.5")
    page.click("#submit")
    page.wait_for_selector("#result:not([hidden])", timeout=30_000)
    overlay = page.locator("#overlay")
    assert overlay.get_attribute("src").startswith("data:image/jpeg;base64,")
    assert page.evaluate("document.getElementById('overlay').naturalWidth") == 384
    assert page.inner_text("#verdict").lower() == "fail"
    figures = page.inner_text("#figures")
    assert "covered area (%)" in figures and "longest (mm)" in figures
    assert page.get_attribute("#download", "href").startswith("data:image/png;base64,")
    assert page.inner_text("#status") == "Done."
    assert errors == []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-page.png"), full_page=True)

    # A file that is not an image gets the server's message on the page.
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    page.set_input_files("#file", str(bad))
    page.click("#submit")
    page.wait_for_selector("#status.error", timeout=10_000)
    assert "415" in page.inner_text("#status")
    page.close()


def test_report_opens_offline(browser_context, tmp_path):
    photos = tmp_path / "photos"
    write_image(photos / "site-wall.jpg", render_sample_image("cracks", 2, size=384).image)
    write_image(photos / "long-crack.png", dark_line_image(cols=slice(5, 95)))
    write_image(photos / "short-crack.png", dark_line_image(cols=slice(45, 55), rows=slice(30, 31)))
    out = tmp_path / "out"
    predict_images([photos], ["segment crack"], out, DarkPixelPredictor(level=130), mm_per_px=0.5)
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
    # "Download mask" link to "#".
    for selector in ("#result", "#overlay", "#verdict", "#download", "#preview-panel"):
        assert not page.is_visible(selector), selector
    shown_broken = page.evaluate(
        "Array.from(document.images).filter(img => img.getClientRects().length && !(img.complete && img.naturalWidth))"
        ".length")
    assert shown_broken == 0 and page.is_disabled("#submit") and "Choose a photo" in page.inner_text("#status")
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
