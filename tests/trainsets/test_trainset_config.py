"""TrainSetConfig: YAML round trip, overrides, and one-line errors naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from drywallqa.errors import ConfigError
from drywallqa.trainsets import AugmentationConfig, TrainSetConfig

DEFAULT_YAML = Path(__file__).resolve().parents[2] / "configs" / "trainset-default.yaml"


def test_default_yaml_lists_the_dataclass_defaults():
    assert TrainSetConfig.from_yaml(DEFAULT_YAML) == TrainSetConfig()


def test_yaml_round_trip(tmp_path):
    config = TrainSetConfig(
        datasets=["a", "b"], mask_sources={"taping_area": "masks/out"}, fractions="0.7,0.2,0.1", seed=5,
        keep_splits=True, drop_leaked_from_train=True, balance_ratio=None, negative_rate=0.2,
        negative_splits=["train", "val"], image_size=256,
        augmentation=AugmentationConfig(hflip_p=0.0, scale_range=(0.8, 1.2), blur_limit=(3, 7)),
    )
    config.to_yaml(tmp_path / "trainset.yaml")
    loaded = TrainSetConfig.from_yaml(tmp_path / "trainset.yaml")
    assert loaded == config
    assert loaded.negative_splits == ["train", "valid"]  # "val" is the canonical "valid"
    assert loaded.augmentation.scale_range == (0.8, 1.2)


def test_overrides_from_mapping_and_strings():
    config = TrainSetConfig().with_overrides({"seed": 3, "augmentation.rotate_limit": 20})
    assert (config.seed, config.augmentation.rotate_limit) == (3, 20.0)
    config = config.with_overrides(["keep_splits=true", "mask_sources.taping_area=pm", "balance_ratio=null"])
    assert config.keep_splits and config.mask_sources["taping_area"] == "pm" and config.balance_ratio is None


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"negative_rate": 1.5}, "negative_rate"),
        ({"negative_rate": "often"}, "negative_rate"),
        ({"balance_ratio": 0}, "balance_ratio"),
        ({"balance_ratio": 2}, "balance_ratio"),
        ({"fractions": "0.5,0.2"}, "fractions"),
        ({"fractions": {"valid": 1.0}}, "fractions"),
        ({"seed": "x"}, "seed"),
        ({"image_size": 8}, "image_size"),
        ({"keep_splits": "yes"}, "keep_splits"),
        ({"mask_sources": ["box"]}, "mask_sources"),
        ({"augmentation.hflip_p": 2}, "augmentation.hflip_p"),
        ({"augmentation.blur_limit": [4, 6]}, "augmentation.blur_limit"),
        ({"augmentation.scale_range": [1.2, 0.9]}, "augmentation.scale_range"),
        ({"colour": "red"}, "colour"),
        ({"augmentation.sharpen_p": 0.1}, "sharpen_p"),
    ],
)
def test_bad_values_give_one_line_naming_the_field(overrides, field):
    with pytest.raises(ConfigError) as info:
        TrainSetConfig().with_overrides(overrides)
    message = str(info.value)
    assert field in message and "\n" not in message


def test_bad_yaml_value_names_the_file_and_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("negative_rate: 3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: negative_rate: must be < 1, got 3$"):
        TrainSetConfig.from_yaml(path)
    with pytest.raises(ConfigError, match="not found"):
        TrainSetConfig.from_yaml(tmp_path / "missing.yaml")
