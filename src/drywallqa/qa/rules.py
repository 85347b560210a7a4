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

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from drywallqa.data.prompts import PromptConfig
from drywallqa.yamlio import packaged_yaml, read_yaml
from drywallqa.errors import ConfigError
from drywallqa.qa.figures import FIGURE_SETS, LENGTH_FIGURES, QAFigures

#: The verdicts of one (photo, prompt), and of a photo; in the order :func:`photo_verdict` ranks them.
VERDICTS = ("fail", "pass", "not found", "unchecked")
NOT_FOUND = "not found"
_TOP_KEYS = ("measurement", "classes")
_MEASUREMENT_KEYS = ("min_component_area_px",)
_CLASS_KEYS = ("figures", "defect", "required", "min_area_percent", "fail_if", "fail_if_mm", "fail_if_px")
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
        defect: Nothing found is a pass (no crack); otherwise it is ``"not found"``.
        required: The photo must show one: nothing found is a fail (before ``defect``).
        min_area_percent: A mask covering less of the photo counts as nothing found.
    """

    class_name: str
    figure_set: str
    rules: tuple[Rule, ...] = ()
    rules_mm: tuple[Rule, ...] = ()
    rules_px: tuple[Rule, ...] = ()
    defect: bool = False
    required: bool = False
    min_area_percent: float = 0.0

    def __post_init__(self) -> None:
        if not (isinstance(self.defect, bool) and isinstance(self.required, bool)):
            raise ConfigError(f"classes.{self.class_name}: defect and required must be true or false")
        if not (_is_number(self.min_area_percent) and 0 <= self.min_area_percent <= 100):
            raise ConfigError(f"classes.{self.class_name}.min_area_percent: expected a number from 0 to 100, "
                              f"got {self.min_area_percent!r}")

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
        path = Path(path)
        data = read_yaml(path)
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: object, source: str = "<dict>") -> QARules:
        """Build from the parsed YAML (see ``configs/qa-rules.yaml`` for the layout)."""
        if not isinstance(data, dict) or not isinstance(data.get("classes"), dict):
            raise ConfigError(f"{source}: expected a mapping with a 'classes' mapping (see configs/qa-rules.yaml)")
        _check_keys(data, _TOP_KEYS, source)
        measurement = data.get("measurement") or {}
        if not isinstance(measurement, dict):
            raise ConfigError(f"{source}: measurement: expected a mapping")
        _check_keys(measurement, _MEASUREMENT_KEYS, f"{source}: measurement")
        min_area = measurement.get("min_component_area_px", 10)
        if not isinstance(min_area, int) or isinstance(min_area, bool) or min_area < 0:
            raise ConfigError(f"{source}: measurement.min_component_area_px: expected an integer >= 0, got {min_area!r}")
        classes = {}
        for name, spec in data["classes"].items():
            where = f"{source}: classes.{name}"
            spec = spec or {}
            if not isinstance(spec, dict):
                raise ConfigError(f"{where}: expected a mapping, got {type(spec).__name__}")
            _check_keys(spec, _CLASS_KEYS, where)
            figure_set = spec.get("figures", "area")
            if figure_set not in FIGURE_SETS:
                raise ConfigError(f"{where}.figures: expected one of {', '.join(FIGURE_SETS)}, got {figure_set!r}")
            for key in ("defect", "required"):
                if not isinstance(spec.get(key, False), bool):
                    raise ConfigError(f"{where}.{key}: expected true or false, got {spec[key]!r}")
            min_area_percent = spec.get("min_area_percent", 0.0)
            if not (_is_number(min_area_percent) and 0 <= min_area_percent <= 100):
                raise ConfigError(f"{where}.min_area_percent: expected a number from 0 to 100, got {min_area_percent!r}")
            classes[str(name)] = ClassRules(
                class_name=str(name), figure_set=figure_set, defect=spec.get("defect", False),
                required=spec.get("required", False), min_area_percent=float(min_area_percent),
                **{attr: _parse_rules(spec.get(key), f"{where}.{key}")
                   for attr, key in (("rules", "fail_if"), ("rules_mm", "fail_if_mm"), ("rules_px", "fail_if_px"))},
            )
        return cls(classes, min_area, source)

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


def _check_keys(spec: dict, known: tuple[str, ...], where: str) -> None:
    unknown = sorted(str(key) for key in set(spec) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; expected {', '.join(known)}")


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
