#!/usr/bin/env python
"""Load test of ``drywallqa serve`` with locust, headless, on 127.0.0.1 only, bounded in time.

Starts ``drywallqa serve`` on 127.0.0.1 (the shipped model by default, ``--model DIR``, or
``--tiny`` for a random promptunet) or targets a server already running on this machine
(``--url``; loopback addresses only). After one warm-up request, ``--clients`` locust users
(default 16) send ``POST /v1/segment`` for ``--seconds`` (default 60): a synthetic 640 x 640
crack photo, and in ``--garbage`` of the requests (default 25 %) something broken (bytes that
are no image, a JPEG cut short, an 8 x 8 image, an empty prompt, a bad mask format). Beside them
``--slow-clients`` connections (default 200) trickle request headers a line every 2 s for the
whole run, reconnecting whenever the server closes them (slowloris).

``--baseline-rev REV`` serves the code of an earlier git revision of this repository instead
(``git archive`` into a temporary folder, put first on ``PYTHONPATH``), so that a change is
measured against the server it replaces under the same load; ``drywallqa bench`` does that.

Prints one JSON object (requests/s, p50/p95 latency, answers by status for each kind of request,
what happened to the slow clients, the server's RSS before, at peak and after, the machine) and,
with ``--markdown FILE``, the same as a Markdown table; ``--doc docs/serving.md`` writes that table
between the ``<!-- loadtest:begin -->`` and ``<!-- loadtest:end -->`` markers of the file, so no
figure in the docs is ever typed by hand.

Examples:
    nice -n 19 python scripts/loadtest.py --doc docs/serving.md
    python scripts/loadtest.py --tiny --seconds 10 --slow-clients 20
    python scripts/loadtest.py --url http://127.0.0.1:8000 --seconds 10 --clients 4
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from urllib.parse import urlparse

import gevent

# locust patches the standard library for gevent when imported: first, before anything else.
import locust  # noqa: I001
from locust import FastHttpUser, constant, task
from locust.env import Environment

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
PROMPT = "segment crack"
DOC_BEGIN, DOC_END = "<!-- loadtest:begin -->", "<!-- loadtest:end -->"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--tiny", action="store_true", help="serve a random promptunet (no pretrained weights, hashing text encoder)")
    target.add_argument("--model", metavar="DIR", help="serve this saved model (default: the shipped one)")
    target.add_argument("--url", help="target a running server on this machine (loopback only)")
    parser.add_argument("--baseline-rev", metavar="REV",
                        help="serve the drywallqa code of this git revision (e.g. the commit before a change)")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the load runs (default 60)")
    parser.add_argument("--clients", type=int, default=16, help="locust users sending requests (default 16)")
    parser.add_argument("--garbage", type=float, default=0.25, help="share of broken requests (default 0.25)")
    parser.add_argument("--slow-clients", type=int, default=200, help="slowloris connections beside them (default 200)")
    parser.add_argument("--photo-size", type=int, default=640, help="side of the synthetic photo (default 640, as the Roboflow exports)")
    parser.add_argument("--torch-threads", type=int, default=1, help="--torch-threads of the started server (default 1)")
    parser.add_argument("--server-args", default="", help="more options for the started `drywallqa serve`, e.g. '--max-queued 8'")
    parser.add_argument("--out", metavar="FILE", help="also write the JSON here")
    parser.add_argument("--markdown", metavar="FILE", help="also write the result table as Markdown here")
    parser.add_argument("--doc", metavar="MD", help="write the result table between the loadtest markers of this file")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.clients < 1 or not 0 <= args.garbage <= 1 or args.slow_clients < 0:
        parser.error("--seconds must be positive, --clients at least 1, --garbage in [0, 1], --slow-clients >= 0")
    if args.url and urlparse(args.url).hostname not in LOOPBACK_HOSTS:
        parser.error(f"--url must point at this machine ({', '.join(sorted(LOOPBACK_HOSTS))}), got {args.url}")
    if args.url and args.baseline_rev:
        parser.error("--baseline-rev starts a server of its own; it does not go with --url")
    return args


# -- what the clients send ----------------------------------------------------------------------
def sample_photo(size: int) -> bytes:
    """A synthetic 'cracks' wall photo as JPEG (the same bytes every run)."""
    from PIL import Image

    from drywallqa.data.synthetic import render_sample_image

    buffer = io.BytesIO()
    Image.fromarray(render_sample_image("cracks", 2, size=size).image).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def garbage_requests(photo: bytes) -> list[tuple[str, dict, dict]]:
    """Broken requests as ``(kind, form fields, files)``: each must get a 4xx, never a 5xx."""
    from PIL import Image

    tiny = io.BytesIO()
    Image.new("RGB", (8, 8)).save(tiny, format="PNG")
    image = lambda name, data: {"image": (name, data, "application/octet-stream")}  # noqa: E731
    return [
        ("not an image", {"prompt": PROMPT}, image("notes.jpg", b"this is not an image " * 50)),
        ("JPEG cut short", {"prompt": PROMPT}, image("cut.jpg", photo[: len(photo) // 2] + b"\xff\xd9")),
        ("8x8 image", {"prompt": PROMPT}, image("tiny.png", tiny.getvalue())),
        ("empty prompt", {"prompt": "   "}, image("wall.jpg", photo)),
        ("bad mask format", {"prompt": PROMPT, "mask_format": "gif"}, image("wall.jpg", photo)),
    ]


def make_user(photo: bytes, garbage_share: float, answers: dict[str, Counter]) -> type:
    garbage = garbage_requests(photo)

    class SegmentUser(FastHttpUser):
        """Posts the photo, or with probability ``garbage_share`` a broken request; never waits."""

        wait_time = constant(0)
        network_timeout = 120.0
        connection_timeout = 30.0

        @task
        def segment(self) -> None:
            if random.random() < garbage_share:
                kind, data, files = random.choice(garbage)
                name = "garbage"
            else:
                kind, data, files = "photo", {"prompt": PROMPT, "mask_format": "rle"}, {"image": ("wall.jpg", photo, "image/jpeg")}
                name = "photo"
            with self.client.post("/v1/segment", data=data, files=files, name=name, catch_response=True) as response:
                status = response.status_code
                answers[name][status] += 1
                # A photo gets 200, or 503 + Retry-After when the queue is full (back-pressure);
                # a broken request gets its 4xx. Anything else is a failure.
                if status in (200, 503) if name == "photo" else 400 <= status < 500:
                    response.success()
                else:
                    response.failure(f"{kind}: HTTP {status}")

    return SegmentUser


def slow_client(port: int, deadline: float, outcomes: Counter) -> None:
    """Trickle request headers a line every 2 s until the deadline; reconnect when closed."""
    while time.monotonic() < deadline:
        try:
            conn = socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError as exc:
            outcomes[f"connect failed: {type(exc).__name__}"] += 1
            gevent.sleep(1)
            continue
        outcomes["connections opened"] += 1
        conn.settimeout(0.1)
        reply = b""
        try:
            conn.sendall(b"POST /v1/segment HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            while time.monotonic() < deadline:
                gevent.sleep(2)
                try:
                    reply = conn.recv(4096)
                    break  # the server answered (408/503) or closed
                except TimeoutError:
                    conn.sendall(b"X-Trickle: 1\r\n")
        except OSError:
            reply = reply or b"<reset>"
        finally:
            conn.close()
        if time.monotonic() < deadline:
            status = re.match(rb"HTTP/1\.1 (\d{3})", reply)
            outcomes[f"closed by the server with {status.group(1).decode()}" if status else "closed by the server"] += 1


# -- the server ---------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


REPO = Path(__file__).resolve().parents[1]


def checkout_source(rev: str, workdir: Path) -> tuple[Path, str]:
    """The ``src`` folder of a git revision of this repository, extracted into ``workdir``."""
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", f"{rev}^{{commit}}"],
                                capture_output=True, text=True, check=True).stdout.strip()
        target = workdir / f"source-{commit}"
        target.mkdir()
        archive = subprocess.run(["git", "-C", str(REPO), "archive", commit, "src"], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        raise SystemExit(f"--baseline-rev {rev}: cannot extract it from {REPO} "
                         f"({detail.decode(errors='replace').strip() if isinstance(detail, bytes) else detail or exc})") from None
    return target / "src", commit


def start_server(args, workdir: Path) -> tuple[subprocess.Popen, str, dict]:
    """Start ``drywallqa serve`` on 127.0.0.1 and wait for ``/healthz``."""
    import urllib.request

    model_dir, model_info = args.model, {"spec": args.model or "shipped default"}
    if args.tiny:
        import torch

        from drywallqa.models import build_model

        torch.manual_seed(0)  # the same weights every run: one cached export of them, not one per run
        model = build_model("promptunet", pretrained=False, text_encoder="hashing", image_size=128)
        model_dir = str(model.save_pretrained(workdir / "tiny-model"))
        model_info = {"spec": "tiny random promptunet (pretrained=False, text_encoder=hashing, 128 px)"}
    port = free_port()
    command = [sys.executable, "-m", "drywallqa.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--log-level", "warning", "--torch-threads", str(args.torch_threads), *args.server_args.split()]
    if model_dir:
        command += ["--model", model_dir]
    env = dict(os.environ)
    if args.baseline_rev:
        source, commit = checkout_source(args.baseline_rev, workdir)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(source), env.get("PYTHONPATH")]))
        model_info["code"] = f"git revision {commit} ({args.baseline_rev})"
    with open(workdir / "server.log", "w") as log:  # the child keeps its own copy of the handle
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}:\n{(workdir / 'server.log').read_text()}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as response:
                if response.status == 200:
                    return process, url, {**model_info, "server_command": "drywallqa " + " ".join(command[3:])}
        except OSError:
            pass
        time.sleep(0.3)
    process.terminate()
    raise SystemExit("server did not answer /healthz within 180 s")


def server_pid(url: str, process: subprocess.Popen | None) -> int | None:
    """The pid of the server process (the one started, or the one listening on a loopback --url)."""
    if process is not None:
        return process.pid
    import psutil

    port = urlparse(url).port
    for conn in psutil.net_connections("tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
            return conn.pid
    return None


class RssSampler:
    """RSS of the server process, sampled every half second."""

    def __init__(self, pid: int | None):
        import psutil

        self.process = psutil.Process(pid) if pid else None
        self.peak = 0
        self._running = False

    def now(self) -> int | None:
        return self.process.memory_info().rss if self.process else None

    def cpu_seconds(self) -> float | None:
        """CPU time the server has used so far, all threads (user + system)."""
        if not self.process:
            return None
        times = self.process.cpu_times()
        return times.user + times.system

    def run(self) -> None:
        self._running = True
        while self._running and self.process:
            self.peak = max(self.peak, self.process.memory_info().rss)
            gevent.sleep(0.5)

    def stop(self) -> None:
        self._running = False


# -- the run --------------------------------------------------------------------------------------
def run_load(url: str, photo: bytes, args, rss: RssSampler) -> dict:
    answers: dict[str, Counter] = defaultdict(Counter)
    env = Environment(user_classes=[make_user(photo, args.garbage, answers)], host=url, events=locust.events)
    runner = env.create_local_runner()
    slow_outcomes: Counter = Counter()
    port = urlparse(url).port
    started = time.monotonic()
    deadline = started + args.seconds
    sampler = gevent.spawn(rss.run)
    cpu_before = rss.cpu_seconds()
    slow = [gevent.spawn(slow_client, port, deadline, slow_outcomes) for _ in range(args.slow_clients)]
    gevent.sleep(1.0)  # the slow clients connect first: the load must get through beside them
    runner.start(args.clients, spawn_rate=args.clients)
    gevent.sleep(max(deadline - time.monotonic(), 0))
    runner.quit()
    cpu_used = None if cpu_before is None else rss.cpu_seconds() - cpu_before
    gevent.joinall(slow, timeout=15)
    elapsed = time.monotonic() - started
    rss.stop()
    sampler.join(timeout=2)
    kinds = {}
    for name in ("photo", "garbage"):
        entry = env.stats.get(name, "POST")
        kinds[name] = {
            "requests": entry.num_requests,
            "requests_per_s": round(entry.num_requests / elapsed, 2),
            "p50_ms": entry.get_response_time_percentile(0.5) if entry.num_requests else None,
            "p95_ms": entry.get_response_time_percentile(0.95) if entry.num_requests else None,
            "by_status": {str(code): n for code, n in sorted(answers[name].items())},
            "answered_200_per_s": round(answers[name].get(200, 0) / elapsed, 2),
        }
    total = env.stats.total
    return {
        "elapsed_s": round(elapsed, 1),
        "requests": total.num_requests,
        "requests_per_s": round(total.num_requests / elapsed, 2),
        "p50_ms": total.get_response_time_percentile(0.5) if total.num_requests else None,
        "p95_ms": total.get_response_time_percentile(0.95) if total.num_requests else None,
        "kinds": kinds,
        "unexpected": {f"{e.name}: {e.error}": e.occurrences for e in env.stats.errors.values()},
        "slow_clients": dict(slow_outcomes),
        # What the server spent per photo answered, whatever share of the machine it got: the figure
        # a busy machine moves least.
        "server_cpu_ms_per_photo": (round(1000 * cpu_used / answers["photo"][200], 1)
                                    if cpu_used is not None and answers["photo"].get(200) else None),
    }


def model_batching(url: str) -> dict | None:
    """What the server's model threads did (``GET /v1/models``), when it says."""
    import urllib.request

    try:
        with urllib.request.urlopen(url + "/v1/models", timeout=10) as response:
            return json.loads(response.read())["models"][0].get("batching")
    except (OSError, ValueError, KeyError, IndexError):
        return None


