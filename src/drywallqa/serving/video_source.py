"""Video sources for :func:`drywallqa.serving.video.watch`: a file, a camera or a stream, opened with OpenCV.

:class:`VideoSource` reads the first frame while opening (so a bad address fails at once, with
one line instead of FFmpeg's log) and knows whether frames arrive at the source's pace (cameras,
streams) or as fast as they are read (files).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from drywallqa.errors import DataError

FALLBACK_FPS = 25.0


class VideoSource:
    """A video file, a camera index or a stream URL, opened with OpenCV.

    Args:
        source: A file path, a camera index (``"0"``), or an ``rtsp://``, ``http(s)://``,
            ``udp://``... URL.
        timeout_s: How long opening and each read of a stream may wait.

    Attributes:
        live: True for cameras and streams: frames arrive at the source's pace.
        fps: Frames per second the source states (:data:`FALLBACK_FPS` when it states none).
        width, height: Frame size in pixels.

    Raises:
        DataError: For a missing or unreadable file, or a camera or stream that cannot be opened.
    """

    def __init__(self, source: str | int, timeout_s: float = 10.0):
        import cv2

        text = str(source)
        self.name = text
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
            self.live, what = False, f"{text}"
            self.capture = cv2.VideoCapture(text, cv2.CAP_FFMPEG, timeouts)
        first = self.capture.read() if self.capture.isOpened() else (False, None)
        if not first[0]:
            self.capture.release()
            if self.live:
                raise DataError(f"{what}: cannot open or read (unreachable, wrong address, or no such device)")
            raise DataError(f"{what}: not a readable video")
        self._first = first[1]
        fps = float(self.capture.get(cv2.CAP_PROP_FPS) or 0)
        self.fps = fps if math.isfinite(fps) and 0 < fps < 1000 else FALLBACK_FPS
        self.height, self.width = self._first.shape[:2]

    def read(self) -> np.ndarray | None:
        """The next frame as RGB ``uint8`` ``(H, W, 3)``, or None at the end of the stream."""
        import cv2

        if self._first is not None:
            frame, self._first = self._first, None
        else:
            ok, frame = self.capture.read()
            if not ok:
                return None
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        self.capture.release()

    def __repr__(self) -> str:
        return f"VideoSource({self.name!r}, {self.width}x{self.height}, {self.fps:g} fps, live={self.live})"
