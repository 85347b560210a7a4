"""Pseudo-masks from boxes: a registry of methods, batch generation, and quality measured on truth.

Example:
    >>> from drywallqa.pseudomask import make_pseudo_masks, evaluate_pseudo_masks   # doctest: +SKIP
    >>> make_pseudo_masks("data/drywall-join", "ridge", "data/drywall-join-ridge")   # doctest: +SKIP
    >>> print(evaluate_pseudo_masks("data/cracks/valid", "box,grabcut,ridge"))        # doctest: +SKIP
"""

from drywallqa.pseudomask.base import PseudoMaskMethod, box_masks, box_window, predict_annotations
from drywallqa.pseudomask.evaluate import MethodScore, PseudoMaskReport, evaluate_pseudo_masks
from drywallqa.pseudomask.generate import PseudoMaskRun, make_pseudo_masks
from drywallqa.pseudomask.registry import (
    PSEUDO_MASK_METHODS,
    MethodSpec,
    available_methods,
    create_method,
    get_method_spec,
    parse_methods,
)

__all__ = [
    "PSEUDO_MASK_METHODS",
    "MethodScore",
    "MethodSpec",
    "PseudoMaskMethod",
    "PseudoMaskReport",
    "PseudoMaskRun",
    "available_methods",
    "box_masks",
    "box_window",
    "create_method",
    "evaluate_pseudo_masks",
    "get_method_spec",
    "make_pseudo_masks",
    "parse_methods",
    "predict_annotations",
]
