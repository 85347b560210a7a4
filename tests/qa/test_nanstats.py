"""The fast nan-median gives numpy's values, bit for bit."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from drywallqa.qa.nanstats import nanmedian


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(50, 1), (50, 7), (40, 16), (3, 700)])  # numpy: masked arrays below 600, a loop above
@pytest.mark.parametrize("axis", [0, 1])
def test_nanmedian_equals_numpy(dtype, shape, axis):
    rng = np.random.default_rng(0)
    values = rng.normal(100, 30, shape).astype(dtype)
    values[rng.random(shape) < 0.3] = np.nan
    values[0] = np.nan  # an all-NaN row (and NaN in every column)
    values[:, 0] = np.nan
    values[1] = 7.0  # ties
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows
        expected = np.nanmedian(values, axis=axis)
    got = nanmedian(values, axis=axis)
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


def test_nanmedian_edge_cases():
    assert np.isnan(nanmedian(np.zeros((3, 0)), axis=1)).all()
    np.testing.assert_array_equal(nanmedian(np.array([[np.inf, 1.0, np.nan]]), axis=1), [np.inf])
    with pytest.raises(ValueError, match="2-D"):
        nanmedian(np.zeros(4), axis=0)
