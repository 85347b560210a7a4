"""The micro-batcher: pairs from many threads share model calls; errors and back-pressure stay per pair."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from serving_helpers import DarkPixelPredictor

from drywallqa.errors import ConfigError
from drywallqa.serving.batching import MicroBatcher, QueueFull


class Recording(DarkPixelPredictor):
    """Records the size of every model call; refuses the prompt 'refused'."""

    def __init__(self, delay_s: float = 0.0):
        super().__init__(delay_s=delay_s)
        self.sizes: list[int] = []

    def predict_batch(self, images, prompts, **kwargs):
        self.sizes.append(len(images))
        if "refused" in prompts:
            raise ConfigError("prompt 'refused' is refused")
        return super().predict_batch(images, prompts)


def image(level: int = 50) -> np.ndarray:
    return np.full((40, 48, 3), level, dtype=np.uint8)


def test_concurrent_pairs_share_model_calls():
    predictor = Recording(delay_s=0.05)
    with MicroBatcher(predictor, max_batch=8, max_wait_s=0.02) as batcher:
        results = [None] * 16
        threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, batcher.predict([image()], ["crack"])[0]))
                   for i in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert all(r.mask.all() and r.prompt == "crack" for r in results)
    assert sum(predictor.sizes) == 16 and max(predictor.sizes) <= 8 and len(predictor.sizes) <= 4
    assert batcher.stats.pairs == 16 and batcher.stats.mean_batch >= 4


def test_a_refused_pair_fails_alone():
    predictor = Recording(delay_s=0.05)
    with MicroBatcher(predictor, max_batch=4, max_wait_s=0.05) as batcher:
        good, bad = batcher.submit(image(), "crack"), batcher.submit(image(), "refused")
        assert good.result().mask.all()
        with pytest.raises(ConfigError, match="refused"):
            bad.result()


def test_full_queue_raises_for_callers_that_must_not_wait_and_close_finishes_the_queue():
    predictor = Recording(delay_s=0.2)
    batcher = MicroBatcher(predictor, max_batch=1, max_queued=2)
    futures = [batcher.submit(image(), "crack")]
    time.sleep(0.05)  # the first is in the model; two more fill the queue
    futures += [batcher.submit(image(), "crack", block=False) for _ in range(2)]
    with pytest.raises(QueueFull) as full:
        batcher.submit(image(), "crack", block=False)
    assert full.value.retry_after_s >= 1
    batcher.close()
    assert all(f.done() and f.result().mask.all() for f in futures)
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit(image(), "crack")
