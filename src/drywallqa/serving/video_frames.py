"""What :func:`drywallqa.serving.video.watch` does with each frame.

:class:`TemporalSmoother` segments frames with every prompt and smooths the logits over time;
:class:`FailureEvents` turns per-frame verdicts into ``fail``/``clear`` events; and
:func:`annotate_frame` draws the masks and a banner of verdicts on the frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from drywallqa.errors import ConfigError
from drywallqa.inference import (
    BatchedPredictor,
    Prediction,
    SegmentationResult,
    check_image,
    check_prompt,
    logits_to_result,
)
from drywallqa.inference.tiling import TilePlan, blend_tiles, check_tile, cut_tiles
from drywallqa.processing import prompt_threshold
from drywallqa.qa.inspection import MaskInspection


class TemporalSmoother:
    """Segment frames with several prompts, smoothing each prompt's logits over time.

    For each prompt, the mask logits ``x_t`` at the model's scale (a large frame's tiles blended,
    see :mod:`~drywallqa.inference.tiling`; the tile plan is made once, from the first frame, so
    every frame is cut alike) and the confidence logit are averaged exponentially:
    ``s_t = a * x_t + (1 - a) * s_(t-1)``, ``s_0 = x_0``; ``s_t`` is then upsampled to the frame
    and thresholded as the predictor does (:func:`~drywallqa.inference.logits_to_result`). ``a = 1`` turns smoothing off; ``a = 0.5``
    (the default) gives the newest frame half the weight, so a mask settles within a few
    frames and one-frame flicker (motion blur, a passing shadow) is damped. Dropped frames are
    simply not in the average.

    Args:
        predictor: Any batched runtime (PyTorch, ONNX Runtime, TensorRT, with or without flips).
        prompts: Prompts applied to every frame.
        smoothing: ``a`` in ``(0, 1]``.
        mm_per_px: Millimetres per pixel of the frames, for the tile scale.
        tile: Tile setting; the predictor's when None.

    Attributes:
        plan: The frames' tile plan, once the first frame is in.

    Raises:
        ConfigError: For a predictor without a batched path, no prompt, ``a`` out of range, or a
            bad tile setting.
    """

    def __init__(self, predictor: BatchedPredictor, prompts: Sequence[str], smoothing: float = 0.5, *,
                 mm_per_px: float | None = None, tile: str | int | None = None):
        if not isinstance(predictor, BatchedPredictor):
            raise ConfigError(f"video needs a batched runtime; {getattr(predictor, 'name', predictor)} is not one")
        if not 0 < smoothing <= 1:
            raise ConfigError(f"smoothing must be in (0, 1] (1 turns it off), got {smoothing}")
        self.prompts = list(dict.fromkeys(check_prompt(p) for p in prompts))
        if not self.prompts:
            raise ConfigError("give at least one prompt, e.g. --prompt 'segment crack'")
        self.predictor, self.smoothing = predictor, float(smoothing)
        self.mm_per_px, self.tile = mm_per_px, check_tile(tile) if tile is not None else predictor.tile
        self.plan: TilePlan | None = None
        self._state: list[tuple[np.ndarray, float]] | None = None

    def __call__(self, frames: Sequence[np.ndarray]) -> list[list[SegmentationResult]]:
        """Segment consecutive frames, oldest first.

        Args:
            frames: RGB ``uint8`` ``(H, W, 3)`` frames.

        Returns:
            Per frame, one :class:`~drywallqa.inference.SegmentationResult` per prompt (mask at
            the frame's size).
        """
        predictor, count = self.predictor, len(self.prompts)
        frames = [check_image(frame) for frame in frames]
        if self.plan is None or self.plan.image_shape != frames[0].shape[:2]:
            self.plan = predictor.prepare(frames[0], mm_per_px=self.mm_per_px, tile=self.tile).plan
            self._state = None  # logits of another plan do not average with these
        plan, tiles = self.plan, len(self.plan)
        # Outputs in (frame, prompt, tile) order; each frame's tiles are encoded once for all the prompts.
        step = max(1, predictor.batch_size // tiles)  # frames per model call: about batch_size tiles
        mask_parts: list[np.ndarray] = []
        confidence_parts: list[np.ndarray] = []
        for start in range(0, len(frames), step):
            chunk = frames[start:start + step]
            inputs = np.ascontiguousarray(np.concatenate([cut_tiles(frame, plan) for frame in chunk]))
            image_index = [f * tiles + k for f in range(len(chunk)) for _ in range(count) for k in range(tiles)]
            logits, confidence = predictor.forward_pairs(inputs, [p for _ in chunk for p in self.prompts for _ in range(tiles)],
                                                         image_index)
            mask_parts.append(logits)
            confidence_parts.append(confidence)
        mask_logits, confidence_logits = np.concatenate(mask_parts), np.concatenate(confidence_parts)
        results = []
        for index, frame in enumerate(frames):
            new = []
            for k in range(count):
                first = (index * count + k) * tiles
                blended, confidence_logit = blend_tiles(plan, mask_logits[first:first + tiles],
                                                        confidence_logits[first:first + tiles])
                new.append((blended, float(confidence_logit)))
            a = self.smoothing
            self._state = new if self._state is None else [
                (a * logits + (1 - a) * old_logits, a * confidence + (1 - a) * old_confidence)
                for (logits, confidence), (old_logits, old_confidence) in zip(new, self._state)
            ]
            segmented = [logits_to_result(logits, confidence, prompt, frame.shape, prompt_threshold(predictor, prompt))
                         for (logits, confidence), prompt in zip(self._state, self.prompts)]
            for result in segmented:
                result.extra["tiling"] = plan.to_dict()
            results.append(segmented)
        return results


class FailureEvents:
    """Turn per-frame verdicts into events: a prompt's QA rule failing for ``min_frames`` frames in a row.

    An event opens (``"fail"``, dated at the first failing frame, with the reasons of the frame
    that completed the run) when a prompt's verdict has been ``fail`` for ``min_frames``
    consecutive processed frames, and closes (``"clear"``) at the first frame that does not
    fail, or at the end of the video.

    Args:
        min_frames: ``N``, at least 1.
    """

    def __init__(self, min_frames: int = 5):
        if min_frames < 1:
            raise ConfigError(f"fail_frames must be at least 1, got {min_frames}")
        self.min_frames = int(min_frames)
        self._streak: dict[str, list] = {}  # prompt -> [count, first frame, first time]
        self._open: dict[str, dict] = {}

    def update(self, frame: int, time_s: float, inspections: Sequence[Prediction | MaskInspection]) -> list[dict]:
        """Feed one processed frame's predictions (or inspections); returns the events it starts or ends."""
        events = []
        for inspection in inspections:
            prompt = inspection.prompt
            if inspection.verdict.verdict == "fail":
                streak = self._streak.setdefault(prompt, [0, frame, time_s])
                streak[0] += 1
                if streak[0] == self.min_frames:
                    event = {"event": "fail", "prompt": prompt, "class": inspection.class_name, "frame": streak[1],
                             "time_s": round(streak[2], 3), "confirmed_at_frame": frame,
                             "reasons": list(inspection.verdict.reasons)}
                    self._open[prompt] = event
                    events.append(event)
            else:
                self._streak.pop(prompt, None)
                if prompt in self._open:
                    events.append(self._clear(prompt, frame, time_s, "the rule passes again"))
        return events

    def close(self, frame: int, time_s: float) -> list[dict]:
        """End every open event at the end of the video."""
        return [self._clear(prompt, frame, time_s, "end of video") for prompt in list(self._open)]

    def _clear(self, prompt: str, frame: int, time_s: float, why: str) -> dict:
        opened = self._open.pop(prompt)
        return {"event": "clear", "prompt": prompt, "class": opened["class"], "frame": frame, "time_s": round(time_s, 3),
                "failed_frames": frame - opened["frame"], "failed_s": round(time_s - opened["time_s"], 3), "why": why}


def annotate_frame(pixels: np.ndarray, predictions: Sequence[Prediction], index: int, dropped: int = 0) -> np.ndarray:
    """The frame with each prompt's mask tinted and outlined and a banner of verdicts.

    Args:
        pixels: RGB ``uint8`` ``(H, W, 3)``.
        predictions: One per prompt, masks at the frame's size.
        index: Frame index, shown in the banner.
        dropped: Frames dropped so far, shown when non-zero.

    Returns:
        RGB ``uint8`` ``(H, W, 3)``.
    """
    import cv2

    image = pixels
    for prediction in predictions:
        image = prediction.plot(image=image)
    image = np.ascontiguousarray(image)
    scale = max(image.shape[1] / 900, 0.3)
    lines = [(f"#{index}" + (f"  dropped {dropped}" if dropped else ""), False)]
    lines += [(f"{p.class_name or p.prompt}: {p.verdict.verdict} ({p.confidence:.2f})", p.verdict.verdict == "fail")
              for p in predictions]
    for row, (text, failing) in enumerate(lines):
        y = int((row + 1) * 26 * scale) + 2
        colour = (235, 40, 40) if failing else (255, 255, 255)
        cv2.putText(image, text, (4, y), cv2.FONT_HERSHEY_SIMPLEX, 0.7 * scale, (0, 0, 0), max(1, round(3 * scale)), cv2.LINE_AA)
        cv2.putText(image, text, (4, y), cv2.FONT_HERSHEY_SIMPLEX, 0.7 * scale, colour, max(1, round(scale)), cv2.LINE_AA)
    return image
