"""``drywallqa evaluate --splits-from``: reuse a training run's source-group splits."""

import json

from eval_fixtures import synthetic_fixture  # noqa: F401

from drywallqa.trainsets import TrainSetConfig, build_trainset, resplit_like_training


def test_resplit_follows_the_training_set_grouping(synthetic, tmp_path):
    config = TrainSetConfig(datasets=[str(ds.root) for ds in synthetic], keep_splits=True, verify_images=False)
    record = tmp_path / "training.json"
    record.write_text(json.dumps({"trainset_config": config.to_dict()}))
    resplit = resplit_like_training(synthetic, str(tmp_path))
    expected = build_trainset(config).split_of_images()
    for ds in resplit:
        assert ds.samples
        for s in ds.samples:
            assert s.split == expected[s.image_path.resolve()]
    splits = {s.split for ds in resplit for s in ds.samples}
    assert {"train", "valid", "published_valid"} <= splits
    # Held-out groups of the carved test split never appear in train.
    groups = {split: {(s.dataset, s.group) for ds in resplit for s in ds.samples if s.split == split} for split in splits}
    assert not groups.get("test", set()) & groups["train"]
