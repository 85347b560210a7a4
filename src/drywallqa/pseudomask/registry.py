"""Name → builder registry of pseudo-mask methods.

Example:
    >>> from drywallqa.pseudomask import create_method, available_methods
    >>> available_methods()
    ['box', 'grabcut', 'model', 'ridge', 'sam']
    >>> create_method("ridge", polarity="bright")                  # doctest: +ELLIPSIS
    RidgeMethod(...)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from drywallqa.errors import ConfigError
from drywallqa.pseudomask.base import PseudoMaskMethod, check_no_weights


@dataclass(frozen=True)
class MethodSpec:
    """One registry entry.

    Attributes:
        name: Registry name.
        builder: ``builder(weights=..., device=..., **options) -> PseudoMaskMethod``.
        summary: One line for ``--help`` and docs.
        offline: Runs without downloaded weights (``box``, ``grabcut``, ``ridge``).
    """

    name: str
    builder: Callable[..., PseudoMaskMethod]
    summary: str
    offline: bool = True


def _build_box(weights=None, device=None, **options) -> PseudoMaskMethod:
    from drywallqa.pseudomask.classic import BoxMethod

    check_no_weights("box", weights)
    return BoxMethod(**options)


def _build_grabcut(weights=None, device=None, **options) -> PseudoMaskMethod:
    from drywallqa.pseudomask.classic import GrabCutMethod

    check_no_weights("grabcut", weights)
    return GrabCutMethod(**options)


def _build_ridge(weights=None, device=None, **options) -> PseudoMaskMethod:
    from drywallqa.pseudomask.ridge import RidgeMethod

    check_no_weights("ridge", weights)
    return RidgeMethod(**options)


def _build_sam(weights=None, device=None, **options) -> PseudoMaskMethod:
    from drywallqa.pseudomask.sam import DEFAULT_SAM_WEIGHTS, SamMethod

    return SamMethod(weights or DEFAULT_SAM_WEIGHTS, device=device, **options)


def _build_model(weights=None, device=None, **options) -> PseudoMaskMethod:
    from drywallqa.pseudomask.selftrain import ModelMethod

    if weights is None:
        raise ConfigError(
            "pseudo-mask method 'model' needs a trained drywallqa checkpoint: pass weights=DIR "
            "(--weights DIR), a folder written by `drywallqa train`"
        )
    return ModelMethod(weights, device=device, **options)


PSEUDO_MASK_METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        MethodSpec("box", _build_box, "filled box: the floor every other method must beat"),
        MethodSpec("grabcut", _build_grabcut, "OpenCV GrabCut initialised from the box"),
        MethodSpec("ridge", _build_ridge, "ridge filter + minimal path for thin structures (cracks, joints)"),
        MethodSpec("sam", _build_sam, "Segment Anything (transformers) prompted with the boxes", offline=False),
        MethodSpec("model", _build_model, "a trained drywallqa model refines each box (self-training)",
                   offline=False),
    )
}


def available_methods() -> list[str]:
    """Registered method names, sorted."""
    return sorted(PSEUDO_MASK_METHODS)


def get_method_spec(name: str) -> MethodSpec:
    """The registry entry of ``name``.

    Raises:
        ConfigError: For an unknown name, listing the registered ones.
    """
    key = str(name).strip().lower()
    if key not in PSEUDO_MASK_METHODS:
        raise ConfigError(f"unknown pseudo-mask method {name!r}; expected one of: {', '.join(available_methods())}")
    return PSEUDO_MASK_METHODS[key]


def create_method(
    name: str | PseudoMaskMethod, *, weights: str | None = None, device: str | None = None, **options
) -> PseudoMaskMethod:
    """Build a registered method by name (an instance is returned unchanged).

    Args:
        name: Registry name (see :func:`available_methods`) or a ready :class:`PseudoMaskMethod`.
        weights: Checkpoint for ``sam`` (hub id or local folder) and ``model`` (folder).
        device: Torch device for ``sam`` and ``model`` (default: CUDA when available, else CPU).
        **options: Method parameters, e.g. ``iterations=3`` for ``grabcut`` or
            ``polarity="bright"`` for ``ridge``.

    Raises:
        ConfigError: For an unknown name, or weights given to a method without weights.
        ValueError: For invalid method parameters.
    """
    if isinstance(name, PseudoMaskMethod):
        if weights is not None or options:
            raise ConfigError("weights and options apply to a method name, not to a ready method instance")
        return name
    return get_method_spec(name).builder(weights=weights, device=device, **options)


def parse_methods(methods: str | PseudoMaskMethod | Iterable[str | PseudoMaskMethod]) -> list[str | PseudoMaskMethod]:
    """Split ``"box,grabcut,ridge"`` (or a list) into method names, checking each is registered.

    Raises:
        ConfigError: For an empty list or an unknown name.
    """
    if isinstance(methods, (str, PseudoMaskMethod)):
        methods = [methods]
    out: list[str | PseudoMaskMethod] = []
    for item in methods:
        if isinstance(item, PseudoMaskMethod):
            out.append(item)
            continue
        for part in str(item).split(","):
            if part.strip():
                out.append(get_method_spec(part).name)
    if not out:
        raise ConfigError(f"no pseudo-mask method given; expected some of: {', '.join(available_methods())}")
    return out


def method_name(method: str | PseudoMaskMethod) -> str:
    """Registry name of a method given by name or instance."""
    return method.name if isinstance(method, PseudoMaskMethod) else get_method_spec(method).name
