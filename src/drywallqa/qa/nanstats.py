"""A median that ignores NaN, exactly as :func:`numpy.nanmedian` gives it, at a fraction of its cost.

NumPy's ``nanmedian`` goes through masked arrays for short rows (or a Python-level loop over
``apply_along_axis`` for long ones), which costs far more than the sort itself for the many short
rows of the QA figures' profiles (the wall samples beside each crack profile, the samples along a
joint). Here every row is sorted once (NaN sorts last) and the middle of its finite part read:
the same values, bit for bit, as ``np.nanmedian`` (the middle two averaged as ``(a + b) / 2`` in
the array's dtype), NaN for a row without a number, and no warning.
"""

from __future__ import annotations

import numpy as np


def nanmedian(values: np.ndarray, axis: int) -> np.ndarray:
    """The median along ``axis`` of a 2-D float array, NaN ignored (NaN where a line is all NaN).

    Args:
        values: ``(N, M)`` float array.
        axis: 0 (the median of each column) or 1 (of each row).

    Returns:
        ``(M,)`` or ``(N,)`` array of ``values``' dtype.

    Example:
        >>> nanmedian(np.array([[1.0, np.nan, 3.0, 4.0], [np.nan] * 4, [2.0, 1.0, np.nan, np.nan]]), axis=1)
        array([3. , nan, 1.5])
    """
    values = np.asarray(values)
    if values.ndim != 2 or axis not in (0, 1):
        raise ValueError(f"expected a 2-D array and axis 0 or 1, got shape {values.shape} and axis {axis}")
    rows = values.T if axis == 0 else values
    length = rows.shape[1]
    if length == 0:
        return np.full(rows.shape[0], np.nan, dtype=values.dtype)
    ordered = np.sort(rows, axis=1)  # NaN last
    count = length - np.count_nonzero(np.isnan(rows), axis=1)
    high = count // 2
    low = np.where(count % 2 == 1, high, high - 1)
    index = np.arange(rows.shape[0])
    middle: np.ndarray = (ordered[index, np.clip(low, 0, length - 1)] + ordered[index, np.clip(high, 0, length - 1)]) / 2
    middle[count == 0] = np.nan
    return middle
