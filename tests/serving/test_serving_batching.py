"""The micro-batcher: pairs from many threads share model calls; errors and back-pressure stay per pair."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from serving_helpers import DarkPixelPredictor

from drywallqa.errors import ConfigError
from drywallqa.serving.batching import DeadlineExceeded, MicroBatcher, QueueFull


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
        outcomes = {}

        def ask(prompt):
            try:
                outcomes[prompt] = batcher.predict([image()], [prompt])[0]
            except ConfigError as exc:
                outcomes[prompt] = exc

        threads = [threading.Thread(target=ask, args=(prompt,)) for prompt in ("crack", "refused")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert outcomes["crack"].mask.all() and "refused" in str(outcomes["refused"])


class Blocking(Recording):
    """A model whose calls wait until the test releases them (or 30 s): no race with a busy machine."""

    def __init__(self):
        super().__init__()
        self.entered, self.release = threading.Event(), threading.Event()

    def predict_batch(self, images, prompts, **kwargs):
        self.entered.set()
        self.release.wait(30)
        return super().predict_batch(images, prompts, **kwargs)


def test_full_queue_raises_for_callers_that_must_not_wait_and_close_finishes_the_queue():
    predictor = Blocking()
    batcher = MicroBatcher(predictor, max_batch=1, max_queued=2)
    results = []
    threads = [threading.Thread(target=lambda: results.append(batcher.predict([image()], ["crack"]))) for _ in range(3)]
    threads[0].start()
    assert predictor.entered.wait(30)  # the first is in the model...
    for thread in threads[1:]:
        thread.start()
    give_up = time.monotonic() + 30
    while batcher.queued < 2 and time.monotonic() < give_up:  # ...and the next two fill the queue
        time.sleep(0.01)
    with pytest.raises(QueueFull) as full:
        batcher.predict([image()], ["crack"], block=False)
    assert full.value.retry_after_s >= 1
    predictor.release.set()
    batcher.close()
    for thread in threads:
        thread.join()
    assert len(results) == 3 and all(r[0].mask.all() for r in results)
    assert sum(predictor.sizes) == 3  # the pair refused for the full queue never reached the model
    with pytest.raises(RuntimeError, match="closed"):
        batcher.predict([image()], ["crack"])


def test_batched_runtimes_get_model_inputs_and_callers_get_masks_at_their_size(tiny_predictor):
    images = [np.random.default_rng(i).integers(0, 256, (40 + 8 * i, 56, 3), dtype=np.uint8) for i in range(5)]
    expected = tiny_predictor.predict_batch(images, ["segment crack"] * 5)
    calls = []
    forward = tiny_predictor.forward_batch

    def recording(batch, prompts):
        calls.append(batch.shape)
        return forward(batch, prompts)

    tiny_predictor.forward_batch = recording
    try:
        with MicroBatcher(tiny_predictor, max_batch=8, max_wait_s=0.05) as batcher:
            got = batcher.predict(images, ["segment crack"] * 5)
    finally:
        del tiny_predictor.forward_batch
    assert calls == [(5, 64, 64, 3)]  # one call, already at the model's size
    for ours, theirs in zip(got, expected):
        assert ours.mask.shape == theirs.mask.shape and (ours.mask == theirs.mask).all()
        assert ours.confidence == pytest.approx(theirs.confidence) and ours.threshold == theirs.threshold


def test_a_caller_past_its_deadline_gets_an_error_and_its_pairs_never_reach_the_model():
    predictor = Recording(delay_s=0.5)
    with MicroBatcher(predictor, max_batch=1) as batcher:
        busy = threading.Thread(target=lambda: batcher.predict([image()], ["first"]))
        busy.start()
        time.sleep(0.1)  # "first" is in the model
        with pytest.raises(DeadlineExceeded):
            batcher.predict([image(), image()], ["late", "late"], deadline=time.monotonic() + 0.1)
        with pytest.raises(DeadlineExceeded):  # a deadline already passed: nothing is queued
            batcher.predict([image()], ["later"], deadline=time.monotonic() - 1)
        busy.join()
        assert batcher.predict([image()], ["next"], deadline=time.monotonic() + 30)[0].prompt == "next"
    assert predictor.sizes == [1, 1]  # "first" and "next": the late pairs were dropped, not predicted
    assert batcher.queued == 0


def test_the_model_thread_drops_pairs_whose_deadline_passed_in_the_queue():
    from drywallqa.serving.batching import _Pair

    predictor = Recording()
    with MicroBatcher(predictor) as batcher:
        expired, live = _Pair(image(), "crack", deadline=time.monotonic() - 1), _Pair(image(), "crack")
        batcher._call([expired, live])
    assert isinstance(expired.future.exception(), DeadlineExceeded) and live.future.result().prompt == "crack"
    assert predictor.sizes == [1]


def test_a_failing_model_is_not_called_again_for_every_pair_of_a_failed_batch():
    class Broken(Recording):
        def predict_batch(self, images, prompts, **kwargs):
            self.sizes.append(len(images))
            raise RuntimeError("the device is gone")

    predictor = Broken()
    with MicroBatcher(predictor, max_batch=8, max_wait_s=0.5) as batcher:
        with pytest.raises(RuntimeError, match="the device is gone"):
            batcher.predict([image()] * 8, ["crack"] * 8)
    assert predictor.sizes == [8, 1, 1]  # the batch, then pair by pair until two failed in a row
