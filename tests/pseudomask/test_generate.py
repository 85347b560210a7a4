"""make_pseudo_masks: layout, round trip through AnnotatedDataset.load, copy-through, resume."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pseudomask_fixtures import snapshot, write_line_dataset

from drywallqa.data import AnnotatedDataset
from drywallqa.errors import ConfigError
from drywallqa.pseudomask import PseudoMaskMethod, box_masks, make_pseudo_masks
from drywallqa.pseudomask.classic import BoxMethod
from drywallqa.pseudomask.generate import MANIFEST_FILE, PNG_CHUNK


class CountingRidge(PseudoMaskMethod):
    """The ridge method, counting the images it was called on (in-process runs only)."""

    name = "ridge"

    def __init__(self, fail_after: int | None = None):
        from drywallqa.pseudomask.ridge import RidgeMethod

        self.inner, self.calls, self.fail_after = RidgeMethod(), 0, fail_after

    def config(self) -> dict:
        return self.inner.config()

    def predict_boxes(self, image, boxes, class_name):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt  # simulate Ctrl-C in the middle of a run
        self.calls += 1
        return self.inner.predict_boxes(image, boxes, class_name)


def _outputs(out: Path) -> dict[str, bytes]:
    return {k: v for k, v in snapshot(out).items() if k != MANIFEST_FILE}


def test_layout_and_round_trip(sample_data, tmp_path) -> None:
    before = snapshot(sample_data.drywall_join)
    out = tmp_path / "out"
    run = make_pseudo_masks(sample_data.drywall_join, "ridge", out, workers=1, progress=False)
    assert snapshot(sample_data.drywall_join) == before  # the input is never modified
    source = AnnotatedDataset.load(sample_data.drywall_join, quiet=True)
    loaded = AnnotatedDataset.load(out, quiet=True)
    assert run.images == len(source) == len(loaded) and run.made == len(source) and run.resumed == 0
    assert loaded.splits == source.splits and not loaded.issues.issues
    assert run.pseudo_annotations == sum(len(s.annotations) for s in source) and run.copied_annotations == 0
    for old, new in zip(source, loaded):
        assert new.image_path.resolve() == old.image_path.resolve()
        assert new.has_true_mask and len(new.annotations) == len(old.annotations)
        png = np.asarray(Image.open(out / old.split / "masks" / f"{old.image_path.stem}.png"))
        assert set(np.unique(png)) <= {0, 255}
        union = np.zeros((new.height, new.width), bool)
        for ann_old, ann_new in zip(old.annotations, new.annotations):
            mask = ann_new.to_mask(new.height, new.width)
            assert mask.any() and not (mask & ~box_masks(np.array([ann_old.box]), new.height, new.width)[0]).any()
            union |= mask
        assert ((png > 0) == union).all()
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert manifest["complete"] and manifest["method"] == "ridge"


def test_true_masks_are_copied_and_background_images_kept(mixed_dataset, tmp_path, load) -> None:
    out = tmp_path / "out"
    run = make_pseudo_masks(mixed_dataset, "box", out, workers=1, progress=False)
    source, loaded = load(mixed_dataset), load(out)
    assert run.copied_annotations == 3 and run.pseudo_annotations == 3 and len(loaded) == 7
    for old, new in zip(source, loaded):
        for a, b in zip(old.annotations, new.annotations):
            if a.has_mask:  # copied unchanged
                assert len(b.polygons) == 1 and np.allclose(a.polygons[0], b.polygons[0])
            else:  # the box method's mask is the filled box
                assert b.rle is not None and b.to_mask(new.height, new.width).sum() == old.box_mask().sum()
    background = out / "train" / "masks" / "empty_jpg.rf.ffffffffffffffffffffffffffffffff.png"
    assert not np.asarray(Image.open(background)).any()
    assert len(list((out / "train" / "masks").glob("*.png"))) == 7


def test_workers_give_the_same_result(sample_data, tmp_path) -> None:
    one = make_pseudo_masks(sample_data.drywall_join, "ridge", tmp_path / "one", workers=1, progress=False)
    two = make_pseudo_masks(sample_data.drywall_join, "ridge", tmp_path / "two", workers=2, progress=False)
    assert one.made == two.made
    assert _outputs(tmp_path / "one").keys() == _outputs(tmp_path / "two").keys()
    for key, data in _outputs(tmp_path / "one").items():
        if key.endswith(".png"):
            assert data == (tmp_path / "two" / key).read_bytes()


def test_resume_redoes_only_missing_images(sample_data, tmp_path) -> None:
    out = tmp_path / "out"
    first = CountingRidge()
    make_pseudo_masks(sample_data.drywall_join, first, out, workers=1, progress=False)
    reference = _outputs(out)
    pngs = sorted((out / "train" / "masks").glob("*.png"))
    boxed = [p for p in pngs if np.asarray(Image.open(p)).any()]
    for p in boxed[:3]:
        p.unlink()  # lost outputs
    (out / "train" / "masks" / ".stale.png.abc123.tmp.png").write_bytes(b"half a png")  # a killed write
    (out / "train" / "_annotations.coco.json").unlink()
    kept = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in pngs if p.exists()}

    again = CountingRidge()
    run = make_pseudo_masks(sample_data.drywall_join, again, out, workers=1, progress=False)
    assert again.calls == 3 and run.made == 3 and run.resumed == len(pngs) + len(list(
        (out / "valid" / "masks").glob("*.png"))) - 3
    assert all((p.stat().st_ino, p.stat().st_mtime_ns) == v for p, v in kept.items())  # untouched
    assert not list(out.rglob(".*.tmp*"))
    assert _outputs(out) == reference  # identical json and PNGs


def test_interrupted_run_leaves_whole_files_and_resumes(sample_data, tmp_path) -> None:
    out, full = tmp_path / "out", tmp_path / "full"
    make_pseudo_masks(sample_data.drywall_join, CountingRidge(), full, workers=1, progress=False)
    with pytest.raises(KeyboardInterrupt):
        make_pseudo_masks(sample_data.drywall_join, CountingRidge(fail_after=4), out, workers=1, progress=False)
    written = list(out.rglob("*.png"))
    assert 0 < len(written) < len(list(full.rglob("*.png")))
    assert not list(out.rglob(".*.tmp*")) and not list(out.rglob("_annotations.coco.json"))
    for png in written:  # every PNG on disk is whole and carries its record
        assert PNG_CHUNK in Image.open(png).info
    assert json.loads((out / MANIFEST_FILE).read_text())["complete"] is False

    resumed = make_pseudo_masks(sample_data.drywall_join, CountingRidge(), out, workers=1, progress=False)
    assert resumed.resumed == len(written)
    assert _outputs(out) == _outputs(full)


def test_png_without_record_is_recovered_from_pixels(line_dataset, tmp_path, load) -> None:
    out = tmp_path / "out"
    box_only = write_line_dataset(tmp_path / "boxes", box_only=True)
    make_pseudo_masks(box_only, "ridge", out, workers=1, progress=False)
    reference = load(out)
    png = min((out / "train" / "masks").glob("*.png"))
    Image.fromarray(np.asarray(Image.open(png))).save(png)  # re-saved by another tool: chunk gone
    run = make_pseudo_masks(box_only, "ridge", out, workers=1, progress=False)
    assert run.recovered == 1 and run.made == 0
    for a, b in zip(reference, load(out)):
        assert (a.mask() == b.mask()).all()


def test_other_method_in_out_needs_no_resume(sample_data, tmp_path) -> None:
    out = tmp_path / "out"
    make_pseudo_masks(sample_data.drywall_join, "box", out, workers=1, progress=False)
    with pytest.raises(ConfigError, match="made with method 'box'.*--no-resume"):
        make_pseudo_masks(sample_data.drywall_join, "ridge", out, workers=1, progress=False)
    run = make_pseudo_masks(sample_data.drywall_join, "ridge", out, workers=1, progress=False, resume=False)
    assert run.made == run.images and json.loads((out / MANIFEST_FILE).read_text())["method"] == "ridge"


@pytest.mark.parametrize("inside", [".", "train", "train/sub"])
def test_out_inside_the_dataset_is_refused(line_dataset, inside) -> None:
    before = snapshot(line_dataset)
    with pytest.raises(ConfigError, match="input is never modified|holds the dataset's images"):
        make_pseudo_masks(line_dataset, "box", line_dataset / inside, workers=1, progress=False)
    assert snapshot(line_dataset) == before


def test_loaded_dataset_and_split_selection(sample_data, tmp_path, load) -> None:
    run = make_pseudo_masks(load(sample_data.drywall_join), BoxMethod(), tmp_path / "o", splits="valid",
                            workers=1, progress=False)
    assert list(run.splits) == ["valid"] and sorted(os.listdir(tmp_path / "o")) == [MANIFEST_FILE, "valid"]
    assert "valid" in str(run) and run.to_dict()["images"] == run.images


def test_written_pseudo_masks_are_marked_and_never_truth(tmp_path):
    """Annotations made by `drywallqa masks` load with is_pseudo, so evaluation ignores them as truth."""
    from drywallqa.data import AnnotatedDataset
    from drywallqa.data.synthetic import generate_sample_data
    from drywallqa.pseudomask import make_pseudo_masks

    data = generate_sample_data(tmp_path / "data", images=12, size=64, seed=2)
    make_pseudo_masks(data.drywall_join, "ridge", tmp_path / "masks", workers=1, progress=False)
    loaded = AnnotatedDataset.load(tmp_path / "masks")
    annotations = [a for s in loaded for a in s.annotations]
    assert annotations and all(a.is_pseudo and a.has_mask for a in annotations)
