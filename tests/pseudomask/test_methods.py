"""Every registered offline method obeys the contract; the thin-structure methods beat the box."""

from __future__ import annotations

import numpy as np
import pytest
from pseudomask_fixtures import draw_line_image

from drywallqa.data.masks import polygons_to_mask
from drywallqa.errors import ConfigError
from drywallqa.pseudomask import (
    PSEUDO_MASK_METHODS,
    PseudoMaskMethod,
    available_methods,
    box_masks,
    box_window,
    create_method,
    parse_methods,
)
from drywallqa.pseudomask.evaluate import confusion, iou_dice
from drywallqa.pseudomask.ridge import RidgeMethod, minimal_path
from drywallqa.ridges import ridge_response, void_mask

OFFLINE = [name for name, spec in PSEUDO_MASK_METHODS.items() if spec.offline]


def test_registry_lists_every_method() -> None:
    assert available_methods() == ["box", "grabcut", "model", "ridge", "sam"]
    assert set(OFFLINE) == {"box", "grabcut", "ridge"}


def test_unknown_method_lists_the_options() -> None:
    expected = r"unknown pseudo-mask method 'snake'; expected one of: box, grabcut, model, ridge, sam"
    with pytest.raises(ConfigError, match=expected):
        create_method("snake")
    with pytest.raises(ConfigError, match="unknown pseudo-mask method 'snake'"):
        parse_methods("box,snake")


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda: create_method("box", weights="w"), ConfigError),
        (lambda: create_method("grabcut", iterations=0), ValueError),
        (lambda: create_method("ridge", polarity="sideways"), ValueError),
        (lambda: create_method("ridge", sharpness=2), ValueError),
        (lambda: create_method("model"), ConfigError),
        (lambda: parse_methods(""), ConfigError),
    ],
    ids=["weights-for-box", "grabcut-iterations", "ridge-polarity", "ridge-unknown", "model-without-weights", "empty"],
)
def test_bad_arguments_are_rejected(call, error) -> None:
    with pytest.raises(error):
        call()


def test_parse_methods_splits_commas() -> None:
    assert parse_methods("box, grabcut,RIDGE") == ["box", "grabcut", "ridge"]
    assert parse_methods(["box", "ridge"]) == ["box", "ridge"]


@pytest.mark.parametrize("name", OFFLINE)
class TestMethodContract:
    """The contract of every method (one class over every offline registry entry)."""

    def test_one_mask_per_box_confined_to_it(self, name) -> None:
        image, _ = draw_line_image(0)
        boxes = np.array([[20.0, 10.0, 140.0, 150.0], [0.0, 0.0, 12.5, 40.2], [150, 150, 160, 160]])
        masks = create_method(name)(image, boxes, "crack")
        assert masks.shape == (3, 160, 160) and masks.dtype == bool
        assert not (masks & ~box_masks(boxes, 160, 160)).any()
        assert all(m.any() for m in masks)

    def test_no_boxes(self, name) -> None:
        image, _ = draw_line_image(0)
        assert create_method(name)(image, np.zeros((0, 4)), "crack").shape == (0, 160, 160)

    @pytest.mark.parametrize(
        "image, boxes",
        [(np.zeros((8, 8), np.uint8), [[0, 0, 4, 4]]), (np.zeros((8, 8, 3), np.float32), [[0, 0, 4, 4]]),
         (np.zeros((8, 8, 3), np.uint8), [[0, 0, 4]])],
        ids=["grey", "float", "box-of-3"],
    )
    def test_bad_input_names_the_expected_shape(self, name, image, boxes) -> None:
        with pytest.raises(ValueError, match=r"expected|must be"):
            create_method(name)(image, np.array(boxes), "crack")

    def test_flat_image_does_not_crash(self, name) -> None:
        image = np.full((64, 64, 3), 128, np.uint8)
        masks = create_method(name)(image, np.array([[0, 0, 64, 64], [10, 10, 30, 50]]), "taping_area")
        assert masks.shape == (2, 64, 64)


def test_box_method_fills_the_box_window() -> None:
    masks = create_method("box")(np.zeros((10, 10, 3), np.uint8), np.array([[1.5, 2, 4, 9.2]]), "crack")
    assert masks.sum() == 3 * 8 and box_window((1.5, 2, 4, 9.2), 10, 10) == (2, 10, 1, 4)


def _line_ious(method: PseudoMaskMethod, seeds=range(4)) -> list[float]:
    out = []
    for seed in seeds:
        image, polygon = draw_line_image(seed)
        truth = polygons_to_mask([polygon], 160, 160)
        x1, y1 = np.floor(polygon.min(0))
        x2, y2 = np.ceil(polygon.max(0))
        mask = method(image, np.array([[x1, y1, x2, y2]]), "crack")[0]
        out.append(iou_dice(*confusion(mask, truth))[0])
    return out


