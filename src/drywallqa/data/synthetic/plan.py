"""Planning of the synthetic sample datasets: source photos, their exported variants, and splits.

A plan names every file before anything is rendered: each source rendering gets one to three
Roboflow-like variants (identity, flips, 90° rotations, crops), and groups are assigned to
splits with :func:`drywallqa.data.groups.split_groups`. The random draws and their order are
part of the output (same seed, same files).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cv2
import numpy as np

from drywallqa.data.groups import split_groups
from drywallqa.data.synthetic.painting import CRACKS_DATASET

TRANSFORMS = ("hflip", "vflip", "rot90", "rot180", "rot270", "crop")


@dataclass(frozen=True)
class Transform:
    """A Roboflow-like augmentation of a source rendering.

    ``crop`` is ``(left, top, side)`` as fractions of the image size, so a plan does not depend
    on the pixel size; the window is resized back to the full size.
    """

    kind: str
    crop: tuple[float, float, float] | None = None

    def window(self, size: int) -> tuple[int, int, int]:
        """The crop window ``(x0, y0, side)`` in pixels of a ``size``-pixel source."""
        if self.crop is None:
            raise ValueError(f"a {self.kind!r} plan has no crop window")
        side = int(round(self.crop[2] * size))
        x0, y0 = (min(int(round(f * size)), size - side) for f in self.crop[:2])
        return x0, y0, side

    def describe(self, size: int) -> dict:
        """JSON-ready description: ``{"transform": kind}``, plus ``"crop": [x0, y0, side]``."""
        return {"transform": self.kind, **({"crop": list(self.window(size))} if self.kind == "crop" else {})}

    def apply(self, array: np.ndarray) -> np.ndarray:
        """Transform an ``(S, S, 3)`` uint8 image or an ``(S, S)`` bool mask."""
        if self.kind == "identity":
            return array
        if self.kind == "hflip":
            return np.ascontiguousarray(array[:, ::-1])
        if self.kind == "vflip":
            return np.ascontiguousarray(array[::-1])
        if self.kind.startswith("rot"):
            return np.ascontiguousarray(np.rot90(array, int(self.kind[3:]) // 90))
        size = array.shape[1]
        x0, y0, side = self.window(size)
        window = array[y0:y0 + side, x0:x0 + side]
        if array.dtype == bool:
            # Resize the mask as coverage and keep pixels at least half covered, as the image is.
            return cv2.resize(window.astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR) >= 0.5
        return cv2.resize(window, (size, size), interpolation=cv2.INTER_LINEAR)


@dataclass(frozen=True)
class Variant:
    """One exported image of a source: its split, its transform and its Roboflow-style file name."""

    split: str
    transform: Transform
    file_name: str


@dataclass
class Source:
    """One rendered source photo and the exported variants of it."""

    dataset: str
    name: str
    index: int
    background: bool
    variants: list[Variant]


def plan_sources(
    rng: np.random.Generator, dataset: str, n_images: int, fractions: dict[str, float], seed: int, min_groups: int
) -> list[Source]:
    """Split ``n_images`` into source groups of 1-3 variants and assign groups to splits."""
    counts: list[int] = []
    while sum(counts) < n_images:
        counts.append(min(int(rng.choice([1, 2, 3], p=[0.3, 0.4, 0.3])), n_images - sum(counts)))
    while len(counts) < min_groups:  # tiny datasets: break up groups until every split can get one
        largest = int(np.argmax(counts))
        counts[largest] -= 1
        counts.insert(largest + 1, 1)
    if max(counts) < 2 and len(counts) > min_groups:  # at least one group with several variants
        counts[0] += counts.pop()
    background = rng.random(len(counts)) < 0.12
    background[0] = False  # never a dataset of backgrounds only
    if not background.any():
        background[-1] = True
    prefix = "crack-photo" if dataset == CRACKS_DATASET else "wall-photo"
    names = [f"{prefix}-{i:04d}" for i in range(len(counts))]
    split_of = split_groups(dict(zip(names, counts)), fractions, seed=seed)
    sources = []
    for index, (name, count) in enumerate(zip(names, counts)):
        kinds = ["identity", *rng.choice(TRANSFORMS, size=count - 1, replace=False).tolist()]
        variants = []
        for v, kind in enumerate(kinds):
            crop = None
            if kind == "crop":
                side = rng.uniform(0.65, 0.85)
                crop = (rng.uniform(0, 1 - side), rng.uniform(0, 1 - side), side)
            digest = hashlib.md5(f"{seed}/{dataset}/{name}/{v}".encode(), usedforsecurity=False).hexdigest()
            variants.append(Variant(split_of[name], Transform(kind, crop), f"{name}_jpg.rf.{digest}.jpg"))
        sources.append(Source(dataset, name, index, bool(background[index]), variants))
    return sources


def share_joint_groups(rng: np.random.Generator, sources: list[Source]) -> list[str]:
    """Move one variant of a few multi-variant groups across train/valid, as the real export has."""
    candidates = [s for s in sources if len(s.variants) > 1]
    n_valid_groups = sum(1 for s in sources if s.variants[0].split == "valid")
    n_shared = min(len(candidates), max(2, round(0.4 * n_valid_groups)))
    chosen = sorted(rng.choice(len(candidates), size=n_shared, replace=False).tolist())
    shared = []
    for i in chosen:
        source = candidates[i]
        # Group in train: its last variant goes to valid; group in valid: its first goes to train.
        position, split = (-1, "valid") if source.variants[0].split == "train" else (0, "train")
        moved = source.variants[position]
        source.variants[position] = Variant(split, moved.transform, moved.file_name)
        shared.append(source.name)
    return sorted(shared)

