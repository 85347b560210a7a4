"""The one YAML reader: config files, dataset files, ``--set`` overrides and the package's own YAML.

Every error names the file (or the override) and, for bad YAML, the line and column.
"""

from __future__ import annotations

import copy
import functools
import os
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from drywallqa.errors import ConfigError, DrywallQAError


def read_yaml(path: str | os.PathLike, error: type[DrywallQAError] = ConfigError) -> Any:
    """Read a YAML file (an empty file reads as None), raising ``error`` naming the file on failure.

    The one YAML reader of the package: configs raise :class:`ConfigError` (the default), dataset
    files such as a YOLO ``data.yaml`` pass :class:`DataError`.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise error(f"{path}: file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read ({exc})") from exc
    return parse_yaml(text, path, error)


def parse_override(item: str, example: str) -> tuple[str, Any]:
    """Split a ``field.path=value`` override (``--set``) into the dotted field and its value, the
    value parsed as YAML (``0.5``, ``[a, b]``, ``true``; text that is not YAML stays text).

    Raises:
        ConfigError: Without ``=``, showing ``example``.
    """
    import yaml

    if "=" not in item:
        raise ConfigError(f"override {item!r}: expected field=value, e.g. {example}")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def apply_overrides(
    data: dict[str, Any], overrides: Mapping[str, Any] | Iterable[str], example: str = "section.field=value"
) -> dict[str, Any]:
    """Set dotted fields of nested mappings, in place: ``{"a.b": 1}`` or ``["a.b=1"]`` (``--set``
    items, values parsed as YAML by :func:`parse_override`).

    A missing (or empty, ``None``) section on the way is created; the config's schema then refuses
    a field it does not know, naming it.

    Returns:
        ``data``, for chaining.

    Raises:
        ConfigError: For an item without ``=`` (showing ``example``), or a path through a value
            that is not a section (``seed.x=1``).
    """
    items = overrides.items() if isinstance(overrides, Mapping) else (parse_override(o, example) for o in overrides)
    for key, value in items:
        node = data
        *sections, leaf = key.split(".")
        for part in sections:
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
            if not isinstance(node, dict):
                raise ConfigError(f"override {key!r}: {part} is not a section")
        node[leaf] = value
    return data


def parse_yaml(text: str, source: str | os.PathLike, error: type[DrywallQAError] = ConfigError) -> Any:
    """Parse YAML text read from ``source``; :func:`read_yaml` without the reading."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise error(f"{source}: not valid YAML ({where}{problem})") from exc


def packaged_yaml(name: str) -> Any:
    """A YAML file shipped in the package (``configs/prompts.yaml``...), parsed once per process;
    each call gets its own copy, so a caller may change what it gets."""
    return copy.deepcopy(_packaged_yaml(name))


@functools.cache
def _packaged_yaml(name: str) -> Any:
    text = resources.files("drywallqa").joinpath(name).read_text(encoding="utf-8")
    return parse_yaml(text, f"built-in {name}")
