"""A short synthetic drywall video with exact masks: a camera panning across one rendered wall.

Tests, ``drywallqa bench`` and the docs' examples of ``drywallqa watch`` use it, so nothing has to
be downloaded::

    from drywallqa.data.sample_video import write_sample_video
    write_sample_video("wall.mp4", frames=48, size=128)   # 4 s at 12 frames/s
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from drywallqa.data.synthetic import CRACKS_DATASET, RenderedImage, render_sample_image
from drywallqa.errors import DrywallQAError

#: Container and codec of the videos written here and by ``drywallqa watch``: MPEG-4 Part 2 in
#: MP4, which every OpenCV wheel with FFmpeg writes (H.264 encoders are not in them).
VIDEO_FOURCC = "mp4v"


def sample_frames(frames: int = 24, *, size: int = 96, dataset: str = CRACKS_DATASET, seed: int = 0) -> Iterator[RenderedImage]:
    """Frames of a camera panning diagonally across a wall twice the frame's side.

    Args:
        frames: Number of frames.
        size: Frame width and height in pixels.
        dataset: ``"cracks"`` or ``"drywall-join"`` (see :func:`~drywallqa.data.synthetic.render_sample_image`).
        seed: Seed of the rendered wall.

    Yields:
        One :class:`~drywallqa.data.synthetic.RenderedImage` per frame: RGB ``uint8``
        ``(size, size, 3)`` and the exact masks cropped with it.
    """
    wall = render_sample_image(dataset, seed, size=2 * size)
    for index in range(frames):
        offset = round(size * index / max(frames - 1, 1))
        window = (slice(offset, offset + size), slice(offset, offset + size))
        yield RenderedImage(np.ascontiguousarray(wall.image[window]), tuple(m[window] for m in wall.masks),
                            wall.dataset, wall.class_name)


def write_sample_video(path: str | os.PathLike, frames: int = 24, *, size: int = 96, fps: float = 12.0,
                       dataset: str = CRACKS_DATASET, seed: int = 0) -> Path:
    """Write :func:`sample_frames` as an MP4 file, atomically.

    Args:
        path: Output ``.mp4`` file.
        frames: Number of frames.
        size: Frame side in pixels.
        fps: Frame rate written in the file.
        dataset: Kind of wall.
        seed: Seed of the rendered wall.

    Returns:
        ``path``.

    Raises:
        DrywallQAError: If OpenCV cannot write the file.
    """
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fourcc = cv2.VideoWriter_fourcc(*VIDEO_FOURCC)  # type: ignore[attr-defined]  # missing from OpenCV's stubs
    writer = cv2.VideoWriter(str(tmp), fourcc, float(fps), (size, size))
    if not writer.isOpened():
        raise DrywallQAError(f"could not write {path}: OpenCV has no {VIDEO_FOURCC} encoder for this container")
    try:
        for frame in sample_frames(frames, size=size, dataset=dataset, seed=seed):
            writer.write(cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    os.replace(tmp, path)
    return path
