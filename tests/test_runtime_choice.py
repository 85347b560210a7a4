"""The default runtime: the fastest one giving the model's own masks, chosen, cached and printed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from drywallqa.cli import main
from drywallqa.errors import ConfigError
from drywallqa.inference import ModelPredictor, load_predictor
from drywallqa.inference.load import _onnx_unavailable, onnx_cache_dir

pytest.importorskip("onnxruntime", reason='needs the export extra: pip install "drywallqa[export]"')


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from drywallqa.models import build_model

    model = build_model("promptunet", pretrained=False, text_encoder="hashing", image_size=64)
    return model.save_pretrained(tmp_path_factory.mktemp("choice-model") / "model")


@pytest.fixture
def photos():
    from drywallqa.export.parity import synthetic_images

    return synthetic_images(4, size=96)


def test_cpu_default_is_onnx_runtime_on_a_cached_export_with_the_models_masks(model_dir, photos):
    lines: list[str] = []
    predictor = load_predictor(str(model_dir), device="cpu", say=lines.append)
    assert predictor.name.endswith("onnxruntime-fp32") and predictor.path.parent == onnx_cache_dir()
    assert lines[-1].startswith(f"runtime: {predictor.name} (fastest on a CPU")
    again: list[str] = []
    load_predictor(str(model_dir), device="cpu", say=again.append)
    assert len(again) == 1 and "exporting" not in again[0]  # the export is made once
    # Idle ONNX Runtime threads sleep: the drivers' decode and write threads need those cores.
    assert predictor.session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"
    one_thread = load_predictor(str(model_dir), device="cpu", intra_op_threads=1, batch_size=4, say=None)
    assert one_thread.session.get_session_options().intra_op_num_threads == 1
    # One image per call on a CPU unless asked (bench: the fp32 graph's best batch there).
    assert (predictor.batch_size, one_thread.batch_size) == (1, 4)

    images, prompts = photos
    reference = load_predictor(str(model_dir), device="cpu", runtime="torch", say=None)
    assert isinstance(reference, ModelPredictor)
    for ours, theirs in zip(predictor.predict_batch(images, prompts), reference.predict_batch(images, prompts)):
        assert np.mean(ours.mask != theirs.mask) < 1e-3 and abs(ours.confidence - theirs.confidence) < 1e-3
    # A prompt outside the export's stored embeddings is embedded by the model's text encoder.
    assert predictor.predict(images[0], "segment mould on the ceiling").mask.shape == images[0].shape[:2]


def test_explicit_runtime_and_pytorch_options(model_dir):
    lines: list[str] = []
    assert isinstance(load_predictor(str(model_dir), device="cpu", runtime="torch", say=lines.append), ModelPredictor)
    assert lines == [f"runtime: {lines[0].split()[1]} (--runtime torch)"]
    onnx = load_predictor(str(model_dir), runtime="onnx", threshold=0.3, say=lines.append)
    assert onnx.threshold == 0.3 and lines[-1].endswith("(--runtime onnx)")
    bf16 = load_predictor(str(model_dir), device="cpu", precision="bf16", say=lines.append)
    assert isinstance(bf16, ModelPredictor) and "PyTorch option(s) precision given" in lines[-1]
    with pytest.raises(ConfigError, match="unknown runtime 'jax'"):
        load_predictor(str(model_dir), runtime="jax")
    with pytest.raises(ConfigError, match="model arguments \\(boxes\\) need --runtime torch"):
        load_predictor(str(model_dir), runtime="onnx", model_args={"boxes": "x"})


def test_unwritable_cache_falls_back_to_pytorch_with_the_reason(model_dir, read_only_dir, monkeypatch):
    monkeypatch.setenv("DRYWALLQA_CACHE", str(read_only_dir / "cache"))
    lines: list[str] = []
    predictor = load_predictor(str(model_dir), device="cpu", say=lines.append)
    assert isinstance(predictor, ModelPredictor)
    assert "ONNX Runtime not used:" in lines[-1] and "DRYWALLQA_CACHE" in lines[-1]


def test_only_folders_of_save_pretrained_are_exported(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "clipseg"}))
    assert "transformers checkpoint runs on PyTorch" in _onnx_unavailable(tmp_path)
    assert "not a model folder" in _onnx_unavailable("clipseg:CIDAS/clipseg-rd64-refined")
    assert _onnx_unavailable(None) is None


def test_cli_prints_the_choice_and_refuses_an_unknown_runtime(model_dir, tmp_path, capsys, photo_folder):
    out = tmp_path / "out"
    assert main(["predict", str(photo_folder), "--prompt", "segment crack", "--model", str(model_dir), "--out", str(out),
                 "--runtime", "torch", "--no-progress"]) == 0
    assert "(--runtime torch)" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", str(photo_folder), "--prompt", "segment crack", "--runtime", "jax"])
    assert exit_info.value.code == 2 and "invalid choice: 'jax'" in capsys.readouterr().err


@pytest.fixture
def photo_folder(tmp_path):
    from drywallqa.data.synthetic import render_sample_image
    from drywallqa.files import write_image

    folder = tmp_path / "photos"
    write_image(folder / "wall.jpg", render_sample_image("cracks", 0, size=96).image)
    return folder
