"""Generated scenes as a training source (``synthetic`` in :class:`TrainSetConfig`).

The scenes are rendered once by :func:`drywallqa.data.synthetic.generate_sample_data` into a cache
folder keyed by their settings, then loaded as two datasets, ``synthetic-cracks`` and
``synthetic-drywall-join``, the joints with their exact masks (the generator's truth file) rather
than the boxes the sample data shows. :func:`drywallqa.trainsets.build_trainset` puts every one of
their images in ``train``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drywallqa.data.core import AnnotatedDataset
from drywallqa.data.prompts import PromptConfig
from drywallqa.data.synthetic import (
    CRACKS_DATASET,
    FORMAT_VERSION,
    JOINTS_DATASET,
    TRUTH_ANNOTATION_FILE,
    generate_sample_data,
    read_manifest,
)
from drywallqa.errors import DrywallQAError
from drywallqa.files import user_cache_dir
from drywallqa.trainsets.config import SyntheticConfig

SYNTHETIC_PREFIX = "synthetic-"
SYNTHETIC_DATASETS = (SYNTHETIC_PREFIX + CRACKS_DATASET, SYNTHETIC_PREFIX + JOINTS_DATASET)


def synthetic_folder(config: SyntheticConfig) -> Path:
    """Where the scenes of ``config`` are rendered: one folder per set of settings."""
    root = Path(config.cache) if config.cache else user_cache_dir("synthetic")
    return root / f"v{FORMAT_VERSION}-seed{config.seed}-images{config.images}-size{config.size}-cracks{config.crack_fraction:g}"


def synthetic_datasets(
    config: SyntheticConfig, prompt_config: PromptConfig, verify_images: bool = True
) -> list[AnnotatedDataset]:
    """Render (or reuse) the scenes of ``config`` and load them as the two synthetic datasets.

    Returns:
        ``[synthetic-cracks, synthetic-drywall-join]``; empty when ``config.images`` is 0.

    Raises:
        DrywallQAError: If the cache folder holds something else than these scenes.
    """
    if not config.images:
        return []
    folder = synthetic_folder(config)
    wanted: dict[str, Any] = {"images": config.images, "seed": config.seed, "size": config.size,
                              "crack_fraction": config.crack_fraction}
    try:
        manifest = read_manifest(folder)
    except DrywallQAError:
        manifest = {}
    if not manifest.get("complete") or manifest.get("arguments") != wanted:
        generate_sample_data(folder, **wanted)
    options = {"prompt_config": prompt_config, "verify_images": verify_images, "quiet": True}
    return [
        AnnotatedDataset.load(folder / CRACKS_DATASET, name=SYNTHETIC_DATASETS[0], **options),
        AnnotatedDataset.load(folder / JOINTS_DATASET, name=SYNTHETIC_DATASETS[1],
                              annotation_file=TRUTH_ANNOTATION_FILE, **options),
    ]
