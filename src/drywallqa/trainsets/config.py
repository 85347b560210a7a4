"""Training-set configuration: :class:`TrainSetConfig` and its :class:`AugmentationConfig`.

Both are plain dataclasses loaded from YAML (``configs/trainset-default.yaml`` lists every field
with its default) and validated on construction, so a bad value fails at once with one
:class:`~drywallqa.errors.ConfigError` line naming the field, e.g.
``trainset config: negative_rate must be in [0, 1), got 1.5``.

Relative paths in a config (datasets, pseudo-mask folders, prompt config) are taken relative to
the working directory, like paths given on the command line.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from drywallqa.yamlio import parse_override, read_yaml
from drywallqa.data.core import canonical_split
from drywallqa.data.groups import parse_fractions
from drywallqa.errors import ConfigError

BOX_TARGET = "box"
"""Mask source meaning "fill each box": the target published taping-area results used."""

JOINT_CLASS = "taping_area"
"""The box-only prompt class of the shipped data (``--joint-masks`` sets its mask source)."""


def _fail(field_name: str, expected: str, value: Any) -> ConfigError:
    return ConfigError(f"trainset config: {field_name} must be {expected}, got {value!r}")


def _probability(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise _fail(name, "a probability in [0, 1]", value)
    return float(value)


def _number(name: str, value: Any, low: float | None = None, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(name, "a number", value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise _fail(name, f"a number in [{low}, {high}]", value)
    return float(value)


def _range(name: str, value: Any, low: float, high: float, integer: bool = False) -> tuple:
    """A ``(min, max)`` pair with ``low <= min <= max <= high``; YAML gives lists, we keep tuples."""
    ok = isinstance(value, (list, tuple)) and len(value) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
    )
    if ok and integer:
        ok = all(float(v).is_integer() for v in value)
    if not ok or not low <= value[0] <= value[1] <= high:
        kind = "integers" if integer else "numbers"
        raise _fail(name, f"[min, max] {kind} with {low} <= min <= max <= {high}", value)
    return (int(value[0]), int(value[1])) if integer else (float(value[0]), float(value[1]))


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail(name, "true or false", value)
    return value


@dataclass
class AugmentationConfig:
    """Parameters of the training augmentation (see :func:`drywallqa.trainsets.build_augmentation`).

    Image and mask always move together; pixel-level transforms (brightness, noise, blur) touch the
    image only. A transform whose probability is 0 is left out of the pipeline. Names follow
    albumentations (``*_limit``, ``*_range``).

    Attributes:
        hflip_p: Probability of a horizontal flip.
        vflip_p: Probability of a vertical flip.
        rotate90_p: Probability of a rotation by a random multiple of 90°.
        rotate_limit: Small-angle rotation, uniform in ``[-limit, limit]`` degrees.
        rotate_p: Probability of the small-angle rotation.
        scale_range: Affine zoom factor ``[min, max]``.
        translate_range: Affine shift ``[min, max]`` as a share of the image side.
        shear_range: Affine shear ``[min, max]`` in degrees.
        affine_p: Probability of the affine transform.
        brightness_limit: Brightness change, uniform in ``[-limit, limit]`` of the max value.
        contrast_limit: Contrast change, uniform in ``[-limit, limit]``.
        brightness_contrast_p: Probability of the brightness/contrast change.
        noise_std_range: Gaussian noise std ``[min, max]`` as a share of 255.
        noise_p: Probability of noise.
        blur_limit: Gaussian blur kernel size ``[min, max]`` in pixels (odd, >= 3).
        blur_p: Probability of blur.
        dropout_holes_range: Number of coarse-dropout holes ``[min, max]``.
        dropout_size_range: Hole height and width ``[min, max]`` as a share of the image side.
        dropout_p: Probability of coarse dropout. The target is cleared under a hole: a model
            cannot be asked to find a crack it cannot see.
    """

    hflip_p: float = 0.5
    vflip_p: float = 0.5
    rotate90_p: float = 0.5
    rotate_limit: float = 15.0
    rotate_p: float = 0.3
    scale_range: tuple[float, float] = (0.9, 1.1)
    translate_range: tuple[float, float] = (-0.05, 0.05)
    shear_range: tuple[float, float] = (-5.0, 5.0)
    affine_p: float = 0.3
    brightness_limit: float = 0.2
    contrast_limit: float = 0.2
    brightness_contrast_p: float = 0.5
    noise_std_range: tuple[float, float] = (0.02, 0.06)
    noise_p: float = 0.2
    blur_limit: tuple[int, int] = (3, 5)
    blur_p: float = 0.1
    dropout_holes_range: tuple[int, int] = (1, 4)
    dropout_size_range: tuple[float, float] = (0.04, 0.12)
    dropout_p: float = 0.2

    def __post_init__(self) -> None:
        prefix = "augmentation."
        for f in dataclasses.fields(self):
            if f.name.endswith("_p"):
                setattr(self, f.name, _probability(prefix + f.name, getattr(self, f.name)))
        self.rotate_limit = _number(prefix + "rotate_limit", self.rotate_limit, 0, 180)
        self.brightness_limit = _number(prefix + "brightness_limit", self.brightness_limit, 0, 1)
        self.contrast_limit = _number(prefix + "contrast_limit", self.contrast_limit, 0, 1)
        self.scale_range = _range(prefix + "scale_range", self.scale_range, 0.1, 10)
        self.translate_range = _range(prefix + "translate_range", self.translate_range, -1, 1)
        self.shear_range = _range(prefix + "shear_range", self.shear_range, -89, 89)
        self.noise_std_range = _range(prefix + "noise_std_range", self.noise_std_range, 0, 1)
        self.blur_limit = _range(prefix + "blur_limit", self.blur_limit, 3, 255, integer=True)
        if self.blur_limit[0] % 2 == 0 or self.blur_limit[1] % 2 == 0:
            raise _fail(prefix + "blur_limit", "odd kernel sizes", list(self.blur_limit))
        self.dropout_holes_range = _range(prefix + "dropout_holes_range", self.dropout_holes_range, 1, 1000, integer=True)
        self.dropout_size_range = _range(prefix + "dropout_size_range", self.dropout_size_range, 0.001, 1)


@dataclass
class SyntheticConfig:
    """Scenes of the project's own generator (:mod:`drywallqa.data.synthetic`) mixed into ``train``.

    They come with exact masks (the tape band of a joint, not its box), cover what the real
    exports lack (taped and mudded joints, cracks on painted and textured walls, varied light),
    and go to ``train`` only: model selection and every reported figure stay on real photos.

    Attributes:
        images: Rendered images (variants included) over both classes; 0 turns the mix off.
        seed: Seed of the scenes. ``drywallqa quickstart`` renders seed 0 (by default): keep the
            training scenes on other seeds, so the quickstart stays an honest check.
        size: Side of the square scenes in pixels (the real exports are 640).
        crack_fraction: Share of the images that are crack scenes; the rest are joints.
        cache: Folder the scenes are rendered into once and reused from; None for the user
            cache (:func:`drywallqa.files.user_cache_dir`), or for ``drywallqa train`` the run
            folder's ``synthetic/``.
    """

    images: int = 0
    seed: int = 1000
    size: int = 640
    crack_fraction: float = 0.5
    cache: str | None = None

    def __post_init__(self) -> None:
        for name in ("images", "seed", "size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise _fail(f"synthetic.{name}", "a non-negative integer", value)
        if self.images and not 64 <= self.size <= 4096:
            raise _fail("synthetic.size", "an integer in [64, 4096]", self.size)
        self.crack_fraction = _probability("synthetic.crack_fraction", self.crack_fraction)
        if self.cache is not None and not isinstance(self.cache, (str, Path)):
            raise _fail("synthetic.cache", "a folder or null", self.cache)
        self.cache = None if self.cache is None else str(self.cache)


@dataclass
class TrainSetConfig:
    """How to combine datasets of several prompt classes into one leak-free training set.

    Attributes:
        datasets: Dataset folders, or roots holding several dataset folders (detected).
        mask_sources: Target of each box-only class: ``"box"`` fills its boxes; a folder is a
            pseudo-mask dataset written by ``drywallqa masks``, matched to the samples by image
            path. Classes not listed (and annotations with a true shape) use their annotations.
        fractions: Image share per split, e.g. ``{train: 0.8, valid: 0.1, test: 0.1}`` (``val``
            is accepted for ``valid``). Without ``keep_splits`` all images are pooled and split
            by source group; with it the shares carve the published train split into ``train``,
            ``valid`` and ``test`` (source groups held out of training and model selection).
        seed: Seed of the group split, balancing, negatives and (deterministic) augmentation.
        keep_splits: Respect the published splits: published train is split into ``train``,
            ``valid`` (and ``test``) by source group; every other published split is kept as it is, renamed
            ``published_<name>`` (e.g. ``published_valid``) so it is never mistaken for the
            grouped ``valid``. Groups found in two published splits are reported.
        drop_leaked_from_train: With ``keep_splits``, drop from the published train split every
            group that also occurs in another published split, so the check comes out clean.
        balance_ratio: Oversample (by augmented copies) every class of ``train`` up to this share
            of the largest class, in ``(0, 1]``; None turns balancing off.
        negative_rate: Share of a split's items that are cross-prompt negatives (an image of one
            class, another class's prompt, an empty target), in ``[0, 1)``.
        negative_splits: Splits that get cross-prompt negatives.
        augment_originals: Also augment the original (not only the copied) train items on the fly.
        prompt_config: Prompt config YAML; None for the built-in one.
        image_size: Side of the square model input in pixels (images are resized plainly, see
            :mod:`drywallqa.trainsets.torch_dataset`).
        verify_images: Decode every image while loading, to catch corrupt files early.
        augmentation: Augmentation parameters.
        synthetic: Generated scenes mixed into ``train`` (see :class:`SyntheticConfig`; off by default).
        train_only: Names of datasets whose every image goes to ``train``: never carved into
            valid or test, never a source of cross-prompt negatives (the synthetic datasets are).
    """

    datasets: list[str] = field(default_factory=list)
    mask_sources: dict[str, str] = field(default_factory=lambda: {JOINT_CLASS: BOX_TARGET})
    fractions: dict[str, float] = field(default_factory=lambda: {"train": 0.8, "valid": 0.1, "test": 0.1})
    seed: int = 0
    keep_splits: bool = False
    drop_leaked_from_train: bool = False
    balance_ratio: float | None = 1.0
    negative_rate: float = 0.1
    negative_splits: list[str] = field(default_factory=lambda: ["train"])
    augment_originals: bool = True
    prompt_config: str | None = None
    image_size: int = 512
    verify_images: bool = True
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    train_only: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if isinstance(self.datasets, (str, Path)):
            self.datasets = [self.datasets]
        if not isinstance(self.datasets, (list, tuple)) or not all(isinstance(d, (str, Path)) for d in self.datasets):
            raise _fail("datasets", "a list of folders", self.datasets)
        self.datasets = [str(d) for d in self.datasets]
        if not isinstance(self.mask_sources, dict) or not all(
            isinstance(k, str) and isinstance(v, (str, Path)) and str(v) for k, v in self.mask_sources.items()
        ):
            raise _fail("mask_sources", f"a mapping class -> {BOX_TARGET!r} or pseudo-mask folder", self.mask_sources)
        self.mask_sources = {k: str(v) for k, v in self.mask_sources.items()}
        try:
            fractions = parse_fractions(self.fractions)
        except ConfigError as exc:
            raise ConfigError(f"trainset config: fractions: {exc}") from None
        self.fractions = {canonical_split(k): v for k, v in fractions.items()}
        if "train" not in self.fractions:
            raise _fail("fractions", "a mapping with a 'train' share", self.fractions)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise _fail("seed", "an integer", self.seed)
        self.keep_splits = _bool("keep_splits", self.keep_splits)
        self.drop_leaked_from_train = _bool("drop_leaked_from_train", self.drop_leaked_from_train)
        self.augment_originals = _bool("augment_originals", self.augment_originals)
        self.verify_images = _bool("verify_images", self.verify_images)
        if self.balance_ratio is not None:
            ratio = self.balance_ratio
            if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio <= 1:
                raise _fail("balance_ratio", "a number in (0, 1] or null (no balancing)", ratio)
            self.balance_ratio = float(ratio)
        rate = self.negative_rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise _fail("negative_rate", "in [0, 1)", rate)
        self.negative_rate = float(rate)
        if isinstance(self.negative_splits, str):
            self.negative_splits = [s for s in self.negative_splits.split(",") if s.strip()]
        if not isinstance(self.negative_splits, (list, tuple)) or not all(isinstance(s, str) for s in self.negative_splits):
            raise _fail("negative_splits", "a list of split names", self.negative_splits)
        self.negative_splits = [s if s.startswith("published_") else canonical_split(s.strip()) for s in self.negative_splits]
        if self.prompt_config is not None and not isinstance(self.prompt_config, (str, Path)):
            raise _fail("prompt_config", "a file path or null", self.prompt_config)
        self.prompt_config = None if self.prompt_config is None else str(self.prompt_config)
        size = self.image_size
        if isinstance(size, bool) or not isinstance(size, int) or not 16 <= size <= 4096:
            raise _fail("image_size", "an integer in [16, 4096]", size)
        if isinstance(self.augmentation, dict):
            self.augmentation = _from_mapping(AugmentationConfig, self.augmentation, "augmentation.")
        if not isinstance(self.augmentation, AugmentationConfig):
            raise _fail("augmentation", "a mapping of augmentation parameters", self.augmentation)
        if isinstance(self.synthetic, dict):
            self.synthetic = _from_mapping(SyntheticConfig, self.synthetic, "synthetic.")
        if not isinstance(self.synthetic, SyntheticConfig):
            raise _fail("synthetic", "a mapping of synthetic-scene settings", self.synthetic)
        if not isinstance(self.train_only, (list, tuple)) or not all(isinstance(n, str) for n in self.train_only):
            raise _fail("train_only", "a list of dataset names", self.train_only)
        self.train_only = list(self.train_only)

    # -- (de)serialisation -----------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> TrainSetConfig:
        """Build from a plain mapping (missing fields keep their defaults; unknown fields fail)."""
        return _from_mapping(cls, data or {}, "")

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainSetConfig:
        """Load a YAML file; raises :class:`ConfigError` naming the file or the bad field."""
        path = Path(path)
        data = read_yaml(path)
        if data is not None and not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of trainset config fields, got {type(data).__name__}")
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-ready mapping (tuples become lists); ``from_dict`` inverts it."""
        return _plain(dataclasses.asdict(self))

    def to_yaml(self, path: str | Path | None = None) -> str:
        """The config as YAML text, also written atomically to ``path`` when given."""
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            from drywallqa.files import atomic_write_text

            atomic_write_text(path, text)
        return text

    def with_overrides(self, overrides: dict[str, Any] | list[str]) -> TrainSetConfig:
        """A copy with fields replaced: ``{"seed": 3, "augmentation.rotate_limit": 20}`` or
        ``["seed=3", "augmentation.rotate_limit=20"]`` (values of strings parsed as YAML)."""
        data = self.to_dict()
        items = overrides.items() if isinstance(overrides, dict) else (_parse_override(o) for o in overrides)
        for key, value in items:
            node = data
            *parents, leaf = key.split(".")
            for part in parents:
                if not isinstance(node.get(part), dict):
                    raise ConfigError(f"trainset config: {key}: {part!r} is not a section")
                node = node[part]
            if leaf not in node and not (parents and parents[0] == "mask_sources"):
                raise ConfigError(f"trainset config: unknown field {key!r}; expected one of: {', '.join(node)}")
            node[leaf] = value
        return TrainSetConfig.from_dict(data)


def _parse_override(item: str) -> tuple[str, Any]:
    return parse_override(item, "augmentation.rotate_limit=20")


def _from_mapping(cls: type, data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"trainset config: {prefix.rstrip('.') or 'config'} must be a mapping, got {data!r}")
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"trainset config: unknown field {prefix}{unknown[0]!r}; expected one of: {', '.join(names)}")
    return cls(**data)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
