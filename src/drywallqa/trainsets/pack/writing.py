"""Writing a training pack: :func:`write_pack`, which assembles, checks and renames it into place.

Images are copied as they are when the pack fits its size limit, else re-encoded as WebP at the
highest quality of :data:`QUALITY_LADDER` that fits; annotations are written through
:func:`drywallqa.data.formats.coco.samples_to_coco`. Before the rename the set is rebuilt from
the finished pack and every record and target compared with the source's.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from drywallqa.data.core import Sample
from drywallqa.data.formats.coco import ANNOTATION_FILE, samples_to_coco, write_coco
from drywallqa.errors import ConfigError, DataError
from drywallqa.files import atomic_write_json
from drywallqa.trainsets.build import build_trainset
from drywallqa.trainsets.core import PUBLISHED_PREFIX, TrainSet
from drywallqa.trainsets.items import resize_pair
from drywallqa.trainsets.pack.folder import (
    DATASETS_DIR,
    PACK_FILE,
    PACK_FORMAT,
    PRETRAINED_FILE,
    PROMPTS_FILE,
    TrainingPack,
    file_table,
    load_safetensors,
    pretrained_file,
    split_folder,
    split_of_images,
)

# A device call carries 64 MiB in all: the repository (~10 MiB) and the wheels (~8 MiB) travel
# beside the pack (scripts/device/prepare.sh sizes the pack to what is left).
DEFAULT_MAX_MIB = 45.0
IMAGE_FORMATS = ("auto", "original", "webp")
# WebP qualities tried from the top until the images fit. The shipped photos are JPEG q75; WebP
# q60-75 keeps them within 39.7-40.8 dB PSNR of their decoded pixels (an RMS error of 2-3 grey
# levels, below the 5-15 of the training's noise augmentation).
QUALITY_LADDER = (95, 90, 85, 80, 75, 70, 65, 60, 55, 50, 45, 40, 35, 30, 25, 20)
# Images encoded at each quality to estimate the total: a tenth of them, at least this many.
_QUALITY_SAMPLE = 48
# Bytes of pack.json per image (its carved split and its checksum), for the size budget.
_MANIFEST_BYTES_PER_IMAGE = 320


@dataclass(frozen=True)
class PackSummary:
    """What :func:`write_pack` wrote.

    Attributes:
        path: The pack folder.
        images: Images packed.
        image_format: ``original`` (files copied byte for byte) or ``webp``.
        quality: WebP quality, or None for originals.
        psnr_db: Mean PSNR of the WebP images against the decoded originals (on a sample of them),
            or None for originals.
        bytes: Size of every file of the pack together.
        splits: Images per carved split.
        seconds: Time the whole build took.
        originals: Datasets copied as original files (every one for a pack of originals).
        image_size: Side the images were resized to (a pack at the training resolution), or None
            for native resolution.
        split_quality: ``{split: {"quality", "psnr_db", "images"}}`` of the splits given their own
            quality (``quality`` and ``psnr_db`` above are the other photos').
    """

    path: Path
    images: int
    image_format: str
    quality: int | None
    psnr_db: float | None
    bytes: int
    splits: dict[str, int]
    seconds: float
    originals: tuple[str, ...] = ()
    image_size: int | None = None
    split_quality: dict[str, dict[str, float]] = field(default_factory=dict)

    def __str__(self) -> str:
        how = "original files" if self.quality is None else f"WebP q{self.quality} ({self.psnr_db:.1f} dB PSNR)"
        for split, group in self.split_quality.items():
            how += f", {split} at q{group['quality']} ({group['psnr_db']:.1f} dB)"
        if self.image_size:
            how += f" at {self.image_size}x{self.image_size}"
        if self.quality is not None and self.originals:
            how += f", {', '.join(self.originals)} as original files"
        splits = ", ".join(f"{name} {n}" for name, n in self.splits.items())
        return (
            f"wrote {self.path}: {self.images} images ({splits}) as {how}, {self.bytes / 2**20:.1f} MiB in all, "
            f"targets checked against the source, {self.seconds:.0f} s"
        )


def packed_samples(trainset: TrainSet) -> list[Sample]:
    """The samples a pack must hold: every image of a carved split (not ``published_*``), once."""
    seen: dict[str, Sample] = {}
    for record in trainset.records:
        if record.split.startswith(PUBLISHED_PREFIX) or record.is_copy or record.is_negative:
            continue
        if record.target_sample is not None:
            raise ConfigError(
                f"trainset pack: the {record.class_name} targets come from the pseudo-mask folder {record.mask_source}; "
                "packs carry annotations and filled boxes (mask_sources: box). Write the pseudo-masks into the "
                "dataset first (`drywallqa masks ... --out DIR` gives a COCO dataset you can pack instead)"
            )
        if record.sample is not None:
            seen.setdefault(str(record.image), record.sample)
    return list(seen.values())


def write_pack(
    trainset: TrainSet,
    out: str | os.PathLike,
    *,
    embeddings: dict[str, Any] | None = None,
    text_encoder: str | None = None,
    pretrained: dict[str, Any] | None = None,
    model: dict[str, Any] | None = None,
    image_format: str = "auto",
    quality: int | None = None,
    originals: Sequence[str] = (),
    max_mib: float = DEFAULT_MAX_MIB,
    overwrite: bool = False,
    workers: int | None = None,
    say: Callable[[str], None] | None = None,
    image_size: int | None = None,
    more_pretrained: dict[str, dict[str, Any]] | None = None,
    split_quality: dict[str, int] | None = None,
) -> PackSummary:
    """Write the images, annotations and training assets of ``trainset`` into a pack folder.

    The pack is assembled in a temporary folder beside ``out``, checked (checksums, the carved
    split, every target) and only then renamed to ``out``: an interrupted or failed call leaves
    no half-written pack.

    Args:
        trainset: A set built with :func:`build_trainset` from dataset folders.
        out: The pack folder; must not exist unless ``overwrite``.
        embeddings: ``{prompt: (D,) tensor}`` for every prompt of the set (see
            :meth:`TrainSet.prompt_class`), made by the model's text encoder.
        text_encoder: Name of that encoder (``minilm``); required with ``embeddings``.
        pretrained: The model's pretrained parts (``PromptSegmentationModel.pretrained_state``).
        model: ``{"name": ..., "args": {...}}`` of the model the weights belong to, for the record.
        image_format: ``auto`` (originals when the pack fits ``max_mib``, else WebP), ``original``
            or ``webp``.
        quality: WebP quality (1-100); None picks the highest of :data:`QUALITY_LADDER` that fits.
        originals: Datasets whose files are copied as they are even when the others are re-encoded
            (the images the re-encoding would hurt most; they take their bytes off the budget first).
        max_mib: Size limit of the whole pack in MiB.
        overwrite: Replace an existing pack at ``out``.
        workers: Encoding threads; the CPU count by default.
        say: Called with a line per step (e.g. ``print``).
        image_size: Resize every image to this square side (as training resizes it) before encoding
            it as WebP: a pack at the training resolution keeps the pixels a recipe at that size
            trains on at a far higher quality than native-size photos in the same bytes. The
            annotations are resized with them as training resizes its targets (each shape
            rasterised at the photo's size, then nearest-neighbour resized, and written as RLE; each
            box as the box of its resized fill), so a training at that size from the pack gets
            exactly the targets it gets from the folders; the rebuild check proves it.
        more_pretrained: Pretrained weights of other encoders, for other recipes trained from the
            same pack: ``{encoder: {"state": state dict, "model": {"name", "args"}}}``.
        split_quality: WebP quality of the re-encoded photos of some carved splits, e.g.
            ``{"valid": 95, "test": 50}``: the validation photos near-lossless (training picks its
            checkpoint on them), the test photos, which no training reads, small; the photos of
            the other splits then get the highest quality of the ladder that fits what is left.

    Returns:
        A :class:`PackSummary`.

    Raises:
        ConfigError: For bad arguments, a pack that cannot fit ``max_mib``, or an existing ``out``.
        DataError: For unreadable images.
    """
    started = time.perf_counter()
    say = say or (lambda line: None)
    out = Path(out)
    if image_format not in IMAGE_FORMATS:
        raise ConfigError(f"trainset pack: image format must be one of {', '.join(IMAGE_FORMATS)}, got {image_format!r}")
    if quality is not None and not 1 <= int(quality) <= 100:
        raise ConfigError(f"trainset pack: quality must be 1-100, got {quality}")
    if embeddings and not text_encoder:
        raise ConfigError("trainset pack: embeddings need the name of the text encoder that made them")
    if image_size is not None:
        if image_format == "original" or originals:
            raise ConfigError("trainset pack: --image-size resizes every photo; it cannot keep original files "
                              "(drop --originals and --image-format original)")
        if int(image_size) < 32:
            raise ConfigError(f"trainset pack: --image-size must be at least 32, got {image_size}")
        image_format, image_size = "webp", int(image_size)
    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out}: already exists; pass --overwrite to replace the pack")
    samples = packed_samples(trainset)
    if not samples:
        raise ConfigError("trainset pack: the training set has no image in a carved split to pack")
    unknown = sorted(set(originals) - {s.dataset for s in samples})
    if unknown:
        raise ConfigError(f"trainset pack: --originals {', '.join(unknown)}: no such dataset in the pack "
                          f"(it has {', '.join(sorted({s.dataset for s in samples}))})")
    budget = int(max_mib * 2**20)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        file_bytes = {str(s.image_path): s.image_path.stat().st_size for s in samples}
        original_bytes = sum(file_bytes.values())
        use_originals = image_format == "original" or (image_format == "auto" and quality is None)
        kept = {s.dataset for s in samples} if use_originals else set(originals)
        names = _pack_names(samples, kept)
        annotated = [_resized_sample(s, image_size) for s in samples] if image_size else samples
        # Everything but the images first, so the images get exactly what is left of the budget.
        fixed = _write_assets(tmp, embeddings, pretrained, more_pretrained) + _write_annotations(tmp, annotated, names)
        fixed += _MANIFEST_BYTES_PER_IMAGE * len(samples)
        if use_originals and image_format == "auto" and original_bytes + fixed > budget:
            use_originals, kept = False, set(originals)
            shutil.rmtree(tmp / DATASETS_DIR)
            names = _pack_names(samples, kept)
            _write_annotations(tmp, annotated, names)
        copied = [s for s in samples if s.dataset in kept]
        encoded = [s for s in samples if s.dataset not in kept]
        _copy_originals(tmp, copied, names)
        fixed += sum(file_bytes[str(s.image_path)] for s in copied)
        chosen: int | None = None
        psnr: float | None = None
        split_qualities: dict[str, dict[str, float]] = {}
        if encoded and split_quality:
            carved = {str(r.image): r.split for r in trainset.records if not r.is_copy and not r.is_negative}
            for split, fixed_quality in sorted(split_quality.items()):
                group = [s for s in encoded if carved.get(str(s.image_path)) == split]
                if not group:
                    raise ConfigError(f"trainset pack: --split-quality {split}: no photo of the pack is in that split")
                say(f"{split}: {len(group)} photos at WebP q{fixed_quality}")
                _, group_psnr = _encode_within(tmp, group, names, (int(fixed_quality),), budget, workers, say, image_size)
                split_qualities[split] = {"quality": int(fixed_quality), "psnr_db": group_psnr, "images": len(group)}
                fixed += sum((split_folder(tmp, s) / names[str(s.image_path)]).stat().st_size for s in group)
                encoded = [s for s in encoded if s not in group]
        if encoded:
            ladder = (int(quality),) if quality is not None else QUALITY_LADDER
            chosen, psnr = _encode_within(tmp, encoded, names, ladder, budget - fixed, workers, say, image_size)
        split_of = split_of_images(trainset, tmp, samples, names)
        files = file_table(tmp)
        total = sum(f["bytes"] for f in files.values())
        if total > budget:
            raise ConfigError(
                f"trainset pack: {total / 2**20:.1f} MiB is over --max-mib {max_mib:g}"
                + ("" if chosen is None else f" even at WebP quality {chosen}")
                + "; raise --max-mib or pack fewer datasets"
            )
        counts: dict[str, int] = defaultdict(int)
        for split in split_of.values():
            counts[split] += 1
        manifest = {
            "format": PACK_FORMAT,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "sources": {ds: str(folder) for ds, folder in _source_folders(samples).items()},
            "trainset_config": trainset.config.to_dict(),
            "images": {"count": len(samples), "format": "original" if chosen is None else "webp", "quality": chosen,
                       "psnr_db": psnr, "original_bytes": original_bytes,
                       "originals": sorted(kept), "size": image_size,
                       **({"split_quality": split_qualities} if split_qualities else {})},
            "splits": dict(sorted(counts.items())),
            "split_of_images": split_of,
            "text_encoder": text_encoder if embeddings else None,
            "prompts": sorted(embeddings) if embeddings else [],
            "model": model,
            **({"pretrained": {encoder: {"file": pretrained_file(encoder), "model": extra.get("model")}
                               for encoder, extra in more_pretrained.items()}} if more_pretrained else {}),
            "files": files,
            "bytes": total,
        }
        atomic_write_json(tmp / PACK_FILE, manifest, indent=1)
        say("checking the pack against the source ...")
        pack = TrainingPack.open(tmp)
        rebuilt = build_trainset(pack.trainset_config(trainset.config.to_dict()))
        pack.check_split(rebuilt)
        _check_same_records(trainset, rebuilt, image_size)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return PackSummary(
        path=out, images=len(samples), image_format=manifest["images"]["format"], quality=chosen, psnr_db=psnr,
        bytes=total + (out / PACK_FILE).stat().st_size, splits=manifest["splits"], seconds=time.perf_counter() - started,
        originals=tuple(sorted(kept)), image_size=image_size, split_quality=split_qualities,
    )


# -- writing helpers ------------------------------------------------------------------------------
def _pack_names(samples: Sequence[Sample], kept: set[str]) -> dict[str, str]:
    """``{image path: packed file name}``: the file's name for the datasets in ``kept`` (copied as
    they are), else its stem with ``.webp`` (the stem carries the source group, and keeps the order
    the training set sorts images in).

    Raises:
        DataError: If two images of one split would get the same name.
    """
    names = {str(s.image_path): Path(s.image_path).name if s.dataset in kept else Path(s.image_path).stem + ".webp"
             for s in samples}
    seen: dict[tuple[str, str, str], str] = {}
    for sample in samples:
        key = (sample.dataset, sample.split, names[str(sample.image_path)])
        if key in seen:
            raise DataError(
                f"{sample.image_path}: packs as {key[2]}, like {seen[key]}; rename one of the two files"
            )
        seen[key] = str(sample.image_path)
    return names


def _copy_originals(root: Path, samples: Sequence[Sample], names: dict[str, str]) -> None:
    for sample in samples:
        folder = split_folder(root, sample)
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sample.image_path, folder / names[str(sample.image_path)])


def _encode_webp(path: Path, quality: int, size: int | None = None) -> tuple[bytes, float]:
    """WebP bytes of an image (resized to ``size`` first, as training resizes it) and their PSNR (dB)
    against the decoded original at that size."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)  # what training reads (drywallqa.trainsets.items.read_rgb)
    if image is None:
        raise DataError(f"{path}: image file missing or unreadable")
    if size is not None:
        image = resize_pair(image, np.zeros(image.shape[:2], bool), size)[0]
    ok, buffer = cv2.imencode(".webp", image, [cv2.IMWRITE_WEBP_QUALITY, int(quality)])
    if not ok:
        raise DataError(f"{path}: could not be encoded as WebP")
    return buffer.tobytes(), float(cv2.PSNR(image, cv2.imdecode(buffer, cv2.IMREAD_COLOR)))


