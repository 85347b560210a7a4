"""Every installed runtime behind the one Predictor interface gives the same masks.

Tolerances (masks compared with pooled IoU at a threshold splitting the reference in half):

- fp32 runtimes (PyTorch NCHW and channels_last, ONNX Runtime): IoU >= 0.999 and probabilities
  within 1e-5 of :class:`~drywallqa.inference.ModelPredictor`;
- bf16 autocast and int8: IoU >= 0.5 and probabilities within 2e-3. The random weights keep all
  logits within ~1e-3 of each other, so their rounding noise flips many pixels of a median split,
  and how many depends on the CPU's kernels (int8 with or without VNNI, bf16 native or emulated):
  int8 median splits measured 0.73 on an AVX2-only AMD EPYC and 0.93 with AVX-512 VNNI. Two
  unrelated median splits agree at IoU ~1/3 and a sign flip at ~0, so 0.5 catches a broken
  runtime on any x86-64 CPU; it is not a quality measure of a trained model.
"""

from __future__ import annotations

import numpy as np
import pytest

from drywallqa.errors import ConfigError
from drywallqa.evaluation.metrics import get_stats, iou_score
from drywallqa.inference import (
    ModelPredictor,
    OnnxPredictor,
    SegmentationResult,
    TensorRTPredictor,
    TensorRTUnavailable,
    build_tensorrt_engine,
    load_predictor,
    tensorrt_available,
)
from drywallqa.inference.graph_io import split_graph_paths

for _module in ("onnx", "onnxruntime"):
    pytest.importorskip(_module, reason='needs the export extra: pip install "drywallqa[export]"')

EXACT = {"min_iou": 0.999, "max_probability_diff": 1e-5}
ROUNDED = {"min_iou": 0.5, "max_probability_diff": 2e-3}


def median_threshold(results: list[SegmentationResult]) -> float:
    return float(np.median(np.concatenate([r.probabilities.ravel() for r in results])))


def pooled_iou(results: list[SegmentationResult], reference: list[SegmentationResult]) -> float:
    def flat(rs: list[SegmentationResult]) -> np.ndarray:
        return np.concatenate([r.mask.ravel() for r in rs])[None]

    return float(iou_score(*get_stats(flat(results), flat(reference)), reduction="pooled"))


RUNTIMES = {
    "torch-fp32": (lambda model, exported, t: ModelPredictor(model, device="cpu", threshold=t, channels_last=False), EXACT),
    "torch-fp32-channels-last": (lambda model, exported, t: ModelPredictor(model, device="cpu", threshold=t), EXACT),
    "torch-bf16-channels-last": (
        lambda model, exported, t: ModelPredictor(model, device="cpu", threshold=t, precision="bf16"), ROUNDED
    ),
    "onnxruntime-fp32": (lambda model, exported, t: OnnxPredictor(exported.onnx_path, threshold=t), EXACT),
    "onnxruntime-int8": (lambda model, exported, t: OnnxPredictor(exported.int8_path, threshold=t), ROUNDED),
}


@pytest.mark.parametrize("runtime", list(RUNTIMES))
def test_runtime_masks_match_model_predictor(runtime, tiny_model, exported, photos) -> None:
    images, prompts = photos
    first = ModelPredictor(tiny_model, device="cpu").predict_batch(images, prompts, return_probabilities=True)
    threshold = median_threshold(first)
    reference = ModelPredictor(tiny_model, device="cpu", threshold=threshold).predict_batch(
        images, prompts, return_probabilities=True
    )
    build, tolerance = RUNTIMES[runtime]
    predictor = build(tiny_model, exported, threshold)
    results = predictor.predict_batch(images, prompts, return_probabilities=True)

    assert [r.mask.shape for r in results] == [im.shape[:2] for im in images]
    assert 0.2 < np.mean([r.coverage for r in reference]) < 0.8  # the split is informative
    iou = pooled_iou(results, reference)
    probability_diff = max(np.abs(r.probabilities - ref.probabilities).max() for r, ref in zip(results, reference))
    print(f"{runtime}: IoU {iou:.5f}, max probability diff {probability_diff:.2e}")
    assert iou >= tolerance["min_iou"]
    assert probability_diff <= tolerance["max_probability_diff"]
    for result, ref in zip(results, reference):
        assert result.prompt == ref.prompt and abs(result.confidence - ref.confidence) < 2e-3


TWO_PROMPT_RUNTIMES = {
    "torch-fp32": lambda model, exported: ModelPredictor(model, device="cpu", channels_last=False),
    "torch-fp32-channels-last": lambda model, exported: ModelPredictor(model, device="cpu"),
    "onnxruntime-fp32": lambda model, exported: OnnxPredictor(exported.onnx_path),
    "onnxruntime-fp32-batch-4": lambda model, exported: OnnxPredictor(exported.onnx_path, batch_size=4),
}


