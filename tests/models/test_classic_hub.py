"""models.weights, models.specs, models.embedding_cache: weights resolution and its one-line errors, --model specs, the frozen-encoder embedding cache."""

from __future__ import annotations

import sys
import types

import pytest
import torch
from tiny_checkpoints import save_tiny_checkpoint

from drywallqa.cli import main
from drywallqa.errors import ConfigError, DrywallQAError
from drywallqa.inference import model_predictor
from drywallqa.models import ClipSeg, build_from_spec, build_model
from drywallqa.models.embedding_cache import EmbeddingCache


@pytest.fixture(scope="module")
def clipseg_weights(tmp_path_factory) -> str:
    return str(save_tiny_checkpoint("clipseg", tmp_path_factory.mktemp("weights") / "clipseg"))


def test_missing_folder_is_one_line_with_the_download_command(tmp_path):
    with pytest.raises(DrywallQAError) as info:
        build_model("clipseg", weights=str(tmp_path / "nowhere" / "clipseg"))
    message = str(info.value)
    assert "\n" not in message and "does not exist" in message
    assert "huggingface-cli download" in message and "--model clipseg:DIR" in message


def test_hub_id_offline_without_local_copy_names_what_to_download(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DrywallQAError) as info:
        build_model("clipseg")  # the default CIDAS/clipseg-rd64-refined, not in the cache here
    message = str(info.value)
    assert "\n" not in message and "not available offline" in message
    assert "huggingface-cli download CIDAS/clipseg-rd64-refined --local-dir DIR" in message
    assert "--set model.args.weights=DIR" in message


def test_cli_training_with_missing_weights_exits_2_with_one_line(tmp_path, capsys):
    from drywallqa.data.synthetic import generate_sample_data

    data = generate_sample_data(tmp_path / "sample", images=12, size=64, seed=7).root
    args = [
        "train",
        "--model",
        "textsam",
        "--set",
        f"model.args.weights={tmp_path / 'no-sam'}",
        "--data",
        str(data),
        "--out",
        str(tmp_path / "run"),
        "--image-size",
        "64",
    ]
    assert main(args) == 2
    last_line = capsys.readouterr().err.strip().splitlines()[-1]
    assert last_line.startswith("error:") and "huggingface-cli download" in last_line


def test_sam3_names_the_transformers_version_it_needs(monkeypatch):
    from drywallqa.models.sam3 import import_sam3

    monkeypatch.setitem(sys.modules, "transformers", types.SimpleNamespace(__version__="4.45.0"))
    with pytest.raises(DrywallQAError, match=r"sam3 needs transformers >= 5.0 .* has 4.45.0"):
        import_sam3()


@pytest.mark.parametrize(
    "spec, error",
    [
        ("nonesuch:/models/x", "unknown model 'nonesuch'"),
        ("promptunet:/models/x", "must be trained before it can predict"),
        ("textsam", "must be trained before it can predict"),
    ],
)
def test_bad_specs_raise_config_errors(spec: str, error: str):
    with pytest.raises(ConfigError, match=error):
        build_from_spec(spec)


def test_specs_that_name_no_model_return_none(tmp_path):
    assert build_from_spec(None) is None
    assert build_from_spec(str(tmp_path / "missing-folder")) is None
    assert build_from_spec(str(tmp_path)) is None  # a folder without config.json


def test_yaml_spec_and_overrides_of_a_saved_folder(clipseg_weights, tmp_path):
    spec = tmp_path / "clipseg.yaml"
    spec.write_text(f"model:\n  name: clipseg\n  args:\n    weights: {clipseg_weights}\n    image_size: 64\n")
    model = build_from_spec(spec)
    assert isinstance(model, ClipSeg) and model.default_image_size == 64
    folder = model.save_pretrained(tmp_path / "saved")
    cached = build_from_spec(folder, {"embedding_cache": str(tmp_path / "cache")})
    assert cached.embedding_cache is not None
    torch.testing.assert_close(cached.clipseg.decoder.film_mul.weight, model.clipseg.decoder.film_mul.weight)
    with pytest.raises(ConfigError, match="unknown clipseg config field"):
        build_from_spec(folder, {"boxes": "full-image"})


def test_embedding_cache_hits_misses_and_recovers_from_a_truncated_entry(tmp_path):
    cache = EmbeddingCache(tmp_path)
    calls = []

    def encode(pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        calls.append(len(pixels))
        return {"features": pixels.mean(dim=(2, 3)) * 2}

    images = torch.rand(3, 3, 8, 8)
    first = cache.get_or_compute("encoder-a", images, encode)
    second = cache.get_or_compute("encoder-a", images[[2, 0]], encode)
    assert calls == [3] and (cache.hits, cache.misses) == (2, 3)
    torch.testing.assert_close(second["features"], first["features"][[2, 0]], rtol=0, atol=0)
    cache.get_or_compute("encoder-b", images[:1], encode)  # another encoder never shares entries
    assert calls == [3, 1]
    cache.path("encoder-a", EmbeddingCache.image_key(images[1])).write_bytes(b"truncated")
    with pytest.warns(UserWarning, match="unreadable embedding cache entry"):
        again = cache.get_or_compute("encoder-a", images[1:2], encode)
    assert calls == [3, 1, 1]
    torch.testing.assert_close(again["features"], first["features"][1:2], rtol=0, atol=0)


def test_encoder_key_changes_with_the_encoder_weights(clipseg_weights):
    a = build_model("clipseg", weights=clipseg_weights)
    b = build_model("clipseg", weights=clipseg_weights)
    assert a.encoder_key() == b.encoder_key() and a.encoder_key().startswith("clipseg-")
    with torch.no_grad():
        next(b.clipseg.clip.vision_model.parameters()).add_(1.0)
    b._encoder_key = None  # the key is computed once per model (its encoder is frozen)
    assert a.encoder_key() != b.encoder_key()


def test_model_predictor_uses_display_name_and_metadata():
    unet = build_model("promptunet", pretrained=False, text_encoder="hashing", image_size=64)
    predictor = model_predictor(unet, device="cpu")
    assert predictor.name == "promptunet" and predictor.metadata == {"architecture": "promptunet"}
