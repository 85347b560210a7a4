"""Verdicts from QA figures and a QA rules file (``configs/qa-rules.yaml``).

The rules file maps each prompt class to a figure set (what to measure, see
:mod:`drywallqa.qa.figures`), to what a mask with nothing found means for it, and to rules on the
figures of what was found. A rule names one figure and a bound: ``{above: X}`` fails when the
figure exceeds ``X``, ``{below: X}`` when it is under ``X``, ``{outside: [LOW, HIGH]}`` when
either. Every verdict carries a *severity*: the largest ratio of a figure to its bound over the
checked rules (figure / limit for ``above``, limit / figure for ``below``), so ``> 1`` exactly
when the mask fails and larger when it fails by more; reports sort on it.

Each (photo, prompt) gets one of :data:`VERDICTS` (:meth:`QARules.judge`):

- ``"unchecked"``: the prompt's class has no entry in the rules file (or the prompt names no class).
- *Nothing found* (:meth:`ClassRules.found`): the mask has no component of at least
  ``measurement.min_component_area_px`` pixels, or it covers less than the class's
  ``min_area_percent`` of the photo. Then the rules are not checked, and the verdict is
  ``"fail"`` when the class is ``required`` (the photo must show one: a folder of joint photos),
  else ``"pass"`` when the class is a ``defect`` (no crack is a good wall), else ``"not found"``
  (a photo of a crack shows no joint: nothing to judge).
- Otherwise ``"fail"`` if any checked rule fails, ``"pass"`` if none does (also when none applies,
  say ``fail_if_mm`` rules only and no scale). Rules are only ever checked on what was found.

A photo's verdict combines its prompts' (:func:`photo_verdict`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Annotated

from pydantic import AfterValidator, Field

from drywallqa.config_schema import (
    DEFAULT_IF_EMPTY,
    Bool,
    FiniteFloat,
    NonNegativeInt,
    Text,
    config_dataclass,
    one_of,
    validate,
)
from drywallqa.data.prompts import PromptConfig
from drywallqa.errors import ConfigError
from drywallqa.qa.figures import FIGURE_SETS, LENGTH_FIGURES, QAFigures
from drywallqa.yamlio import packaged_yaml, read_yaml

#: The verdicts of one (photo, prompt), and of a photo; in the order :func:`photo_verdict` ranks them.
VERDICTS = ("fail", "pass", "not found", "unchecked")
NOT_FOUND = "not found"
# Severity of a rule whose ratio is unbounded (a figure of 0 under a `below` rule, or any
# positive figure above a limit of 0): large but finite, so it stays valid JSON.
MAX_SEVERITY = 100.0
_UNITLESS_FIGURES = ("area_percent", "area_px", "components", "confidence")
_KNOWN_FIGURES = (*_UNITLESS_FIGURES, *(f"{name}_{unit}" for name in LENGTH_FIGURES for unit in ("px", "mm")))
FigureName = Annotated[str, AfterValidator(one_of(_KNOWN_FIGURES, "figure"))]
FigureSet = Annotated[str, AfterValidator(one_of(FIGURE_SETS, "figure set"))]
AreaPercent = Annotated[float, Field(strict=True, ge=0, le=100)]


@config_dataclass(where="rule", frozen=True)
class Rule:
    """One bound on one figure.

    Attributes:
        figure: Figure name, e.g. ``"width_max_mm"``.
        above: Fail when the figure is larger than this.
        below: Fail when the figure is smaller than this.
    """

    figure: Text  # the rules file's figures are checked by name (_ClassEntry); judge() skips unmeasured ones
    above: FiniteFloat | None = None
    below: FiniteFloat | None = None

    def check(self, value: float) -> tuple[bool, float, str]:
        """Check one figure value.

        Returns:
            ``(failed, severity, reason)``; ``reason`` is ``""`` when it passes.
        """
        failed, severity, reason = False, 0.0, ""
        if self.above is not None:
            ratio = value / self.above if self.above > 0 else (MAX_SEVERITY if value > 0 else 0.0)
            severity = max(severity, ratio)
            if value > self.above:
                failed, reason = True, f"{self.figure} {_fmt(value)} > {_fmt(self.above)}"
        if self.below is not None:
            ratio = self.below / value if value > 0 else (MAX_SEVERITY if self.below > 0 else 0.0)
            severity = max(severity, ratio)
            if value < self.below:
                failed, reason = True, f"{self.figure} {_fmt(value)} < {_fmt(self.below)}"
        return failed, min(severity, MAX_SEVERITY), reason


@config_dataclass(where="class rules", frozen=True)
class ClassRules:
    """The figure set and rules of one prompt class.

    Attributes:
        class_name: Prompt class, e.g. ``"crack"``.
        figure_set: ``"crack"``, ``"joint"`` or ``"area"``.
        rules: Rules that always apply.
        rules_mm: Rules that apply when the image scale is known.
        rules_px: Rules that apply when it is not.
        defect: Nothing found is a pass (no crack); otherwise it is ``"not found"``.
        required: The photo must show one: nothing found is a fail (before ``defect``).
        min_area_percent: A mask covering less of the photo counts as nothing found.
    """

    class_name: Text
    figure_set: FigureSet
    rules: tuple[Rule, ...] = ()
    rules_mm: tuple[Rule, ...] = ()
    rules_px: tuple[Rule, ...] = ()
    defect: Bool = False
    required: Bool = False
    min_area_percent: AreaPercent = 0.0

    def rules_for(self, scale_known: bool) -> tuple[Rule, ...]:
        """The rules to check for an image with or without a known scale."""
        return self.rules + (self.rules_mm if scale_known else self.rules_px)

    def found(self, figures: QAFigures) -> bool:
        """Whether the mask shows something: a component (of ``min_component_area_px``, counted in
        ``figures.components``) and at least ``min_area_percent`` of the photo covered."""
        return figures.components > 0 and figures.area_percent >= self.min_area_percent

    def nothing_found(self, figures: QAFigures, min_component_area_px: int) -> Verdict:
        """The verdict of a mask with nothing found: fail if required, pass if a defect, else not found."""
        checked = ("components", "area_percent") if self.min_area_percent > 0 else ("components",)
        if not self.required:
            return Verdict("pass" if self.defect else NOT_FOUND, checked=checked)
        if figures.components == 0:
            reason = f"no {self.class_name} found (no component of {min_component_area_px} px or more; required)"
            return Verdict("fail", (reason,), MAX_SEVERITY, checked)
        _, severity, reason = Rule("area_percent", below=self.min_area_percent).check(figures.area_percent)
        return Verdict("fail", (f"{reason} (required)",), severity, checked)


@dataclass(frozen=True)
class Verdict:
    """Outcome of checking one mask's figures.

    Attributes:
        verdict: One of :data:`VERDICTS` (see the module docstring): ``"fail"`` if any checked
            rule failed (or a required class was not found), ``"pass"`` if rules were checked and
            none failed (or a defect class was not found), ``"not found"`` if nothing was found
            for a class that is neither, ``"unchecked"`` for a class the rules file does not list.
        reasons: One line per failed rule, e.g. ``"longest_mm 61.2 > 20"``.
        severity: Largest figure-to-bound ratio over the checked rules (``> 1`` iff failed).
        checked: Names of the figures that were checked.
    """

    verdict: str
    reasons: tuple[str, ...] = ()
    severity: float = 0.0
    checked: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ConfigError(f"verdict must be one of {', '.join(VERDICTS)}, got {self.verdict!r}")

    def to_dict(self) -> dict:
        return {"verdict": self.verdict, "reasons": list(self.reasons), "severity": round(self.severity, 4),
                "checked": list(self.checked)}


@dataclass
class QARules:
    """Per-class figure sets and pass/fail rules, loaded from YAML.

    Example:
        >>> rules = QARules.default()
        >>> rules.figure_set("crack"), rules.figure_set("taping_area"), rules.figure_set("stain")
        ('crack', 'joint', 'area')
    """

    classes: dict[str, ClassRules] = field(default_factory=dict)
    min_component_area_px: int = 10
    source: str = "<dict>"

    @classmethod
    def default(cls) -> QARules:
        """The rules shipped with the package (``drywallqa/configs/qa-rules.yaml``)."""
        return cls.from_dict(packaged_yaml("configs/qa-rules.yaml"), source="built-in qa-rules.yaml")

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> QARules:
        """The rules file at ``path``, or the built-in one when ``path`` is None."""
        return cls.default() if path is None else cls.from_yaml(path)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> QARules:
        """Load a rules file; raises :class:`ConfigError` naming the file and key on problems."""
        return cls.from_dict(read_yaml(path), source=str(path))

    @classmethod
    def from_dict(cls, data: object, source: str = "<dict>") -> QARules:
        """Build from the parsed YAML (see ``configs/qa-rules.yaml`` for the layout).

        Raises:
            ConfigError: One line naming ``source`` and the key (``classes.crack.figures``).
        """
        rules_file: _RulesFile = validate(_RulesFile, data, source)
        classes = {
            name: ClassRules(
                class_name=name, figure_set=entry.figures, defect=entry.defect, required=entry.required,
                min_area_percent=entry.min_area_percent,
                rules=_rules(entry.fail_if), rules_mm=_rules(entry.fail_if_mm), rules_px=_rules(entry.fail_if_px),
            )
            for name, entry in rules_file.classes.items()
        }
        return cls(classes, rules_file.measurement.min_component_area_px, source)

    def check_classes(self, prompt_config: PromptConfig | None = None) -> QARules:
        """Refuse a ``required`` class that no prompt can ask for, which could never be checked.

        Args:
            prompt_config: The prompt classes of the run (the built-in ``prompts.yaml`` by default).

        Returns:
            The rules, for chaining.

        Raises:
            ConfigError: Naming the file, the class and the known classes.
        """
        known = (prompt_config or PromptConfig.default()).classes
        for name, entry in self.classes.items():
            if entry.required and name not in known:
                raise ConfigError(f"{self.source}: classes.{name}.required: {name!r} is not a prompt class (known: "
                                  f"{', '.join(known) or 'none'}; add it to the prompt classes with --prompts)")
        return self

    def figure_set(self, class_name: str | None) -> str:
        """The figure set of a class; ``"area"`` for a class the file does not list."""
        entry = self.classes.get(class_name or "")
        return entry.figure_set if entry else "area"

    def judge(self, class_name: str | None, figures: QAFigures) -> Verdict:
        """Check a mask's figures against its class's rules.

        Args:
            class_name: Prompt class of the mask (None or unlisted: ``"unchecked"``).
            figures: The mask's figures (their ``mm_per_px`` picks the mm or px rules).

        Returns:
            The verdict; see the module docstring for what nothing found gives.
        """
        entry = self.classes.get(class_name or "")
        if entry is None:
            return Verdict("unchecked")
        if not entry.found(figures):
            return entry.nothing_found(figures, self.min_component_area_px)
        values = figures.to_dict()
        reasons, checked, severity = [], [], 0.0
        for rule in entry.rules_for(figures.mm_per_px is not None):
            value = values.get(rule.figure)
            if value is None:
                continue  # not measured for this mask (e.g. the width of an empty mask)
            failed, rule_severity, reason = rule.check(float(value))
            checked.append(rule.figure)
            severity = max(severity, rule_severity)
            if failed:
                reasons.append(reason)
        # A found mask none of whose rules apply (say only fail_if_mm rules, and no scale) passes:
        # it was found, and nothing measured says it fails.
        return Verdict("fail" if reasons else "pass", tuple(reasons), severity, tuple(checked))


def photo_verdict(verdicts: Iterable[str]) -> str:
    """The verdict of a photo from its prompts' verdicts.

    ``"fail"`` if any prompt fails; otherwise ``"pass"`` if any passes; otherwise ``"not found"``
    if any found nothing; otherwise (only unchecked prompts, or none) ``"unchecked"``.

    Example:
        >>> photo_verdict(["fail", "not found"]), photo_verdict(["pass", "not found"]), photo_verdict(["not found", "unchecked"])
        ('fail', 'pass', 'not found')
    """
    given = set(verdicts)
    return next((verdict for verdict in VERDICTS if verdict in given), "unchecked")


# -- the rules file's schema (configs/qa-rules.yaml) ----------------------------------------------
@config_dataclass(frozen=True)
class _Bound:
    """``{above: X}``, ``{below: X}``, both, or ``{outside: [LOW, HIGH]}``: the bound of one rule."""

    above: FiniteFloat | None = None
    below: FiniteFloat | None = None
    outside: tuple[FiniteFloat, FiniteFloat] | None = None

    def __post_init__(self) -> None:
        given = [key for key in ("above", "below", "outside") if getattr(self, key) is not None]
        if not given or ("outside" in given and len(given) > 1):
            raise ValueError(f"expected {{above: X}}, {{below: X}} or {{outside: [LOW, HIGH]}}, got {given or 'nothing'}")
        if self.outside is not None and self.outside[0] > self.outside[1]:
            raise ValueError(f"outside: expected [LOW, HIGH] with LOW <= HIGH, got {list(self.outside)}")

    def rule(self, figure: str) -> Rule:
        if self.outside is not None:
            return Rule(figure, above=self.outside[1], below=self.outside[0])
        return Rule(figure, above=self.above, below=self.below)


@config_dataclass(frozen=True)
class _ClassEntry:
    """One class of the rules file: its figure set, presence keys and rules."""

    figures: FigureSet = "area"
    defect: Bool = False
    required: Bool = False
    min_area_percent: AreaPercent = 0.0
    fail_if: dict[FigureName, _Bound] | None = None
    fail_if_mm: dict[FigureName, _Bound] | None = None
    fail_if_px: dict[FigureName, _Bound] | None = None


@config_dataclass(frozen=True)
class _Measurement:
    min_component_area_px: NonNegativeInt = 10


@config_dataclass(frozen=True)
class _RulesFile:
    classes: dict[Text, Annotated[_ClassEntry, DEFAULT_IF_EMPTY]]
    measurement: Annotated[_Measurement, DEFAULT_IF_EMPTY] = field(default_factory=_Measurement)


def _rules(bounds: dict[str, _Bound] | None) -> tuple[Rule, ...]:
    return tuple(bound.rule(figure) for figure, bound in (bounds or {}).items())


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
