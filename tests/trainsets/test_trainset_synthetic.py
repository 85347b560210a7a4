"""Generated scenes mixed into train: train only, exact joint masks, the real carving untouched."""

from __future__ import annotations

import pytest

from drywallqa.errors import ConfigError
from drywallqa.trainsets import build_trainset
from drywallqa.trainsets.synthetic import SYNTHETIC_DATASETS, synthetic_folder


@pytest.fixture
def mixed(config, tmp_path):
    carved = config.with_overrides({"keep_splits": True})
    synthetic = {"images": 16, "seed": 11, "size": 64, "cache": str(tmp_path / "cache")}
    return carved, carved.with_overrides({"synthetic": synthetic})


def test_scenes_go_to_train_only_and_leave_the_real_carving_as_it_was(mixed):
    plain, mixed_config = mixed
    without, with_synthetic = build_trainset(plain), build_trainset(mixed_config)
    synthetic = [r for r in with_synthetic.records if r.dataset in SYNTHETIC_DATASETS]
    assert synthetic and {r.split for r in synthetic} == {"train"}
    assert {r.class_name for r in synthetic if r.kind == "positive"} == {"crack", "taping_area"}
    # Joints are trained on the generator's exact tape bands, not on their boxes.
    joints = [r for r in synthetic if r.class_name == "taping_area" and r.kind == "positive"]
    assert joints and all(r.mask_source == "annotation" for r in joints)
    assert with_synthetic.split_of_images().items() >= without.split_of_images().items()
    # Never a source of cross-prompt negatives (a crack scene may show an unannotated joint).
    negatives = [r for r in with_synthetic.records if r.is_negative]
    assert negatives and not any(with_synthetic.records[r.negative_of].dataset in SYNTHETIC_DATASETS for r in negatives)
    assert not any(group.startswith("synthetic-") for group in with_synthetic.check_leakage())


def test_scenes_are_rendered_once_per_setting(mixed):
    _, config = mixed
    build_trainset(config)
    folder = synthetic_folder(config.synthetic)
    stamp = (folder / "sample-data.json").stat().st_mtime_ns
    build_trainset(config)
    assert (folder / "sample-data.json").stat().st_mtime_ns == stamp


def test_train_only_must_name_a_dataset(config):
    with pytest.raises(ConfigError, match="train_only"):
        build_trainset(config.with_overrides({"train_only": ["nope"]}))
    with pytest.raises(ConfigError, match="synthetic.images"):
        config.with_overrides({"synthetic": {"images": -1}})


def test_a_training_run_renders_its_scenes_into_its_own_folder(tmp_path):
    from drywallqa.training.config import TrainConfig
    from drywallqa.training.run import trainset_config

    config = TrainConfig.from_dict({"data": {"synthetic": {"images": 8}}, "out": str(tmp_path / "run")})
    assert trainset_config(config).synthetic.cache == str(tmp_path / "run" / "synthetic")
    named = TrainConfig.from_dict({"data": {"synthetic": {"images": 8, "cache": "scenes"}}, "out": str(tmp_path / "run")})
    assert trainset_config(named).synthetic.cache == "scenes"
