"""The training-pack folder: its file names, its manifest and :class:`TrainingPack`, which opens one.

A pack is checked when opened (every file's size and SHA-256 against ``pack.json``), and
:meth:`TrainingPack.check_split` proves that a training config carves its images as the pack
was built. :mod:`.writing` writes packs; the helpers here that map images to their place in the
pack are shared by both.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from drywallqa.data.core import Sample
from drywallqa.errors import ConfigError, DataError
from drywallqa.files import read_json
from drywallqa.trainsets.config import TrainSetConfig
from drywallqa.trainsets.core import PUBLISHED_PREFIX, TrainSet
from drywallqa.trainsets.synthetic import SYNTHETIC_DATASETS

PACK_FILE = "pack.json"
PACK_FORMAT = 1
DATASETS_DIR = "datasets"
PROMPTS_FILE = "prompts.safetensors"
PRETRAINED_FILE = "pretrained.safetensors"


class TrainingPack:
    """A pack folder written by :func:`write_pack`, checked when opened.

    Example:
        >>> pack = TrainingPack.open(".device/pack")                     # doctest: +SKIP
        >>> trainset = build_trainset(pack.trainset_config(config.data))  # doctest: +SKIP
        >>> pack.check_split(trainset)                                    # doctest: +SKIP
    """

    def __init__(self, path: Path, manifest: dict):
        self.path = path
        self.manifest = manifest

    @classmethod
    def open(cls, path: str | os.PathLike, verify: bool = True) -> TrainingPack:
        """Read ``pack.json`` and check every file's size and SHA-256.

        Raises:
            ConfigError: If ``path`` is not a pack or of a newer format.
            DataError: If a file is missing or differs from the manifest (a broken transfer).
        """
        path = Path(path)
        manifest_path = path / PACK_FILE
        if not manifest_path.is_file():
            raise ConfigError(f"{path}: not a training pack (no {PACK_FILE}); build one with `drywallqa trainset pack`")
        manifest = read_json(manifest_path)
        if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
            raise DataError(f"{manifest_path}: not a training pack manifest")
        if manifest.get("format") != PACK_FORMAT:
            raise ConfigError(f"{manifest_path}: pack format {manifest.get('format')!r}; this drywallqa reads format {PACK_FORMAT}")
        pack = cls(path, manifest)
        if verify:
            pack.verify()
        return pack

    def verify(self) -> None:
        """Check that every file of the manifest is there with its size and SHA-256.

        Raises:
            DataError: Naming the first file that is missing or differs.
        """
        for rel, entry in self.manifest["files"].items():
            file = self.path / rel
            if not file.is_file():
                raise DataError(f"{file}: missing from the pack (listed in {PACK_FILE})")
            if file.stat().st_size != entry["bytes"] or sha256(file) != entry["sha256"]:
                raise DataError(f"{file}: differs from its checksum in {PACK_FILE}; copy the pack again")

    @property
    def dataset_folders(self) -> list[Path]:
        """The COCO dataset folders inside the pack."""
        return sorted(p for p in (self.path / DATASETS_DIR).iterdir() if p.is_dir())

    @property
    def image_size(self) -> int | None:
        """Side the pack's photos were resized to (a pack at the training resolution), or None for
        photos at their own size."""
        return self.manifest.get("images", {}).get("size")

    def check_image_size(self, image_size: int) -> None:
        """Refuse to train at a size above the one the photos were packed at.

        Raises:
            ConfigError: Naming both sizes and the fix.
        """
        if self.image_size is not None and image_size > self.image_size:
            raise ConfigError(
                f"{self.path}: the pack holds its photos at {self.image_size}x{self.image_size}; training at "
                f"{image_size} px would upscale them (rebuild the pack with --image-size {image_size})"
            )

    def trainset_config(self, data: dict[str, Any] | None = None) -> TrainSetConfig:
        """A training-set config over the pack's datasets: ``data`` (a training config's data
        section; the pack's own by default) with ``datasets`` pointing into the pack.

        Images are not decoded while loading: the checksums already proved them intact.
        """
        values = dict(self.manifest["trainset_config"] if data is None else data)
        values["datasets"] = [str(folder) for folder in self.dataset_folders]
        values["verify_images"] = False
        if (values.get("synthetic") or {}).get("images"):
            # The generated scenes are in the pack as datasets: loaded, not rendered again.
            values["synthetic"] = {**values["synthetic"], "images": 0}
            values["train_only"] = sorted(set(values.get("train_only") or []) | set(SYNTHETIC_DATASETS))
        return TrainSetConfig.from_dict(values)

    def check_split(self, trainset: TrainSet) -> None:
        """Prove that ``trainset`` carves the pack's images as the pack was built.

        Raises:
            ConfigError: Naming the first image whose split differs, and the pack's data config.
        """
        recorded: dict[str, str] = self.manifest["split_of_images"]
        built = split_of_images(trainset, self.path)
        if built == recorded:
            return
        for rel in sorted(set(recorded) | set(built)):
            if recorded.get(rel) != built.get(rel):
                packed = self.manifest["trainset_config"]
                fields = {k: packed.get(k) for k in ("keep_splits", "fractions", "seed", "drop_leaked_from_train")}
                raise ConfigError(
                    f"{self.path}: this training config carves the pack differently ({rel}: pack says "
                    f"{recorded.get(rel, 'not packed')}, the config gives {built.get(rel, 'no split')}); "
                    f"use the data settings the pack was built with ({fields}) or rebuild the pack"
                )

    def embeddings(self, text_encoder: str) -> dict[str, Any]:
        """``{prompt: (D,) float32 tensor}`` made by ``text_encoder``; empty if the pack has none of it."""
        if self.manifest.get("text_encoder") != text_encoder or not (self.path / PROMPTS_FILE).is_file():
            return {}
        tensors = load_safetensors().load_file(str(self.path / PROMPTS_FILE))
        prompts = self.manifest["prompts"]
        return {prompt: tensors[str(i)] for i, prompt in enumerate(prompts)}

    @property
    def has_pretrained(self) -> bool:
        """True when the pack carries pretrained encoder weights."""
        return PRETRAINED_FILE in self.manifest["files"] or bool(self.manifest.get("pretrained"))

    def pretrained(self, encoder: str | None = None) -> dict[str, Any] | None:
        """Pretrained parts of a model (a state dict, float32), or None if the pack has none.

        Args:
            encoder: The encoder they are for (``lite2``): the weights packed for it by name when
                the pack has them (``more_pretrained``), else those of the pack's own recipe.
        """
        extra = (self.manifest.get("pretrained") or {}).get(encoder or "")
        if extra is None and encoder is not None and self.pretrained_encoders().get(PRETRAINED_FILE) not in (None, encoder):
            return None  # the recipe's own weights are another encoder's
        file = self.path / (extra["file"] if extra else PRETRAINED_FILE)
        if not file.is_file():
            return None
        return {k: v.float() if v.is_floating_point() else v for k, v in load_safetensors().load_file(str(file)).items()}

    def pretrained_encoders(self) -> dict[str, str | None]:
        """``{file: encoder}`` of the pretrained weights the pack carries (None where unrecorded)."""
        out: dict[str, str | None] = {}
        if PRETRAINED_FILE in self.manifest["files"]:
            out[PRETRAINED_FILE] = ((self.manifest.get("model") or {}).get("args") or {}).get("encoder")
        for encoder, extra in (self.manifest.get("pretrained") or {}).items():
            out[extra["file"]] = encoder
        return out

    def describe(self) -> dict[str, Any]:
        """What a training record keeps about the pack it trained from."""
        return {
            "path": str(self.path), "created": self.manifest.get("created"), "images": self.manifest.get("images"),
            "splits": self.manifest.get("splits"), "sources": self.manifest.get("sources"), "bytes": self.manifest.get("bytes"),
        }

    def __repr__(self) -> str:
        images = self.manifest.get("images", {})
        how = "original files" if images.get("quality") is None else f"WebP q{images.get('quality')}"
        for split, group in (images.get("split_quality") or {}).items():
            how += f", {split} at q{group['quality']}"
        if images.get("size"):
            how += f" at {images['size']} px"
        if images.get("quality") is not None and images.get("originals"):
            how += f" ({', '.join(images['originals'])} as original files)"
        return f"TrainingPack({str(self.path)!r}, {images.get('count')} images as {how}, splits={self.manifest.get('splits')})"


# -- where images go in a pack, checksums ---------------------------------------------------------
def split_folder(root: Path, sample: Sample) -> Path:
    return root / DATASETS_DIR / sample.dataset / sample.split if sample.split else root / DATASETS_DIR / sample.dataset


def split_of_images(
    trainset: TrainSet, root: Path, samples: Sequence[Sample] | None = None, names: dict[str, str] | None = None
) -> dict[str, str]:
    """``{path inside the pack: carved split}`` for every packed image.

    With ``samples`` and ``names`` the set was built from the source folders (mapped to their
    packed names); without, it was built from the pack itself.
    """
    packed_path: dict[str, str] = {}
    if samples is not None and names is not None:
        for sample in samples:
            packed = split_folder(root, sample) / names[str(sample.image_path)]
            packed_path[str(sample.image_path)] = packed.relative_to(root).as_posix()
    out: dict[str, str] = {}
    resolved_root = root.resolve()
    for record in trainset.records:
        if record.split.startswith(PUBLISHED_PREFIX) or record.is_copy or record.is_negative:
            continue
        if samples is not None:
            rel = packed_path[str(record.image)]
        else:
            rel = Path(record.image).resolve().relative_to(resolved_root).as_posix()
        out[rel] = record.split
    return dict(sorted(out.items()))


def pretrained_file(encoder: str) -> str:
    """File name of the pretrained weights packed for ``encoder`` beside the recipe's own."""
    return f"pretrained-{encoder}.safetensors"


def file_table(root: Path) -> dict[str, dict[str, Any]]:
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != PACK_FILE)
    return {p.relative_to(root).as_posix(): {"bytes": p.stat().st_size, "sha256": sha256(p)} for p in files}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_safetensors():
    try:
        import safetensors.torch
    except ImportError as exc:  # pragma: no cover - a required dependency
        raise ConfigError("training packs need safetensors: pip install safetensors") from exc
    return safetensors.torch
