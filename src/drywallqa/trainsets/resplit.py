"""Reusing a training run's splits on datasets: :func:`resplit_like_training`, :func:`training_groups`.

Evaluation and threshold calibration must score the source groups a model never trained on;
the training run's record (``training.json``) or its trainset YAML rebuilds exactly the split
the run carved, and every sample gets the split its image had there.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from drywallqa.data.core import AnnotatedDataset
from drywallqa.errors import ConfigError, DataError
from drywallqa.trainsets.build import build_trainset
from drywallqa.trainsets.config import TrainSetConfig
from drywallqa.trainsets.core import TRAIN, VALID


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
    return _resplit(datasets, _recorded_trainset(source)[0])


def training_groups(datasets: Sequence[AnnotatedDataset], source: str | os.PathLike) -> dict[str, set[tuple[str, str]]]:
    """The source groups of ``datasets`` that a training run learned from and chose its checkpoint on.

    Args:
        datasets: Datasets the run was trained on (all of them or some), loaded with their
            published splits.
        source: As for :func:`resplit_like_training`.

    Returns:
        ``{"train": {(dataset, group)}, "valid": {(dataset, group)}}``: the groups of the run's
        carved ``train`` split (the images it was trained on) and of its ``valid`` split (the
        images that chose its checkpoint and calibrated thresholds).

    Raises:
        ConfigError: If ``source`` is not a training record or trainset YAML.
        DataError: If ``training.json`` counts other images per held-out split and class than
            ``datasets`` give: they are not the data the run was trained on, or changed since.
    """
    config, record, path = _recorded_trainset(source)
    resplit = _resplit(datasets, config)
    if record is not None and record.get("trainset_counts"):
        _check_counts(resplit, record["trainset_counts"], path)
    return {
        split: {(s.dataset, s.group) for ds in resplit for s in ds.samples if s.split == split} for split in (TRAIN, VALID)
    }


def _recorded_trainset(source: str | os.PathLike) -> tuple[TrainSetConfig, dict | None, Path]:
    """The trainset config of a model folder, ``training.json`` or trainset YAML, the record (None
    for a YAML) and the file read."""
    path = Path(source)
    if path.is_dir():
        path = path / "training.json"
    if not path.is_file():
        raise ConfigError(f"--splits-from {source}: expected a model folder with training.json, or a trainset YAML")
    if path.suffix != ".json":
        return TrainSetConfig.from_yaml(path), None, path
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"{path}: unreadable training record ({error})") from None
    if not isinstance(record, dict) or "trainset_config" not in record:
        raise ConfigError(f"{path}: no trainset_config (is it a drywallqa training.json?)")
    return TrainSetConfig.from_dict(record["trainset_config"]), record, path


def _resplit(datasets: Sequence[AnnotatedDataset], config: TrainSetConfig) -> list[AnnotatedDataset]:
    # Generated scenes (data.synthetic) only ever go to train: leave them out, the real carving is
    # the same. So do train-only datasets not given here: they take no part in the carving either.
    names = {ds.name for ds in datasets}
    config = config.with_overrides({"datasets": [str(ds.root) for ds in datasets], "verify_images": False,
                                    "synthetic.images": 0, "train_only": [n for n in config.train_only if n in names]})
    split_of = build_trainset(config, datasets=datasets).split_of_images()
    out = []
    for ds in datasets:
        samples = [
            dataclasses.replace(s, split=split_of[s.image_path.resolve()])
            for s in ds.samples if s.image_path.resolve() in split_of
        ]
        out.append(dataclasses.replace(ds, samples=samples))
    return out


def _check_counts(resplit: Sequence[AnnotatedDataset], recorded: dict, path: Path) -> None:
    """Compare the images per held-out split and class with the record's ``trainset_counts``
    (``train`` also holds generated scenes, left out of a resplit: it is not compared)."""
    here: Counter[tuple[str, str]] = Counter()
    for ds in resplit:
        for s in ds.samples:
            if s.split != TRAIN:
                here.update((s.split, name) for name in s.classes or ds.class_names)
    classes = {name for ds in resplit for name in ds.class_names}
    expected = {(split, name): counts.get("original", 0) for split, per_class in recorded.items() if split != TRAIN
                for name, counts in per_class.items() if name in classes}
    for split, name in sorted(set(expected) | set(here)):
        want, got = expected.get((split, name), 0), here[(split, name)]
        if want != got:
            raise DataError(
                f"{path}: its training set held {want} {name!r} image(s) in {split!r}, these datasets give {got}: "
                "not the data it was trained on, or changed since"
            )