def machine() -> dict:
    import torch

    return {
        "cpus": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(), "torch": torch.__version__, "locust": locust.__version__,
        "nice": os.nice(0), "load_average_1_5_15": [round(v, 2) for v in os.getloadavg()],
    }


def markdown(report: dict) -> str:
    """The result table and the conditions beside it."""
    mb = lambda v: "n/a" if v is None else f"{v / 2**20:.0f} MB"  # noqa: E731
    ms = lambda v: "n/a" if v is None else f"{v:.0f}"  # noqa: E731
    load = report["load"]
    lines = [
        f"Command: `{report['command']}`  ",
        f"Machine: {report['machine_before']['cpus']} CPUs, {report['machine_before']['processor']}, "
        f"{report['machine_before']['platform']}, Python {report['machine_before']['python']}, torch "
        f"{report['machine_before']['torch']}, locust {report['machine_before']['locust']}, nice "
        f"{report['machine_before']['nice']}; load average before {report['machine_before']['load_average_1_5_15']}, "
        f"after {report['load_average_after_1_5_15']}  ",
        f"Server: `{report['model'].get('server_command', report['target'])}` ({report['model']['spec']}"
        f"{'; ' + report['model']['code'] if report['model'].get('code') else ''})  ",
        f"Load: {load['clients']} clients for {load['seconds']:g} s, {load['garbage']:.0%} broken requests, "
        f"{load['slow_clients']} slow clients; photo {load['photo']}; run {report['date']}",
        "",
        "| requests | count | requests/s | p50 ms | p95 ms | answers by status |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, label in (("photo", "photo"), ("garbage", "broken (4xx expected)")):
        kind = report["kinds"][name]
        statuses = ", ".join(f"{code}: {n}" for code, n in kind["by_status"].items()) or "none"
        lines.append(f"| {label} | {kind['requests']} | {kind['requests_per_s']} | {ms(kind['p50_ms'])} | "
                     f"{ms(kind['p95_ms'])} | {statuses} |")
    lines.append(f"| all | {report['requests']} | {report['requests_per_s']} | {ms(report['p50_ms'])} | "
                 f"{ms(report['p95_ms'])} | |")
    slow = ", ".join(f"{what}: {n}" for what, n in sorted(report["slow_clients"].items())) or "none"
    cpu = report.get("server_cpu_ms_per_photo")
    lines += ["", f"Photos answered 200 (successful photos/s): {report['kinds']['photo']['answered_200_per_s']}/s; "
              f"server CPU time per photo answered (all requests' work included): {'n/a' if cpu is None else f'{cpu:g} ms'}.  "]
    rss = report["server_rss"]
    lines += [
        f"Slow clients: {slow}.  ",
        f"Server RSS: {mb(rss['before'])} before the load, {mb(rss['peak'])} at peak, {mb(rss['after'])} "
        f"{rss['after_wait_s']:g} s after it.  ",
        f"Unexpected answers: {json.dumps(report['unexpected']) if report['unexpected'] else 'none'}.",
    ]
    batching = report.get("batching")
    if batching and batching.get("calls"):
        lines[-1] += "  "
        lines.append(f"Model calls: {batching['calls']} for {batching['pairs']} images, {batching['mean_batch']} a call "
                     f"on average (at most {batching['max_batch']}).")
    return "\n".join(lines) + "\n"


def write_into_doc(path: Path, table: str) -> None:
    text = path.read_text(encoding="utf-8")
    if DOC_BEGIN not in text or DOC_END not in text:
        raise SystemExit(f"{path}: no {DOC_BEGIN} ... {DOC_END} markers to write the table between")
    head, rest = text.split(DOC_BEGIN, 1)
    _, tail = rest.split(DOC_END, 1)
    path.write_text(f"{head}{DOC_BEGIN}\n{table}{DOC_END}{tail}", encoding="utf-8")


def main(argv=None) -> int:
    import urllib.request

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
            # One request first, so the model's first-call set-up is not timed.
            boundary = "warmup"
            body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\n{PROMPT}\r\n"
                    f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"wall.jpg\"\r\n"
                    "Content-Type: image/jpeg\r\n\r\n").encode() + photo + f"\r\n--{boundary}--\r\n".encode()
            request = urllib.request.Request(url + "/v1/segment", data=body, method="POST",
                                             headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
            with urllib.request.urlopen(request, timeout=120) as response:
                if response.status != 200:
                    raise SystemExit(f"warm-up request failed: HTTP {response.status}")
            rss = RssSampler(server_pid(url, process))
            rss_before = rss.now()
            results = run_load(url, photo, args, rss)
            after_wait = 5.0
            gevent.sleep(after_wait)
            rss_after = rss.now()
            results["batching"] = model_batching(url)
        finally:
            if process is not None:
                process.terminate()
                process.wait(timeout=30)
    report = {
        "command": " ".join(["python scripts/loadtest.py", *(argv if argv is not None else sys.argv[1:])]),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "target": "started server on 127.0.0.1" if not args.url else args.url,
        "model": model_info,
        "load": {"clients": args.clients, "seconds": args.seconds, "garbage": args.garbage,
                 "slow_clients": args.slow_clients, "prompt": PROMPT,
                 "photo": f"synthetic cracks {args.photo_size}x{args.photo_size} JPEG, {len(photo)} bytes"},
        **results,
        "server_rss": {"before": rss_before, "peak": rss.peak or None, "after": rss_after, "after_wait_s": after_wait},
        **conditions,
        "load_average_after_1_5_15": [round(v, 2) for v in os.getloadavg()],
    }
    print(json.dumps(report, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    table = markdown(report)
    if args.markdown:
        Path(args.markdown).write_text(table, encoding="utf-8")
    if args.doc:
        write_into_doc(Path(args.doc), table)
    return 0 if not results["unexpected"] else 1


if __name__ == "__main__":
    sys.exit(main())
