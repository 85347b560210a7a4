"""Live video: every frame of a file, camera or stream segmented, smoothed over time and judged.

:func:`watch` runs three stages joined by bounded queues, so a slow model or a slow disk never
grows memory without limit::

    reader --frames (queue_size)--> model: batched, logits smoothed --results (queue_size)--> writer

- **reader** (a thread): OpenCV ``VideoCapture`` (FFmpeg: files, RTSP/HTTP streams; V4L2:
  cameras). A *live* source (camera, stream, or a file replayed with ``live=True`` at its own
  frame rate) never waits for the model: when the frame queue is full the newest frame is
  dropped and counted. A file read as fast as the model goes (``live=False``) drops nothing.
- **model** (the calling thread): takes the queued frames as one batch, runs the predictor's
  batched runtime on every frame (encoded once) × prompt, and smooths the mask logits over time with an
  exponential moving average (:class:`TemporalSmoother`) before the threshold.
- **writer** (a thread): QA figures and verdict of each mask (a :class:`~drywallqa.inference.Prediction`),
  the annotated frame, the per-frame JSONL line and the failure events (:class:`FailureEvents`).

Outputs in ``out``::

    annotated.mp4     every frame read, masks tinted and outlined, a banner with the verdicts;
                      a dropped frame repeats the last annotated one (so the video keeps its timing)
    frames.jsonl      one line per frame read: index, time, the frame's verdict (its prompts' combined
                      as a photo's, :func:`~drywallqa.qa.photo_verdict`) and, per prompt, the
                      figures, verdict and confidence; a dropped frame is a line with "dropped": true
    events.jsonl      a QA rule failing for N consecutive frames: "fail" when it starts (with the
                      reasons), "clear" when it ends
    watch.json        frames read, processed and dropped (with their ranges), frames/s, settings

The JSONL files are appended and flushed line by line, so they can be followed while the video
runs (``tail -f``); ``annotated.mp4`` and ``watch.json`` appear when the run ends, also on Ctrl-C.

Sources are in :mod:`drywallqa.serving.video_source`; smoothing, events and the annotated frame
in :mod:`drywallqa.serving.video_frames`.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from drywallqa.data.prompts import PromptConfig
from drywallqa.data.sample_video import VIDEO_FOURCC
from drywallqa.errors import ConfigError, DrywallQAError
from drywallqa.files import atomic_write_json
from drywallqa.inference import BatchedPredictor, Prediction, Predictions, SegmentationResult
from drywallqa.qa.figures import check_mm_per_px
from drywallqa.qa.rules import QARules
from drywallqa.serving.video_frames import FailureEvents, TemporalSmoother, annotate_frame
from drywallqa.serving.video_source import VideoSource

VIDEO_FILE = "annotated.mp4"
FRAMES_JSONL = "frames.jsonl"
EVENTS_JSONL = "events.jsonl"
SUMMARY_FILE = "watch.json"

_END = object()  # end-of-stream marker in the queues


# -- the run --------------------------------------------------------------------------------------
@dataclass
class WatchRun:
    """What :func:`watch` did.

    Attributes:
        out: The output folder.
        source: The source as given.
        live: Whether frames were dropped rather than waited for.
        source_fps: Frames per second of the source.
        frames_read: Frames the reader got from the source.
        frames_processed: Frames segmented.
        frames_dropped: Frames dropped because the model fell behind (live only).
        dropped_ranges: ``[first, last]`` frame index ranges of the dropped frames.
        wall_s: Seconds from the first frame read to the last frame written.
        events: Every event written to ``events.jsonl``.
        runtime: Name of the predictor's runtime.
        interrupted: The run was stopped with Ctrl-C (outputs are complete up to that frame).
        files: Paths of the outputs.
    """

    out: Path
    source: str
    live: bool
    source_fps: float
    frames_read: int = 0
    frames_processed: int = 0
    frames_dropped: int = 0
    dropped_ranges: list[list[int]] = field(default_factory=list)
    wall_s: float = 0.0
    events: list[dict] = field(default_factory=list)
    runtime: str = ""
    interrupted: bool = False
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def processing_fps(self) -> float:
        """Frames segmented per second of wall time."""
        return self.frames_processed / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def keeps_up(self) -> bool:
        """Live: no frame was dropped. File: segmenting ran at least as fast as the video plays."""
        return self.frames_dropped == 0 if self.live else self.processing_fps >= self.source_fps

    def speed_line(self) -> str:
        """One line saying whether the model kept up, with the figures."""
        ratio = self.processing_fps / self.source_fps if self.source_fps else 0.0
        if self.live:
            if self.frames_dropped:
                share = self.frames_dropped / max(self.frames_read, 1)
                return (f"did not keep up: dropped {self.frames_dropped} of {self.frames_read} frames ({share:.0%}); "
                        f"{self.processing_fps:.1f} frames/s segmented against {self.source_fps:g} frames/s delivered")
            return f"kept up: {self.processing_fps:.1f} frames/s segmented, no frame dropped"
        verdict = "kept up" if self.keeps_up else "did not keep up"
        return (f"{verdict}: {self.processing_fps:.1f} frames/s segmented, {ratio:.2f}x the video's "
                f"{self.source_fps:g} frames/s (nothing dropped: a file waits for the model)")

    def to_dict(self) -> dict:
        return {
            "source": self.source, "live": self.live, "source_fps": self.source_fps, "runtime": self.runtime,
            "frames_read": self.frames_read, "frames_processed": self.frames_processed,
            "frames_dropped": self.frames_dropped, "dropped_ranges": self.dropped_ranges,
            "wall_s": round(self.wall_s, 3), "processing_fps": round(self.processing_fps, 2),
            "keeps_up": self.keeps_up, "events": len(self.events), "interrupted": self.interrupted,
        }

    def __repr__(self) -> str:
        return (f"WatchRun({str(self.out)!r}, read={self.frames_read}, processed={self.frames_processed}, "
                f"dropped={self.frames_dropped}, {self.processing_fps:.1f} frames/s, events={len(self.events)})")


@dataclass
class _Frame:
    index: int
    time_s: float
    pixels: np.ndarray | None  # None: dropped


def watch(
    source: str | int | VideoSource,
    prompts: Sequence[str],
    out: str | os.PathLike,
    predictor: BatchedPredictor,
    *,
    smoothing: float = 0.5,
    fail_frames: int = 5,
    mm_per_px: float | None = None,
    tile: str | int | None = None,
    qa_rules: QARules | None = None,
    prompt_config: PromptConfig | None = None,
    live: bool | None = None,
    queue_size: int = 8,
    max_frames: int | None = None,
    max_seconds: float | None = None,
    timeout_s: float = 10.0,
    say: Callable[[str], None] | None = None,
) -> WatchRun:
    """Segment every frame of a video, camera or stream; write the annotated video, JSONL and events.

    Args:
        source: File path, camera index (``"0"``), stream URL, or an open :class:`VideoSource`.
        prompts: Prompts applied to every frame.
        out: Output folder (created).
        predictor: A batched runtime, e.g. from :func:`drywallqa.inference.load_predictor`.
        smoothing: Weight of the newest frame in the logits' moving average, in ``(0, 1]``
            (see :class:`TemporalSmoother`).
        fail_frames: Consecutive failing frames that make an event (see :class:`FailureEvents`).
        mm_per_px: Image scale, for millimetre figures and rules (and the tile scale).
        tile: Tile setting (:mod:`~drywallqa.inference.tiling`); the predictor's when None. The
            plan is made from the first frame and recorded in ``watch.json``.
        qa_rules: Figure sets and rules; the built-in file by default.
        prompt_config: Prompt classes; the built-in ``prompts.yaml`` by default.
        live: Drop frames when the model falls behind instead of waiting; by default True for
            cameras and streams, False for files. ``True`` on a file replays it at its frame rate.
        queue_size: Frames waiting for the model (and results waiting for the writer) at most.
        max_frames: Stop after reading this many frames.
        max_seconds: Stop after this many seconds.
        timeout_s: How long opening and reading a stream may wait.
        say: Called with each event line (e.g. ``print``).

    Returns:
        The counts, speed and events. Ctrl-C ends the run early with complete outputs
        (``interrupted`` is set).

    Raises:
        DataError: If the source cannot be opened or read.
        ConfigError: For a bad prompt, smoothing, ``fail_frames``, scale or queue size.
        DrywallQAError: If the output folder cannot be written.
    """
    if queue_size < 1:
        raise ConfigError(f"queue_size must be at least 1, got {queue_size}")
    check_mm_per_px(mm_per_px, "--mm-per-px")  # a warning about an unusual scale is the caller's to show
    if prompt_config is not None:  # the predictor's per-class thresholds follow the run's classes
        predictor.set_prompt_config(prompt_config)
    smoother = TemporalSmoother(predictor, prompts, smoothing, mm_per_px=mm_per_px, tile=tile)
    events = FailureEvents(fail_frames)
    qa_rules = (qa_rules or QARules.default()).check_classes(prompt_config)
    video = source if isinstance(source, VideoSource) else VideoSource(source, timeout_s)
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        video.close()
        raise DrywallQAError(f"could not create {out}: {exc.strerror or exc}") from exc
    run = WatchRun(out, video.name, video.live if live is None else bool(live), video.fps,
                   runtime=str(getattr(predictor, "name", type(predictor).__name__)))
    frames: queue.Queue = queue.Queue(maxsize=queue_size)
    results: queue.Queue = queue.Queue(maxsize=queue_size)
    stop = threading.Event()
    writer = _Writer(run, video, smoother.prompts, events, qa_rules, prompt_config, mm_per_px, say or (lambda line: None))
    reader = threading.Thread(target=_read, args=(video, run, frames, stop, max_frames, max_seconds), daemon=True,
                              name="drywallqa-watch-reader")
    writing = threading.Thread(target=writer.write_all, args=(results, stop), daemon=True, name="drywallqa-watch-writer")
    warm_up = getattr(predictor, "warm_up", None)
    if warm_up is not None:  # every padded batch shape captured or compiled now, not on a live frame
        warm_up((queue_size + 1) * len(smoother.prompts))
    started = time.perf_counter()
    reader.start()
    writing.start()
    try:
        _segment(smoother, frames, results, stop, writer)
    except KeyboardInterrupt:
        run.interrupted = True
    finally:
        stop.set()
        _put(results, _END, None)  # the writer drains what it has, then closes the files
        writing.join()
        reader.join(timeout=timeout_s + 1)
        video.close()
        run.wall_s = time.perf_counter() - started
    if writer.error is not None:
        raise writer.error
    run.files["summary"] = atomic_write_json(out / SUMMARY_FILE, {
        **run.to_dict(), "prompts": smoother.prompts, "smoothing": smoother.smoothing, "fail_frames": events.min_frames,
        "mm_per_px": mm_per_px, "qa_rules": qa_rules.source, "queue_size": queue_size,
        "source_orientation": video.orientation,
        "tiling": smoother.plan.to_dict() if smoother.plan is not None else {"tile": smoother.tile},
    }, indent=2)
    return run


def _put(target: queue.Queue, item, stop: threading.Event | None) -> bool:
    """Put, waiting for room but giving up when ``stop`` is set; False if it gave up."""
    while True:
        try:
            target.put(item, timeout=0.1)
            return True
        except queue.Full:
            if stop is not None and stop.is_set():
                return False


def _read(video: VideoSource, run: WatchRun, frames: queue.Queue, stop: threading.Event, max_frames: int | None,
          max_seconds: float | None) -> None:
    """Reader thread: frames into the queue; a live source drops (and counts) what does not fit."""
    started = time.monotonic()
    index = 0
    try:
        while not stop.is_set() and (max_frames is None or index < max_frames):
            elapsed = time.monotonic() - started
            if max_seconds is not None and elapsed >= max_seconds:
                break
            if run.live and not video.live:  # a file replayed as a camera would deliver it
                time.sleep(max(0.0, index / video.fps - elapsed))
            pixels = video.read()
            if pixels is None:
                break
            frame = _Frame(index, index / video.fps if not video.live else time.monotonic() - started, pixels)
            run.frames_read += 1
            index += 1
            if not run.live:
                if not _put(frames, frame, stop):
                    break
                continue
            try:
                frames.put_nowait(frame)
            except queue.Full:
                run.frames_dropped += 1
                if run.dropped_ranges and run.dropped_ranges[-1][1] == frame.index - 1:
                    run.dropped_ranges[-1][1] = frame.index
                else:
                    run.dropped_ranges.append([frame.index, frame.index])
    finally:
        _put(frames, _END, stop)


def _segment(smoother: TemporalSmoother, frames: queue.Queue, results: queue.Queue, stop: threading.Event,
             writer: _Writer) -> None:
    """Model stage: batches of whatever frames are waiting, smoothed, handed to the writer in order."""
    batch_limit = max(1, smoother.predictor.batch_size // len(smoother.prompts))
    next_index = 0
    done = False
    while not done and writer.error is None:
        batch = [frames.get()]
        while len(batch) < batch_limit and batch[-1] is not _END:
            try:
                batch.append(frames.get_nowait())
            except queue.Empty:
                break
        if batch[-1] is _END:
            batch.pop()
            done = True
        if not batch:
            continue
        segmented = smoother([frame.pixels for frame in batch])
        for frame, frame_results in zip(batch, segmented):
            for missing in range(next_index, frame.index):  # dropped by the reader: keep their place
                _put(results, (_Frame(missing, missing / writer.video.fps, None), None), stop)
            next_index = frame.index + 1
            if not _put(results, (frame, frame_results), stop):
                return
            writer.run.frames_processed += 1
    for missing in range(next_index, writer.run.frames_read):  # dropped after the last segmented frame
        _put(results, (_Frame(missing, missing / writer.video.fps, None), None), stop)


class _Writer:
    """Writer stage: QA figures, events, the annotated frame and the JSONL lines, in frame order."""

    def __init__(self, run: WatchRun, video: VideoSource, prompts: list[str], events: FailureEvents,
                 qa_rules: QARules, prompt_config: PromptConfig | None, mm_per_px: float | None, say):
        self.run, self.video, self.prompts, self.events = run, video, prompts, events
        self.qa_rules, self.prompt_config, self.mm_per_px, self.say = qa_rules, prompt_config, mm_per_px, say
        self.error: BaseException | None = None
        self._last_frame: np.ndarray | None = None
        self._last_time = 0.0
        self._last_index = -1

    def write_all(self, results: queue.Queue, stop: threading.Event) -> None:
        """The writer thread's loop: until the end marker, then close the files."""
        import cv2

        out = self.run.out
        video_tmp = out / f".{VIDEO_FILE}.tmp.mp4"
        try:
            fourcc = cv2.VideoWriter_fourcc(*VIDEO_FOURCC)  # type: ignore[attr-defined]  # missing from OpenCV's stubs
            encoder = cv2.VideoWriter(str(video_tmp), fourcc, self.video.fps, (self.video.width, self.video.height))
            if not encoder.isOpened():
                raise DrywallQAError(f"could not write {out / VIDEO_FILE}: OpenCV cannot encode {VIDEO_FOURCC} here")
            with open(out / FRAMES_JSONL, "w", encoding="utf-8") as lines, \
                    open(out / EVENTS_JSONL, "w", encoding="utf-8") as event_lines:
                while True:
                    item = results.get()
                    if item is _END:
                        break
                    frame, frame_results = item
                    record, events = self._frame(frame, frame_results)
                    encoder.write(cv2.cvtColor(self._last_frame, cv2.COLOR_RGB2BGR))
                    lines.write(json.dumps(record) + "\n")
                    lines.flush()
                    self._log(events, event_lines)
                self._log(self.events.close(self._last_index + 1, self._last_time + 1 / self.video.fps), event_lines)
            encoder.release()
            if self._last_frame is not None:
                os.replace(video_tmp, out / VIDEO_FILE)
                self.run.files["video"] = out / VIDEO_FILE
            self.run.files.update(frames=out / FRAMES_JSONL, events=out / EVENTS_JSONL)
        except OSError as exc:
            self.error = DrywallQAError(f"could not write into {out}: {exc.strerror or exc}")
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread, which raises it
            self.error = exc
        finally:
            if video_tmp.exists():
                video_tmp.unlink()
            if self.error is not None:
                stop.set()
                while True:  # unblock the model stage
                    try:
                        results.get_nowait()
                    except queue.Empty:
                        break

    def _frame(self, frame: _Frame, frame_results: list[SegmentationResult] | None) -> tuple[dict, list[dict]]:
        record = {"frame": frame.index, "time_s": round(frame.time_s, 3)}
        self._last_index, self._last_time = frame.index, frame.time_s
        if frame_results is None or frame.pixels is None:  # a dropped frame
            if self._last_frame is None:  # nothing annotated yet: a black frame keeps the timing
                self._last_frame = np.zeros((self.video.height, self.video.width, 3), np.uint8)
            return {**record, "dropped": True}, []
        predictions = Predictions(
            Prediction.from_result(r, frame.pixels, image=f"frame {frame.index}", mm_per_px=self.mm_per_px,
                                   qa_rules=self.qa_rules, prompt_config=self.prompt_config) for r in frame_results)
        self._last_frame = annotate_frame(frame.pixels, predictions, frame.index, self.run.frames_dropped)
        return {**record, "verdict": predictions.verdict, "masks": [p.inspection.to_dict() for p in predictions]}, \
            self.events.update(frame.index, frame.time_s, predictions)

    def _log(self, events: list[dict], event_lines) -> None:
        for event in events:
            event_lines.write(json.dumps(event) + "\n")
            event_lines.flush()
            self.run.events.append(event)
            if event["event"] == "fail":
                self.say(f"FAIL {event['prompt']!r} from frame {event['frame']} ({event['time_s']:.1f} s): "
                         f"{'; '.join(event['reasons'])}")
            else:
                self.say(f"clear {event['prompt']!r} at frame {event['frame']} ({event['time_s']:.1f} s) "
                         f"after {event['failed_frames']} frame(s): {event['why']}")


