"""Helpers of the serving tests (importable: pytest puts this folder on sys.path)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import numpy as np

from drywallqa.inference import Predictor, SegmentationResult


class DarkPixelPredictor(Predictor):
    """A model-free predictor for API tests: the mask is every pixel darker than ``level``.

    Deterministic and instant, so tests can check figures and masks exactly.
    """

    name = "dark-pixels"

    def __init__(self, level: int = 100, delay_s: float = 0.0):
        self.level = level
        self.delay_s = delay_s
        self.calls = 0

    def predict_batch(self, images, prompts, *, return_probabilities=False):
        import time

        self.calls += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        return [SegmentationResult(prompt=p, mask=im.mean(axis=2) < self.level, confidence=0.75)
                for im, p in zip(images, prompts)]


def dark_line_image(height: int = 64, width: int = 96, rows: slice = slice(30, 33), cols: slice = slice(10, 90)) -> np.ndarray:
    """A light grey RGB image with one dark bar (3 × 80 px by default), for :class:`DarkPixelPredictor`."""
    image = np.full((height, width, 3), 200, dtype=np.uint8)
    image[rows, cols] = 20
    return image


@contextlib.contextmanager
def running_server(app, **limits):
    """Serve ``app`` as ``drywallqa serve`` does (:func:`drywallqa.serving.server.server_config`,
    ``limits`` passed on) in a thread, on a free port of 127.0.0.1; yields ``(port, server)``."""
    import uvicorn

    from drywallqa.serving.server import server_config

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(server_config(app, port=port, log_level="critical", **limits))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield port, server
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
