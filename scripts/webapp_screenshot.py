"""Screenshot of the on-device app for docs/field.md: two sample-data photos inspected in headless Chromium.

    python scripts/webapp_screenshot.py [--app APP] [--out docs/images/webapp-on-device.png]

Builds the app (``drywallqa app build``, WebAssembly only) unless ``--app`` is given, serves it as a
plain static folder, opens it in headless Chromium (no WebGPU there: it runs on WebAssembly),
inspects two synthetic 640 px photos of the sample data (``render_sample_image``: never a photo of
the real datasets) with both prompts on the device, opens the first crack's overlay and saves the page.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", type=Path, help="an app folder of `drywallqa app build` (default: build one)")
    parser.add_argument("--out", type=Path, default=Path("docs/images/webapp-on-device.png"))
    parser.add_argument("--chromium", default=os.environ.get("DRYWALLQA_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    from drywallqa.data.synthetic import render_sample_image
    from drywallqa.files import atomic_write_bytes, write_image
    from drywallqa.serving.webapp import build_webapp

    with tempfile.TemporaryDirectory(prefix="drywallqa-webapp-shot-") as tmp:
        app = args.app
        if app is None:
            app = Path(tmp) / "app"
            build_webapp(app, webgpu=False, say=lambda line: print(line, file=sys.stderr))
        photos = [write_image(Path(tmp) / "photos" / f"wall-{i + 1}.jpg", render_sample_image(dataset, seed, size=640).image)
                  for i, (dataset, seed) in enumerate((("cracks", 5), ("drywall-join", 2)))]
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(app)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=args.chromium, headless=True,
                                                 args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
            page = browser.new_context(viewport={"width": 1200, "height": 900}, device_scale_factor=1).new_page()
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/")
            page.wait_for_selector("#device-status:text-matches('loaded in')", timeout=300_000)
            page.set_input_files("#files", [str(p) for p in photos])
            page.click("#submit")
            page.wait_for_selector("#status:text-matches('^Done')", timeout=300_000)
            page.locator("#table tbody tr[tabindex]", has_text="segment crack").first.click()
            page.wait_for_selector("#detail-caption:text-matches('ms on this device')")
            page.wait_for_timeout(300)  # the canvas is drawn
            shot = page.screenshot(full_page=True)
            browser.close()
        server.shutdown()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out, shot)
    print(f"wrote {args.out} ({len(shot) / 1e3:.0f} kB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