@pytest.mark.parametrize("runtime", list(TWO_PROMPT_RUNTIMES))
def test_two_prompts_on_a_photo_give_each_prompts_own_masks(runtime, conditioned_model, exported_conditioned,
                                                            photos) -> None:
    """One encoding per photo, decoded per prompt: the masks of each prompt run alone (the parity rule),
    on a model whose prompts lead to different masks."""
    images, _ = photos
    prompts = ["segment crack", "segment taping area"]
    predictor = TWO_PROMPT_RUNTIMES[runtime](conditioned_model, exported_conditioned)
    alone = [[predictor.predict(image, prompt, return_probabilities=True) for prompt in prompts] for image in images]
    threshold = median_threshold([r for own in alone for r in own])
    predictor.threshold = threshold
    alone = [[predictor.predict(image, prompt, return_probabilities=True) for prompt in prompts] for image in images]
    together = predictor.predict_many(images, prompts, return_probabilities=True)
    reference = ModelPredictor(conditioned_model, device="cpu", threshold=threshold, channels_last=False)
    for own, lone, image in zip(together, alone, images):
        assert [r.prompt for r in own] == prompts and own[0].mask.shape == image.shape[:2]
        assert (own[0].mask != own[1].mask).any()  # the prompts differ
        for result, single in zip(own, lone):
            assert pooled_iou([result], [single]) >= EXACT["min_iou"]
            assert np.abs(result.probabilities - single.probabilities).max() <= EXACT["max_probability_diff"]
            assert abs(result.confidence - single.confidence) < 1e-5
    flat = [r for own in together for r in own]
    expected = reference.predict_batch([image for image in images for _ in prompts], prompts * len(images),
                                       return_probabilities=True)
    assert pooled_iou(flat, expected) >= EXACT["min_iou"]


def test_onnx_predictor_runs_an_export_without_encoder_and_decoder_graphs(exported, tmp_path, photos) -> None:
    """A graph exported before the split: every (photo, prompt) pair runs the whole graph."""
    import shutil

    old = tmp_path / "old.onnx"
    shutil.copyfile(exported.onnx_path, old)
    legacy, split = OnnxPredictor(old, prompts=exported.prompts_path), OnnxPredictor(exported.onnx_path)
    assert not legacy.split and split.split and "encoder_decoder=True" in repr(split)
    images, _ = photos
    prompts = ["segment crack", "segment taping area"]
    for ours, theirs in zip(legacy.predict_many(images, prompts, return_probabilities=True),
                            split.predict_many(images, prompts, return_probabilities=True)):
        for a, b in zip(ours, theirs):
            assert np.abs(a.probabilities - b.probabilities).max() <= EXACT["max_probability_diff"]


def test_the_onnx_cache_is_keyed_by_the_graph_layout(model_dir, tmp_path, monkeypatch) -> None:
    """A cache made by an export of another layout (a single graph) is not reused: it is exported again."""
    from drywallqa.inference import load

    current = load._cached_onnx_export(model_dir, tmp_path, None, say=lambda line: None)
    assert current.is_file() and all(p.is_file() for p in split_graph_paths(current))
    monkeypatch.setattr(load, "GRAPH_LAYOUT", 1)
    lines: list[str] = []
    older = load._cached_onnx_export(model_dir, tmp_path, None, say=lines.append)
    assert older != current and any("exporting" in line for line in lines)


def test_predict_without_probabilities(exported, photos) -> None:
    images, prompts = photos
    result = OnnxPredictor(exported.onnx_path).predict(images[1], prompts[1])
    assert result.probabilities is None and result.mask.shape == images[1].shape[:2]


def test_onnx_predictor_unknown_prompt_names_the_known_ones(exported, photos) -> None:
    predictor = OnnxPredictor(exported.onnx_path)
    with pytest.raises(ConfigError, match=r"'segment mould'.*'segment crack'.*embed_unknown_prompts=True"):
        predictor.predict(photos[0][0], "segment mould")


def test_onnx_predictor_can_embed_unknown_prompts(exported, tiny_model, photos) -> None:
    image = photos[0][0]
    predictor = OnnxPredictor(exported.onnx_path, embed_unknown_prompts=True)
    result = predictor.predict(image, "segment mould", return_probabilities=True)
    reference = ModelPredictor(tiny_model, device="cpu").predict(image, "segment mould", return_probabilities=True)
    np.testing.assert_allclose(result.probabilities, reference.probabilities, atol=1e-5)
    assert "segment mould" in predictor.prompt_embeddings


