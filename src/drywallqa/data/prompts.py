"""Prompt classes: mapping dataset category names to prompt classes and their prompts."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from drywallqa.yamlio import packaged_yaml, read_yaml

# Leading words of a free-text prompt that say what to do rather than what to find.
_INSTRUCTION_WORDS = r"(segment|find|highlight|detect|show|mark|locate|outline|all|any|the|a|an|me)"


def normalise_name(name: str) -> str:
    """Lower-case a category or class name and collapse spaces, ``-`` and ``_``."""
    return re.sub(r"[\s_\-]+", " ", name.strip().lower())


@dataclass(frozen=True)
class PromptClass:
    """One prompt class: its canonical prompt, training paraphrases and held-out paraphrases."""

    name: str
    prompt: str
    aliases: tuple[str, ...] = ()
    paraphrases: tuple[str, ...] = ()
    heldout: tuple[str, ...] = ()

    @property
    def training_prompts(self) -> tuple[str, ...]:
        """The canonical prompt followed by the paraphrases used in training."""
        return (self.prompt, *self.paraphrases)


@dataclass
class PromptConfig:
    """The set of prompt classes, loaded from YAML (see ``configs/prompts.yaml``).

    Example:
        >>> cfg = PromptConfig.default()
        >>> cfg.resolve("drywall-join").name
        'taping_area'
        >>> cfg.resolve("NewCracks - v2", supercategory="crack").prompt
        'segment crack'
    """

    classes: dict[str, PromptClass] = field(default_factory=dict)

    @classmethod
    def default(cls) -> PromptConfig:
        """The built-in config shipped with the package."""
        return cls.from_dict(packaged_yaml("configs/prompts.yaml"), source="built-in prompts.yaml")

    @classmethod
    def from_yaml(cls, path: str | Path) -> PromptConfig:
        """Load a prompt config file; raises :class:`ConfigError` naming the file on problems."""
        return cls.from_dict(read_yaml(path), source=str(path))

    @classmethod
    def from_dict(cls, data: object, source: str = "<dict>") -> PromptConfig:
        """Build from the parsed YAML; a class without a ``prompt`` gets ``"segment <name>"``.

        Raises:
            ConfigError: One line naming ``source`` and the key (``classes.crack.aliases[0]``).
        """
        from drywallqa.config_schema import validate
        from drywallqa.data.prompt_file import PromptFile

        prompt_file: PromptFile = validate(PromptFile, data, source)
        return cls({
            name: PromptClass(name=name, prompt=entry.prompt or f"segment {normalise_name(name)}",
                              aliases=entry.aliases, paraphrases=entry.paraphrases, heldout=entry.heldout)
            for name, entry in prompt_file.classes.items()
        })

    def resolve(self, category: str, supercategory: str | None = None) -> PromptClass:
        """The prompt class for a dataset category, matched by name, then by supercategory.

        Unknown categories get a class of their own name with the prompt ``"segment <name>"``.
        """
        for candidate in (category, supercategory):
            if not candidate or normalise_name(candidate) == "none":
                continue
            key = normalise_name(candidate)
            for pc in self.classes.values():
                if key == normalise_name(pc.name) or key in {normalise_name(a) for a in pc.aliases}:
                    return pc
        name = normalise_name(category).replace(" ", "_")
        return PromptClass(name=name, prompt=f"segment {normalise_name(category)}")

    def class_of(self, prompt: str) -> PromptClass | None:
        """The prompt class a free-text prompt asks for, or None when it names no known class.

        The one prompt -> class rule of the package (serving's QA rules, per-class thresholds,
        evaluation's per-class tables and the two-stage model's class one-hot all use it).
        Matched in order: a known prompt, paraphrase or held-out paraphrase of a class
        (``"segment drywall seam"``); the prompt without leading instruction words as a class
        name or alias (``"find the tape"`` -> ``tape``); then the longest class name or alias
        found as whole words in the prompt (``"segment drywall cracks near the window"``).

        Example:
            >>> cfg = PromptConfig.default()
            >>> [getattr(cfg.class_of(p), "name", None) for p in ("detect crack", "highlight the tape", "segment mould")]
            ['crack', 'taping_area', None]
        """
        text = normalise_name(prompt)
        for pc in self.classes.values():
            if text in {normalise_name(p) for p in (*pc.training_prompts, *pc.heldout)}:
                return pc
        core = re.sub(rf"^({_INSTRUCTION_WORDS}\s+)+", "", text)
        candidates = []
        for pc in self.classes.values():
            for name in (pc.name, *pc.aliases):
                key = normalise_name(name)
                if key == core:
                    return pc
                if re.search(rf"(^|\s){re.escape(key)}(\s|$)", text):
                    candidates.append((len(key), pc.name))
        return self.classes[max(candidates)[1]] if candidates else None
