"""Time one 640 px photo per prompt on the on-device app in headless Chromium, and write the table into docs/field.md.

    python scripts/webapp_speed.py                       # build the app (WebAssembly only), measure, print
    python scripts/webapp_speed.py --app APP --write-docs docs/field.md

The app (``drywallqa app build``) is served with COOP/COEP headers, so WebAssembly may run on several
threads; each setting loads the page afresh with ``?backend=wasm&threads=N``. A run is what the page
does for a photo it is given (decode, resize, model, mask, figures, verdict) with one prompt, on a
synthetic 640x640 JPEG of the sample data (``render_sample_image``): "segment crack" on a crack wall
(the goal's rows) and "segment taping area" on a wall with joints, whose QA step refines the taping
band from the photo (static/taping_band.js). Reported: wall-time p50/p95, stage medians (the page's
own ``timing_ms``) with the QA step's (mask, figures, verdict) share of the wall time, and the CPU
time the renderer process used per photo (Chrome's ``ProcessTime`` metric, all its threads): on a
machine shared with other work the wall time waits for cores, the CPU time much less. The load
average before and after is printed beside the table.
"""

from __future__ import annotations

import argparse
import base64
import functools
import http.server
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from drywallqa.hardware import cpu_name

GOAL_MS = 250.0
GOAL_PROMPT = "segment crack"
#: Each prompt's photo: the sample-data scene its class is drawn in (seed 0).
PHOTOS = {"segment crack": "cracks", "segment taping area": "drywall-join"}
BEGIN, END = "<!-- webapp-speed:start -->", "<!-- webapp-speed:end -->"


class IsolatedHandler(http.server.SimpleHTTPRequestHandler):
    """A static server that sends COOP/COEP, as a host configured for the app would."""

    def end_headers(self):
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()

    def log_message(self, *args):
        pass


