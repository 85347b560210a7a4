"""Writing of the synthetic sample datasets: output folder, manifest, images and COCO files.

:func:`generate_sample_data` plans the sources (:mod:`.plan`), renders each one
(:mod:`.painting`), writes its variants as JPEGs and collects their annotations
(:mod:`.annotations`); the manifest lists every file written, so a rerun into the same folder
replaces them and removes stale ones.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from drywallqa.console import progress_bar
from drywallqa.data.formats.coco import ANNOTATION_FILE
from drywallqa.data.masks import mask_to_box
from drywallqa.data.synthetic.annotations import (
    CRACK_CATEGORIES,
    JOINT_CATEGORIES,
    TRUTH_ANNOTATION_FILE,
    CocoCollector,
    choose_crack_segmentation_kinds,
)
from drywallqa.data.synthetic.painting import CRACKS_DATASET, DATASET_CODES, JOINTS_DATASET, render_sample_image
from drywallqa.data.synthetic.plan import Source, plan_sources, share_joint_groups
from drywallqa.errors import ConfigError, DrywallQAError
from drywallqa.files import atomic_write_json, atomic_write_text, read_json, write_image

__all__ = ["FORMAT_VERSION", "MANIFEST_FILE", "SampleDataPaths", "generate_sample_data", "read_manifest"]

MANIFEST_FILE = "sample-data.json"
GENERATOR = "drywallqa sample-data"
FORMAT_VERSION = 1

CRACK_SPLIT_FRACTIONS = {"train": 0.7, "valid": 0.2, "test": 0.1}
JOINT_SPLIT_FRACTIONS = {"train": 0.8, "valid": 0.2}
MIN_IMAGES_PER_DATASET = 4
MIN_SIZE = 64

_README = """\
# drywallqa synthetic sample data

Rendered by `drywallqa sample-data` (seed {seed}, {images} images of {size}x{size} px); not real photos.
Same layout as the Roboflow COCO exports: `<dataset>/<split>/_annotations.coco.json` beside the JPEGs.

- `cracks/`: class `crack`, polygons traced from the drawn cracks (some as compressed or
  uncompressed RLE). Splits are grouped by source photo.
- `drywall-join/`: class `drywall-join` (prompt class `taping_area`), boxes only, like the real
  export. Half the walls show bare board seams before taping (like most real photos), half taped
  and mudded joints; a seam's true mask is the band its tape will cover.
  `_annotations.truth.coco.json` in each split holds the true joint masks as RLE with the
  same image and annotation ids, for scoring pseudo-masks made from the boxes. As in the real
  export, a few source photos have variants in both train and valid: {shared}.

