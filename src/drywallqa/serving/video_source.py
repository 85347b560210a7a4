"""Video sources for :func:`drywallqa.serving.video.watch`: a file, a camera or a stream, opened with OpenCV.

:class:`VideoSource` reads the first frame while opening (so a bad address fails at once, with
one line instead of FFmpeg's log) and knows whether frames arrive at the source's pace (cameras,
streams) or as fast as they are read (files). Frames come turned as a player shows them: a phone
films upright into sideways frames and says so in the video's rotation metadata (or, for a still
photo given as the source, its EXIF orientation), which is applied.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from drywallqa.errors import DataError
from drywallqa.files import PHOTO_SUFFIXES, read_photo

FALLBACK_FPS = 25.0
# A video's rotation in degrees (OpenCV's CAP_PROP_ORIENTATION_META: clockwise) as an EXIF orientation.
_ROTATION_ORIENTATION = {0: 1, 90: 6, 180: 3, 270: 8}


class VideoSource:
    """A video file, a camera index or a stream URL, opened with OpenCV (a still photo: one frame).

    Args:
        source: A file path, a camera index (``"0"``), or an ``rtsp://``, ``http(s)://``,
            ``udp://``... URL.
        timeout_s: How long opening and each read of a stream may wait.

    Attributes:
        live: True for cameras and streams: frames arrive at the source's pace.
        fps: Frames per second the source states (:data:`FALLBACK_FPS` when it states none).
        width, height: Frame size in pixels, as a player shows the frames.
        orientation: How the stored frames were turned for that, as an EXIF orientation (1: not
            at all; 6, 3, 8: a video's rotation by 90, 180, 270 degrees clockwise).

    Raises:
        DataError: For a missing or unreadable file, or a camera or stream that cannot be opened.
    """

    def __init__(self, source: str | int, timeout_s: float = 10.0):
        import cv2

        text = str(source)
        self.name = text
        self._first: np.ndarray | None = None  # the frame read to open the source, returned first
        # FFmpeg's and OpenCV's own log lines would bury the one-line error: keep them quiet
        # (OPENCV_FFMPEG_LOGLEVEL set by the user wins).
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
        log_level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        try:
            self._open(cv2, text, timeout_s)
        finally:
            cv2.utils.logging.setLogLevel(log_level)

    def _open(self, cv2, text: str, timeout_s: float) -> None:
        timeouts = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(timeout_s * 1000), cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(timeout_s * 1000)]
        if text.isdigit():
            self.live, what = True, f"camera {text}"
            self.capture = cv2.VideoCapture(int(text))
        elif "://" in text:
            self.live, what = True, f"stream {text}"
            self.capture = cv2.VideoCapture(text, cv2.CAP_FFMPEG, timeouts)
        else:
            if not Path(text).is_file():
                raise DataError(f"{text}: no such video file")
            if Path(text).suffix.lower() in PHOTO_SUFFIXES:  # decoded and turned as predict's photos are
                photo = read_photo(text)
                self.live, self.capture, self.fps, self.orientation = False, None, FALLBACK_FPS, photo.orientation
                self._first = photo.pixels
                self.height, self.width = self._first.shape[:2]
                return
            self.live, what = False, f"{text}"
            self.capture = cv2.VideoCapture(text, cv2.CAP_FFMPEG, timeouts)
        if self.capture.isOpened():
            # Frames turned by the video's rotation metadata: OpenCV's default with FFmpeg, asked for anyway.
            self.capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
        first = self.capture.read() if self.capture.isOpened() else (False, None)
        if not first[0]:
            self.capture.release()
            if self.live:
                raise DataError(f"{what}: cannot open or read (unreachable, wrong address, or no such device)")
            raise DataError(f"{what}: not a readable video")
        self._first = cv2.cvtColor(first[1], cv2.COLOR_BGR2RGB)
        fps = float(self.capture.get(cv2.CAP_PROP_FPS) or 0)
        self.fps = fps if math.isfinite(fps) and 0 < fps < 1000 else FALLBACK_FPS
        self.height, self.width = self._first.shape[:2]
        rotation = self.capture.get(cv2.CAP_PROP_ORIENTATION_META) if self.capture.get(cv2.CAP_PROP_ORIENTATION_AUTO) else 0
        self.orientation = _ROTATION_ORIENTATION.get(int(rotation) % 360 if math.isfinite(rotation) else 0, 1)

    def read(self) -> np.ndarray | None:
        """The next frame as RGB ``uint8`` ``(H, W, 3)``, or None at the end of the stream."""
        import cv2

        if self._first is not None:
            first, self._first = self._first, None
            return first
        ok, frame = self.capture.read() if self.capture is not None else (False, None)
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if ok else None

    def close(self) -> None:
        if self.capture is not None:
            self.capture.release()

    def __repr__(self) -> str:
        turned = f", orientation {self.orientation}" if self.orientation != 1 else ""
        return f"VideoSource({self.name!r}, {self.width}x{self.height}{turned}, {self.fps:g} fps, live={self.live})"
