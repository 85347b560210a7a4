"""A photo is encoded once for all its prompts, in every pipeline: predict, serve, watch, evaluate.

:class:`CountingSplit` is a model-free runtime with an encoder and a decoder that counts the images
it encodes; its masks depend on the prompt, so a prompt decoded from the wrong photo's features
would show.
"""

from __future__ import annotations

import numpy as np
import pytest

from drywallqa.inference import BatchedPredictor

TWO_PROMPTS = ["segment crack", "segment taping area"]


class CountingSplit(BatchedPredictor):
    """Features: the mean of each pixel; logits: dark pixels, shifted by the prompt's length."""

    name, image_size, batch_size = "counting-split", 32, 4

    def __init__(self):
        self.encoded = 0
        self.decoded = 0

    def encode_batch(self, images):
        self.encoded += len(images)
        return images.astype(np.float32).mean(axis=3)

    def decode_batch(self, features, prompts, image_index):
        self.decoded += len(prompts)
        shift = np.array([len(prompt) % 5 - 2 for prompt in prompts], np.float32)[:, None, None]
        return (100.0 - features[np.asarray(image_index)]) / 10.0 + shift, np.zeros(len(prompts), np.float32)

    def forward_batch(self, images, prompts):
        return self.decode_batch(self.encode_batch(images), prompts, np.arange(len(images)))


def photos(count: int, size: int = 48) -> list[np.ndarray]:
    rng = np.random.default_rng(count)
    return [rng.integers(0, 256, (size, size + 8 * i, 3), dtype=np.uint8) for i in range(count)]


def test_predict_many_encodes_each_photo_once_and_matches_each_prompt_alone() -> None:
    predictor = CountingSplit()
    images = photos(5)
    many = predictor.predict_many(images, TWO_PROMPTS, return_probabilities=True)
    assert predictor.encoded == 5 and predictor.decoded == 10
    for image, results in zip(images, many):
        assert [r.prompt for r in results] == TWO_PROMPTS
        for result in results:
            alone = predictor.predict(image, result.prompt, return_probabilities=True)
            np.testing.assert_array_equal(result.mask, alone.mask)
            np.testing.assert_array_equal(result.probabilities, alone.probabilities)


def test_predict_takes_one_prompt_or_several() -> None:
    predictor = CountingSplit()
    image = photos(1)[0]
    single = predictor.predict(image, "segment crack")
    several = predictor.predict(image, TWO_PROMPTS)
    assert single.prompt == "segment crack" and [r.prompt for r in several] == TWO_PROMPTS
    assert (several[0].mask == single.mask).all()
    assert predictor.encoded == 2  # once for the single prompt, once for both


def test_predict_many_with_a_prompt_list_per_image() -> None:
    from drywallqa.errors import ConfigError

    predictor = CountingSplit()
    images = photos(3)
    results = predictor.predict_many(images, [["segment crack"], TWO_PROMPTS, []])
    assert [[r.prompt for r in own] for own in results] == [["segment crack"], TWO_PROMPTS, []]
    with pytest.raises(ConfigError, match="got 3 images but 2 prompt lists"):
        predictor.predict_many(images, [["segment crack"], TWO_PROMPTS])


def test_forward_pairs_refuses_an_index_outside_the_images() -> None:
    from drywallqa.errors import ConfigError

    with pytest.raises(ConfigError, match="image_index must give one image of 0..0 per prompt"):
        CountingSplit().forward_pairs(np.zeros((1, 32, 32, 3), np.uint8), TWO_PROMPTS, [0, 1])


def test_a_runtime_without_a_split_runs_each_pair_whole() -> None:
    """The default split: forward_batch on each pair's image, same masks as the split runtime."""

    class Whole(BatchedPredictor):
        name, image_size, batch_size = "whole", 32, 4
        split = CountingSplit()

        def forward_batch(self, images, prompts):
            return self.split.forward_batch(images, prompts)

    whole = Whole()
    images = photos(2)
    results = whole.predict_many(images, TWO_PROMPTS)
    assert whole.split.encoded == 4  # one whole run per pair
    expected = CountingSplit().predict_many(images, TWO_PROMPTS)
    assert all((r.mask == e.mask).all() for own, exp in zip(results, expected) for r, e in zip(own, exp))


def test_predict_folder_encodes_each_photo_once(tmp_path) -> None:
    from drywallqa.files import write_image
    from drywallqa.serving.predict import predict_images

    for index, image in enumerate(photos(3)):
        write_image(tmp_path / "photos" / f"wall-{index}.png", image)
    predictor = CountingSplit()
    run = predict_images([tmp_path / "photos"], TWO_PROMPTS, tmp_path / "out", predictor, overlays=False, coco=False)
    assert len(run.records) == 6 and predictor.encoded == 3 and predictor.decoded == 6