def measure_video(predictor: BatchedPredictor, workdir: str | os.PathLike, *, frames: int = 40, size: int = 640,
                  prompts: Sequence[str] = ("segment crack",)) -> dict:
    """Frames/s of :func:`watch` on a synthetic video read as a file (``drywallqa bench``'s video row).

    The whole pipeline is timed: decoding, the batched model with smoothing, QA figures, the
    annotated frame and its encoding, the JSONL lines. A file waits for the model, so nothing is
    dropped and the rate is what a live source could deliver without drops.

    Args:
        predictor: The runtime to measure.
        workdir: Scratch folder (the video and the run's outputs go there).
        frames: Frames in the video.
        size: Frame side in pixels.
        prompts: Prompts per frame.

    Returns:
        ``{"frames", "frame_size", "prompts", "frames_per_s", "realtime_at_30fps"}``.
    """
    from drywallqa.data.sample_video import write_sample_video

    workdir = Path(workdir)
    path = write_sample_video(workdir / "bench-video.mp4", frames, size=size, fps=30.0)
    run = watch(str(path), prompts, workdir / "bench-watch", predictor)
    return {"frames": run.frames_processed, "frame_size": size, "prompts": len(prompts),
            "frames_per_s": round(run.processing_fps, 2), "realtime_at_30fps": round(run.processing_fps / 30.0, 2)}
