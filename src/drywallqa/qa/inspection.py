"""From a predicted mask and its prompt to QA figures and a verdict: :func:`inspect_mask`.

The prompt picks the class (:func:`prompt_class`), the class picks the figure set and the rules
(:class:`~drywallqa.qa.rules.QARules`), so ``predict``, the HTTP service and the
Python API give the same figures for the same mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from drywallqa.data.prompts import PromptConfig
from drywallqa.qa.figures import QAFigures, measure_mask
from drywallqa.qa.rules import QARules, Verdict


def prompt_class(prompt: str, prompt_config: PromptConfig | None = None) -> str | None:
    """The name of the prompt class a prompt asks for (:meth:`PromptConfig.class_of`), or None.

    Example:
        >>> prompt_class("segment crack"), prompt_class("highlight the tape"), prompt_class("segment mould")
        ('crack', 'taping_area', None)
    """
    found = (prompt_config or PromptConfig.default()).class_of(prompt)
    return found.name if found is not None else None


def unknown_prompt_message(prompt: str, prompt_config: PromptConfig | None = None) -> str:
    """One line saying that ``prompt`` names no known class, listing the classes and how to add one."""
    from importlib import resources

    config = prompt_config or PromptConfig.default()
    builtin = resources.files("drywallqa").joinpath("configs/prompts.yaml")
    return (
        f"prompt {prompt!r} matches no known class (known: {', '.join(config.classes) or 'none'}), so its mask gets no "
        f"QA rules (verdict 'unchecked') and the model was not trained for it; to add a class, copy {builtin}, add it "
        "under 'classes:' with its prompt and aliases, pass the copy with --prompts, and give it rules in a "
        "qa-rules.yaml (--qa-rules)"
    )


@dataclass
class MaskInspection:
    """QA figures and verdict of one mask for one prompt.

    Attributes:
        prompt: The prompt text.
        class_name: Its prompt class, or None when the prompt names no known class.
        figures: The measured figures.
        verdict: Pass, fail, not found or unchecked, with reasons and severity.
    """

    prompt: str
    class_name: str | None
    figures: QAFigures
    verdict: Verdict

    def to_dict(self) -> dict:
        """JSON-ready: ``prompt``, ``class``, ``figure_set``, ``figures``, ``verdict``, ``reasons``, ``severity``,
        and ``width_profile`` when the width was measured on the photo."""
        profile = {"width_profile": self.figures.width_profile} if self.figures.width_profile else {}
        return {
            "prompt": self.prompt, "class": self.class_name, "figure_set": self.figures.figure_set,
            "figures": self.figures.to_dict(), **self.verdict.to_dict(), **profile,
        }

    def __repr__(self) -> str:
        return (
            f"MaskInspection(prompt={self.prompt!r}, class={self.class_name!r}, {self.verdict.verdict}, "
            f"area={self.figures.area_percent:.2f}%, components={self.figures.components})"
        )


def inspect_mask(
    mask: np.ndarray,
    prompt: str,
    *,
    image: np.ndarray | None = None,
    confidence: float | None = None,
    mm_per_px: float | None = None,
    qa_rules: QARules | None = None,
    prompt_config: PromptConfig | None = None,
    scale: float = 1.0,
) -> MaskInspection:
    """Measure a mask's QA figures for its prompt's class and judge them.

    Args:
        mask: ``(H, W)`` bool mask at the image's size.
        prompt: The prompt the mask answers.
        image: The photo, RGB ``uint8`` at the mask's size: crack widths, and taping figures on the
            band refined from it, are then measured on it (see :func:`~drywallqa.qa.figures.measure_mask`).
        confidence: The model's confidence for the mask.
        mm_per_px: Image scale; adds millimetre figures and selects the ``fail_if_mm`` rules.
        qa_rules: Figure sets and rules; the built-in ``qa-rules.yaml`` by default.
        prompt_config: Prompt classes; the built-in ``prompts.yaml`` by default.
        scale: Image-file pixels per mask pixel, for the mask of a photo decoded reduced (see
            :func:`~drywallqa.qa.figures.measure_mask`).

    Example:
        >>> mask = np.zeros((100, 200), dtype=bool); mask[50:53, 20:120] = True   # 100 × 3 px
        >>> inspect_mask(mask, "segment crack", mm_per_px=0.1).verdict.verdict    # 10 mm × 0.3 mm
        'pass'
    """
    qa_rules = qa_rules or QARules.default()
    class_name = prompt_class(prompt, prompt_config)
    figures = measure_mask(
        mask, qa_rules.figure_set(class_name), image=image, mm_per_px=mm_per_px, confidence=confidence,
        min_component_area_px=qa_rules.min_component_area_px, scale=scale,
    )
    return MaskInspection(prompt, class_name, figures, qa_rules.judge(class_name, figures))
