"""Test-time flips (``--tta``): views are flipped back before averaging, over any batched runtime."""

from __future__ import annotations

import json

import numpy as np
import pytest

from drywallqa.cli import main
from drywallqa.errors import ConfigError
from drywallqa.inference import BatchedPredictor, FlipTTAPredictor, load_predictor


class PixelEcho(BatchedPredictor):
    """Logits read from the red channel (flip-equivariant) or from the column index (not)."""

    name = "echo"
    image_size = 32

    def __init__(self, by_column: bool = False):
        self.by_column = by_column
        self.calls: list[int] = []

    def forward_batch(self, images, prompts):
        self.calls.append(len(images))
        if self.by_column:
            logits = np.broadcast_to(np.arange(images.shape[2], dtype=np.float32), images.shape[:3]).copy()
        else:
            logits = images[..., 0].astype(np.float32) - 128
        return logits, logits.mean(axis=(1, 2))


@pytest.fixture
def photos():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)


@pytest.mark.parametrize("views, count", [("hflip", 2), ("hvflip", 4)])
def test_an_equivariant_model_is_unchanged_and_runs_once_per_batch(views, count, photos) -> None:
    inner = PixelEcho()
    plain = inner.forward_batch(photos, ["segment crack"] * 3)
    tta = FlipTTAPredictor(inner, views)
    logits, confidence = tta.forward_batch(photos, ["segment crack"] * 3)
    # Each view is flipped back before averaging, so a model that follows the image agrees with itself.
    np.testing.assert_allclose(logits, plain[0], atol=1e-5)
    np.testing.assert_allclose(confidence, plain[1], atol=1e-4)
    assert inner.calls[-1] == 3 * count and tta.name == f"echo+tta-{views}"


def test_flips_average_out_a_position_only_model(photos) -> None:
    logits, _ = FlipTTAPredictor(PixelEcho(by_column=True), "hflip").forward_batch(photos, ["p"] * 3)
    np.testing.assert_allclose(logits, np.full_like(logits, 15.5))  # mean of column c and 31 - c


def test_results_keep_image_size_and_threshold(photos) -> None:
    tta = FlipTTAPredictor(PixelEcho(), "hflip")
    tta.threshold = 0.7
    assert tta.predict(np.ascontiguousarray(photos[0, :20]), "segment crack").mask.shape == (20, 32)
    mask = tta.predict(photos[0], "segment crack").mask  # already at the model size: no resampling
    np.testing.assert_array_equal(mask, photos[0, :, :, 0].astype(int) - 128 >= np.log(0.7 / 0.3))


def test_unknown_views_and_non_batched_runtimes_are_refused() -> None:
    with pytest.raises(ConfigError, match="tta must be one of"):
        FlipTTAPredictor(PixelEcho(), "rotate")
    with pytest.raises(ConfigError, match="tta must be one of none, hflip, hvflip"):
        load_predictor(None, tta="rotate")


def test_each_runtime_lists_the_options_its_predictor_takes() -> None:
    """load_predictor passes on the options RUNTIME_OPTIONS lists (and refuses others): the lists
    must follow the runtimes' constructors."""
    import inspect

    from drywallqa.inference import ModelPredictor, OnnxPredictor, TensorRTPredictor
    from drywallqa.inference.load import RUNTIME_OPTIONS

    for runtime, predictor_class in (("torch", ModelPredictor), ("onnx", OnnxPredictor), ("tensorrt", TensorRTPredictor)):
        taken = [name for name in inspect.signature(predictor_class).parameters if name not in ("model", "path", "device")]
        assert sorted(RUNTIME_OPTIONS[runtime]) == sorted(taken), runtime


def test_evaluate_cli_with_tta_names_it_in_the_report(tmp_path, capsys) -> None:
    from drywallqa.data.synthetic import generate_sample_data
    from drywallqa.models import build_model

    sample = generate_sample_data(tmp_path / "sample", images=8, size=64, seed=2)
    build_model("promptunet", pretrained=False, text_encoder="hashing", image_size=64).save_pretrained(tmp_path / "m")
    report = tmp_path / "report.json"
    assert main(["evaluate", "--model", str(tmp_path / "m"), "--data", str(sample.cracks), "--tta", "hflip",
                 "--json", str(report), "--no-progress"]) == 0
    assert "+tta-hflip" in json.dumps(json.loads(report.read_text())["metadata"])


class SplitEcho(PixelEcho):
    """:class:`PixelEcho` with an encoder (counting the images it sees) and a prompt-dependent decoder."""

    def __init__(self, by_column: bool = False):
        super().__init__(by_column)
        self.encoded = 0

    def encode_batch(self, images):
        self.encoded += len(images)
        return images

    def decode_batch(self, features, prompts, image_index):
        logits, confidence = PixelEcho.forward_batch(self, features[image_index], prompts)
        shift = np.array([len(p) for p in prompts], np.float32)
        return logits + shift[:, None, None], confidence + shift

    def forward_batch(self, images, prompts):
        return self.decode_batch(self.encode_batch(images), prompts, np.arange(len(images)))


@pytest.mark.parametrize("views, count", [("hflip", 2), ("hvflip", 4)])
def test_flips_encode_each_view_once_for_every_prompt(views, count, photos) -> None:
    inner = SplitEcho(by_column=True)
    tta = FlipTTAPredictor(inner, views)
    prompts, index = ["crack", "segment taping area", "crack"], [0, 0, 2]
    logits, confidence = tta.forward_pairs(photos, prompts, index)
    assert inner.encoded == 3 * count  # three photos, each view encoded once
    for row, (prompt, image) in enumerate(zip(prompts, index)):
        alone = tta.forward_batch(photos[image : image + 1], [prompt])
        np.testing.assert_allclose(logits[row], alone[0][0], atol=1e-5)
        np.testing.assert_allclose(confidence[row], alone[1][0], atol=1e-5)


def test_a_tta_photo_with_two_prompts_gives_each_prompts_own_mask(photos) -> None:
    tta = FlipTTAPredictor(SplitEcho(), "hflip")
    image = np.ascontiguousarray(photos[0, :20])
    both = tta.predict(image, ["crack", "segment taping area"], return_probabilities=True)
    for result in both:
        alone = tta.predict(image, result.prompt, return_probabilities=True)
        np.testing.assert_allclose(result.probabilities, alone.probabilities, atol=1e-6)
        assert result.mask.shape == (20, 32)
