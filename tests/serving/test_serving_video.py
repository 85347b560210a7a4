"""``drywallqa watch``: a short synthetic video through the reader -> model -> writer pipeline."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from drywallqa.cli import main
from drywallqa.data.sample_video import sample_frames, write_sample_video
from drywallqa.errors import ConfigError
from drywallqa.inference import BatchedPredictor
from drywallqa.serving import inspect_mask
from drywallqa.serving.video import watch
from drywallqa.serving.video_frames import FailureEvents, TemporalSmoother


class DarkLogitPredictor(BatchedPredictor):
    """A model-free batched runtime: logits are high where the model input is dark; optionally slow."""

    name = "dark-logits"
    image_size = 32
    batch_size = 4

    def __init__(self, delay_s: float = 0.0):
        self.delay_s = delay_s
        self.calls = 0

    def forward_batch(self, images, prompts):
        self.calls += 1
        time.sleep(self.delay_s)
        logits = (100.0 - images.astype(np.float32).mean(axis=3)) / 10.0
        return logits, np.zeros(len(images), np.float32)


def frame_count(path) -> int:
    import cv2

    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


def read_lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def wall_video(tmp_path):
    return write_sample_video(tmp_path / "wall.mp4", frames=24, size=64, fps=24)


def test_watch_cli_writes_annotated_video_frame_lines_and_events(wall_video, tiny_model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DRYWALLQA_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "watch"
    args = ["watch", str(wall_video), "--prompt", "segment crack", "--prompt", "segment taping area",
            "--model", str(tiny_model_dir), "--out", str(out), "--fail-frames", "3", "--threshold", "0.2"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    # The fastest runtime on a CPU: the model exported once to ONNX Runtime (cached).
    assert "runtime: promptunet/onnxruntime-fp32" in printed and list((tmp_path / "cache").rglob("*.onnx"))
    assert "24 frame(s) read, 24 segmented, 0 dropped" in printed and "frames/s" in printed
    lines = read_lines(out / "frames.jsonl")
    assert [line["frame"] for line in lines] == list(range(24))
    first = lines[0]["masks"]
    assert [m["prompt"] for m in first] == ["segment crack", "segment taping area"]
    assert {"verdict", "figures", "reasons"} <= set(first[0]) and 0 <= first[0]["figures"]["confidence"] <= 1
    assert frame_count(out / "annotated.mp4") == 24
    summary = json.loads((out / "watch.json").read_text())
    assert summary["frames_processed"] == 24 and summary["frames_dropped"] == 0 and summary["processing_fps"] > 0
    # A random model at a low threshold fails the crack rules on every frame: one event, opened and closed.
    events = read_lines(out / "events.jsonl")
    crack = [e for e in events if e["prompt"] == "segment crack"]
    assert [e["event"] for e in crack] == ["fail", "clear"] and crack[0]["confirmed_at_frame"] == 2
    assert "FAIL 'segment crack' from frame 0" in printed


def test_live_source_counts_and_lists_every_dropped_frame(wall_video, tmp_path):
    # A model slower than the video's 24 frames/s, with the file replayed as a camera delivers it.
    slow = DarkLogitPredictor(delay_s=0.15)
    run = watch(str(wall_video), ["segment crack"], tmp_path / "live", slow, live=True, queue_size=2)
    assert run.frames_read == 24 and run.frames_dropped > 0 and not run.keeps_up
    assert run.frames_processed + run.frames_dropped == 24
    dropped = {i for first, last in run.dropped_ranges for i in range(first, last + 1)}
    assert len(dropped) == run.frames_dropped
    lines = read_lines(tmp_path / "live" / "frames.jsonl")
    assert [line["frame"] for line in lines] == list(range(24))  # nothing silently lost
    assert {line["frame"] for line in lines if line.get("dropped")} == dropped
    assert frame_count(tmp_path / "live" / "annotated.mp4") == 24  # dropped frames repeat the last one
    assert "did not keep up: dropped" in run.speed_line()
    # Read as a file (not live), the same slow model drops nothing: the reader waits.
    run = watch(str(wall_video), ["segment crack"], tmp_path / "file", slow, max_frames=6, queue_size=2)
    assert (run.frames_read, run.frames_processed, run.frames_dropped) == (6, 6, 0)


def test_ctrl_c_ends_the_run_with_complete_outputs(wall_video, tmp_path):
    class Interrupting(DarkLogitPredictor):
        def forward_batch(self, images, prompts):
            if self.calls == 2:
                raise KeyboardInterrupt
            return super().forward_batch(images, prompts)

    run = watch(str(wall_video), ["segment crack"], tmp_path / "stopped", Interrupting(), queue_size=1)
    assert run.interrupted and 0 < run.frames_processed < 24
    lines = read_lines(tmp_path / "stopped" / "frames.jsonl")
    assert len(lines) == run.frames_processed and frame_count(tmp_path / "stopped" / "annotated.mp4") == len(lines)
    assert json.loads((tmp_path / "stopped" / "watch.json").read_text())["interrupted"] is True


def test_smoothing_is_an_exponential_moving_average_of_the_logits():
    frames = [frame.image for frame in sample_frames(4, size=32)]
    predictor = DarkLogitPredictor()
    raw = [predictor.forward_batch(predictor_input(f), ["p"])[0][0] for f in frames]
    off = TemporalSmoother(predictor, ["segment crack"], smoothing=1.0)(frames)
    expected = [predictor.predict(f, "segment crack").mask for f in frames]
    assert all(np.array_equal(r[0].mask, m) for r, m in zip(off, expected))
    smoother = TemporalSmoother(predictor, ["segment crack"], smoothing=0.5)
    smoother(frames[:1])
    smoother(frames[1:2])
    state = 0.5 * raw[1] + 0.5 * raw[0]
    assert np.allclose(smoother._state[0][0], state)
    with pytest.raises(ConfigError, match="smoothing"):
        TemporalSmoother(predictor, ["segment crack"], smoothing=0)


def predictor_input(frame):
    from drywallqa.processing import stack_model_inputs

    return stack_model_inputs([frame], DarkLogitPredictor.image_size)


def test_failure_events_need_n_consecutive_failing_frames():
    failing = np.zeros((64, 64), bool)
    failing[30:33, 2:62] = True  # a 60 px crack, longer than the built-in 30 px rule
    verdicts = [inspect_mask(m, "segment crack") for m in (failing, np.zeros((64, 64), bool))]
    assert [v.verdict.verdict for v in verdicts] == ["fail", "pass"]
    events = FailureEvents(min_frames=3)
    sequence = [0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0]  # index into verdicts: fail, fail, pass, fail x4, ...
    log = []
    for frame, which in enumerate(sequence):
        log += events.update(frame, frame / 10, [verdicts[which]])
    log += events.close(len(sequence), len(sequence) / 10)
    assert [(e["event"], e["frame"]) for e in log] == [("fail", 3), ("clear", 7), ("fail", 8), ("clear", 11)]
    assert log[1]["failed_frames"] == 4 and log[3]["why"] == "end of video"


@pytest.mark.parametrize("source, message", [
    ("rtsp://127.0.0.1:9/live", "cannot open or read"),
    ("http://127.0.0.1:9/camera.mjpg", "cannot open or read"),
    ("missing.mp4", "no such video file"),
    ("garbage.mp4", "not a readable video"),
])
def test_unreachable_or_unreadable_source_is_one_line_exit_2(source, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "garbage.mp4").write_text("not a video")
    assert main(["watch", source, "--prompt", "segment crack", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


@pytest.mark.integration  # a bench run
def test_bench_reports_watch_frames_per_second():
    from drywallqa.bench import BenchSettings, run_benchmark

    settings = BenchSettings.create(quick=True, device="cpu", runtimes=("torch-fp32",), baselines=False, profile_iterations=0)
    report = run_benchmark(settings)
    video = report.video["torch-fp32"]
    assert video["frames"] == 12 and video["frames_per_s"] > 0 and video["frame_size"] == 96
    assert "## Video: `drywallqa watch` frames/s" in report.markdown()


def test_best_available_refuses_a_gpu_it_does_not_have(tiny_model_dir):
    import torch

    from drywallqa.inference import best_available

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        best_available(str(tiny_model_dir), device="cuda", say=lambda line: None)
