#!/usr/bin/env python
"""Load test of ``drywallqa serve``: concurrent clients for a bounded time, figures as JSON.

Starts the server on 127.0.0.1 (a tiny random model with ``--tiny``, or ``--model DIR``) or
targets one already running on this machine (``--url``; loopback addresses only), sends
``POST /v1/segment`` from ``--clients`` threads for ``--seconds``, and prints one JSON object:
latency percentiles, throughput, errors, and the conditions (machine, model, image, load).

Examples:
    nice -n 19 python scripts/loadtest.py --tiny --seconds 60
    nice -n 19 python scripts/loadtest.py --model runs/promptunet-lite0-cpu/model --seconds 60
    python scripts/loadtest.py --url http://127.0.0.1:8000 --seconds 10 --clients 4
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--tiny", action="store_true", help="start a server with a random promptunet (no pretrained weights, hashing text encoder)")
    target.add_argument("--model", metavar="DIR", help="start a server with this saved model")
    target.add_argument("--url", help="target a running server on this machine (loopback only)")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long clients send requests (default 60)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--image-size", type=int, default=128, help="input size of the --tiny model (default 128)")
    parser.add_argument("--photo-size", type=int, default=640, help="side of the synthetic photo sent (default 640, as the Roboflow exports)")
    parser.add_argument("--prompt", default="segment crack", help="prompt of every request (default 'segment crack')")
    parser.add_argument("--mask-format", default="rle", choices=("rle", "png"), help="mask format asked for (default rle)")
    parser.add_argument("--torch-threads", type=int, help="--torch-threads of the started server")
    parser.add_argument("--concurrency", type=int, default=1, help="--concurrency of the started server (default 1)")
    parser.add_argument("--server-timeout", type=float, default=60.0, help="--timeout of the started server in seconds (default 60)")
    parser.add_argument("--out", metavar="FILE", help="also write the JSON here")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.clients < 1:
        parser.error("--seconds must be positive and --clients at least 1")
    if args.url and urlparse(args.url).hostname not in LOOPBACK_HOSTS:
        parser.error(f"--url must point at this machine ({', '.join(sorted(LOOPBACK_HOSTS))}), got {args.url}")
    return args


def sample_photo(size: int) -> bytes:
    """A synthetic 'cracks' wall photo as JPEG (the same bytes every run)."""
    from PIL import Image

    from drywallqa.data.synthetic import render_sample_image

    buffer = io.BytesIO()
    Image.fromarray(render_sample_image("cracks", 2, size=size).image).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(args, workdir: Path) -> tuple[subprocess.Popen, str, dict]:
    """Start ``drywallqa serve`` on 127.0.0.1 and wait for ``/healthz``."""
    import httpx

    model_dir, model_info = args.model, {"spec": args.model}
    if args.tiny:
        from drywallqa.models import build_model

        model = build_model("promptunet", pretrained=False, text_encoder="hashing", image_size=args.image_size)
        model_dir = str(model.save_pretrained(workdir / "tiny-model"))
        model_info = {"spec": "tiny random promptunet (pretrained=False, text_encoder=hashing)",
                      "image_size": args.image_size, "parameters": model.num_parameters()}
    port = free_port()
    command = [sys.executable, "-m", "drywallqa.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--model", model_dir, "--log-level", "warning", "--timeout", str(args.server_timeout),
               "--concurrency", str(args.concurrency)]
    if args.torch_threads:
        command += ["--torch-threads", str(args.torch_threads)]
    with open(workdir / "server.log", "w") as log:  # the child keeps its own copy of the handle
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}:\n{(workdir / 'server.log').read_text()}")
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return process, url, {**model_info, "server_command": " ".join(command[1:])}
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.terminate()
    raise SystemExit("server did not answer /healthz within 120 s")


def run_clients(url: str, photo: bytes, args) -> dict:
    """``args.clients`` threads posting until the deadline; latencies of completed requests."""
    import httpx

    latencies: list[float] = []
    errors: Counter = Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + args.seconds
    data = {"prompt": args.prompt, "mask_format": args.mask_format}

    def client() -> None:
        with httpx.Client(base_url=url, timeout=args.server_timeout + 30) as session:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    response = session.post("/v1/segment", data=data, files={"image": ("photo.jpg", photo, "image/jpeg")})
                    kind = None if response.status_code == 200 else f"HTTP {response.status_code}"
                except httpx.HTTPError as exc:
                    kind = type(exc).__name__
                elapsed = time.perf_counter() - started
                with lock:
                    if kind is None:
                        latencies.append(elapsed)
                    else:
                        errors[kind] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(args.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    ms = np.asarray(latencies) * 1000
    summary = lambda q: round(float(np.percentile(ms, q)), 1) if len(ms) else None
    return {
        "elapsed_s": round(elapsed, 2),
        "requests": len(latencies) + sum(errors.values()),
        "ok": len(latencies),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "throughput_rps": round(len(latencies) / elapsed, 3),
        "latency_ms": {"p50": summary(50), "p90": summary(90), "p99": summary(99),
                       "mean": round(float(ms.mean()), 1) if len(ms) else None,
                       "min": round(float(ms.min()), 1) if len(ms) else None,
                       "max": round(float(ms.max()), 1) if len(ms) else None},
    }


def machine() -> dict:
    import torch

    return {
        "cpus": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(), "torch": torch.__version__, "nice": os.nice(0),
        "load_average_1_5_15": [round(v, 2) for v in os.getloadavg()],
    }


def main(argv=None) -> int:
    import httpx

    args = parse_args(argv)
    photo = sample_photo(args.photo_size)
    conditions = {"machine_before": machine()}
    with tempfile.TemporaryDirectory(prefix="drywallqa-loadtest-") as tmp:
        process = None
        try:
            if args.url:
                url, model_info = args.url.rstrip("/"), {"spec": "running server"}
            else:
                process, url, model_info = start_server(args, Path(tmp))
            model_info["served"] = httpx.get(url + "/v1/models", timeout=10).json()["models"]
            # One request first, so the model's first-call set-up is not timed.
            warmup = httpx.post(url + "/v1/segment", data={"prompt": args.prompt},
                                files={"image": ("photo.jpg", photo, "image/jpeg")}, timeout=args.server_timeout + 30)
            if warmup.status_code != 200:
                raise SystemExit(f"warm-up request failed: HTTP {warmup.status_code} {warmup.text}")
            results = run_clients(url, photo, args)
        finally:
            if process is not None:
                process.terminate()
                process.wait(timeout=30)
    report = {
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "target": "started server on 127.0.0.1" if not args.url else args.url,
        "model": model_info,
        "load": {"clients": args.clients, "seconds": args.seconds, "prompt": args.prompt, "mask_format": args.mask_format,
                 "photo": f"synthetic cracks photo {args.photo_size}x{args.photo_size} JPEG, {len(photo)} bytes",
                 "server_concurrency": args.concurrency if not args.url else None,
                 "server_torch_threads": args.torch_threads if not args.url else None},
        **results,
        **conditions,
        "load_average_after_1_5_15": [round(v, 2) for v in os.getloadavg()],
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    return 0 if results["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
