"""drywallqa.ridges: the running maximum and the component statistics give what they replace; the
reduced large scales stay close to the full-size ones."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from drywallqa.ridges import component_stats, fill_void, ridge_response, ridge_responses


def _wall(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    gray = cv2.GaussianBlur(rng.random((180, 260), dtype=np.float32), (0, 0), 2.0) * 0.2 + 0.5
    gray[:, 120:150] += 0.2  # a bright band
    gray[60:62, :] -= 0.2  # a dark seam
    return gray


@pytest.mark.parametrize("polarity", ["dark", "bright"])
def test_ridge_response_is_the_maximum_of_the_scales(polarity):
    gray, sigmas = _wall(), (1.0, 2.0, 6.0, 16.0)
    np.testing.assert_array_equal(ridge_response(gray, sigmas, polarity), ridge_responses(gray, sigmas, polarity).max(axis=0))


def test_ridge_response_reduced_scales_stay_close():
    gray, sigmas = _wall(), (2.0, 6.0, 12.0, 24.0)
    full = ridge_response(gray, sigmas, "bright")
    reduced = ridge_response(gray, sigmas, "bright", reduced_sigma=3.0)
    assert reduced.shape == full.shape and reduced.dtype == np.float32
    # Away from the frame (where the reduced copy reflects differently), within several % of the peak.
    inner = (slice(40, -40), slice(40, -40))
    error = np.abs(reduced - full)[inner]
    assert np.percentile(error, 99) < 0.08 * full.max() and error.max() < 0.15 * full.max()
    assert np.unravel_index(np.argmax(reduced[inner]), full[inner].shape)[1] in range(120 - 40, 150 - 40)


def test_ridge_response_needs_a_scale():
    with pytest.raises(ValueError):
        ridge_response(_wall(), (), "dark")


def test_fill_void_reduced_stays_close():
    gray = _wall()
    void = np.zeros(gray.shape, bool)
    void[:40, :50] = True
    full, reduced = fill_void(gray, void), fill_void(gray, void, reduced_sigma=3.0)
    np.testing.assert_array_equal(full[~void], gray[~void])
    np.testing.assert_array_equal(reduced[~void], gray[~void])
    assert np.abs(full - reduced).max() < 0.02


@pytest.mark.parametrize("connectivity", [4, 8])
@pytest.mark.parametrize("share", [0.05, 0.5, 0.8])  # few components, and more than the per-box count takes
def test_component_stats_as_opencv(connectivity, share):
    rng = np.random.default_rng(1)
    mask = (rng.random((120, 90)) < share).astype(np.uint8)
    mask[10:40, 20:70] = 1
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=connectivity)
    ours = np.stack(component_stats(labels, n), axis=1)
    np.testing.assert_array_equal(ours[1:], stats[1:])
    assert ours[0, 4] == stats[0, cv2.CC_STAT_AREA]