def test_onnx_predictor_needs_its_prompt_file(exported, tmp_path) -> None:
    lonely = tmp_path / "lonely.onnx"
    lonely.write_bytes(exported.onnx_path.read_bytes())
    with pytest.raises(Exception, match="prompt embeddings .* not found"):
        OnnxPredictor(lonely, prompts=tmp_path / "missing.prompts.json")


def test_load_predictor_picks_the_runtime_from_the_spec(exported, model_dir) -> None:
    assert isinstance(load_predictor(str(exported.onnx_path), say=None), OnnxPredictor)
    assert isinstance(load_predictor(exported.int8_path, say=None), OnnxPredictor)
    torch_predictor = load_predictor(model_dir, device="cpu", precision="bf16", say=None)
    assert isinstance(torch_predictor, ModelPredictor) and torch_predictor.precision == "bf16"


@pytest.mark.parametrize(
    "spec, runtime, options, message",
    [
        ("engine", "onnx", {}, "needs an .onnx file.*drywallqa export"),
        ("plain_dir", "onnx", {}, "--runtime onnx cannot run this model: .* is not a model folder of save_pretrained"),
        ("onnx", "torch", {}, "needs a model folder"),
        ("onnx", "openvino", {}, "unknown runtime 'openvino'; expected one of: auto, torch, onnx, tensorrt"),
        ("onnx", "auto", {"precision": "bf16"}, "does not take option.*precision.*it takes: prompts, threshold"),
        ("model_dir", "onnx", {"precision": "bf16"}, "runtime 'onnx' does not take option.*precision"),
        ("model_dir", "torch", {"providers": ["CPUExecutionProvider"]}, "runtime 'torch' does not take option.*providers"),
        ("model_dir", "torch", {"device": "cpu", "precision": "fp16"}, "fp16 autocast needs a CUDA device"),
        ("model_dir", "torch", {"device": "cpu", "cuda_graphs": True}, "cuda_graphs needs a CUDA device"),
        ("model_dir", "torch", {"device": "cpu", "precision": "int4"}, "precision must be one of"),
        ("onnx", "auto", {"threshold": 1.0}, "strictly between 0 and 1"),
        ("onnx", "auto", {"device": "tpu"}, "device must be 'cpu' or 'cuda' for ONNX Runtime"),
    ],
)
def test_load_predictor_errors(spec, runtime, options, message, exported, model_dir, tmp_path) -> None:
    path = {"model_dir": model_dir, "onnx": exported.onnx_path, "engine": tmp_path / "model.plan", "plain_dir": tmp_path}[spec]
    with pytest.raises(ConfigError, match=message):
        load_predictor(path, runtime=runtime, say=None, cache_dir=tmp_path / "cache", **options)


def test_onnx_predictor_device_picks_providers(exported) -> None:
    assert OnnxPredictor(exported.onnx_path, device="cpu").providers == ["CPUExecutionProvider"]


def test_load_predictor_reports_a_missing_model_folder(tmp_path) -> None:
    with pytest.raises(Exception, match="no such model folder"):
        load_predictor(tmp_path / "nope", runtime="torch", say=None)


def test_mismatched_images_and_prompts(exported, photos) -> None:
    with pytest.raises(ConfigError, match="got 2 images but 1 prompts"):
        OnnxPredictor(exported.onnx_path).predict_batch(photos[0][:2], photos[1][:1])


@pytest.mark.skipif(tensorrt_available(), reason="TensorRT is installed here")
def test_tensorrt_absent_gives_install_hint_and_trtexec_command(exported) -> None:
    for attempt in (
        lambda: build_tensorrt_engine(exported.onnx_path),
        lambda: TensorRTPredictor(exported.onnx_path),
        lambda: load_predictor(exported.onnx_path, runtime="tensorrt", say=None),
    ):
        with pytest.raises(TensorRTUnavailable) as error:
            attempt()
        message = str(error.value)
        assert "pip install tensorrt" in message
        assert f"trtexec --onnx={exported.onnx_path}" in message
        assert "--fp16" in message and "images:1x3x64x64,prompt_embeddings:1x384" in message


def test_tensorrt_profiles_cover_every_input_of_each_graph(exported) -> None:
    """The engines' optimisation profiles (no TensorRT needed to check them): each graph's inputs at the input size."""
    from drywallqa.inference.tensorrt_runtime import _row_shapes

    encoder, decoder = split_graph_paths(exported.onnx_path)
    assert _row_shapes(exported.onnx_path, 128, 384) == {"images": (3, 128, 128), "prompt_embeddings": (384,)}
    assert _row_shapes(encoder, 128, 384) == {"images": (3, 128, 128)}
    assert _row_shapes(decoder, 128, 384) == {
        "features.0": (320, 4, 4), "features.1": (96, 8, 8), "features.2": (64, 16, 16), "features.3": (48, 32, 32),
        "features.4": (32, 64, 64), "prompt_embeddings": (384,)}
