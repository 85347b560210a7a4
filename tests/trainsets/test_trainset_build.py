"""build_trainset: group split first, no leakage, balancing inside train, negatives, keep_splits."""

from __future__ import annotations

import math
from collections import Counter, defaultdict

import numpy as np
import pytest

from drywallqa.data import AnnotatedDataset, PromptConfig
from drywallqa.data.formats.coco import samples_to_coco, write_coco
from drywallqa.errors import DataError
from drywallqa.trainsets import TrainSetConfig, build_trainset, find_dataset_folders


def splits_per_group(trainset) -> dict[str, set[str]]:
    out = defaultdict(set)
    for r in trainset.records:
        out[r.group_key].add(r.split)
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_no_source_group_or_augmented_copy_crosses_splits(config, seed):
    trainset = build_trainset(config.with_overrides({"seed": seed, "negative_rate": 0.2}))
    assert trainset.check_leakage() == {}
    assert "check: OK" in trainset.check_line()
    # The same, checked directly over the records.
    assert all(len(splits) == 1 for splits in splits_per_group(trainset).values())
    copies = [r for r in trainset.records if r.is_copy]
    assert copies, "the synthetic classes are unbalanced, so balancing must add copies"
    for copy in copies:
        original = trainset.records[copy.augmented_from]
        assert copy.split == original.split == "train"
        assert (copy.group_key, copy.image, copy.class_name) == (original.group_key, original.image, original.class_name)
        assert not original.is_copy and copy.copy_index >= 1
    for negative in (r for r in trainset.records if r.is_negative):
        assert trainset.records[negative.negative_of].split == negative.split
    assert {"train", "valid", "test"} == set(trainset.splits)


def test_every_split_gets_every_class(config):
    trainset = build_trainset(config)
    for split, per_class in trainset.counts().items():
        assert all(c["original"] > 0 for c in per_class.values()), split


def test_check_leakage_catches_a_copy_moved_to_another_split(config):
    trainset = build_trainset(config)
    copy = next(r for r in trainset.records if r.is_copy)
    copy.split = "valid"
    assert copy.group_key in trainset.check_leakage()


@pytest.mark.parametrize("ratio", [1.0, 0.8])
def test_class_ratio_after_balancing_matches_target(config, ratio):
    trainset = build_trainset(config.with_overrides({"balance_ratio": ratio}))
    counts = Counter(r.class_name for r in trainset.split("train") if not r.is_negative)
    largest = max(counts.values())
    for count in counts.values():
        assert count == largest or abs(count - ratio * largest) <= 1
    assert min(counts.values()) < largest or ratio == 1.0
    assert all(r.split == "train" for r in trainset.records if r.is_copy)  # never outside train


def test_no_copies_without_balancing(config):
    trainset = build_trainset(config.with_overrides({"balance_ratio": None}))
    assert not any(r.is_copy for r in trainset.records)


@pytest.mark.parametrize("rate", [0.1, 0.3])
def test_negatives_at_the_configured_rate_with_empty_targets_and_another_prompt(config, rate):
    trainset = build_trainset(config.with_overrides({"negative_rate": rate, "negative_splits": ["train", "valid"]}))
    prompts = PromptConfig.default()
    for split in ("train", "valid"):
        records = trainset.split(split)
        negatives = [r for r in records if r.is_negative]
        assert abs(len(negatives) / len(records) - rate) <= 1 / len(records)
        for r in negatives:
            source = trainset.records[r.negative_of]
            assert r.class_name != source.class_name and r.class_name not in source.sample.classes
            assert r.image == source.image and r.mask_source == "empty"
            assert not trainset.load_target(r).any()
            expected = prompts.resolve(r.class_name)
            assert r.prompts[0] == expected.prompt
    assert not any(r.is_negative for r in trainset.split("test"))
    # Items of the torch dataset: flagged, empty mask, a prompt of the negative's class.
    dataset = trainset.torch_dataset("train", deterministic=True)
    items = [dataset[i] for i in range(len(dataset)) if dataset.records[i].is_negative][:4]
    assert items
    for item in items:
        assert item["is_negative"] and item["mask"].sum() == 0
        record = trainset.records[item["index"]]
        assert item["prompt"] in prompts.resolve(record.class_name).training_prompts
        assert record.class_name not in record.sample.classes


def test_no_negatives_at_rate_zero(config):
    trainset = build_trainset(config.with_overrides({"negative_rate": 0}))
    assert not any(r.is_negative for r in trainset.records)


