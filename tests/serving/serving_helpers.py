"""Helpers of the serving tests (importable: pytest puts this folder on sys.path)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import numpy as np

from drywallqa.inference import BatchedPredictor, Predictor, SegmentationResult


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


class RampPredictor(BatchedPredictor):
    """Mask probabilities rising from 0.02 (left) to 0.98 (right), whatever the image: the mask's
    area tells the threshold it was cut at."""

    name, image_size, batch_size = "ramp", 32, 8

    def forward_batch(self, images, prompts):
        probabilities = np.linspace(0.02, 0.98, 32, dtype=np.float32)
        logits = np.log(probabilities / (1 - probabilities))
        return np.broadcast_to(logits, (len(images), 32, 32)).copy(), np.zeros(len(images), dtype=np.float32)


def user_prompts(tmp_path):
    """A user's prompts YAML whose crack class knows the prompt 'mark the fissures' (the built-in one does not)."""
    from drywallqa.data import PromptConfig

    path = tmp_path / "prompts.yaml"
    path.write_text("classes:\n  crack:\n    prompt: segment crack\n    paraphrases: [mark the fissures]\n"
                    "  taping_area:\n    prompt: segment taping area\n")
    return PromptConfig.from_yaml(path)


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
