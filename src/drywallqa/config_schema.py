"""The one config validation: pydantic field types, config dataclasses, and one-line errors.

Every config the package reads (training, training set, QA rules, prompt classes) is a schema of
the types below, validated by pydantic v2. A bad value becomes one :class:`ConfigError` line that
names the file and the dotted field, e.g.
``configs/x.yaml: trainer.batch_size: must be >= 1, got 0``.

Numbers, flags and text are strict (``"5"`` is not the integer 5, ``1`` is not ``true``), except
that an integer is a valid float; lists read as tuples where a field is a pair; a mapping reads as
a nested config. Unknown fields are refused, listing the known ones.

Example:
    >>> @config_dataclass(where="example")
    ... class Example:
    ...     rate: Probability = 0.5
    >>> Example(rate=2)
    Traceback (most recent call last):
    ...
    drywallqa.errors.ConfigError: example: rate: must be <= 1, got 2
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar, overload

from pydantic import BeforeValidator, ConfigDict, Field, Strict, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass as pydantic_dataclass
from typing_extensions import dataclass_transform

from drywallqa.errors import ConfigError

Int = Annotated[int, Strict()]
"""An integer (not a bool, a float or text)."""
Float = Annotated[float, Strict()]
"""A number (an integer is read as a float; not a bool or text)."""
FiniteFloat = Annotated[float, Strict(), Field(allow_inf_nan=False)]
"""A finite number."""
Bool = Annotated[bool, Strict()]
"""``true`` or ``false`` (not ``1``, ``"yes"``)."""
Text = Annotated[str, Strict()]
"""Text (not a number)."""
NonEmptyText = Annotated[str, Strict(), Field(min_length=1)]
"""Text of at least one character."""
Probability = Annotated[float, Strict(), Field(ge=0, le=1)]
"""A number in ``[0, 1]``."""
NonNegativeInt = Annotated[int, Strict(), Field(ge=0)]
"""An integer ``>= 0``."""
PositiveInt = Annotated[int, Strict(), Field(ge=1)]
"""An integer ``>= 1``."""
NonNegativeFloat = Annotated[float, Strict(), Field(ge=0)]
"""A number ``>= 0``."""
PathText = Annotated[str, BeforeValidator(lambda value: str(value) if hasattr(value, "__fspath__") else value),
                     Strict(), Field(min_length=1)]
"""A file or folder path: text, or a :class:`pathlib.Path` (kept as text)."""
#: A mapping left empty in YAML (``optim:`` with every line commented out) reads as ``{}``: its defaults.
DEFAULT_IF_EMPTY = BeforeValidator(lambda value: {} if value is None else value)
FloatPair = tuple[Float, Float]
IntPair = tuple[Int, Int]

#: Unknown fields are refused; pydantic's own checks of assignments stay off (configs are plain data).
_CONFIG = ConfigDict(extra="forbid")
_T = TypeVar("_T")


@overload
def config_dataclass(cls: type[_T], /) -> type[_T]: ...


@overload
def config_dataclass(*, where: str = "", frozen: bool = False) -> Callable[[type[_T]], type[_T]]: ...


@dataclass_transform(field_specifiers=(dataclasses.field, Field))
def config_dataclass(cls: type[_T] | None = None, /, *, where: str = "", frozen: bool = False) -> Any:
    """Make a class a config dataclass: a pydantic dataclass whose fields are validated on
    construction (and by :func:`validate`), refusing unknown fields.

    A bad value raises one-line :class:`ConfigError` (``<where>: <field>: <problem>``) instead of
    pydantic's ``ValidationError``; a nested config met in a mapping is validated in place, its
    errors naming the dotted field. ``dataclasses.asdict``, ``fields`` and ``replace`` work as on
    any dataclass (``replace`` validates too).

    Args:
        cls: The class (when used without arguments).
        where: What the class is, naming errors of a direct construction (``"trainset config"``).
        frozen: Make instances immutable.
    """

    def wrap(cls: type[_T]) -> type[_T]:
        built: Any = pydantic_dataclass(cls, config=_CONFIG, frozen=frozen)
        init = built.__init__

        @functools.wraps(init)
        def __init__(self: object, *args: Any, **kwargs: Any) -> None:
            try:
                init(self, *args, **kwargs)
            except ValidationError as exc:
                raise config_error(exc, where or cls.__name__, built) from None

        built.__init__ = __init__
        return typing.cast("type[_T]", built)

    return wrap if cls is None else wrap(cls)


def validate(schema: Any, data: Any, source: str, location: Sequence[str] = ()) -> Any:
    """Validate plain data (parsed YAML) against a schema: a config dataclass, or any type pydantic
    takes (``dict[str, X]``...).

    Args:
        schema: The type to build.
        data: The parsed data.
        source: What the data came from, first in an error (a file path, ``"defaults"``).
        location: Where ``data`` sits inside that source (``("data",)``), before each field.

    Returns:
        The validated value, of type ``schema``.

    Raises:
        ConfigError: One line naming ``source`` and the dotted field.
    """
    try:
        return _adapter(schema).validate_python(data)
    except ValidationError as exc:
        raise config_error(exc, source, schema, location) from None


def config_error(exc: ValidationError, source: str, schema: Any = None, location: Sequence[str] = ()) -> ConfigError:
    """One-line :class:`ConfigError` for pydantic's ``ValidationError``: ``source: field.path: problem,
    got value``, for its first error (``(and N more problems)`` when there are others).

    Args:
        exc: pydantic's error.
        source: File or other source of the data; left out when empty.
        schema: The validated type, to list the known fields when a field is unknown.
        location: Where the validated data sits in the source, before the error's own location.
    """
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = [str(part) if isinstance(part, str) else part for part in first["loc"] if part != "[key]"]
    problem = _problem(first, _fields_at(schema, loc if first["type"] in _MAPPING_TYPES else loc[:-1]))
    more = len(errors) - 1
    where = _dotted([*location, *loc])
    line = ": ".join(part for part in (source, where, problem) if part)
    return ConfigError(line + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""))


def one_of(choices: Sequence[str], what: str = "value") -> Callable[[str], str]:
    """An after-validator accepting only ``choices`` (``unknown figure; expected one of: ...``)."""

    def check(value: str) -> str:
        if value not in choices:
            raise ValueError(f"unknown {what} {value!r}; expected one of: {', '.join(choices)}")
        return value

    return check


def ordered_within(low: float, high: float) -> Callable[[tuple[Any, Any]], tuple[Any, Any]]:
    """An after-validator for a ``[min, max]`` pair with ``low <= min <= max <= high``."""

    def check(pair: tuple[Any, Any]) -> tuple[Any, Any]:
        if not low <= pair[0] <= pair[1] <= high:
            raise ValueError(f"must be [min, max] with {low:g} <= min <= max <= {high:g}, got {list(pair)}")
        return pair

    return check


@functools.cache
def _adapter(schema: Any) -> TypeAdapter[Any]:
    return TypeAdapter(schema)


_PROBLEMS = {
    "greater_than_equal": "must be >= {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be <= {le}",
    "less_than": "must be < {lt}",
    "int_type": "must be an integer",
    "int_from_float": "must be an integer",
    "int_parsing": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be text",
    "string_too_short": "must not be empty",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "too_short": "must have at least {min_length} items",
    "too_long": "must have at most {max_length} items",
    "dict_type": "must be a mapping",
    "dataclass_type": "must be a mapping",
    "dataclass_exact_type": "must be a mapping",
    "model_type": "must be a mapping",
    "missing": "is required",
    "missing_argument": "is required",
}


_MAPPING_TYPES = ("dataclass_type", "dataclass_exact_type", "model_type")


def _problem(error: Any, known_fields: list[str] | None) -> str:
    """What is wrong, e.g. ``must be >= 1, got 0``; ``known_fields`` are those of the config at
    (an unknown field's) location."""
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        return "unknown field" + (f"; expected one of: {', '.join(known_fields)}" if known_fields else "")
    if kind in _MAPPING_TYPES and known_fields:
        return f"must be a mapping of {', '.join(known_fields)}, got {_shown(error['input'])}"
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error", error["msg"]))
    template = _PROBLEMS.get(kind)
    text = template.format(**{k: _number(v) for k, v in ctx.items()}) if template else error["msg"]
    if kind in ("missing", "missing_argument"):
        return text
    return f"{text}, got {_shown(error['input'])}"


def _shown(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."


def _number(value: Any) -> Any:
    return f"{value:g}" if isinstance(value, float) else value


def _dotted(loc: Sequence[Any]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _fields_at(schema: Any, path: Sequence[Any]) -> list[str] | None:
    """The field names of the config dataclass at ``path`` inside ``schema`` (None if not one)."""
    kind = schema
    for part in path:
        kind = _unwrap(kind)
        if dataclasses.is_dataclass(kind) and isinstance(part, str):
            try:
                kind = typing.get_type_hints(kind, include_extras=True).get(part)
            except (NameError, TypeError):  # annotations that do not resolve outside their scope
                return None
        elif typing.get_origin(kind) is dict:
            kind = typing.get_args(kind)[1]
        elif typing.get_origin(kind) in (list, tuple):
            kind = typing.get_args(kind)[0]
        else:
            return None
    kind = _unwrap(kind)
    return [f.name for f in dataclasses.fields(kind)] if isinstance(kind, type) and dataclasses.is_dataclass(kind) else None


def _unwrap(kind: Any) -> Any:
    """``X`` from ``Annotated[X, ...]`` and ``X | None``."""
    while True:
        origin = typing.get_origin(kind)
        if origin is Annotated:
            kind = typing.get_args(kind)[0]
        elif origin in (typing.Union, types.UnionType):
            options = [arg for arg in typing.get_args(kind) if arg is not type(None)]
            if len(options) != 1:
                return kind
            kind = options[0]
        else:
            return kind
