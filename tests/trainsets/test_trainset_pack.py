"""Training packs: the same training set from a pack as from folders, checked files, clear refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from drywallqa.data.core import AnnotatedDataset
from drywallqa.errors import ConfigError, DataError
from drywallqa.trainsets import TrainSetConfig, build_trainset
from drywallqa.trainsets.pack import PACK_FILE, TrainingPack, write_pack


@pytest.fixture
def carved(config):
    """The published-train carving the device recipes use."""
    return config.with_overrides({"keep_splits": True, "fractions": {"train": 0.8, "valid": 0.1, "test": 0.1}})


def _embeddings(trainset):
    prompts = sorted({p for r in trainset.records for p in r.prompts})
    return {p: torch.nn.functional.normalize(torch.randn(384), dim=0) for p in prompts}


def test_a_pack_rebuilds_the_same_training_set_with_the_same_targets(carved, tmp_path):
    source = build_trainset(carved)
    embeddings = _embeddings(source)
    pretrained = {"encoder.weight": torch.randn(4, 3)}
    summary = write_pack(source, tmp_path / "pack", embeddings=embeddings, text_encoder="minilm", pretrained=pretrained)
    assert summary.image_format == "original" and summary.quality is None  # small enough to keep the files
    pack = TrainingPack.open(tmp_path / "pack")
    rebuilt = build_trainset(pack.trainset_config(carved.to_dict()))
    pack.check_split(rebuilt)
    carved_splits = {s: n for s, n in source.splits.items() if not s.startswith("published_")}
    assert rebuilt.splits == carved_splits
    for a, b in zip([r for r in source.records if r.split in carved_splits], rebuilt.records):
        assert (a.split, a.class_name, a.kind, a.prompts, a.group) == (b.split, b.class_name, b.kind, b.prompts, b.group)
        assert np.array_equal(source.load_target(a), rebuilt.load_target(b))
        assert np.array_equal(source.load_image(a), rebuilt.load_image(b))  # original files: the same pixels
    assert {k: v.tolist() for k, v in pack.embeddings("minilm").items()} == {k: v.tolist() for k, v in embeddings.items()}
    assert pack.embeddings("hashing") == {}
    # Starting weights travel in half precision (half the bytes of the carry) and load as float32.
    assert torch.equal(pack.pretrained()["encoder.weight"], pretrained["encoder.weight"].half().float())
    # The datasets inside are plain COCO folders.
    assert {ds.name for ds in map(AnnotatedDataset.load, pack.dataset_folders)} == {"cracks", "drywall-join"}


def test_a_pack_at_the_training_resolution_keeps_the_pixels_and_targets_training_uses(carved, tmp_path):
    from drywallqa.trainsets.items import render_record, resize_pair

    source = build_trainset(carved)
    summary = write_pack(source, tmp_path / "pack", image_size=32, quality=95)
    assert summary.image_size == 32 and summary.image_format == "webp" and summary.psnr_db > 30
    pack = TrainingPack.open(tmp_path / "pack")
    assert pack.image_size == 32 and "32 px" in repr(pack)
    # An ordinary COCO dataset at 32 px, whose targets are the 32 px training targets of the source.
    rebuilt = build_trainset(pack.trainset_config(carved.to_dict()))
    assert {(s.width, s.height) for ds in map(AnnotatedDataset.load, pack.dataset_folders) for s in ds} == {(32, 32)}
    by_stem = {(r.image.stem, r.class_name, r.kind): r for r in source.records}
    for record in [r for r in rebuilt.records if r.kind == "positive"]:
        image, mask = render_record(rebuilt, record)
        want_image, want_mask = resize_pair(*render_record(source, by_stem[(record.image.stem, record.class_name, "positive")]), 32)
        assert image.shape == (32, 32, 3) and np.array_equal(mask, want_mask)
        assert np.abs(image.astype(int) - want_image.astype(int)).mean() < 4
    pack.check_image_size(32)
    with pytest.raises(ConfigError, match="--image-size 48"):
        pack.check_image_size(48)
    with pytest.raises(ConfigError, match="original files"):
        write_pack(source, tmp_path / "other", image_size=32, originals=["cracks"])


def test_some_splits_get_their_own_quality_and_the_rest_what_fits(carved, tmp_path):
    source = build_trainset(carved)
    summary = write_pack(source, tmp_path / "pack", image_size=32, split_quality={"valid": 95, "test": 20})
    manifest = json.loads((tmp_path / "pack" / PACK_FILE).read_text())["images"]
    assert set(manifest["split_quality"]) == {"valid", "test"} and manifest["split_quality"]["valid"]["quality"] == 95
    assert manifest["split_quality"]["valid"]["psnr_db"] > manifest["split_quality"]["test"]["psnr_db"]
    counted = {name: group["images"] for name, group in manifest["split_quality"].items()}
    assert counted == {"valid": summary.splits["valid"], "test": summary.splits["test"]}
    assert "valid at q95" in str(summary) and "valid at q95" in repr(TrainingPack.open(tmp_path / "pack"))
    with pytest.raises(ConfigError, match="no photo of the pack is in that split"):
        write_pack(source, tmp_path / "other", image_size=32, split_quality={"holdout": 90})


def test_pretrained_weights_of_other_encoders_travel_beside_the_recipes_own(carved, tmp_path):
    source = build_trainset(carved)
    own, other = {"encoder.a": torch.randn(3)}, {"encoder.b": torch.randn(5)}
    write_pack(source, tmp_path / "pack", pretrained=own,
               more_pretrained={"lite2": {"state": other, "model": {"name": "promptunet", "args": {"encoder": "lite2"}}}})
    pack = TrainingPack.open(tmp_path / "pack")
    assert set(pack.pretrained("lite2")) == {"encoder.b"} and set(pack.pretrained("lite0")) == {"encoder.a"}
    assert set(pack.pretrained()) == {"encoder.a"} and pack.has_pretrained


def test_webp_under_a_size_budget_keeps_targets_and_close_pixels(carved, tmp_path):
    source = build_trainset(carved)
    original_bytes = sum(p.stat().st_size for p in {r.sample.image_path for r in source.records if r.sample})
    summary = write_pack(source, tmp_path / "pack", image_format="webp", max_mib=original_bytes / 2**20)
    assert summary.image_format == "webp" and summary.quality is not None and summary.psnr_db > 30
    pack = TrainingPack.open(tmp_path / "pack")
    manifest = json.loads((tmp_path / "pack" / PACK_FILE).read_text())
    assert manifest["images"]["quality"] == summary.quality
    assert all(name.endswith((".webp", ".json")) for name in manifest["files"])
    rebuilt = build_trainset(pack.trainset_config(carved.to_dict()))
    record = next(r for r in rebuilt.records if r.kind == "positive")
    original = next(r for r in source.records if r.kind == "positive" and r.image.stem == record.image.stem)
    difference = np.abs(rebuilt.load_image(record).astype(int) - source.load_image(original).astype(int))
    assert difference.mean() < 8


def test_originals_keep_one_dataset_byte_for_byte_beside_webp_for_the_rest(carved, tmp_path):
    source = build_trainset(carved)
    original_bytes = sum(p.stat().st_size for p in {r.sample.image_path for r in source.records if r.sample})
    summary = write_pack(source, tmp_path / "pack", image_format="webp", originals=("drywall-join",),
                         max_mib=original_bytes / 2**20)
    assert summary.quality is not None and summary.originals == ("drywall-join",)
    assert "drywall-join as original files" in str(summary)
    manifest = json.loads((tmp_path / "pack" / PACK_FILE).read_text())
    assert manifest["images"]["originals"] == ["drywall-join"]
    pack = TrainingPack.open(tmp_path / "pack")
    assert "drywall-join as original files" in repr(pack)
    rebuilt = build_trainset(pack.trainset_config(carved.to_dict()))
    pack.check_split(rebuilt)
    by_stem = {r.image.stem: r for r in source.records if r.sample is not None}
    suffixes = {"cracks": set(), "drywall-join": set()}
    for record in rebuilt.records:
        if record.sample is None:
            continue
        dataset = record.sample.dataset
        suffixes[dataset].add(record.image.suffix)
        if dataset == "drywall-join":  # copied: the same bytes, so the same pixels
            assert record.image.read_bytes() == by_stem[record.image.stem].image.read_bytes()
    assert suffixes["cracks"] == {".webp"} and ".webp" not in suffixes["drywall-join"]


def test_originals_must_name_a_dataset_of_the_pack(carved, tmp_path):
    with pytest.raises(ConfigError, match="--originals walls: no such dataset"):
        write_pack(build_trainset(carved), tmp_path / "pack", image_format="webp", originals=("walls",))
    assert not (tmp_path / "pack").exists()


def test_a_damaged_pack_is_refused_naming_the_file(carved, tmp_path):
    write_pack(build_trainset(carved), tmp_path / "pack")
    image = next((tmp_path / "pack" / "datasets").rglob("*.png"), None) or next((tmp_path / "pack" / "datasets").rglob("*.jpg"))
    image.write_bytes(image.read_bytes()[:-10])
    with pytest.raises(DataError, match=image.name):
        TrainingPack.open(tmp_path / "pack")
    with pytest.raises(ConfigError, match="not a training pack"):
        TrainingPack.open(tmp_path)


def test_a_config_that_carves_differently_is_refused(carved, tmp_path):
    write_pack(build_trainset(carved), tmp_path / "pack")
    pack = TrainingPack.open(tmp_path / "pack")
    other = build_trainset(pack.trainset_config({**carved.to_dict(), "seed": 7}))
    with pytest.raises(ConfigError, match="carves the pack differently"):
        pack.check_split(other)


def test_an_existing_pack_is_kept_unless_overwrite_and_failures_leave_nothing(carved, tmp_path):
    source = build_trainset(carved)
    write_pack(source, tmp_path / "pack")
    with pytest.raises(ConfigError, match="--overwrite"):
        write_pack(source, tmp_path / "pack")
    with pytest.raises(ConfigError, match="over --max-mib"):
        write_pack(source, tmp_path / "small", image_format="original", max_mib=0.01)
    assert not (tmp_path / "small").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["pack"]  # no temporary folder left behind
    write_pack(source, tmp_path / "pack", overwrite=True)


def test_pseudo_mask_targets_are_refused_with_the_fix(carved, tmp_path, sample_data):
    from drywallqa.pseudomask.generate import make_pseudo_masks

    masks = tmp_path / "masks"
    make_pseudo_masks(sample_data.root / "drywall-join", "box", masks, workers=1, progress=False)
    config = carved.with_overrides({"mask_sources": {"taping_area": str(masks)}})
    with pytest.raises(ConfigError, match="pseudo-mask folder"):
        write_pack(build_trainset(config), tmp_path / "pack")


def test_trainset_config_points_into_the_pack(carved, tmp_path):
    write_pack(build_trainset(carved), tmp_path / "pack")
    config = TrainingPack.open(tmp_path / "pack").trainset_config()
    assert isinstance(config, TrainSetConfig) and not config.verify_images
    assert all(str(tmp_path / "pack") in d for d in config.datasets)


def test_synthetic_scenes_travel_in_the_pack_as_train_only_datasets(carved, tmp_path):
    config = carved.with_overrides({"synthetic": {"images": 12, "seed": 5, "size": 64, "cache": str(tmp_path / "cache")}})
    source = build_trainset(config)
    write_pack(source, tmp_path / "pack")  # checks records and targets against the source
    pack = TrainingPack.open(tmp_path / "pack")
    assert {p.name for p in pack.dataset_folders} >= {"synthetic-cracks", "synthetic-drywall-join"}
    rebuilt = build_trainset(pack.trainset_config(config.to_dict()))
    assert {r.split for r in rebuilt.records if r.dataset.startswith("synthetic-")} == {"train"}
