"""The schema of a prompt config file (``configs/prompts.yaml``), validated by :mod:`drywallqa.config_schema`.

Its own module so that pydantic loads when a prompt file is first read, not with ``import
drywallqa`` (:mod:`drywallqa.data.prompts` is imported by every dataset reader).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BeforeValidator

from drywallqa.config_schema import DEFAULT_IF_EMPTY, Text, config_dataclass


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError(f"must not be blank, got {text!r}")
    return text


Phrase = Annotated[Text, AfterValidator(_not_blank)]
"""A prompt, alias or paraphrase: text that is not blank."""
Phrases = Annotated[tuple[Phrase, ...], BeforeValidator(lambda value: () if value is None else value)]
"""A list of phrases (left empty in YAML: none)."""


@config_dataclass(frozen=True)
class ClassEntry:
    """One class of the file: its canonical prompt (None: ``"segment <name>"``) and phrases."""

    prompt: Phrase | None = None
    aliases: Phrases = ()
    paraphrases: Phrases = ()
    heldout: Phrases = ()


@config_dataclass(frozen=True)
class PromptFile:
    """The file: ``classes``, a mapping of class name to :class:`ClassEntry`."""

    classes: dict[Text, Annotated[ClassEntry, DEFAULT_IF_EMPTY]]