def test_ridge_beats_the_box_on_thin_lines() -> None:
    box, ridge = _line_ious(create_method("box")), _line_ious(create_method("ridge", width_scale=2.0, width_offset=1.0))
    assert np.mean(ridge) > np.mean(box) + 0.3
    assert min(r - b for r, b in zip(ridge, box)) > 0


def test_ridge_traces_a_bright_band_with_bright_polarity() -> None:
    image, polygon = draw_line_image(1)
    inverted = 255 - image  # a bright band on a dark wall
    method = create_method("ridge", polarity="bright", width_scale=2.0, width_offset=1.0)
    x1, y1 = np.floor(polygon.min(0))
    x2, y2 = np.ceil(polygon.max(0))
    mask = method(inverted, np.array([[x1, y1, x2, y2]]), "crack")[0]
    assert iou_dice(*confusion(mask, polygons_to_mask([polygon], 160, 160)))[0] > 0.4


def test_ridge_per_class_defaults() -> None:
    method = RidgeMethod()
    assert method.params_for("crack").polarity == "dark"
    assert method.params_for("taping_area").straight and method.params_for("taping_area").polarity == "auto"
    assert method.params_for("stain").polarity == "auto"  # any other class
    assert RidgeMethod(polarity="bright").params_for("crack").polarity == "bright"


def test_minimal_path_follows_the_cheap_valley() -> None:
    cost = np.ones((20, 15), np.float32)
    cols = (np.arange(20) * 0.5).astype(int) + 2
    cost[np.arange(20), cols] = 0
    assert (minimal_path(cost, max_step=1) == cols).all()


def test_ridge_response_polarity() -> None:
    gray = np.full((32, 32), 0.8, np.float32)
    gray[:, 15:17] = 0.2
    dark, bright = ridge_response(gray, (1.0, 2.0), "dark"), ridge_response(gray, (1.0, 2.0), "bright")
    assert dark[:, 15:17].mean() > 10 * dark[:, :8].mean() + 1e-6
    assert bright[:, 15:17].max() < dark[:, 15:17].max()


def test_void_mask_ignores_thin_black_lines() -> None:
    image = np.full((60, 60, 3), 150, np.uint8)
    image[5:25, 5:25] = 0  # a cutout square
    image[40, :] = 0  # a one-pixel black crack
    void = void_mask(image)
    assert void[5:25, 5:25].all() and void[2, 2] and not void[40, 40]


@pytest.mark.parametrize("name", ["grabcut", "ridge"])
def test_method_beats_box_on_synthetic_joints(sample_data, name) -> None:
    from drywallqa.pseudomask.evaluate import evaluate_pseudo_masks

    report = evaluate_pseudo_masks(sample_data.drywall_join, ["box", name], workers=1, progress=False)
    # Half the synthetic joints are bare seams, whose tape band is wider than the traced gap, so
    # neither method beats the box on all of them (docs/pseudomasks.md); both must score in (0, 1).
    assert 0 < report.score(name).iou < 1 and report.score(name).scored == report.score("box").scored


def test_ridge_beats_box_on_taped_diagonal_joints() -> None:
    """A diagonal joint's box is mostly wall; ridge follows the compound band inside it."""
    from drywallqa.data.masks import mask_to_box
    from drywallqa.data.synthetic import painting

    method, ridge_ious, box_ious = RidgeMethod(), [], []
    for seed in range(4):
        rng = np.random.default_rng(seed)
        image, grain = painting._render_wall(rng, 256, "board")
        truth = painting._paint_joint(rng, image, grain, "diagonal", painting._compound_colour(rng, image, "board"))
        box = np.asarray([mask_to_box(truth)], dtype=np.float32)
        (ridge,) = method(np.clip(image, 0, 255).astype(np.uint8), box, "taping_area")
        (filled,) = box_masks(box, 256, 256)
        ridge_ious.append(iou_dice(*confusion(ridge, truth))[0])
        box_ious.append(iou_dice(*confusion(filled, truth))[0])
    assert np.mean(ridge_ious) > np.mean(box_ious) + 0.1


def test_grabcut_beats_box_on_synthetic_cracks(sample_data) -> None:
    from drywallqa.pseudomask.evaluate import evaluate_pseudo_masks

    report = evaluate_pseudo_masks(sample_data.cracks, "box,grabcut", workers=1, progress=False)
    assert report.score("grabcut").iou > report.score("box").iou + 0.2