def test_heldout_paraphrases_never_reach_training_items(config):
    trainset = build_trainset(config.with_overrides({"negative_rate": 0.3}))
    heldout = {p for pc in PromptConfig.default().classes.values() for p in pc.heldout}
    assert heldout
    assert not any(set(r.prompts) & heldout for r in trainset.split("train"))
    dataset = trainset.torch_dataset("train", deterministic=True)
    seen = set()
    for epoch in range(3):
        dataset.set_epoch(epoch)
        seen |= {dataset[i]["prompt"] for i in range(len(dataset))}
    assert len(seen) > 2 and not seen & heldout
    # Evaluation splits keep them, after the canonical prompt.
    valid = trainset.split("valid")[0]
    assert set(valid.prompts[1:]) <= heldout and valid.prompts[1:]
    assert trainset.torch_dataset("valid", prompt_mode="heldout")[0]["prompt"] in heldout
    with pytest.raises(Exception, match="held-out"):
        trainset.torch_dataset("train", prompt_mode="heldout")


def test_keep_splits_reports_the_published_leak_of_drywall_join(config, sample_data):
    trainset = build_trainset(config.with_overrides({"keep_splits": True}))
    shared = {f"drywall-join/{g}" for g in sample_data.shared_joint_groups}
    assert set(trainset.published_leaks) == shared
    assert set(trainset.check_leakage()) == shared
    line = trainset.check_line()
    assert line.startswith("check: LEAK") and "--drop-leaked-from-train" in line
    # Published evaluation splits are kept as they are, under their own names.
    published_valid = AnnotatedDataset.load(sample_data.drywall_join).split("valid")
    kept = {r.image for r in trainset.split("published_valid") if r.dataset == "drywall-join"}
    assert kept == {s.image_path for s in published_valid}
    assert {"train", "valid", "test", "published_valid", "published_test"} == set(trainset.splits)


def test_drop_leaked_from_train_gives_a_clean_set(config, sample_data):
    trainset = build_trainset(config.with_overrides({"keep_splits": True, "drop_leaked_from_train": True}))
    shared = {f"drywall-join/{g}" for g in sample_data.shared_joint_groups}
    assert trainset.check_leakage() == {} and set(trainset.dropped_groups) == shared
    assert trainset.dropped_images > 0
    for r in trainset.records:
        if r.group_key in shared:
            assert r.split == "published_valid"


def test_build_is_seeded(config):
    first = [r.to_dict() for r in build_trainset(config).records]
    assert first == [r.to_dict() for r in build_trainset(config).records]
    other = [r.to_dict() for r in build_trainset(config.with_overrides({"seed": 7})).records]
    assert first != other


def test_joint_targets_from_a_pseudo_mask_dataset(config, sample_data, tmp_path):
    joints = AnnotatedDataset.load(sample_data.drywall_join)
    # A pseudo-mask dataset as `drywallqa masks` writes it: same splits, file names pointing back
    # at the original images, masks as RLE inside each box (here: the left half of each box).
    for split in joints.splits:
        samples = joints.split(split).samples
        masks = {}
        for i, s in enumerate(samples):
            mask = np.zeros((s.height, s.width), dtype=bool)
            for x1, y1, x2, y2 in s.boxes():
                mask[int(y1):int(math.ceil(y2)), int(x1):int((x1 + x2) / 2)] = True
            masks[i] = {"taping_area": mask}
        write_coco(tmp_path / "pm" / split / "_annotations.coco.json", samples_to_coco(samples, tmp_path / "pm" / split, masks))
    trainset = build_trainset(config.with_overrides({"mask_sources.taping_area": str(tmp_path / "pm")}))
    joint_records = [r for r in trainset.records if r.class_name == "taping_area" and r.kind == "positive"]
    assert joint_records and all(r.mask_source == str(tmp_path / "pm") for r in joint_records)
    for r in joint_records[:5]:
        target, box_target = trainset.load_target(r), r.sample.mask("taping_area")
        assert 0 < target.sum() < box_target.sum() and not (target & ~box_target).any()
    cracks = [r for r in trainset.records if r.class_name == "crack" and r.kind == "positive"]
    assert all(r.mask_source == "annotation" for r in cracks)


def test_missing_pseudo_masks_fail_naming_the_fix(config, sample_data, tmp_path):
    joints = AnnotatedDataset.load(sample_data.drywall_join).split("train")
    samples = joints.samples[:2]
    write_coco(tmp_path / "pm" / "train" / "_annotations.coco.json", samples_to_coco(samples, tmp_path / "pm" / "train"))
    with pytest.raises(DataError, match="no pseudo-mask for .* run `drywallqa masks`"):
        build_trainset(config.with_overrides({"mask_sources.taping_area": str(tmp_path / "pm")}))


def test_data_folder_or_root_of_datasets(sample_data, tmp_path):
    assert find_dataset_folders(sample_data.root) == [sample_data.cracks, sample_data.drywall_join]
    assert find_dataset_folders(sample_data.cracks) == [sample_data.cracks]
    with pytest.raises(DataError, match="holds no dataset folders"):
        find_dataset_folders(tmp_path)
    one = build_trainset(TrainSetConfig(datasets=[str(sample_data.cracks)], negative_rate=0))
    assert one.class_names == ("crack",) and not any(r.is_copy for r in one.records)
