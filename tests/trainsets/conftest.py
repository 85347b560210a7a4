"""Fixtures of the training-set tests: one small synthetic data root shared by the session."""

from __future__ import annotations

import pytest

from drywallqa.data.synthetic import generate_sample_data
from drywallqa.trainsets import TrainSetConfig


@pytest.fixture(scope="session")
def sample_data(tmp_path_factory):
    """Synthetic cracks (polygons/RLE) + drywall-join (boxes, groups shared by train and valid).

    Fewer cracks than joints, so class balancing has work to do.
    """
    paths = generate_sample_data(tmp_path_factory.mktemp("trainset-data") / "data", images=48, seed=3, size=64, crack_fraction=0.35)
    assert paths.shared_joint_groups, "the synthetic drywall-join must share groups between train and valid"
    return paths


@pytest.fixture
def config(sample_data) -> TrainSetConfig:
    """Defaults on the synthetic root, with a small input size to keep the tests fast."""
    return TrainSetConfig(datasets=[str(sample_data.root)], image_size=32)