def test_serve_encodes_the_photo_once_for_its_prompts() -> None:
    pytest.importorskip("fastapi", reason="the HTTP service needs FastAPI (pip install 'drywallqa[serve]')")
    pytest.importorskip("multipart", reason="FastAPI forms need python-multipart (pip install 'drywallqa[serve]')")
    from fastapi.testclient import TestClient

    from drywallqa.inference.render import jpeg_bytes
    from drywallqa.serving import create_app

    predictor = CountingSplit()
    with TestClient(create_app(predictor, timeout_s=30)) as client:
        response = client.post("/v1/segment", data={"prompt": TWO_PROMPTS},
                               files={"image": ("wall.jpg", jpeg_bytes(photos(1)[0], quality=90), "image/jpeg")})
    assert response.status_code == 200, response.text
    assert [r["prompt"] for r in response.json()["results"]] == TWO_PROMPTS
    assert predictor.encoded == 1 and predictor.decoded == 2


def test_watch_encodes_each_frame_once() -> None:
    from drywallqa.serving.video_frames import TemporalSmoother

    predictor = CountingSplit()
    frames = photos(3)
    results = TemporalSmoother(predictor, TWO_PROMPTS, smoothing=1.0)([f[:, :48] for f in frames])
    assert [[r.prompt for r in own] for own in results] == [TWO_PROMPTS] * 3
    assert predictor.encoded == 3 and predictor.decoded == 6


def test_evaluate_encodes_each_image_once_per_class(tmp_path) -> None:
    from drywallqa.data import AnnotatedDataset
    from drywallqa.data.synthetic import generate_sample_data
    from drywallqa.evaluation import evaluate

    paths = generate_sample_data(tmp_path / "data", images=8, seed=0, size=64)
    datasets = [AnnotatedDataset.load(paths.cracks), AnnotatedDataset.load(paths.drywall_join)]
    predictor = CountingSplit()
    report = evaluate(predictor, datasets, progress=False, examples=0)
    images = sum(scores.images for scores in report.classes.values())
    prompts_per_class = [1 + (len(report.classes) - 1) + len(scores.paraphrases) for scores in report.classes.values()]
    assert predictor.encoded == images  # every prompt of a class (its own, the others', paraphrases) from one encoding
    assert predictor.decoded == sum(s.images * n for s, n in zip(report.classes.values(), prompts_per_class))


def test_a_tiled_photo_encodes_each_tile_once_for_all_its_prompts() -> None:
    predictor = CountingSplit()
    image = photos(1, size=300)[0]  # 300 x 300 in 64 px tiles
    tiles = len(predictor.prepare(image, tile=64))
    assert tiles > predictor.batch_size  # the tiles span several model calls
    several = predictor.predict(image, TWO_PROMPTS, tile=64, return_probabilities=True)
    assert predictor.encoded == tiles and predictor.decoded == 2 * tiles
    for result in several:
        alone = predictor.predict(image, result.prompt, tile=64, return_probabilities=True)
        assert result.extra["tiling"] == alone.extra["tiling"]
        np.testing.assert_allclose(result.probabilities, alone.probabilities, atol=1e-6)
        assert result.confidence == pytest.approx(alone.confidence)


def test_the_micro_batcher_encodes_each_tile_once_for_its_photo_prompts() -> None:
    from drywallqa.serving.batching import MicroBatcher

    predictor = CountingSplit()
    image = photos(1, size=300)[0]
    tiles = len(predictor.prepare(image, tile=64))
    expected = [predictor.predict(image, prompt, tile=64) for prompt in TWO_PROMPTS]
    predictor.encoded = predictor.decoded = 0
    with MicroBatcher(predictor, max_batch=64, max_wait_s=0.05) as batcher:
        got = batcher.predict([image, image], TWO_PROMPTS, tile=64)
    assert predictor.encoded == tiles and predictor.decoded == 2 * tiles
    for ours, theirs in zip(got, expected):
        np.testing.assert_array_equal(ours.mask, theirs.mask)


def test_watch_smoother_encodes_each_tile_of_a_frame_once() -> None:
    from drywallqa.serving.video_frames import TemporalSmoother

    predictor = CountingSplit()
    frames = photos(1, size=300) * 3
    smoother = TemporalSmoother(predictor, TWO_PROMPTS, smoothing=1.0, tile=64)
    results = smoother(frames)
    tiles = len(smoother.plan)
    assert tiles > 1 and predictor.encoded == 3 * tiles and predictor.decoded == 3 * 2 * tiles
    for k, prompt in enumerate(TWO_PROMPTS):
        alone = predictor.predict(frames[0], prompt, tile=64)
        np.testing.assert_array_equal(results[-1][k].mask, alone.mask)
