"""The QA domain: figures measured on a mask, the rules that judge them, and verdicts.

- :func:`measure_mask` measures a mask's figures for its figure set (crack length and width,
  taping coverage and band width, ...), :mod:`drywallqa.qa.figures`; given the photo, a crack's
  width is measured across its dark line on it, :mod:`drywallqa.qa.crack_width`.
- :class:`QARules` holds each prompt class's figure set, what nothing found means for it, and
  its pass/fail rules (``configs/qa-rules.yaml``); :func:`photo_verdict` combines a photo's
  prompts' verdicts, :mod:`drywallqa.qa.rules`.
- :func:`inspect_mask` measures a mask for its prompt's class and judges it,
  :mod:`drywallqa.qa.inspection`.

It sits below ``evaluation`` and ``serving`` so that both judge masks, predicted or true, with
the same rules.
"""

from drywallqa.qa.figures import QAFigures, measure_mask
from drywallqa.qa.inspection import MaskInspection, inspect_mask, prompt_class, unknown_prompt_message
from drywallqa.qa.rules import VERDICTS, QARules, Verdict, photo_verdict

__all__ = [
    "VERDICTS", "MaskInspection", "QAFigures", "QARules", "Verdict", "inspect_mask", "measure_mask", "photo_verdict",
    "prompt_class", "unknown_prompt_message",
]
