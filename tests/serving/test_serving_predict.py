"""`predict_images` and `drywallqa predict` on synthetic photos with a tiny saved model."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO
from serving_helpers import DarkPixelPredictor, RampPredictor, user_prompts

from drywallqa.cli import main
from drywallqa.errors import ConfigError, DataError
from drywallqa.files import read_json
from drywallqa.serving import predict_images, read_results
from drywallqa.serving.inputs import output_keys, prompt_slugs

PROMPTS = ["segment crack", "segment taping area"]


def test_predict_writes_masks_overlays_tables_and_coco(photo_folder, tmp_path, tiny_predictor):
    out = tmp_path / "out"
    run = predict_images([photo_folder], PROMPTS, out, tiny_predictor, model_id="tiny", mm_per_px=0.5)
    assert (run.images, run.predicted, run.resumed, len(run.issues)) == (4, 8, 0, 0)
    assert len(list((out / "masks").glob("*.png"))) == 8
    assert len(list((out / "overlays").glob("*.jpg"))) == 8

    records, folder = read_results(out)
    assert folder == out and len(records) == 8
    first = records[0]
    assert first["image"].endswith("wall-0.jpg") and first["prompt"] == "segment crack"
    assert first["class"] == "crack" and first["figure_set"] == "crack" and first["model"] == "tiny"
    assert {"area_percent", "components", "confidence", "longest_px", "longest_mm", "width_max_mm"} <= set(first["figures"])
    assert first["verdict"] in {"pass", "fail"}
    mask = np.asarray(Image.open(out / first["mask"]))
    assert mask.shape == (96, 96) and set(np.unique(mask)) <= {0, 255}
    assert first["figures"]["area_px"] == int((mask > 0).sum())
    assert Image.open(out / first["overlay"]).size == (96, 96)

    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8
    assert {"image", "prompt", "verdict", "severity", "area_percent", "longest_mm", "mask", "overlay"} <= set(rows[0])
    assert rows[0]["image"] == first["image"]

    coco = COCO(str(out / "coco.json"))
    assert len(coco.getImgIds()) == 4
    assert {c["name"] for c in coco.loadCats(coco.getCatIds())} == {"crack", "taping_area"}
    for annotation in coco.loadAnns(coco.getAnnIds()):
        component = coco.annToMask(annotation).astype(bool)
        assert component.sum() == annotation["area"] > 0
        assert 0.0 <= annotation["score"] <= 1.0
        image = coco.loadImgs(annotation["image_id"])[0]
        record = next(r for r in records if r["image"].endswith(image["file_name"])
                      and r["prompt"] == annotation["attributes"]["prompt"])
        assert (np.asarray(Image.open(out / record["mask"])) > 0)[component].all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["records"] == 8 and summary["mm_per_px"] == 0.5


def test_rerun_resumes_and_remeasures_with_a_new_scale(photo_folder, tmp_path, tiny_predictor):
    out = tmp_path / "out"
    predict_images([photo_folder], PROMPTS[:1], out, tiny_predictor)
    mask_file = next((out / "masks").glob("*.png"))
    written = mask_file.stat().st_mtime_ns

    class NoCalls:
        name, threshold, tile = tiny_predictor.name, tiny_predictor.threshold, tiny_predictor.tile
        weights_files = tiny_predictor.weights_files

        def predict_batch(self, images, prompts, **kwargs):
            raise AssertionError("a complete output must not be predicted again")

    run = predict_images([photo_folder], PROMPTS[:1], out, NoCalls(), mm_per_px=2.0)
    assert (run.predicted, run.resumed) == (0, 4)
    assert mask_file.stat().st_mtime_ns == written
    assert all("longest_mm" in r["figures"] and r["mm_per_px"] == 2.0 for r in run.records)

    # A missing overlay (an interrupted write) makes only that pair run again.
    next((out / "overlays").glob("*.jpg")).unlink()
    run = predict_images([photo_folder], PROMPTS[:1], out, tiny_predictor)
    assert (run.predicted, run.resumed) == (1, 3)


SETTING_CHANGES = {
    "threshold": lambda p: setattr(p, "threshold", 0.9),
    "tta": lambda p: setattr(p, "views", "hflip"),
    "runtime": lambda p: setattr(p, "name", "promptunet/onnxruntime-cpu"),
    "tile": lambda p: p.set_tile(320),
}


@pytest.mark.parametrize("change", [*SETTING_CHANGES, "prompts", "model"])
def test_rerun_with_other_settings_is_refused_or_overwritten(photo_folder, tiny_model_dir, tmp_path, change):
    from drywallqa.inference import load_predictor

    out = tmp_path / "out"
    predict_images([photo_folder], PROMPTS[:1], out, load_predictor(str(tiny_model_dir), device="cpu"))
    before = {p.name: p.read_bytes() for p in (out / "masks").iterdir()}
    predictor, prompts, model_id = load_predictor(str(tiny_model_dir), device="cpu"), PROMPTS[:1], "default"
    if change in SETTING_CHANGES:
        SETTING_CHANGES[change](predictor)
    elif change == "prompts":
        prompts = PROMPTS
    else:
        model_id = "another-model"
    with pytest.raises(ConfigError, match=f"run.json: this folder holds masks made with other settings \\({change} .*--overwrite"):
        predict_images([photo_folder], prompts, out, predictor, model_id=model_id)
    assert {p.name: p.read_bytes() for p in (out / "masks").iterdir()} == before  # nothing touched
    run = predict_images([photo_folder], prompts, out, predictor, model_id=model_id, overwrite=True)
    assert (run.predicted, run.resumed) == (4 * len(prompts), 0)
    assert read_json(out / "run.json")["prompts"] == prompts
    assert predict_images([photo_folder], prompts, out, predictor, model_id=model_id).resumed == 4 * len(prompts)


def test_a_model_retrained_into_the_same_folder_is_not_taken_for_the_old_one(photo_folder, tiny_model_dir, tmp_path):
    import shutil

    import torch

    from drywallqa.inference import load_model, load_predictor

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    out = tmp_path / "out"
    predict_images([photo_folder], PROMPTS[:1], out, load_predictor(str(folder), device="cpu"), model_id=str(folder))
    retrained = load_model(folder)
    with torch.no_grad():
        next(retrained.parameters()).add_(1.0)
    retrained.save_pretrained(folder)  # same folder, same spec string, other weights
    predictor = load_predictor(str(folder), device="cpu")
    with pytest.raises(ConfigError, match=r"masks made with other settings \(weights '[0-9a-f]{16}' -> '[0-9a-f]{16}'"):
        predict_images([photo_folder], PROMPTS[:1], out, predictor, model_id=str(folder))
    run = predict_images([photo_folder], PROMPTS[:1], out, predictor, model_id=str(folder), overwrite=True)
    assert run.predicted == 4 and read_json(out / "run.json")["weights"] == read_json(out / "summary.json")["weights"]
    assert predict_images([photo_folder], PROMPTS[:1], out, predictor, model_id=str(folder)).resumed == 4


def test_a_corrupt_run_file_is_refused_in_one_line(photo_folder, tmp_path, dark_predictor, capsys):
    out = tmp_path / "out"
    predict_images([photo_folder], PROMPTS[:1], out, dark_predictor)
    for text in ('{"model": "default", "runt', '["not", "a", "run"]'):
        (out / "run.json").write_text(text)
        with pytest.raises(ConfigError, match=r"run\.json: not a run file of drywallqa predict .*--overwrite"):
            predict_images([photo_folder], PROMPTS[:1], out, dark_predictor)
    import drywallqa.cli.predict as cli_predict

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before run.json was checked")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli_predict, "load_model_predictor", no_model)
        assert main(["predict", str(photo_folder), "--prompt", PROMPTS[0], "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not a run file" in err and err.count("\n") == 1
    assert predict_images([photo_folder], PROMPTS[:1], out, dark_predictor, overwrite=True).predicted == 4


def test_run_file_without_masks_does_not_block_a_rerun(photo_folder, tmp_path, dark_predictor):
    out = tmp_path / "out"
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"model": "other", "runtime": "x", "threshold": 0.1, "tta": "none",
                                              "prompts": ["segment crack"]}))
    assert predict_images([photo_folder], PROMPTS[:1], out, dark_predictor).predicted == 4
    assert read_json(out / "run.json")["runtime"] == "dark-pixels"


@pytest.mark.parametrize("where", ["same", "parent", "glob-inside"])
def test_output_folder_must_not_hold_the_inputs(photo_folder, dark_predictor, where):
    inputs, out = {
        "same": ([photo_folder], photo_folder),
        "parent": ([photo_folder / "wall-0.jpg"], photo_folder.parent),
        "glob-inside": ([str(photo_folder / "*.jpg")], photo_folder),
    }[where]
    before = sorted(p.name for p in photo_folder.iterdir())
    with pytest.raises(ConfigError, match="never overwritten"):
        predict_images(inputs, PROMPTS, out, dark_predictor)
    assert sorted(p.name for p in photo_folder.iterdir()) == before


def test_output_folder_inside_an_input_folder_is_fine(photo_folder, dark_predictor):
    run = predict_images([photo_folder], PROMPTS[:1], photo_folder / "results", dark_predictor)
    assert run.images == 4
    assert predict_images([photo_folder], PROMPTS[:1], photo_folder / "results", dark_predictor).resumed == 4


def test_bad_images_are_reported_counted_and_skipped(photo_folder, tmp_path, dark_predictor, capsys):
    (photo_folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (photo_folder / "notes.txt").write_text("ignored: not an image suffix")
    run = predict_images([photo_folder], PROMPTS[:1], tmp_path / "out", dark_predictor)
    assert run.images == 4 and len(run.issues) == 1
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "broken.jpg" in warnings[0]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [s["file"] for s in summary["skipped_images"]] == [str(photo_folder / "broken.jpg")]


def test_inputs_files_globs_and_errors(photo_folder, tmp_path, dark_predictor):
    run = predict_images([photo_folder / "wall-1.jpg", str(photo_folder / "wall-[23].jpg"), photo_folder / "wall-1.jpg"],
                         PROMPTS[:1], tmp_path / "out", dark_predictor)
    assert [r["image"].rsplit("/", 1)[-1] for r in run.records] == ["wall-1.jpg", "wall-2.jpg", "wall-3.jpg"]
    with pytest.raises(DataError, match="no such file"):
        predict_images([tmp_path / "missing.jpg"], PROMPTS, tmp_path / "o2", dark_predictor)
    with pytest.raises(DataError, match="matches no file"):
        predict_images([str(tmp_path / "*.png")], PROMPTS, tmp_path / "o2", dark_predictor)
    with pytest.raises(ConfigError, match="prompt is empty"):
        predict_images([photo_folder], ["  "], tmp_path / "o2", dark_predictor)
    with pytest.raises(ConfigError, match="mm-per-px"):
        predict_images([photo_folder], PROMPTS, tmp_path / "o2", dark_predictor, mm_per_px=-1)


def test_output_names_are_unique(tmp_path):
    a, b = tmp_path / "a" / "wall.jpg", tmp_path / "b" / "wall.jpg"
    keys = output_keys([a, b, tmp_path / "c.png"])
    assert len(set(keys.values())) == 3 and keys[tmp_path / "c.png"] == "c"
    slugs = prompt_slugs(["segment crack", "Segment crack!", "find tape"])
    assert len(set(slugs.values())) == 3 and slugs["find tape"] == "find-tape"


def test_a_photo_named_like_another_photos_hashed_key_keeps_its_own_outputs(tmp_path, dark_predictor):
    from serving_helpers import dark_line_image

    from drywallqa.files import write_image

    a, b = tmp_path / "in" / "a" / "crack.png", tmp_path / "in" / "b" / "crack.png"
    hashed = output_keys([a, b])[a]  # crack-<hash of a's path>
    impostor = tmp_path / "in" / "c" / f"{hashed.upper()}.png"  # alike on a case-insensitive disk too
    assert output_keys([a, b, tmp_path / "d.png"])[tmp_path / "d.png"] == "d"  # ordinary photos keep their stems
    keys = output_keys([a, b, impostor])
    assert len({k.lower() for k in keys.values()}) == 3 and keys[a] == hashed
    for index, path in enumerate((a, b, impostor)):
        write_image(path, dark_line_image(rows=slice(10 + 10 * index, 13 + 10 * index)))
    run = predict_images([a.parent, b.parent, impostor.parent], ["segment crack"], tmp_path / "out", dark_predictor)
    assert len(run.records) == 3 and len({r["mask"].lower() for r in run.records}) == 3
    assert len(list((tmp_path / "out" / "records").glob("*.json"))) == 3
    slugs = prompt_slugs(["segment crack", "Segment crack!"])
    assert len(set(prompt_slugs([*slugs.values(), "segment crack", "Segment crack!"]).values())) == 4


def test_coco_annotations_of_many_specks_never_hold_a_mask_per_speck():
    import tracemalloc

    from drywallqa.data.masks import rle_to_mask
    from drywallqa.inference import Prediction
    from drywallqa.qa import QAFigures, Verdict

    mask = np.zeros((1200, 1600), dtype=bool)
    mask[5:205:2, 7:207:20] = True  # 1000 one-pixel specks and a crack
    mask[600, 100:1500] = True
    prediction = Prediction("wall.jpg", "segment crack", "crack", QAFigures("crack", 0.07, 1400, 1, confidence=0.5),
                            Verdict("fail"), 1600, 1200, mask=mask)
    tracemalloc.start()
    try:
        found = prediction.coco_annotations(min_component_area_px=2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40e6  # one bool mask per speck would be 1.9 GB
    ((annotation, extra),) = found  # the specks are under the area filter
    crack = mask & (np.arange(1200) == 600)[:, None]
    assert extra["area"] == 1400 and np.array_equal(rle_to_mask(annotation.rle, 1200, 1600), crack)


class NaNConfidencePredictor(DarkPixelPredictor):
    """A model whose confidence went NaN (a broken export, say)."""

    def predict_batch(self, images, prompts, *, return_probabilities=False):
        results = super().predict_batch(images, prompts)
        for result in results:
            result.confidence = float("nan")
        return results


def strict_json(text: str):
    """Parse standard JSON only: NaN and Infinity are refused."""
    def refuse(constant):
        raise ValueError(f"not standard JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_scale_far_from_photos_of_walls_is_warned_about_or_refused_and_results_are_standard_json(
        photo_folder, tmp_path, capsys):
    with pytest.raises(ConfigError, match="no photo's scale"):
        predict_images([photo_folder], PROMPTS, tmp_path / "huge", DarkPixelPredictor(), mm_per_px=1e308)
    assert not (tmp_path / "huge").exists()
    run = predict_images([photo_folder], PROMPTS, tmp_path / "tiny", NaNConfidencePredictor(), mm_per_px=0.0006)
    assert "warning: --mm-per-px 0.0006 is outside the scale of photos of walls" in capsys.readouterr().err
    out = run.out
    for line in (out / "results.jsonl").read_text().splitlines():
        assert strict_json(line)["figures"]["confidence"] is None
    for name in ("summary.json", "coco.json", *(f"records/{p.name}" for p in (out / "records").iterdir())):
        strict_json((out / name).read_text())
    predict_images([photo_folder], PROMPTS, tmp_path / "usual", DarkPixelPredictor(), mm_per_px=0.5)
    assert "warning" not in capsys.readouterr().err


def test_watch_checks_the_scale_before_opening_the_source_or_loading_the_model(tmp_path, monkeypatch, capsys):
    import drywallqa.serving.video_source as video_source

    def no_source(*args, **kwargs):
        raise AssertionError("the source was opened before the scale was checked")

    monkeypatch.setattr(video_source, "VideoSource", no_source)
    argv = ["watch", str(tmp_path / "wall.mp4"), "--prompt", "segment crack", "--out", str(tmp_path / "o")]
    assert main([*argv, "--mm-per-px", "1e308"]) == 2
    assert capsys.readouterr().err.startswith("error: --mm-per-px 1e+308 is no photo's scale")
    with pytest.raises(AssertionError, match="source was opened"):
        main([*argv, "--mm-per-px", "0.0006"])
    assert "warning: --mm-per-px 0.0006 is outside the scale" in capsys.readouterr().err


def test_predict_cli(photo_folder, tmp_path, tiny_model_dir, capsys):
    out = tmp_path / "cli-out"
    argv = ["predict", str(photo_folder), "--prompt", "segment crack", "--model", str(tiny_model_dir),
            "--out", str(out), "--mm-per-px", "0.4", "--threshold", "0.6", "--no-progress"]
    assert main(argv) == 0
    assert "4 image(s), 4 mask(s): 4 predicted" in capsys.readouterr().out
    records, _ = read_results(out / "results.jsonl")
    assert {r["threshold"] for r in records} == {0.6} and {r["model"] for r in records} == {str(tiny_model_dir)}
    assert main(argv) == 0
    assert "0 predicted, 4 already done" in capsys.readouterr().out
    assert main(["predict", str(photo_folder), "--prompt", "segment crack", "--model", str(tiny_model_dir),
                 "--out", str(photo_folder), "--no-progress"]) == 2
    assert "never overwritten" in capsys.readouterr().err


@pytest.mark.parametrize("case, pattern", [
    ("missing input", r"^error: \S+missing\.jpg: no such file or folder$"),
    ("empty prompt", r"^error: prompt is empty"),
    ("output folder is the input folder", r"never overwritten$"),
    ("missing QA rules file", r"^error: \S+nope\.yaml"),
    ("absurd scale", r"^error: --mm-per-px 1e\+308 is no photo's scale"),
])
def test_predict_cli_refuses_a_typo_before_loading_the_model(photo_folder, tmp_path, monkeypatch, capsys, case, pattern):
    """Inputs, prompts, output folder and QA files are checked first: a typo costs no model load."""
    import re

    import drywallqa.cli.predict as cli_predict

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(cli_predict, "load_model_predictor", no_model)
    argv = {"images": str(photo_folder), "--prompt": "segment crack", "--out": str(tmp_path / "out")}
    if case == "missing input":
        argv["images"] = str(tmp_path / "missing.jpg")
    elif case == "empty prompt":
        argv["--prompt"] = " "
    elif case == "output folder is the input folder":
        argv["--out"] = str(photo_folder)
    elif case == "absurd scale":
        argv["--mm-per-px"] = "1e308"
    else:
        argv["--qa-rules"] = str(tmp_path / "nope.yaml")
    assert main(["predict", argv.pop("images"), *(x for kv in argv.items() for x in kv), "--no-progress"]) == 2
    assert re.search(pattern, capsys.readouterr().err.strip(), re.M)
    assert not (tmp_path / "out").exists() and not (photo_folder / "run.json").exists()


def test_images_too_small_corrupt_or_of_high_bit_depth(tmp_path, dark_predictor, capsys):
    from serving_helpers import dark_line_image

    photos = tmp_path / "photos"
    photos.mkdir()
    line = dark_line_image()                                                   # a 3 x 80 px dark bar
    Image.fromarray(line[:, :, 0].astype(np.uint16) * 257).save(photos / "grey16.png")
    Image.fromarray(line[:8, :8]).save(photos / "tiny.png")
    noise = np.random.default_rng(0).integers(0, 255, (64, 96, 3), dtype=np.uint8)
    Image.fromarray(noise).save(photos / "scan.jpg", quality=90)
    data = (photos / "scan.jpg").read_bytes()
    (photos / "scan.jpg").write_bytes(data[: len(data) * 2 // 3] + b"\xff\xd9")  # header intact, scan cut
    run = predict_images([photos], PROMPTS[:1], tmp_path / "out", dark_predictor)
    (record,) = run.records
    # PIL alone reads the 16-bit PNG as all white: an empty mask and a PASS. Scaled, the bar is found.
    assert record["image"].endswith("grey16.png") and record["figures"]["area_px"] == 240
    assert record["verdict"] == "fail"
    assert run.issues.counts() == {"unreadable image": 1, "image too small": 1}
    err = capsys.readouterr().err
    assert "skipped" in err and "tiny.png: image too small (image is 8x8 px; drywallqa judges images of at least 32 px" in err
    assert "scan.jpg: unreadable image (corrupt or truncated JPEG data" in err


def test_large_photo_is_decoded_reduced_with_figures_in_file_pixels(tmp_path, dark_predictor):
    from drywallqa.files import PHOTO_MAX_SIDE

    wide = np.full((64, 2 * PHOTO_MAX_SIDE + 8, 3), 200, dtype=np.uint8)
    wide[20:36, 100:8100] = 20                                                    # 8000 x 16 px bar
    Image.fromarray(wide).save(tmp_path / "wide.png")
    run = predict_images([tmp_path / "wide.png"], PROMPTS[:1], tmp_path / "out", dark_predictor, mm_per_px=0.5)
    (record,) = run.records
    mask = np.asarray(Image.open(tmp_path / "out" / record["mask"]))
    assert mask.shape[1] <= PHOTO_MAX_SIDE and (record["image_width"], record["image_height"]) == wide.shape[1::-1]
    figures = record["figures"]
    assert figures["longest_px"] == pytest.approx(8000, rel=0.01) and figures["width_max_px"] == pytest.approx(16, abs=2)
    assert figures["longest_mm"] == pytest.approx(4000, rel=0.01) and figures["area_px"] == pytest.approx(128_000, rel=0.05)
    (annotation,) = json.loads((tmp_path / "out" / "coco.json").read_text())["annotations"]
    assert annotation["bbox"] == pytest.approx([100, 20, 8000, 16], abs=3)       # in the file's pixels
    rerun = predict_images([tmp_path / "wide.png"], PROMPTS[:1], tmp_path / "out", dark_predictor, mm_per_px=0.5)
    assert rerun.resumed == 1 and rerun.records[0]["figures"] == figures


def test_prompt_matching_no_class_is_named_with_the_known_classes(photo_folder, tmp_path, dark_predictor, capsys):
    run = predict_images([photo_folder], ["segment mold", "сегментировать трещину"], tmp_path / "out", dark_predictor)
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2 and all("matches no known class (known: crack, taping_area)" in w for w in warnings)
    assert "'segment mold'" in warnings[0] and "prompts.yaml" in warnings[0] and "--prompts" in warnings[0]
    assert {r["verdict"] for r in run.records} == {"unchecked"}
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["unknown_prompts"] == ["segment mold", "сегментировать трещину"]
    predict_images([photo_folder], ["segment crack"], tmp_path / "out2", dark_predictor)
    assert "warning" not in capsys.readouterr().err


def test_overlays_and_coco_are_optional_and_resume_follows_what_was_asked(photo_folder, tmp_path, dark_predictor):
    out = tmp_path / "out"
    run = predict_images([photo_folder], PROMPTS[:1], out, dark_predictor, overlays=False, coco=False, workers=1)
    assert not (out / "overlays").exists() and not (out / "coco.json").exists() and "coco" not in run.files
    assert {r["overlay"] for r in run.records} == {None} and len(list((out / "masks").iterdir())) == 4
    assert read_json(out / "summary.json")["overlays"] is False
    assert predict_images([photo_folder], PROMPTS[:1], out, dark_predictor, overlays=False).resumed == 4
    # Asking for overlays now predicts the pairs that lack one; a later run without them keeps them.
    run = predict_images([photo_folder], PROMPTS[:1], out, dark_predictor)
    assert (run.predicted, len(list((out / "overlays").iterdir()))) == (4, 4) and (out / "coco.json").is_file()
    run = predict_images([photo_folder], PROMPTS[:1], out, dark_predictor, overlays=False, coco=False)
    assert run.resumed == 4 and all(r["overlay"].startswith("overlays/") for r in run.records)
    assert not (out / "coco.json").exists()  # an old one would describe other results
    with pytest.raises(ConfigError, match="--workers must be at least 1"):
        predict_images([photo_folder], PROMPTS[:1], out, dark_predictor, workers=0)


def test_records_come_in_input_order_whatever_order_the_workers_finish(photo_folder, tmp_path):
    from serving_helpers import DarkPixelPredictor

    class Jittery(DarkPixelPredictor):
        def predict_batch(self, images, prompts, **kwargs):
            import time

            time.sleep(0.01 * (len(images) % 3))
            return super().predict_batch(images, prompts)

    run = predict_images([photo_folder], PROMPTS, tmp_path / "out", Jittery(), workers=3)
    assert [(r["image"].rsplit("/", 1)[-1], r["prompt"]) for r in run.records] == [
        (f"wall-{i}.jpg", p) for i in range(4) for p in PROMPTS]


def test_a_prompt_of_the_users_prompt_file_gets_its_classes_calibrated_threshold(photo_folder, tmp_path):
    predictor = RampPredictor()
    predictor.set_thresholds({"crack": 0.9})  # a calibrated crack threshold; 0.5 for the rest
    run = predict_images([photo_folder / "wall-0.jpg"], ["mark the fissures", "segment crack"], tmp_path / "out",
                         predictor, prompt_config=user_prompts(tmp_path))
    alias, canonical = run.records
    assert alias["class"] == canonical["class"] == "crack"
    assert alias["threshold"] == canonical["threshold"] == 0.9
    assert alias["figures"]["area_px"] == canonical["figures"]["area_px"] < 96 * 96 * 0.15  # cut at 0.9, not 0.5
