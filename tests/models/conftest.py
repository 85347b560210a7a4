"""Fixtures of the classic-architecture tests: a tiny random hub checkpoint and sample data.

A test module names what it needs in module constants, so each keeps its own data seed:
``CHECKPOINT = "clipseg"`` (or ``"sam"``, ``"sam3"``) and ``SAMPLE = (images, seed)``.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def weights(request, tmp_path_factory) -> str:
    """A tiny randomly initialised transformers checkpoint of the module's ``CHECKPOINT`` kind."""
    from tiny_checkpoints import save_tiny_checkpoint

    kind = request.module.CHECKPOINT
    return str(save_tiny_checkpoint(kind, tmp_path_factory.mktemp("weights") / kind))


@pytest.fixture(scope="module")
def sample(request, tmp_path_factory):
    """Synthetic sample datasets of 64 px photos, ``SAMPLE = (images, seed)`` of the module."""
    from drywallqa.data.synthetic import generate_sample_data

    images, seed = request.module.SAMPLE
    return generate_sample_data(tmp_path_factory.mktemp("data") / "sample", images=images, size=64, seed=seed)
