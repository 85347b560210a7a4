"""Source groups and group-aware splits.

Roboflow names exported files ``<source>_<ext>.rf.<hash>.<ext>``: every augmented variant of one
photo (rotation, flip, crop) shares ``<source>``. Variants of one photo must stay in one split, or
near-duplicates leak from training into evaluation.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from drywallqa.errors import ConfigError

_ROBOFLOW_NAME = re.compile(r"^(?P<source>.+?)\.rf\.[0-9a-fA-F]{16,}$")
_EXPORT_SUFFIX = re.compile(r"_(jpe?g|png|bmp|tiff?|webp|heic)$", re.IGNORECASE)


def source_group(file_name: str | Path) -> str:
    """The source photo a file was exported from.

    Examples:
        >>> source_group("IMG_8207_JPG_jpg.rf.4f4448f3ce3129fb1c8e7d9129308454.jpg")
        'IMG_8207_JPG'
        >>> source_group("00002_jpg.rf.8e624e8f99c6870e88c0493db53c5725.jpg")
        '00002'
        >>> source_group("site-3/photo_12.png")   # not a Roboflow name: the stem is the group
        'photo_12'
    """
    stem = Path(file_name).stem
    match = _ROBOFLOW_NAME.match(stem)
    if not match:
        return stem
    return _EXPORT_SUFFIX.sub("", match.group("source"))


def shared_groups(groups_by_split: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    """Groups that occur in more than one split: ``{group: [splits...]}``, sorted by group."""
    splits_of: dict[str, set[str]] = defaultdict(set)
    for split, groups in groups_by_split.items():
        for group in groups:
            splits_of[group].add(split)
    return {g: sorted(s) for g, s in sorted(splits_of.items()) if len(s) > 1}


def parse_fractions(text: str | Sequence[float] | Mapping[str, float]) -> dict[str, float]:
    """Parse split fractions: ``"0.8,0.1,0.1"`` (train, valid, test), ``"train=0.7,valid=0.3"``,
    a sequence, or a mapping. Fractions must be positive and sum to 1 (±1e-6).
    """
    default_names = ("train", "valid", "test")
    if isinstance(text, Mapping):
        fractions = {str(k): float(v) for k, v in text.items()}
    else:
        parts: list[Any] = text.split(",") if isinstance(text, str) else list(text)
        fractions = {}
        for i, part in enumerate(parts):
            if isinstance(part, str) and "=" in part:
                name, value = part.split("=", 1)
            else:
                if i >= len(default_names):
                    raise ConfigError(f"split fractions: name splits beyond three, e.g. 'train=0.7,...'; got {text!r}")
                name, value = default_names[i], part
            try:
                fractions[str(name).strip()] = float(value)
            except ValueError as exc:
                raise ConfigError(f"split fractions: {value!r} is not a number in {text!r}") from exc
    if not fractions or any(v <= 0 for v in fractions.values()):
        raise ConfigError(f"split fractions must be positive, got {fractions}")
    total = sum(fractions.values())
    if abs(total - 1.0) > 1e-6:
        raise ConfigError(f"split fractions must sum to 1, got {total:g} from {fractions}")
    return fractions


def split_groups(
    group_sizes: Mapping[str, int], fractions: Mapping[str, float], seed: int = 0
) -> dict[str, str]:
    """Assign whole groups to splits so each split gets close to its share of the images.

    Groups are shuffled with a seeded generator, then each goes to the split furthest below its
    target image count, so the result depends only on the groups, their sizes, the fractions and
    the seed (not on file order).

    Args:
        group_sizes: Images per group.
        fractions: Target share of images per split (see :func:`parse_fractions`).
        seed: Seed of the shuffle.

    Returns:
        ``{group: split}`` for every group.
    """
    groups = sorted(group_sizes)
    order = np.random.default_rng(seed).permutation(len(groups))
    total = sum(group_sizes.values())
    targets = {name: frac * total for name, frac in fractions.items()}
    filled = dict.fromkeys(fractions, 0)
    assignment = {}
    for idx in order:
        group = groups[idx]
        # Largest remaining deficit, relative to the target, so small splits still get groups.
        split = max(fractions, key=lambda s: (targets[s] - filled[s]) / max(targets[s], 1e-9))
        assignment[group] = split
        filled[split] += group_sizes[group]
    return assignment