Files are named `<source>_jpg.rf.<hash>.jpg`; files sharing `<source>` are variants (flip,
rotation, crop) of one rendering. `sample-data.json` lists every file written here, so a rerun
into this folder can replace them.
"""


@dataclass(frozen=True)
class SampleDataPaths:
    """Where :func:`generate_sample_data` wrote the two datasets, and what they hold.

    Attributes:
        root: The output folder.
        cracks: Root of the crack dataset (``train``/``valid``/``test`` split folders).
        drywall_join: Root of the joint dataset (``train``/``valid`` split folders).
        image_counts: Images per split: ``{"cracks": {"train": n, ...}, "drywall-join": {...}}``.
        shared_joint_groups: Source groups of drywall-join with variants in both train and valid.
    """

    root: Path
    cracks: Path
    drywall_join: Path
    image_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    shared_joint_groups: tuple[str, ...] = ()

    @property
    def dataset_roots(self) -> tuple[Path, Path]:
        """``(cracks, drywall_join)``: the folders to pass to :meth:`AnnotatedDataset.load`."""
        return (self.cracks, self.drywall_join)

    @property
    def total_images(self) -> int:
        """Number of images written, over both datasets."""
        return sum(n for counts in self.image_counts.values() for n in counts.values())

    def __repr__(self) -> str:
        return (
            f"SampleDataPaths({str(self.root)!r}, {self.total_images} images, {self.image_counts}, "
            f"{len(self.shared_joint_groups)} drywall-join group(s) shared by train and valid)"
        )


def generate_sample_data(
    out: str | os.PathLike,
    *,
    images: int = 100,
    seed: int = 0,
    size: int = 384,
    crack_fraction: float = 0.5,
    progress: bool = False,
) -> SampleDataPaths:
    """Render synthetic drywall photos and write them as two Roboflow COCO datasets under ``out``.

    The output is a deterministic function of the arguments: the same call writes the same
    bytes. ``out`` must be missing, empty, or a previous output of this function (which is then
    regenerated: files of the previous run that the new one does not write are removed).

    Args:
        out: Output folder.
        images: Total number of images over both datasets.
        seed: Non-negative seed of every random choice.
        size: Width and height of every image in pixels (square, like the real 640×640 exports).
        crack_fraction: Share of ``images`` that goes to the crack dataset; the rest are joints.
        progress: Show a progress bar on stderr.

    Returns:
        The dataset roots, image counts per split and the drywall-join groups shared by splits.

    Raises:
        ConfigError: If an argument is out of range (the message gives the valid range).
        DrywallQAError: If ``out`` is a file, or a non-empty folder that is not sample data.
    """
    n_cracks, n_joints = _check_arguments(images, seed, size, crack_fraction)
    root = Path(out)
    previous_files = _previous_output_files(root)

    plan_rng = np.random.default_rng([seed, 0])
    crack_sources = plan_sources(plan_rng, CRACKS_DATASET, n_cracks, CRACK_SPLIT_FRACTIONS, seed, min_groups=3)
    joint_sources = plan_sources(plan_rng, JOINTS_DATASET, n_joints, JOINT_SPLIT_FRACTIONS, seed, min_groups=2)
    shared = share_joint_groups(plan_rng, joint_sources)
    planned = sorted(
        {_rel(s.dataset, v.split, v.file_name) for s in crack_sources + joint_sources for v in s.variants}
        | {_rel(CRACKS_DATASET, split, ANNOTATION_FILE) for split in CRACK_SPLIT_FRACTIONS}
        | {_rel(JOINTS_DATASET, split, name) for split in JOINT_SPLIT_FRACTIONS
           for name in (ANNOTATION_FILE, TRUTH_ANNOTATION_FILE)}
        | {"README.md"}
    )
    manifest = {
        "generator": GENERATOR, "format_version": FORMAT_VERSION, "complete": False,
        "arguments": {"images": images, "seed": seed, "size": size, "crack_fraction": crack_fraction},
        # While writing, list old and new files, so an interrupted run can still be cleaned up.
        "files": sorted(set(previous_files) | set(planned)),
    }
    atomic_write_json(root / MANIFEST_FILE, manifest, indent=1)

    writers = {
        CRACKS_DATASET: CocoCollector(CRACK_CATEGORIES, CRACK_SPLIT_FRACTIONS),
        JOINTS_DATASET: CocoCollector(JOINT_CATEGORIES, JOINT_SPLIT_FRACTIONS),
    }
    with progress_bar(images, "sample data", enabled=progress) as bar:
        for source in crack_sources + joint_sources:
            _render_source(root, source, writers[source.dataset], seed, size)
            bar.update(len(source.variants))

    choose_crack_segmentation_kinds(writers[CRACKS_DATASET])
    for dataset, writer in writers.items():
        writer.write(root / dataset, truth=dataset == JOINTS_DATASET)
    counts = {dataset: writer.image_counts() for dataset, writer in writers.items()}
    atomic_write_text(
        root / "README.md",
        _README.format(seed=seed, images=images, size=size, shared=", ".join(f"`{g}`" for g in shared) or "none"),
    )
    manifest.update(complete=True, files=planned, image_counts=counts, shared_groups={JOINTS_DATASET: list(shared)})
    atomic_write_json(root / MANIFEST_FILE, manifest, indent=1)
    _remove_stale_files(root, set(previous_files) - set(planned))
    return SampleDataPaths(root, root / CRACKS_DATASET, root / JOINTS_DATASET, counts, tuple(shared))


# -- arguments and output folder ------------------------------------------------------------------
def _check_arguments(images: int, seed: int, size: int, crack_fraction: float) -> tuple[int, int]:
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"sample data: seed must be a non-negative integer, got {seed!r}")
    if not isinstance(size, (int, np.integer)) or size < MIN_SIZE:
        raise ConfigError(f"sample data: size must be an integer >= {MIN_SIZE} pixels, got {size!r}")
    if not 0.0 < float(crack_fraction) < 1.0:
        raise ConfigError(f"sample data: crack_fraction must be between 0 and 1 (exclusive), got {crack_fraction!r}")
    minimum = 2 * MIN_IMAGES_PER_DATASET
    if not isinstance(images, (int, np.integer)) or images < minimum:
        raise ConfigError(f"sample data: images must be an integer >= {minimum}, got {images!r}")
    n_cracks = int(round(images * float(crack_fraction)))
    n_joints = int(images) - n_cracks
    if min(n_cracks, n_joints) < MIN_IMAGES_PER_DATASET:
        raise ConfigError(
            f"sample data: {images} images with crack_fraction={crack_fraction} gives {n_cracks} crack and "
            f"{n_joints} joint images; each needs >= {MIN_IMAGES_PER_DATASET} "
            "(raise images or move crack_fraction towards 0.5)"
        )
    return n_cracks, n_joints


def read_manifest(root: str | os.PathLike) -> dict:
    """The manifest of a sample-data folder: arguments, files written, image counts, shared groups.

    Raises:
        DrywallQAError: If ``root`` has no manifest or it was not written by this generator.
    """
    path = Path(root) / MANIFEST_FILE
    data = read_json(path)
    if not isinstance(data, dict) or data.get("generator") != GENERATOR:
        raise DrywallQAError(f"{path}: not a sample-data manifest")
    return data


def _previous_output_files(root: Path) -> list[str]:
    """Files a previous run wrote into ``root`` (empty for a new folder); refuse foreign folders."""
    if root.exists() and not root.is_dir():
        raise DrywallQAError(f"{root}: exists and is not a folder; choose a new or empty output folder")
    if not root.exists() or not any(root.iterdir()):
        return []
    try:
        manifest = read_manifest(root)
    except DrywallQAError:
        raise DrywallQAError(
            f"{root}: folder is not empty and is not a previous sample-data output; choose a new or empty folder"
        ) from None
    return [str(f) for f in manifest.get("files", []) if isinstance(f, str)]


def _remove_stale_files(root: Path, stale: set[str]) -> None:
    resolved_root = root.resolve()
    for rel in sorted(stale):
        path = (root / rel).resolve()
        # Only delete inside the output folder, whatever an edited manifest says.
        if resolved_root in path.parents and path.is_file():
            path.unlink()


def _rel(dataset: str, split: str, name: str) -> str:
    return f"{dataset}/{split}/{name}"


# -- rendering and writing one source ------------------------------------------------------------
def _render_source(root: Path, source: Source, writer: CocoCollector, seed: int, size: int) -> None:
    """Render one source photo, then write each of its variants with transformed masks."""
    rendered = render_sample_image(source.dataset, (seed, source.index), size=size, background=source.background)
    # Export choices (JPEG quality, segmentation kind) get their own stream, so the rendering of
    # a source does not depend on how it is exported.
    rng = np.random.default_rng([DATASET_CODES[source.dataset], seed, source.index, 1])
    for variant in source.variants:
        transform = variant.transform
        pixels = transform.apply(rendered.image)
        quality = int(rng.integers(84, 93))  # mild compression, varying like photos from several phones
        write_image(root / source.dataset / variant.split / variant.file_name, pixels, quality=quality)
        image_id = writer.add_image(variant.split, variant.file_name, size, source.name, transform.describe(size))
        for mask in rendered.masks:
            mask = transform.apply(mask)
            box = mask_to_box(mask)
            if box is None:  # cropped away
                continue
            x1, y1, x2, y2 = (int(v) for v in box)
            record = {"id": writer.next_annotation_id(variant.split), "image_id": image_id, "category_id": 1,
                      "bbox": [x1, y1, x2 - x1, y2 - y1], "iscrowd": 0}
            if source.dataset == JOINTS_DATASET:
                writer.add_joint(variant.split, record, mask)
            else:
                writer.add_crack(variant.split, record, mask, draw=rng.random())
