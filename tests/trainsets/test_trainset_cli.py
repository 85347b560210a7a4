"""``drywallqa trainset build``: flags override the config; the handler prints the check line."""

from __future__ import annotations

import argparse

import pytest

from drywallqa.cli import trainset as trainset_cli
from drywallqa.errors import ConfigError


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="drywallqa")
    trainset_cli.add_commands(parser.add_subparsers(dest="command"))
    return parser.parse_args(["trainset", "build", *argv])


def test_flags_override_the_config_file(tmp_path):
    path = tmp_path / "ts.yaml"
    path.write_text("seed: 5\nnegative_rate: 0.3\naugmentation:\n  rotate_limit: 10\n")
    args = parse([
        str(path), "--data", "a", "--data", "b", "--seed", "7", "--keep-splits", "--balance-ratio", "none",
        "--joint-masks", "pm", "--fractions", "train=0.9,val=0.1", "--no-augment-originals",
        "--set", "augmentation.rotate_limit=20", "--negative-splits", "train,valid",
    ])
    config = trainset_cli.config_from_args(args)
    assert config.datasets == ["a", "b"] and config.seed == 7 and config.keep_splits
    assert config.negative_rate == 0.3  # from the file, no flag given
    assert config.balance_ratio is None and config.mask_sources == {"taping_area": "pm"}
    assert config.fractions == {"train": 0.9, "valid": 0.1} and not config.augment_originals
    assert config.augmentation.rotate_limit == 20 and config.negative_splits == ["train", "valid"]
    assert trainset_cli.config_from_args(parse([str(path)])).seed == 5


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["--negative-rate", "2"], "negative_rate"),
        (["--image-size", "3"], "image_size"),
        (["--set", "augmentation.noise_p=-1"], "augmentation.noise_p"),
        (["--mask-source", "taping_area"], "--mask-source"),
    ],
)
def test_bad_flag_values_are_one_line_config_errors(argv, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        trainset_cli.config_from_args(parse(argv))


def test_build_prints_the_leak_of_the_published_splits(sample_data, capsys):
    assert trainset_cli.run_build(parse(["--data", str(sample_data.root), "--keep-splits", "--image-size", "32"])) == 0
    out = capsys.readouterr().out
    assert "check: LEAK" in out and f"drywall-join/{sample_data.shared_joint_groups[0]}" in out
    assert "published splits share" in out and "published_valid" in out


def test_build_drop_leaked_and_materialize(sample_data, tmp_path, capsys):
    argv = ["--data", str(sample_data.root), "--keep-splits", "--drop-leaked-from-train", "--materialize", str(tmp_path / "m")]
    assert trainset_cli.run_build(parse(argv)) == 0
    out = capsys.readouterr().out
    assert "check: OK" in out and "dropped from train" in out
    assert (tmp_path / "m" / "manifest.csv").is_file()
