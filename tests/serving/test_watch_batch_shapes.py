"""``watch`` sends the model batches of whatever frames are waiting: with padded batch shapes and a
warm-up, a CUDA graph capture or a compilation happens once per padded shape before the first
frame, never per frame (the fp16 runtimes ran 10 frames/s against fp32's 114 on the first GPU call,
paying a capture or cuDNN's kernel choice on almost every new batch size)."""

from __future__ import annotations

import pytest
import torch

from drywallqa.data.sample_video import write_sample_video
from drywallqa.inference import ModelPredictor
from drywallqa.inference.torch_runtime import batch_bucket, batch_buckets
from drywallqa.models import build_model
from drywallqa.serving.video import watch

PROMPTS = ["segment crack", "segment taping area"]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("promptunet", pretrained=False, text_encoder="hashing", image_size=64)


def test_batches_are_padded_to_a_few_shapes():
    assert batch_buckets(8) == [1, 2, 4, 8] and batch_buckets(6) == [1, 2, 4, 6]
    assert [batch_bucket(n, 8) for n in range(1, 9)] == [1, 2, 4, 4, 8, 8, 8, 8]


def test_padding_does_not_change_the_results(model):
    images = torch.randint(0, 256, (3, 64, 64, 3), dtype=torch.uint8).numpy()
    plain = ModelPredictor(model, device="cpu", image_size=64, batch_size=8, pad_batches=False)
    padded = ModelPredictor(model, device="cpu", image_size=64, batch_size=8, pad_batches=True)
    for a, b in zip(plain.forward_batch(images, PROMPTS[:1] * 3), padded.forward_batch(images, PROMPTS[:1] * 3)):
        assert a.shape == b.shape and torch.allclose(torch.from_numpy(a), torch.from_numpy(b), atol=1e-4)


def test_padded_encode_and_decode_give_the_unpadded_results(model):
    images = torch.randint(0, 256, (3, 64, 64, 3), dtype=torch.uint8).numpy()
    plain = ModelPredictor(model, device="cpu", image_size=64, batch_size=8, pad_batches=False)
    padded = ModelPredictor(model, device="cpu", image_size=64, batch_size=8, pad_batches=True)
    prompts, index = PROMPTS * 3, [0, 0, 1, 1, 2, 2]
    for a, b in zip(plain.forward_pairs(images, prompts, index), padded.forward_pairs(images, prompts, index)):
        assert a.shape == b.shape and torch.allclose(torch.from_numpy(a), torch.from_numpy(b), atol=1e-4)


def test_on_a_cpu_pairs_are_decoded_one_a_call_from_their_images_rows_in_place(model, monkeypatch):
    # Two pairs in one decoder call cost more than two calls of one on a CPU (drywallqa bench), and
    # a pair's rows of the features are read in place rather than gathered into a copy.
    images = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8).numpy()
    predictor = ModelPredictor(model, device="cpu", image_size=64, batch_size=8)
    assert predictor.decode_batch_size == 1 and not predictor.pad_batches
    parts = []
    run = predictor._run
    monkeypatch.setattr(predictor, "_run", lambda part, function, inputs: parts.append(part) or run(part, function, inputs))
    prompts, index = PROMPTS * 2, [0, 0, 1, 1]
    logits, confidence = predictor.forward_pairs(images, prompts, index)
    assert parts == ["encode"] + ["decode rows"] * 4
    alone = predictor.forward_batch(images[index], prompts)
    assert torch.allclose(torch.from_numpy(logits), torch.from_numpy(alone[0]), atol=1e-4)
    assert torch.allclose(torch.from_numpy(confidence), torch.from_numpy(alone[1]), atol=1e-4)


def test_watch_captures_each_padded_shape_once_before_the_first_frame(model, tmp_path, monkeypatch):
    predictor = ModelPredictor(model, device="cpu", image_size=64, batch_size=8, pad_batches=True)
    captures, shapes = [], []

    def capture(part, function, inputs):  # what a CUDA graph capture is, counted; replays run eagerly here
        captures.append((part, *(tuple(tensor.shape) for tensor in inputs)))

        def run(*inputs):
            shapes.append(inputs[-2].shape[0] if part == "decode" else inputs[0].shape[0])
            return function(*inputs)

        return run

    monkeypatch.setattr(predictor, "_capture", capture)
    monkeypatch.setattr(predictor, "cuda_graphs", True)
    video = write_sample_video(tmp_path / "wall.mp4", frames=30, size=64, fps=30)
    run = watch(str(video), PROMPTS, tmp_path / "first", predictor, queue_size=6)
    assert run.frames_processed == 30
    buckets = batch_buckets(8)
    parts = [key[0] for key in captures]
    # the warm-up: every shape a watch batch can have, through the whole model, its encoder and decoder
    assert (parts.count("forward"), parts.count("encode"), parts.count("decode")) == (4, 4, 16)
    assert set(shapes) <= set(buckets)
    seen = list(captures)
    watch(str(video), PROMPTS, tmp_path / "second", predictor, queue_size=6)
    assert captures == seen  # 60 frames later: not one more


@pytest.mark.integration  # torch.compile traces the model once per shape: half a minute on a busy 2-core CPU
def test_watch_compiles_each_padded_shape_once(model, tmp_path):
    from torch._dynamo.testing import CompileCounter

    torch._dynamo.reset()
    predictor = ModelPredictor(model, device="cpu", image_size=64, batch_size=4, pad_batches=True)
    counter = CompileCounter()
    predictor._forward = torch.compile(predictor.model, backend=counter, dynamic=False)
    video = write_sample_video(tmp_path / "wall.mp4", frames=12, size=64, fps=30)
    watch(str(video), PROMPTS[:1], tmp_path / "run", predictor, queue_size=4)
    compiled = counter.frame_count
    assert 0 < compiled <= len(batch_buckets(4))
    watch(str(video), PROMPTS[:1], tmp_path / "again", predictor, queue_size=4)
    assert counter.frame_count == compiled
