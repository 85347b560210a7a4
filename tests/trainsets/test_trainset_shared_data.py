"""On the real datasets (skipped when ../shared/data is absent): no leakage, balanced train."""

import pytest

from drywallqa.cli import main
from drywallqa.trainsets import TrainSetConfig, build_trainset


@pytest.mark.shared_data
def test_grouped_build_on_shared_data_has_no_leakage_and_balanced_train(shared_data, capsys):
    trainset = build_trainset(TrainSetConfig(datasets=[str(shared_data)], verify_images=False))
    assert trainset.check_leakage() == {}
    assert abs(trainset.class_ratio("train") - 1.0) < 0.01
    # No augmented copy sits in another split than its original.
    split_of_image = {(r.image, r.split) for r in trainset.records if not r.is_copy}
    for r in trainset.records:
        if r.is_copy:
            assert (r.image, r.split) in split_of_image
    assert main(["trainset", "build", "--data", str(shared_data), "--no-verify-images"]) == 0
    assert "check: OK" in capsys.readouterr().out


@pytest.mark.shared_data
def test_keep_splits_on_shared_data_reports_the_published_leak(shared_data):
    trainset = build_trainset(TrainSetConfig(datasets=[str(shared_data)], keep_splits=True, verify_images=False))
    leaks = trainset.published_leaks
    assert sum(k.startswith("drywall-join/") for k in leaks) > 50
    assert trainset.check_line().startswith("check: LEAK")
    clean = build_trainset(TrainSetConfig(datasets=[str(shared_data)], keep_splits=True, drop_leaked_from_train=True, verify_images=False))
    assert clean.check_leakage() == {}
