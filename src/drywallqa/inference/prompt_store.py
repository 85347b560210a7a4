"""Precomputed prompt embeddings stored next to an exported model (``<name>.prompts.json``).

An exported graph takes the prompt as its embedding, so a runtime without the text encoder needs
the embeddings of the prompts it will be asked for. :class:`PromptEmbeddings` holds them, one row
per prompt string of the prompt config (canonical prompts, training paraphrases and held-out
paraphrases), and looks prompts up with the same case and whitespace folding the text encoders
apply, so ``"Segment  Crack"`` finds ``"segment crack"``.

File format (JSON, written atomically)::

    {"format": "drywallqa-prompt-embeddings", "version": 1,
     "model": "promptunet", "text_encoder": "minilm", "embed_dim": 384,
     "prompts": [{"text": "segment crack", "class": "crack", "kind": "canonical",
                  "embedding": [0.0123, ...]}, ...]}
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from drywallqa.errors import ConfigError, DataError
from drywallqa.files import atomic_write_json, read_json

if TYPE_CHECKING:
    from drywallqa.data.prompts import PromptConfig
    from drywallqa.models import PromptSegmentationModel

PROMPT_STORE_FORMAT = "drywallqa-prompt-embeddings"
PROMPT_STORE_VERSION = 1
PROMPT_STORE_SUFFIX = ".prompts.json"
PROMPT_KINDS = ("canonical", "paraphrase", "heldout", "extra")


def prompt_key(prompt: str) -> str:
    """Lookup key of a prompt: lower case, runs of whitespace collapsed.

    Both text encoders are insensitive to exactly this (MiniLM's tokenizer is uncased and splits
    on whitespace; the hashing encoder lower-cases and collapses spaces), so prompts with the same
    key have the same embedding.
    """
    return " ".join(prompt.lower().split())


def prompt_store_path(model_path: str | os.PathLike) -> Path:
    """Default sidecar file of an exported model: ``model.onnx`` -> ``model.prompts.json``."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.stem + PROMPT_STORE_SUFFIX)


