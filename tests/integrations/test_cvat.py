"""The CVAT auto-annotation function, checked by cvat-sdk's own driver code (no CVAT server):
the label mapping and validation ``annotate_task`` applies, its context, and its mask codec."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from labelling_helpers import DarkBars, bar_photo
from PIL import Image

from drywallqa.errors import ConfigError
from drywallqa.files import list_images, read_image

pytest.importorskip("cvat_sdk", reason='needs cvat-sdk: pip install "drywallqa[cvat]"')
import cvat_sdk.models as models  # noqa: E402
from cvat_sdk.masks import decode_mask  # noqa: E402

from drywallqa.integrations import cvat  # noqa: E402

try:  # annotate_task's own validation and context, private to cvat-sdk: the harness when present
    from cvat_sdk.auto_annotation.driver import _AnnotationMapper, _DetectionFunctionContextImpl
except ImportError:  # pragma: no cover - a cvat-sdk that moved them
    pytest.skip("this cvat-sdk has no auto_annotation.driver._AnnotationMapper", allow_module_level=True)


def context(conf_threshold=None, conv_mask_to_poly=False):
    return _DetectionFunctionContextImpl(frame_name="wall.jpg", conf_threshold=conf_threshold,
                                         conv_mask_to_poly=conv_mask_to_poly)


def task_labels(*names, kind="mask"):
    """A CVAT task's labels, with ids of the task (not the function's)."""
    return [models.Label(name=name, id=100 + i, type=kind, attributes=[], sublabels=[]) for i, name in enumerate(names)]


def remap(function, shapes, labels, *, frame=5, conv_mask_to_poly=False):
    """What annotate_task does with a frame's shapes before uploading them."""
    mapper = _AnnotationMapper(logging.getLogger("test"), function.spec.labels, labels, allow_unmatched_labels=True,
                               conv_mask_to_poly=conv_mask_to_poly)
    tags, remapped = mapper.validate_and_remap(shapes, frame)
    assert tags == []
    return remapped


def test_masks_per_piece_with_the_models_confidence():
    function = cvat.create(labels="Crack, drywall joint")
    function._predictor = DarkBars()
    assert [(label.name, label.id, label.type) for label in function.spec.labels] == [
        ("Crack", 0, "mask"), ("drywall joint", 1, "mask")]
    image = bar_photo()
    shapes = function.detect(context(), Image.fromarray(image))
    labels = task_labels("drywall joint", "Crack")
    remapped = remap(function, shapes, labels)
    by_label = {}
    for shape in remapped:
        assert (shape.type.value, shape.frame, shape.source) == ("mask", 5, "auto")
        by_label.setdefault(shape.label_id, []).append(shape)
    crack, joint = by_label[101], by_label[100]
    assert [s.score for s in crack] == [0.8125] and [s.score for s in joint] == [0.625, 0.625]
    decoded = [decode_mask(s.points, image_width=90, image_height=60) for s in crack]
    np.testing.assert_array_equal(decoded[0], image.mean(axis=2) < 60)
    squares = [decode_mask(s.points, image_width=90, image_height=60) for s in joint]
    assert sorted(int(m.sum()) for m in squares) == [64, 64]  # two pieces, one shape each
    np.testing.assert_array_equal(squares[0] | squares[1], image.mean(axis=2) > 240)


def test_conf_threshold_and_polygons():
    function = cvat.create(labels="crack,taping_area")
    function._predictor = DarkBars()
    image = Image.fromarray(bar_photo())
    kept = function.detect(context(conf_threshold=0.7), image)
    assert {shape.label_id for shape in kept} == {0}  # the taping area's 0.625 is below 0.7
    polygons = function.detect(context(conv_mask_to_poly=True), image)
    remapped = remap(function, polygons, task_labels("crack", "taping_area", kind="polygon"), conv_mask_to_poly=True)
    assert [shape.type.value for shape in remapped] == ["polygon"] * 3
    for shape in remapped:
        assert len(shape.points) >= 6 and len(shape.points) % 2 == 0
    crack = next(s for s in remapped if s.label_id == 100)
    xs, ys = crack.points[0::2], crack.points[1::2]
    assert (min(xs), min(ys), max(xs), max(ys)) == (10, 20, 79, 22)  # the 3 x 70 bar's outline


def test_a_task_label_type_that_does_not_fit_is_refused_by_the_sdk():
    function = cvat.create(labels="crack")
    from cvat_sdk.auto_annotation import BadFunctionError

    with pytest.raises(BadFunctionError, match="'mask' in the function"):
        remap(function, [], task_labels("crack", kind="polygon"))


def test_labels_that_name_no_prompt_class_are_refused_at_once():
    with pytest.raises(ConfigError, match="'Mould' names no prompt class"):
        cvat.create(labels="crack,Mould")
    with pytest.raises(ConfigError, match="no label name"):
        cvat.create(labels=" , ")
    assert cvat.label_prompts(None) == {"crack": "segment crack", "taping_area": "segment taping area"}


def test_module_level_spec_and_detect(monkeypatch):
    assert [label.name for label in cvat.spec.labels] == ["crack", "taping_area"]
    monkeypatch.setattr(cvat._default, "_predictor", DarkBars())
    assert len(cvat.detect(context(), Image.fromarray(bar_photo()))) == 3


def test_cvat_cli_loads_it_with_parameters():
    common = pytest.importorskip("cvat_cli._internal.common", reason="cvat-cli is not installed")
    loader = common.FunctionLoader("drywallqa.integrations.cvat", None, {"labels": "Crack", "threshold": 0.4})
    function = loader.load()
    assert [label.name for label in function.spec.labels] == ["Crack"]
    assert function._options["threshold"] == 0.4


@pytest.fixture(scope="module")
def shipped_function():
    from drywallqa.inference import load_predictor

    return cvat.DrywallQAFunction(load_predictor(runtime="torch", say=None))


def check_against_the_model(function, image: np.ndarray) -> int:
    """Shapes for ``image`` pass the SDK's checks, and cover the model's masks but their noise."""
    import cv2

    shapes = function.detect(context(), Image.fromarray(image))
    remapped = remap(function, shapes, task_labels("crack", "taping_area"))
    assert len(remapped) == len(shapes)
    height, width = image.shape[:2]
    outcomes = function.predictor.predict_batch([image] * 2, ["segment crack", "segment taping area"])
    for label_id, outcome in zip((100, 101), outcomes):
        union = np.zeros((height, width), dtype=bool)
        for shape in (s for s in remapped if s.label_id == label_id):
            piece = decode_mask(shape.points, image_width=width, image_height=height)
            assert not (union & piece).any() and not (piece & ~outcome.mask).any()
            assert shape.score == pytest.approx(outcome.confidence)
            union |= piece
        count, _, stats, _ = cv2.connectedComponentsWithStats((outcome.mask & ~union).astype(np.uint8), connectivity=8)
        assert (stats[1:, cv2.CC_STAT_AREA] < function.min_area_px).all()  # only noise is left out
    return len(remapped)


def test_real_photos(shipped_function, shared_data):
    photos = [list_images(shared_data / name / "train")[0] for name in ("cracks", "drywall-join")]
    assert sum(check_against_the_model(shipped_function, read_image(path)) for path in photos) > 0


def test_sample_data_photos(shipped_function, tmp_path):
    from drywallqa.data import generate_sample_data

    sample = generate_sample_data(tmp_path / "sample", images=8, size=256)
    photos = [list_images(root / "train")[0] for root in sample.dataset_roots]
    assert sum(check_against_the_model(shipped_function, read_image(path)) for path in photos) > 0
