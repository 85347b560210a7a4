"""Training-set configuration: :class:`TrainSetConfig` and its :class:`AugmentationConfig`.

Both are config dataclasses (:mod:`drywallqa.config_schema`) loaded from YAML
(``configs/trainset-default.yaml`` lists every field with its default) and validated on
construction, so a bad value fails at once with one :class:`~drywallqa.errors.ConfigError` line
naming the file and the field, e.g. ``trainset.yaml: negative_rate: must be < 1, got 1.5``.

Relative paths in a config (datasets, pseudo-mask folders, prompt config) are taken relative to
the working directory, like paths given on the command line.
"""

from __future__ import annotations

import dataclasses
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo, field_validator

from drywallqa.config_schema import (
    DEFAULT_IF_EMPTY,
    Bool,
    FloatPair,
    Int,
    IntPair,
    NonNegativeInt,
    PathText,
    Probability,
    Text,
    config_dataclass,
    ordered_within,
    validate,
)
from drywallqa.data.core import canonical_split
from drywallqa.data.groups import parse_fractions
from drywallqa.errors import ConfigError
from drywallqa.yamlio import apply_overrides, read_yaml

BOX_TARGET = "box"
"""Mask source meaning "fill each box": the target published taping-area results used."""

JOINT_CLASS = "taping_area"
"""The box-only prompt class of the shipped data (``--joint-masks`` sets its mask source)."""


def _odd_kernels(pair: tuple[int, int]) -> tuple[int, int]:
    if pair[0] % 2 == 0 or pair[1] % 2 == 0:
        raise ValueError(f"must be odd kernel sizes, got {list(pair)}")
    return pair


def _fractions(value: Any) -> dict[str, float]:
    """``fractions`` as ``{split: share}`` with canonical split names and a ``train`` share."""
    if isinstance(value, bool) or not isinstance(value, (str, list, tuple, dict)):
        raise ValueError(f"must be a mapping split: share or a list of shares, got {value!r}")
    try:
        fractions = {canonical_split(k): v for k, v in parse_fractions(value).items()}
    except (ConfigError, TypeError) as exc:
        raise ValueError(str(exc)) from None
    if "train" not in fractions:
        raise ValueError(f"must have a 'train' share, got {fractions}")
    return fractions


def _split_names(value: Any) -> Any:
    """``"train,valid"`` -> ``["train", "valid"]``; names as :func:`canonical_split` writes them."""
    if isinstance(value, str):
        value = [s for s in value.split(",") if s.strip()]
    if isinstance(value, (list, tuple)) and all(isinstance(s, str) for s in value):
        return [s if s.startswith("published_") else canonical_split(s.strip()) for s in value]
    return value


def _one_or_more(value: Any) -> Any:
    return [value] if isinstance(value, (str, Path)) else value


Limit = Annotated[float, Field(strict=True, ge=0, le=1)]
"""An albumentations ``*_limit`` share in ``[0, 1]``."""


@config_dataclass(where="augmentation")
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

    hflip_p: Probability = 0.5
    vflip_p: Probability = 0.5
    rotate90_p: Probability = 0.5
    rotate_limit: Annotated[float, Field(strict=True, ge=0, le=180)] = 15.0
    rotate_p: Probability = 0.3
    scale_range: Annotated[FloatPair, AfterValidator(ordered_within(0.1, 10))] = (0.9, 1.1)
    translate_range: Annotated[FloatPair, AfterValidator(ordered_within(-1, 1))] = (-0.05, 0.05)
    shear_range: Annotated[FloatPair, AfterValidator(ordered_within(-89, 89))] = (-5.0, 5.0)
    affine_p: Probability = 0.3
    brightness_limit: Limit = 0.2
    contrast_limit: Limit = 0.2
    brightness_contrast_p: Probability = 0.5
    noise_std_range: Annotated[FloatPair, AfterValidator(ordered_within(0, 1))] = (0.02, 0.06)
    noise_p: Probability = 0.2
    blur_limit: Annotated[IntPair, AfterValidator(ordered_within(3, 255)), AfterValidator(_odd_kernels)] = (3, 5)
    blur_p: Probability = 0.1
    dropout_holes_range: Annotated[IntPair, AfterValidator(ordered_within(1, 1000))] = (1, 4)
    dropout_size_range: Annotated[FloatPair, AfterValidator(ordered_within(0.001, 1))] = (0.04, 0.12)
    dropout_p: Probability = 0.2


@config_dataclass(where="synthetic")
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

    images: NonNegativeInt = 0
    seed: NonNegativeInt = 1000
    size: NonNegativeInt = 640
    crack_fraction: Probability = 0.5
    cache: PathText | None = None

    @field_validator("size")
    @classmethod
    def _size_of_scenes(cls, size: int, info: ValidationInfo) -> int:
        if info.data.get("images") and not 64 <= size <= 4096:
            raise ValueError(f"must be in [64, 4096] to render scenes, got {size}")
        return size


@config_dataclass(where="trainset config")
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

    datasets: Annotated[list[PathText], BeforeValidator(_one_or_more)] = field(default_factory=list)
    mask_sources: dict[Text, PathText] = field(default_factory=lambda: {JOINT_CLASS: BOX_TARGET})
    fractions: Annotated[dict[str, float], BeforeValidator(_fractions)] = field(
        default_factory=lambda: {"train": 0.8, "valid": 0.1, "test": 0.1}
    )
    seed: Int = 0
    keep_splits: Bool = False
    drop_leaked_from_train: Bool = False
    balance_ratio: Annotated[float, Field(strict=True, gt=0, le=1)] | None = 1.0
    negative_rate: Annotated[float, Field(strict=True, ge=0, lt=1)] = 0.1
    negative_splits: Annotated[list[Text], BeforeValidator(_split_names)] = field(default_factory=lambda: ["train"])
    augment_originals: Bool = True
    prompt_config: PathText | None = None
    image_size: Annotated[int, Field(strict=True, ge=16, le=4096)] = 512
    verify_images: Bool = True
    augmentation: Annotated[AugmentationConfig, DEFAULT_IF_EMPTY] = field(default_factory=AugmentationConfig)
    synthetic: Annotated[SyntheticConfig, DEFAULT_IF_EMPTY] = field(default_factory=SyntheticConfig)
    train_only: list[Text] = field(default_factory=list)

    # -- (de)serialisation -----------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, source: str = "trainset config") -> TrainSetConfig:
        """Build from a plain mapping (missing fields keep their defaults; unknown fields fail).

        Raises:
            ConfigError: One line naming ``source`` and the field.
        """
        config: TrainSetConfig = validate(cls, data or {}, source)
        return config

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainSetConfig:
        """Load a YAML file; raises :class:`ConfigError` naming the file or the bad field."""
        return cls.from_dict(read_yaml(path), source=str(path))

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
        data = apply_overrides(self.to_dict(), overrides, "augmentation.rotate_limit=20")
        return TrainSetConfig.from_dict(data)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