@dataclass
class PromptEmbeddings:
    """Prompt strings and their embeddings, with the class and kind of each prompt.

    Attributes:
        prompts: ``N`` prompt strings.
        embeddings: float32 ``(N, D)``, row ``i`` the embedding of ``prompts[i]``.
        text_encoder: Name of the encoder that made them (``"minilm"``, ``"hashing"``).
        model: Registry name of the model they were made for.
        classes: ``N`` prompt-class names (``""`` when unknown).
        kinds: ``N`` entries of ``"canonical"``, ``"paraphrase"``, ``"heldout"`` or ``"extra"``.
    """

    prompts: list[str]
    embeddings: np.ndarray
    text_encoder: str
    model: str = ""
    classes: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.prompts = list(self.prompts)
        self.embeddings = np.ascontiguousarray(self.embeddings, dtype=np.float32)
        n = len(self.prompts)
        if self.embeddings.ndim != 2 or self.embeddings.shape[0] != n:
            raise ValueError(f"embeddings must have shape (N, D) = ({n}, D), got {self.embeddings.shape}")
        self.classes = list(self.classes) or [""] * n
        self.kinds = list(self.kinds) or ["extra"] * n
        if len(self.classes) != n or len(self.kinds) != n:
            raise ValueError(f"classes ({len(self.classes)}) and kinds ({len(self.kinds)}) need one entry per prompt ({n})")
        unknown_kinds = sorted(set(self.kinds) - set(PROMPT_KINDS))
        if unknown_kinds:
            raise ValueError(f"unknown prompt kind(s) {unknown_kinds}; expected some of {PROMPT_KINDS}")
        self._rows = {prompt_key(p): i for i, p in reversed(list(enumerate(self.prompts)))}

    @property
    def embed_dim(self) -> int:
        """Embedding size ``D``."""
        return int(self.embeddings.shape[1])

    def __len__(self) -> int:
        return len(self.prompts)

    def __contains__(self, prompt: object) -> bool:
        return isinstance(prompt, str) and prompt_key(prompt) in self._rows

    def __repr__(self) -> str:
        return (
            f"PromptEmbeddings({len(self)} prompts, dim={self.embed_dim}, text_encoder={self.text_encoder!r}, "
            f"model={self.model!r})"
        )

    def canonical_prompts(self) -> list[str]:
        """The canonical prompt of each class (what to show a user)."""
        return [p for p, kind in zip(self.prompts, self.kinds) if kind == "canonical"]

    def missing(self, prompts: Sequence[str]) -> list[str]:
        """The prompts (deduplicated, in order) that have no stored embedding."""
        return list(dict.fromkeys(p for p in prompts if p not in self))

    def lookup(self, prompts: Sequence[str]) -> np.ndarray:
        """Embeddings of ``prompts``, one row each.

        Args:
            prompts: Prompt strings; matched after :func:`prompt_key` folding.

        Returns:
            float32 ``(len(prompts), D)``.

        Raises:
            ConfigError: Naming the unknown prompts and the known canonical ones.
        """
        missing = self.missing(prompts)
        if missing:
            raise ConfigError(
                f"no stored embedding for prompt(s) {', '.join(map(repr, missing))}; known prompts: "
                f"{', '.join(map(repr, self.prompts))}"
            )
        return self.embeddings[[self._rows[prompt_key(p)] for p in prompts]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict in the file format above."""
        return {
            "format": PROMPT_STORE_FORMAT,
            "version": PROMPT_STORE_VERSION,
            "model": self.model,
            "text_encoder": self.text_encoder,
            "embed_dim": self.embed_dim,
            "prompts": [
                # float() of a float32 round-trips exactly through JSON's float64.
                {"text": p, "class": c, "kind": k, "embedding": [float(v) for v in row]}
                for p, c, k, row in zip(self.prompts, self.classes, self.kinds, self.embeddings)
            ],
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the JSON file atomically and return its path."""
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> PromptEmbeddings:
        """Read a file written by :meth:`save`.

        Raises:
            DataError: If the file is missing, not JSON or not in this format.
        """
        data = read_json(path)
        if not isinstance(data, dict) or data.get("format") != PROMPT_STORE_FORMAT:
            raise DataError(f"{path}: not a drywallqa prompt-embeddings file (format {PROMPT_STORE_FORMAT!r})")
        if data.get("version") != PROMPT_STORE_VERSION:
            raise DataError(f"{path}: prompt-embeddings version {data.get('version')}, expected {PROMPT_STORE_VERSION}")
        entries = data.get("prompts") or []
        try:
            return cls(
                prompts=[e["text"] for e in entries],
                embeddings=np.array([e["embedding"] for e in entries], dtype=np.float32).reshape(
                    len(entries), int(data["embed_dim"])
                ),
                text_encoder=str(data["text_encoder"]),
                model=str(data.get("model", "")),
                classes=[str(e.get("class", "")) for e in entries],
                kinds=[str(e.get("kind", "extra")) for e in entries],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{path}: malformed prompt-embeddings file ({exc})") from exc

    @classmethod
    def from_model(cls, model: PromptSegmentationModel, prompt_config: PromptConfig | None = None,
                   extra_prompts: Sequence[str] = ()) -> PromptEmbeddings:
        """Embed every prompt of a prompt config with the model's own text encoder.

        Args:
            model: A :class:`~drywallqa.models.PromptSegmentationModel`.
            prompt_config: A :class:`~drywallqa.data.prompts.PromptConfig`; the built-in one by default.
            extra_prompts: More prompts to store (kind ``"extra"``).

        Returns:
            One row per distinct prompt (after :func:`prompt_key` folding), canonical prompts first
            within each class, then paraphrases, then held-out ones, then the extras.
        """
        from drywallqa.data.prompts import PromptConfig

        config = prompt_config if prompt_config is not None else PromptConfig.default()
        prompts, classes, kinds, seen = [], [], [], set()

        def add(text: str, class_name: str, kind: str) -> None:
            if prompt_key(text) not in seen:
                seen.add(prompt_key(text))
                prompts.append(text)
                classes.append(class_name)
                kinds.append(kind)

        for prompt_class in config.classes.values():
            add(prompt_class.prompt, prompt_class.name, "canonical")
            for text in prompt_class.paraphrases:
                add(text, prompt_class.name, "paraphrase")
            for text in prompt_class.heldout:
                add(text, prompt_class.name, "heldout")
        for text in extra_prompts:
            add(text, "", "extra")
        if not prompts:
            raise ConfigError("the prompt config has no prompts to embed")
        embeddings = model.embed_prompts(prompts).detach().cpu().float().numpy()
        return cls(prompts, embeddings, model.config.text_encoder, model.name, classes, kinds)
