import numpy as np
import pytest

from drywallqa.data.masks import boxes_to_mask, mask_to_box, mask_to_rle, polygons_to_mask, rle_to_mask


def test_polygon_rasterisation_is_inclusive_and_truncates():
    # A 1-pixel-wide vertical band with fractional vertices: truncation keeps x = 2..3 and the
    # outline counts, so both columns are filled for rows 1..4.
    poly = np.array([[2.9, 1.2], [3.7, 1.2], [3.7, 4.9], [2.9, 4.9]], dtype=np.float32)
    mask = polygons_to_mask([poly], 8, 8)
    assert mask[1:5, 2:4].all()
    assert mask.sum() == 8


def test_rounding_would_differ_from_truncation():
    poly = np.array([[1.6, 1.6], [5.6, 1.6], [5.6, 5.6], [1.6, 5.6]])
    truncated = polygons_to_mask([poly], 10, 10)
    rounded = polygons_to_mask([np.round(poly)], 10, 10)
    assert truncated[1, 1] and not rounded[1, 1]


def test_overlapping_polygons_are_united_not_xored():
    a = np.array([[0, 0], [5, 0], [5, 5], [0, 5]], dtype=np.float32)
    b = a + 2
    mask = polygons_to_mask([a, b], 10, 10)
    assert mask[3, 3]  # inside both


@pytest.mark.parametrize("compressed", [True, False])
def test_rle_round_trip(compressed):
    rng = np.random.default_rng(0)
    mask = rng.random((7, 9)) > 0.5
    rle = mask_to_rle(mask)
    if not compressed:
        # Uncompressed RLE: column-major run lengths starting with background.
        flat = mask.T.reshape(-1)
        counts, current, run = [], False, 0
        for v in flat:
            if v == current:
                run += 1
            else:
                counts.append(run)
                current, run = v, 1
        counts.append(run)
        rle = {"size": [7, 9], "counts": counts}
    assert (rle_to_mask(rle, 7, 9) == mask).all()


def test_boxes_and_tight_box():
    mask = boxes_to_mask(np.array([[1, 2, 4, 5]]), 8, 8)
    assert mask.sum() == 9 and mask[2:5, 1:4].all()
    assert mask_to_box(mask).tolist() == [1, 2, 4, 5]
    assert mask_to_box(np.zeros((3, 3), bool)) is None


def test_component_rle_is_the_rle_of_the_crop_placed_in_the_full_mask():
    from drywallqa.data.masks import component_rle

    rng = np.random.default_rng(0)
    for height, width, x, y, h, w in [(40, 30, 0, 0, 40, 30), (40, 30, 5, 7, 9, 11), (40, 30, 29, 39, 1, 1),
                                      (8, 8, 0, 0, 8, 8)]:
        for density in (0.0, 0.3, 1.0):
            crop = rng.random((h, w)) < density
            full = np.zeros((height, width), dtype=bool)
            full[y : y + h, x : x + w] = crop
            assert component_rle(crop, (height, width), (x, y)) == mask_to_rle(full)