def serve(folder: Path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(IsolatedHandler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def sample_jpeg(dataset: str) -> bytes:
    import simplejpeg

    from drywallqa.data.synthetic import render_sample_image

    return simplejpeg.encode_jpeg(render_sample_image(dataset, 0, size=640).image, quality=90, colorspace="RGB")


def measure(browser, url: str, threads: int, prompt: str, photo: bytes, runs: int, warmup: int) -> dict:
    page = browser.new_context().new_page()
    cdp = page.context.new_cdp_session(page)
    cdp.send("Performance.enable")
    page.goto(f"{url}?backend=wasm&threads={threads}")
    page.wait_for_selector("#device-status:text-matches('loaded in|could not')", timeout=300_000)
    note = page.inner_text("#device-status")
    if "loaded in" not in note:
        raise SystemExit(f"the model did not load: {note}")
    data = base64.b64encode(photo).decode("ascii")

    def process_time() -> float:
        return next(m["value"] for m in cdp.send("Performance.getMetrics")["metrics"] if m["name"] == "ProcessTime")

    timings, cpu = [], []
    for index in range(warmup + runs):
        before = process_time()
        timing = page.evaluate("""async ([data, prompt]) => {
            const blob = new Blob([Uint8Array.from(atob(data), (c) => c.charCodeAt(0))], { type: "image/jpeg" });
            return (await onDevice.inspectFile(blob, "wall.jpg", [prompt])).timing_ms;
        }""", [data, prompt])
        if index >= warmup:
            timings.append(timing)
            cpu.append(1000 * (process_time() - before))
    backend = page.evaluate("onDevice.backend")
    page.context.close()
    totals = sorted(t["total"] for t in timings)
    return {
        "prompt": prompt, "threads": threads, "backend": backend, "runs": runs,
        "p50": statistics.median(totals), "p95": totals[min(len(totals) - 1, round(0.95 * (len(totals) - 1)))],
        "cpu": statistics.mean(cpu), **{k: statistics.median(t[k] for t in timings) for k in ("decode", "resize", "model", "figures")},
    }


def markdown(rows: list[dict], machine: str, loads: tuple, chromium: str, ort_web: str) -> str:
    lines = [
        (f"Measured on {time.strftime('%Y-%m-%d')}: one 640x640 JPEG per prompt (sample data, seed 0: a crack wall "
         f"for \"{GOAL_PROMPT}\", a wall with joints for the others), WebAssembly (SIMD), headless "
         f"Chromium {chromium}, onnxruntime-web {ort_web}, on {machine}; {rows[0]['runs']} timed runs per row after a "
         "warm-up. Wall ms: the page's own timing of the whole photo (decode to verdict); QA step: mask, figures "
         "(a taping area's measured on the band refined from the photo) and verdict, with its share of the wall "
         f"time; CPU ms: the renderer process's CPU time per photo, all threads. Goal: <= {GOAL_MS:.0f} ms wall "
         f"for \"{GOAL_PROMPT}\"."),
        "",
        "| prompt | threads | wall p50 ms | wall p95 ms | decode | resize | model | QA step (mask + figures + verdict) "
        "| CPU ms | goal |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        goal = ("yes" if r["p50"] <= GOAL_MS else "no") if r["prompt"] == GOAL_PROMPT else "-"
        lines.append(f"| {r['prompt']} | {r['threads']} | {r['p50']:.0f} | {r['p95']:.0f} | {r['decode']:.0f} | "
                     f"{r['resize']:.0f} | {r['model']:.0f} | {r['figures']:.0f} ({100 * r['figures'] / r['p50']:.0f} %) | "
                     f"{r['cpu']:.0f} | {goal} |")
    lines += ["", f"Load average (1 min) {loads[0]:.2f} before and {loads[1]:.2f} after, on {os.cpu_count()} cores"
              + (": **the machine was shared with other work**, so wall times include waiting for a core; the CPU ms "
                 "column is what a photo costs." if max(loads) > 0.5 * (os.cpu_count() or 1) else ".")]
    return "\n".join(lines)


def write_docs(path: Path, table: str, command: str) -> None:
    text = path.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{path}: no {BEGIN} ... {END} markers to write the table between")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    block = f"{BEGIN}\n<!-- generated by `{command}`; do not edit by hand -->\n{table}\n{END}"
    path.write_text(head + block + tail, encoding="utf-8")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", type=Path, help="an app folder of `drywallqa app build` (default: build one)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="WebAssembly threads to time (default 1 2)")
    parser.add_argument("--prompts", nargs="+", default=list(PHOTOS), choices=list(PHOTOS),
                        help="prompts to time, each on its photo (default: all)")
    parser.add_argument("--runs", type=int, default=10, help="timed runs per setting (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs first (default 2)")
    parser.add_argument("--chromium", default=os.environ.get("DRYWALLQA_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--write-docs", type=Path, metavar="MD", help="write the table between the markers of this file")
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    from drywallqa.serving.ort_web import ORT_WEB_VERSION
    from drywallqa.serving.webapp import build_webapp

    with tempfile.TemporaryDirectory(prefix="drywallqa-webapp-speed-") as tmp:
        app = args.app
        if app is None:
            app = Path(tmp) / "app"
            build_webapp(app, webgpu=False, say=lambda line: print(line, file=sys.stderr))
        server, url = serve(app)
        photos = {prompt: sample_jpeg(PHOTOS[prompt]) for prompt in args.prompts}
        loads = [os.getloadavg()[0]]
        rows = []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=args.chromium, headless=True,
                                                 args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
            for prompt, photo in photos.items():
                for threads in args.threads:
                    rows.append(measure(browser, url, threads, prompt, photo, args.runs, args.warmup))
                    print(f"{prompt}, threads {threads}: p50 {rows[-1]['p50']:.0f} ms, QA step {rows[-1]['figures']:.0f} ms, "
                          f"CPU {rows[-1]['cpu']:.0f} ms ({rows[-1]['backend']})", file=sys.stderr)
            chromium = browser.version
            browser.close()
        server.shutdown()
        loads.append(os.getloadavg()[0])
    table = markdown(rows, f"{cpu_name()} ({os.cpu_count()} cores)", tuple(loads), chromium, ORT_WEB_VERSION)
    print(table)
    if args.write_docs:
        command = "python scripts/webapp_speed.py " + " ".join(a for a in (argv if argv is not None else sys.argv[1:])
                                                               if not a.startswith("/"))
        write_docs(args.write_docs, table, " ".join(command.split()))
        print(f"wrote {args.write_docs}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    started = time.time()
    code = main()
    print(f"({time.time() - started:.0f} s)", file=sys.stderr)
    sys.exit(code)
