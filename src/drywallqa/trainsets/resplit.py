"""Reusing a training run's splits on datasets: :func:`resplit_like_training`.

Evaluation and threshold calibration must score the source groups a model never trained on;
the training run's record (``training.json``) or its trainset YAML rebuilds exactly the split
the run carved, and every sample gets the split its image had there.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path

from drywallqa.data.core import AnnotatedDataset
from drywallqa.errors import ConfigError
from drywallqa.trainsets.build import build_trainset
from drywallqa.trainsets.config import TrainSetConfig


def resplit_like_training(datasets: Sequence[AnnotatedDataset], source: str | os.PathLike) -> list[AnnotatedDataset]:
    """Give every sample the split its image has in a training run's training set.

    Images the training set does not contain are dropped. Split names are the training set's:
    ``train``, ``valid``, ``test`` and ``published_<name>`` for published splits kept as they are.

    Args:
        datasets: The datasets the run was trained on, loaded.
        source: The run's model folder (with ``training.json``), its ``training.json``, or a
            trainset YAML.

    Raises:
        ConfigError: If ``source`` is none of those.
    """
    path = Path(source)
    if path.is_dir():
        path = path / "training.json"
    if not path.is_file():
        raise ConfigError(f"--splits-from {source}: expected a model folder with training.json, or a trainset YAML")
    if path.suffix == ".json":
        record = json.loads(path.read_text(encoding="utf-8"))
        if "trainset_config" not in record:
            raise ConfigError(f"{path}: no trainset_config (is it a drywallqa training.json?)")
        config = TrainSetConfig.from_dict(record["trainset_config"])
    else:
        config = TrainSetConfig.from_yaml(path)
    # Generated scenes (data.synthetic) only ever go to train: leave them out, the real carving is the same.
    config = config.with_overrides({"datasets": [str(ds.root) for ds in datasets], "verify_images": False,
                                    "synthetic.images": 0})
    split_of = build_trainset(config, datasets=datasets).split_of_images()
    out = []
    for ds in datasets:
        samples = [
            dataclasses.replace(s, split=split_of[s.image_path.resolve()])
            for s in ds.samples if s.image_path.resolve() in split_of
        ]
        out.append(dataclasses.replace(ds, samples=samples))
    return out
