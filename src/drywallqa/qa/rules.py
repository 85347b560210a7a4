"""Pass/fail verdicts from QA figures and a thresholds file (``configs/qa-rules.yaml``).

The thresholds file maps each prompt class to a figure set (what to measure, see
:mod:`drywallqa.qa.figures`) and to rules on those figures. A rule names one figure and a
bound: ``{above: X}`` fails when the figure exceeds ``X``, ``{below: X}`` when it is under ``X``,
``{outside: [LOW, HIGH]}`` when either. Every verdict carries a *severity*: the largest ratio of a
figure to its bound over the checked rules (figure / limit for ``above``, limit / figure for
``below``), so ``> 1`` exactly when the mask fails and larger when it fails by more; reports sort
on it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path


from drywallqa.yamlio import packaged_yaml, read_yaml
from drywallqa.errors import ConfigError
from drywallqa.qa.figures import FIGURE_SETS, LENGTH_FIGURES, QAFigures

VERDICTS = ("fail", "pass", "unchecked")
# Severity of a rule whose ratio is unbounded (a figure of 0 under a `below` rule, or any
# positive figure above a limit of 0): large but finite, so it stays valid JSON.
MAX_SEVERITY = 100.0
_UNITLESS_FIGURES = ("area_percent", "area_px", "components", "confidence")
_KNOWN_FIGURES = (*_UNITLESS_FIGURES, *(f"{name}_{unit}" for name in LENGTH_FIGURES for unit in ("px", "mm")))


@dataclass(frozen=True)
class Rule:
    """One bound on one figure.

    Attributes:
        figure: Figure name, e.g. ``"width_max_mm"``.
        above: Fail when the figure is larger than this.
        below: Fail when the figure is smaller than this.
    """

    figure: str
    above: float | None = None
    below: float | None = None

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


@dataclass(frozen=True)
class ClassRules:
    """The figure set and rules of one prompt class.

    Attributes:
        class_name: Prompt class, e.g. ``"crack"``.
        figure_set: ``"crack"``, ``"joint"`` or ``"area"``.
        rules: Rules that always apply.
        rules_mm: Rules that apply when the image scale is known.
        rules_px: Rules that apply when it is not.
    """

    class_name: str
    figure_set: str
    rules: tuple[Rule, ...] = ()
    rules_mm: tuple[Rule, ...] = ()
    rules_px: tuple[Rule, ...] = ()

    def rules_for(self, scale_known: bool) -> tuple[Rule, ...]:
        """The rules to check for an image with or without a known scale."""
        return self.rules + (self.rules_mm if scale_known else self.rules_px)


@dataclass(frozen=True)
class Verdict:
    """Outcome of checking one mask's figures.

    Attributes:
        verdict: ``"fail"`` if any checked rule failed, ``"pass"`` if rules were checked and none
            failed, ``"unchecked"`` if no rule applied (class without thresholds).
        reasons: One line per failed rule, e.g. ``"longest_mm 61.2 > 20"``.
        severity: Largest figure-to-bound ratio over the checked rules (``> 1`` iff failed).
        checked: Names of the figures that were checked.
    """

    verdict: str
    reasons: tuple[str, ...] = ()
    severity: float = 0.0
    checked: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"verdict": self.verdict, "reasons": list(self.reasons), "severity": round(self.severity, 4),
                "checked": list(self.checked)}


@dataclass
class QARules:
    """Per-class figure sets and pass/fail rules, loaded from YAML.

    Example:
        >>> thresholds = QARules.default()
        >>> thresholds.figure_set("crack"), thresholds.figure_set("taping_area"), thresholds.figure_set("stain")
        ('crack', 'joint', 'area')
    """

    classes: dict[str, ClassRules] = field(default_factory=dict)
    min_component_area_px: int = 10
    source: str = "<dict>"

    @classmethod
    def default(cls) -> QARules:
        """The thresholds shipped with the package (``drywallqa/configs/qa-rules.yaml``)."""
        return cls.from_dict(packaged_yaml("configs/qa-rules.yaml"), source="built-in qa-rules.yaml")

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> QARules:
        """The thresholds file at ``path``, or the built-in one when ``path`` is None."""
        return cls.default() if path is None else cls.from_yaml(path)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> QARules:
        """Load a thresholds file; raises :class:`ConfigError` naming the file and key on problems."""
        path = Path(path)
        data = read_yaml(path)
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: object, source: str = "<dict>") -> QARules:
        """Build from the parsed YAML (see ``configs/qa-rules.yaml`` for the layout)."""
        if not isinstance(data, dict) or not isinstance(data.get("classes"), dict):
            raise ConfigError(f"{source}: expected a mapping with a 'classes' mapping (see configs/qa-rules.yaml)")
        measurement = data.get("measurement") or {}
        if not isinstance(measurement, dict):
            raise ConfigError(f"{source}: measurement: expected a mapping")
        min_area = measurement.get("min_component_area_px", 10)
        if not isinstance(min_area, int) or isinstance(min_area, bool) or min_area < 0:
            raise ConfigError(f"{source}: measurement.min_component_area_px: expected an integer >= 0, got {min_area!r}")
        classes = {}
        for name, spec in data["classes"].items():
            where = f"{source}: classes.{name}"
            spec = spec or {}
            if not isinstance(spec, dict):
                raise ConfigError(f"{where}: expected a mapping, got {type(spec).__name__}")
            unknown = sorted(set(spec) - {"figures", "fail_if", "fail_if_mm", "fail_if_px"})
            if unknown:
                raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; expected figures, fail_if, fail_if_mm, fail_if_px")
            figure_set = spec.get("figures", "area")
            if figure_set not in FIGURE_SETS:
                raise ConfigError(f"{where}.figures: expected one of {', '.join(FIGURE_SETS)}, got {figure_set!r}")
            classes[str(name)] = ClassRules(
                class_name=str(name), figure_set=figure_set,
                **{attr: _parse_rules(spec.get(key), f"{where}.{key}")
                   for attr, key in (("rules", "fail_if"), ("rules_mm", "fail_if_mm"), ("rules_px", "fail_if_px"))},
            )
        return cls(classes, min_area, source)

    def figure_set(self, class_name: str | None) -> str:
        """The figure set of a class; ``"area"`` for a class the file does not list."""
        entry = self.classes.get(class_name or "")
        return entry.figure_set if entry else "area"

    def judge(self, class_name: str | None, figures: QAFigures) -> Verdict:
        """Check a mask's figures against its class's rules.

        Args:
            class_name: Prompt class of the mask (None or unlisted: ``"unchecked"``).
            figures: The mask's figures (their ``mm_per_px`` picks the mm or px rules).
        """
        entry = self.classes.get(class_name or "")
        if entry is None:
            return Verdict("unchecked")
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
        if not checked:
            return Verdict("unchecked")
        return Verdict("fail" if reasons else "pass", tuple(reasons), severity, tuple(checked))


def _parse_rules(spec: object, where: str) -> tuple[Rule, ...]:
    if spec is None:
        return ()
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a mapping of figure: {{above|below|outside: ...}}")
    rules = []
    for figure, bound in spec.items():
        if figure not in _KNOWN_FIGURES:
            raise ConfigError(f"{where}.{figure}: unknown figure; expected one of {', '.join(_KNOWN_FIGURES)}")
        if not isinstance(bound, dict) or not bound or set(bound) - {"above", "below", "outside"}:
            raise ConfigError(f"{where}.{figure}: expected {{above: X}}, {{below: X}} or {{outside: [LOW, HIGH]}}, got {bound!r}")
        above, below = bound.get("above"), bound.get("below")
        if "outside" in bound:
            pair = bound["outside"]
            if not (isinstance(pair, list) and len(pair) == 2 and all(_is_number(v) for v in pair) and pair[0] <= pair[1]):
                raise ConfigError(f"{where}.{figure}.outside: expected [LOW, HIGH] with LOW <= HIGH, got {pair!r}")
            below, above = pair
        for key, value in (("above", above), ("below", below)):
            if value is not None and not _is_number(value):
                raise ConfigError(f"{where}.{figure}.{key}: expected a number, got {value!r}")
        rules.append(Rule(str(figure), None if above is None else float(above), None if below is None else float(below)))
    return tuple(rules)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
