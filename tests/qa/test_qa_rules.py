"""Verdict states of one (photo, prompt), the photo verdict, and the QA rules file's presence keys."""

from __future__ import annotations

import numpy as np
import pytest

from drywallqa.data.prompts import PromptConfig
from drywallqa.errors import ConfigError
from drywallqa.qa import VERDICTS, QARules, inspect_mask, photo_verdict
from drywallqa.qa.rules import MAX_SEVERITY

CRACK, TAPING, MOULD = "segment crack", "segment taping area", "segment mould"


def mask(pixels: int = 0, side: int = 100) -> np.ndarray:
    """A ``side`` square mask whose first ``pixels`` pixels, row by row (one bar), are set."""
    flat = np.zeros(side * side, dtype=bool)
    flat[:pixels] = True
    return flat.reshape(side, side)


def required_taping() -> QARules:
    """The built-in rules with ``required: true`` for taping: a folder of joint photos."""
    from drywallqa.yamlio import packaged_yaml

    data = packaged_yaml("configs/qa-rules.yaml")
    data["classes"]["taping_area"]["required"] = True
    return QARules.from_dict(data, source="required.yaml")


# -- one (photo, prompt) --------------------------------------------------------------------------
@pytest.mark.parametrize(("prompt", "pixels", "verdict"), [
    (CRACK, 0, "pass"),            # a defect class: nothing found is no crack
    (CRACK, 9, "pass"),            # under min_component_area_px (10): noise, nothing found
    (CRACK, 100, "fail"),          # a 100 px crack: longest_px 100 > 30
    (CRACK, 20, "pass"),           # a 20 px crack: found, within the rules
    (TAPING, 0, "not found"),      # no joint in the photo: nothing to judge
    (TAPING, 99, "not found"),     # 0.99 % of the photo: under min_area_percent 1.0
    (TAPING, 100, "pass"),         # 1 % found; no scale, so no width rule applies
    (MOULD, 100, "unchecked"),     # no class, no rules
    (MOULD, 0, "unchecked"),
])
def test_verdict_states_with_the_builtin_rules(prompt, pixels, verdict):
    inspection = inspect_mask(mask(pixels), prompt)
    assert inspection.verdict.verdict == verdict
    assert (inspection.verdict.severity > 1) == (verdict == "fail")
    assert bool(inspection.verdict.reasons) == (verdict == "fail")


@pytest.mark.parametrize(("pixels", "reason", "severity"), [
    (0, "no taping_area found (no component of 10 px or more; required)", MAX_SEVERITY),
    (5, "no taping_area found (no component of 10 px or more; required)", MAX_SEVERITY),   # noise only
    (50, "area_percent 0.5 < 1 (required)", 2.0),
])
def test_required_makes_nothing_found_a_fail(pixels, reason, severity):
    """`required: true` restores the old rule (under 1 % of the photo fails) for joint-only folders."""
    verdict = inspect_mask(mask(pixels), TAPING, qa_rules=required_taping()).verdict
    assert (verdict.verdict, verdict.reasons) == ("fail", (reason,))
    assert verdict.severity == pytest.approx(severity)
    # What is found is judged by the same rules as without `required`.
    assert inspect_mask(mask(200), TAPING, qa_rules=required_taping()).verdict.verdict == "pass"


def test_rules_are_checked_on_what_was_found_only():
    """A width rule on taping applies to found taping; nothing found never reaches the rules."""
    rules = QARules.from_dict({"classes": {"taping_area": {"figures": "joint", "fail_if": {"width_mean_px": {"below": 50}}}}})
    assert inspect_mask(mask(0), TAPING, qa_rules=rules).verdict.verdict == "not found"
    found = inspect_mask(mask(300), TAPING, qa_rules=rules).verdict   # a 3 px band: narrower than 50
    assert found.verdict == "fail" and found.checked == ("width_mean_px",)


def test_required_comes_before_defect():
    rules = QARules.from_dict({"classes": {"crack": {"figures": "crack", "defect": True, "required": True}}})
    assert inspect_mask(mask(0), CRACK, qa_rules=rules).verdict.verdict == "fail"
    rules = QARules.from_dict({"classes": {"crack": {"figures": "crack"}}})  # neither: nothing found is not found
    assert inspect_mask(mask(0), CRACK, qa_rules=rules).verdict.verdict == "not found"


# -- a photo --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("verdicts", "expected"), [
    (["fail", "not found"], "fail"),               # a crack photo: the crack fails, no joint to judge
    (["pass", "pass"], "pass"),
    (["pass", "not found"], "pass"),
    (["fail", "pass", "unchecked"], "fail"),
    (["not found", "unchecked"], "not found"),
    (["not found"], "not found"),
    (["unchecked", "unchecked"], "unchecked"),
    ([], "unchecked"),
])
def test_photo_verdict_combines_its_prompts(verdicts, expected):
    assert photo_verdict(verdicts) == expected
    assert expected in VERDICTS


# -- the rules file -------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "field"), [
    ("classes: {}\nrules: {}", r": unknown key\(s\) rules; expected measurement, classes"),
    ("measurement: {min_area: 3}\nclasses: {}", r": measurement: unknown key\(s\) min_area"),
    ("classes: {taping_area: {must_show: true}}", r": classes\.taping_area: unknown key\(s\) must_show"),
    ("classes: {taping_area: {required: 'yes'}}", r": classes\.taping_area\.required: expected true or false, got 'yes'"),
    ("classes: {taping_area: {required: 1}}", r": classes\.taping_area\.required: expected true or false, got 1"),
    ("classes: {crack: {defect: 'no'}}", r": classes\.crack\.defect: expected true or false"),
    ("classes: {taping_area: {min_area_percent: 150}}", r": classes\.taping_area\.min_area_percent: expected a number"),
])
def test_bad_presence_keys_name_the_file_and_field(tmp_path, text, field):
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=field) as info:
        QARules.from_yaml(path)
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)


def test_required_on_a_class_no_prompt_asks_for_is_refused(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("classes: {stain: {figures: area, required: true}}")
    rules = QARules.from_yaml(path)
    with pytest.raises(ConfigError, match=rf"^{path}: classes\.stain\.required: 'stain' is not a prompt class "
                                          r"\(known: crack, taping_area"):
        rules.check_classes()
    # The user's prompt classes (--prompts) may add it.
    prompts = PromptConfig.from_dict({"classes": {"crack": {}, "stain": {"aliases": ["water stain"]}}})
    assert rules.check_classes(prompts) is rules
    # A class without `required` may name anything: it is judged if a prompt ever asks for it.
    QARules.from_dict({"classes": {"stain": {"figures": "area"}}}).check_classes()


def test_builtin_rules_mark_the_crack_a_defect_and_taping_neither():
    rules = QARules.default().check_classes()
    crack, taping = rules.classes["crack"], rules.classes["taping_area"]
    assert (crack.defect, crack.required, crack.min_area_percent) == (True, False, 0.0)
    assert (taping.defect, taping.required, taping.min_area_percent) == (False, False, 1.0)