def _encode_within(
    root: Path, samples: Sequence[Sample], names: dict[str, str], ladder: Sequence[int], budget: int,
    workers: int | None, say: Callable[[str], None], size: int | None = None,
) -> tuple[int, float]:
    """Encode every image as WebP at the highest quality of ``ladder`` whose files fit ``budget``.

    Returns:
        The quality and the mean PSNR of a sample of the images.
    """
    paths = [Path(s.image_path) for s in samples]
    step = max(min(len(paths) // _QUALITY_SAMPLE, 10), 1)
    probe = paths[::step]
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        for position, quality in enumerate(ladder):
            last = position == len(ladder) - 1
            probed = list(pool.map(lambda p: _encode_webp(p, quality, size), probe))
            estimate = sum(len(b) for b, _ in probed) * len(paths) / len(probe)
            if estimate > budget * 0.97 and not last:
                continue
            say(f"encoding {len(paths)} images as WebP q{quality} (about {estimate / 2**20:.1f} MiB) ...")
            encoded = [data for data, _ in pool.map(lambda p: _encode_webp(p, quality, size), paths)]
            if sum(len(b) for b in encoded) > budget and not last:
                continue
            for sample, data in zip(samples, encoded):
                folder = split_folder(root, sample)
                folder.mkdir(parents=True, exist_ok=True)
                (folder / names[str(sample.image_path)]).write_bytes(data)
            return quality, round(float(np.mean([psnr for _, psnr in probed])), 2)
    raise AssertionError("unreachable: the last quality of the ladder is always written")


def _write_annotations(root: Path, samples: Sequence[Sample], names: dict[str, str]) -> int:
    """Write each split's COCO file with the packed image names; returns the bytes written."""
    by_folder: dict[Path, list[Sample]] = defaultdict(list)
    written = 0
    for sample in samples:
        folder = split_folder(root, sample)
        folder.mkdir(parents=True, exist_ok=True)
        by_folder[folder].append(replace(sample, image_path=folder / names[str(sample.image_path)]))
    for folder, folder_samples in by_folder.items():
        classes = sorted({c for s in folder_samples for c in s.classes})
        coco = samples_to_coco(folder_samples, folder, class_names=classes or None, description="drywallqa training pack")
        written += write_coco(folder / ANNOTATION_FILE, coco).stat().st_size
    return written


def _write_assets(root: Path, embeddings: dict[str, Any] | None, pretrained: dict[str, Any] | None,
                  more_pretrained: dict[str, dict[str, Any]] | None = None) -> int:
    written = 0
    if embeddings:
        tensors = {str(i): embeddings[prompt].detach().float().contiguous() for i, prompt in enumerate(sorted(embeddings))}
        load_safetensors().save_file(tensors, str(root / PROMPTS_FILE))
        written += (root / PROMPTS_FILE).stat().st_size
    weights = {PRETRAINED_FILE: pretrained} if pretrained else {}
    weights.update({pretrained_file(encoder): extra["state"] for encoder, extra in (more_pretrained or {}).items()})
    for name, state in weights.items():
        # Half precision: starting weights need no more, and they take half the bytes of the carry.
        tensors = {key: (value.detach().half() if value.is_floating_point() else value.detach()).contiguous()
                   for key, value in state.items()}
        load_safetensors().save_file(tensors, str(root / name))
        written += (root / name).stat().st_size
    return written


def _source_folders(samples: Sequence[Sample]) -> dict[str, Path]:
    folders: dict[str, Path] = {}
    for sample in samples:
        parent = Path(sample.image_path).resolve().parent
        folders.setdefault(sample.dataset, parent.parent if sample.split else parent)
    return folders


def _resized_sample(sample: Sample, size: int) -> Sample:
    """``sample`` as at ``size x size``: each annotation's own target resized as training resizes
    targets (nearest neighbour), a shape as RLE, a box-only annotation as the box of its resized fill
    (:func:`~drywallqa.data.masks.boxes_to_mask` fills it back exactly). An annotation too small to
    survive keeps an empty RLE, so the image keeps its classes as training at that size sees them."""
    from drywallqa.data.masks import boxes_to_mask, mask_to_box, mask_to_rle

    annotations = []
    for annotation in sample.annotations:
        whole = annotation.to_mask(sample.height, sample.width) if annotation.has_mask else \
            boxes_to_mask(np.array([annotation.box]), sample.height, sample.width)
        resized = cv2.resize(whole.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST).astype(bool)
        box = mask_to_box(resized)
        if annotation.has_mask or box is None:
            annotation = replace(annotation, polygons=(), rle=mask_to_rle(resized),
                                 box=tuple(float(v) for v in box) if box is not None else (0.0, 0.0, 1.0, 1.0))
        else:
            annotation = replace(annotation, box=tuple(float(v) for v in box))
        annotations.append(annotation)
    return replace(sample, width=size, height=size, annotations=tuple(annotations))


def _check_same_records(source: TrainSet, rebuilt: TrainSet, image_size: int | None = None) -> None:
    """The pack's set must equal the source's in every record and target (a bug otherwise); for a
    pack at ``image_size``, the source's targets resized as training resizes them."""
    def carved(trainset: TrainSet):
        return [r for r in trainset.records if not r.split.startswith(PUBLISHED_PREFIX)]

    a, b = carved(source), carved(rebuilt)
    fields = ("class_name", "prompts", "split", "dataset", "group", "kind", "mask_source", "copy_index")
    if len(a) != len(b):
        raise DataError(f"trainset pack: the pack builds {len(b)} records, the source {len(a)}")
    targets: dict[tuple[str, str], bool] = {}
    for ra, rb in zip(a, b):
        if any(getattr(ra, f) != getattr(rb, f) for f in fields) or Path(ra.image).stem != Path(rb.image).stem:
            raise DataError(f"trainset pack: record of {ra.image} differs when built from the pack ({rb.image})")
        key = (str(ra.image), ra.class_name)
        if ra.kind == "positive" and key not in targets:
            expected = source.load_target(ra)
            if image_size:
                expected = resize_pair(np.zeros((*expected.shape, 3), np.uint8), expected, image_size)[1]
            targets[key] = bool(np.array_equal(expected, rebuilt.load_target(rb)))
            if not targets[key]:
                raise DataError(f"trainset pack: the {ra.class_name} target of {ra.image} differs in the pack")
