"""Photos judged at the scale the model learned: tile plans, tiles and their blended logits.

The shipped model learned from 640 x 640 photos (Roboflow resizes of larger originals) at a
448 px input: one training photo filled one model input. Stretching every photo to that square,
whatever its size and shape, shrinks a 12 MP photo 9x and squeezes a strip of cracked tiles
into a smear. Instead a photo larger than a tile is cut into overlapping tiles, each tile a
square of the photo that covers what a training photo covered, each resized to the model input
and run through the model (tiles are batched like photos), and the tiles' logits are blended
back into one map at the photo's scale:

1. **Tile side** ``T`` in the photo's pixels (:func:`plan_tiles`): ``--tile PX`` gives it;
   with ``mm_per_px`` it covers the field of view of a training photo,
   ``T = 640 * TRAINING_MM_PER_PX / mm_per_px``; otherwise it is ``640 * k``, ``k`` the photo's
   *detail factor* (:func:`detail_factor`): how far the photo can be reduced before its finest
   octave of detail is as rich as in the training photos. A sharp photo (every 640 px training
   photo, a mosaic of them, a sharp phone photo) has ``k = 1``: each tile is 640 px of it. A
   soft or upscaled photo (a 640 px photo enlarged 3x) has ``k`` near its enlargement, so its
   tiles are not magnified beyond anything the model saw.
2. **One tile** when the photo fits: at most ``ONE_TILE_SLACK`` tiles long and no more than
   ``ONE_TILE_ASPECT`` : 1. It is stretched to the model's square as before (the training
   photos were stretched too), so a 640 px photo is judged exactly as without tiling.
3. **Tiles** otherwise: the photo is resized so that a tile is the model's input side (a tile
   is never longer than the photo's short side), and tiles overlapping by at least
   ``MIN_OVERLAP`` cover it; past ``MAX_TILES`` the tiles grow until that many cover it.
4. **Blending** (:func:`blend_tiles`): each pixel's logit is the mean of the logits of the
   tiles that cover it, weighted by a smooth window that falls towards each tile's edge (where
   the model sees least context), so tiles meet without seams. A model whose logits are a
   function of each pixel gives the same map tiled as untiled. The photo's confidence is the
   mean of the tiles' confidences weighted by the (soft) mask area each tile found, or their
   plain mean when no tile found any.

``tile="off"`` is the behaviour before tiling: one stretched input, whatever the photo.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from drywallqa.errors import ConfigError
from drywallqa.processing import resize_image, resize_to_model_input, sigmoid

#: What ``tile`` takes besides a tile side in pixels.
TILE_MODES = ("auto", "off")
#: The smallest tile side in pixels ``tile`` accepts (smaller tiles magnify beyond any use).
MIN_TILE_PX = 64
#: Side of the photos the model learned from (the Roboflow exports are 640 x 640).
TRAINING_PHOTO_PX = 640
#: Millimetres per pixel of a 640 px training photo, an estimate: the drywall-join boxes of
#: straight (vertical) joints are 49 px wide at 640 px (median; ``scripts/tiling_invariance.py``
#: measures it), and a taped joint's band, a 6-inch knife's first coat over 50 mm tape, is about
#: 150 mm wide: 150 / 49 = 3.1 mm/px. It agrees with a phone photo of a wall at the 0.5 mm/px the
#: QA rules assume, shrunk about 6x to 640 px (the drywall-join originals are 2000 x 1500 and
#: 4032 x 3024 phone photos). The crack photos give no physical reference.
TRAINING_MM_PER_PX = 3.0
#: A photo at most this many tile sides long (and no more elongated than ONE_TILE_ASPECT : 1) is
#: one tile, stretched as before, so judged up to 1.5x coarser than a training photo: the detail
#: factor of an enlarged photo often falls short of its enlargement (a 3x enlargement measures 2
#: to 3), and tiles even 1.5x too fine cost more than a photo judged whole (the magnification
#: table of docs/tiling.md).
ONE_TILE_SLACK = 1.5
#: The most elongated photo judged as one stretched tile (the training photos were 4:3 originals
#: stretched to a square, 1.33 : 1).
ONE_TILE_ASPECT = 1.5
#: Least overlap of neighbouring tiles, as a share of the tile side: chosen on the invariance
#: checks of ``scripts/tiling_invariance.py`` (with a quarter, a strip of four joint photos, whose
#: seams the model reads as joints, fell short of its photos' IoU).
MIN_OVERLAP = 1 / 3
#: The most tiles per photo and prompt: beyond, tiles grow (a 4000 x 3000 photo takes 63 tiles of
#: 640 px; a 4096 x 4096 one, the most a photo is decoded at, tiles of about 800 px).
MAX_TILES = 64
#: Reductions tried by :func:`detail_factor`, smallest first. None between 1 and 2: a photo that is
#: not sharp at full size is reduced at least 2x, since judging a photo a little too coarse costs
#: less than a little too fine (the magnification table of docs/tiling.md).
DETAIL_FACTORS = (1.0, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0)
#: The finest octave's share of detail (:func:`detail_ratio`) a photo reduced by its detail factor
#: reaches: about the 10th percentile of the training photos' own (``scripts/tiling_invariance.py``
#: measures it on cracks/train and drywall-join/train).
DETAIL_RATIO = 0.6


def check_tile(value, name: str = "tile") -> str | int:
    """The one check of a tile setting: ``"auto"``, ``"off"`` or a tile side in pixels >= 64.

    Args:
        value: The setting; a string of digits (from a command line or a form) is a side in pixels.
        name: What the message calls it (``--tile``, ``tile``).

    Returns:
        ``"auto"``, ``"off"`` or the side as an ``int``.

    Raises:
        ConfigError: Naming ``name``, for anything else.
    """
    if isinstance(value, str) and value.strip().lower() in TILE_MODES:
        return value.strip().lower()
    side = None
    if isinstance(value, str) and value.strip().isdigit():
        side = int(value.strip())
    elif isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        side = int(value)
    if side is None or side < MIN_TILE_PX:
        raise ConfigError(f"{name} must be auto, off or a tile side in pixels of at least {MIN_TILE_PX}, got {value!r}")
    return side


@dataclass(frozen=True)
class TilePlan:
    """How one photo is cut into model inputs, and how their logits go back together.

    Attributes:
        image_shape: ``(H, W)`` of the photo.
        canvas_shape: ``(h, w)`` of the photo resized so that a tile is ``size`` pixels (the
            ``(size, size)`` square when the photo is one stretched tile).
        size: Side of the model's square input.
        origins: ``(y, x)`` top-left corner of each tile on the canvas.
        tile: The setting that made the plan: ``"auto"``, ``"off"`` or a side in pixels.
        tile_px: Side of a tile in the pixels of the image planned (for a photo decoded reduced,
            its decoded pixels, those of its mask); None when the photo is one stretched tile.
        scale_from: What chose the scale: ``"off"``, ``"one tile"`` (the photo fits one),
            ``"detail"`` (:func:`detail_factor`), ``"mm_per_px"`` or ``"tile px"``; with
            ``" (max tiles)"`` when :data:`MAX_TILES` made the tiles larger.
        detail_factor: The photo's detail factor when it was measured.
    """

    image_shape: tuple[int, int]
    canvas_shape: tuple[int, int]
    size: int
    origins: tuple[tuple[int, int], ...]
    tile: str | int = "off"
    tile_px: float | None = None
    scale_from: str = "off"
    detail_factor: float | None = None

    def __post_init__(self) -> None:
        h, w = self.canvas_shape
        if not self.origins or h < self.size or w < self.size:
            raise ValueError(f"a tile plan needs tiles and a canvas of at least {self.size} px, got {self.canvas_shape}")
        for y, x in self.origins:
            if not (0 <= y <= h - self.size and 0 <= x <= w - self.size):
                raise ValueError(f"tile at {(y, x)} leaves the {h}x{w} canvas")

    def __len__(self) -> int:
        return len(self.origins)

    @property
    def stretched(self) -> bool:
        """True when the photo is one tile stretched to the model's square (the untiled behaviour)."""
        return self.tile_px is None

    def to_dict(self) -> dict:
        """What a run records: the setting, the tiles used, their side in the photo's pixels, why."""
        return {"tile": self.tile, "tiles": len(self), "tile_px": None if self.tile_px is None else round(self.tile_px, 1),
                "scale_from": self.scale_from,
                "detail_factor": None if self.detail_factor is None else round(self.detail_factor, 2)}

    def __repr__(self) -> str:
        (H, W), (h, w) = self.image_shape, self.canvas_shape
        side = "stretched" if self.stretched else f"{self.tile_px:.0f} px tiles"
        return f"TilePlan({W}x{H} -> {len(self)} x {self.size} px on {w}x{h}, {side}, {self.scale_from})"


def one_tile_plan(image_shape: tuple[int, ...], size: int, tile: str | int = "off", scale_from: str = "off",
                  detail: float | None = None) -> TilePlan:
    """The plan of a photo stretched whole to the model's square."""
    return TilePlan(tuple(image_shape[:2]), (size, size), size, ((0, 0),), tile, None, scale_from, detail)


def plan_tiles(image: np.ndarray, size: int, tile: str | int = "auto", *, mm_per_px: float | None = None,
               max_tiles: int = MAX_TILES) -> TilePlan:
    """Choose the tiles of one photo (see the module's description).

    Args:
        image: The photo, ``(H, W)`` or ``(H, W, 3)`` (its pixels are read only to measure the
            detail factor, in ``auto`` mode without ``mm_per_px``).
        size: Side of the model's square input.
        tile: ``"auto"``, ``"off"`` or a tile side in the photo's pixels (see :func:`check_tile`).
        mm_per_px: Millimetres per pixel *of the pixels given* (a photo decoded reduced has its
            file's scale times the reduction).
        max_tiles: The most tiles; tiles grow beyond.

    Raises:
        ConfigError: For a bad ``tile`` or ``mm_per_px``.
    """
    tile = check_tile(tile)
    height, width = image.shape[:2]
    if tile == "off":
        return one_tile_plan(image.shape, size)
    detail = None
    if isinstance(tile, int):
        side, scale_from = float(tile), "tile px"
    elif mm_per_px is not None:
        try:
            mm = -1.0 if isinstance(mm_per_px, bool) else float(mm_per_px)
        except (TypeError, ValueError):
            mm = -1.0
        if not (math.isfinite(mm) and mm > 0):
            raise ConfigError(f"mm_per_px must be a positive number, got {mm_per_px!r}")
        side, scale_from = TRAINING_PHOTO_PX * TRAINING_MM_PER_PX / mm, "mm_per_px"
    elif fits_one_tile(height, width, TRAINING_PHOTO_PX):  # k >= 1 only makes tiles larger
        return one_tile_plan(image.shape, size, tile, "one tile")
    else:
        detail = detail_factor(image, max_factor=max(height, width) / TRAINING_PHOTO_PX)
        side, scale_from = TRAINING_PHOTO_PX * detail, "detail"
    if fits_one_tile(height, width, side):
        return one_tile_plan(image.shape, size, tile, "one tile" if scale_from == "detail" else scale_from, detail)
    side = max(min(side, min(height, width)), 1.0)  # a tile never longer than the short side
    while True:
        scale = size / side
        canvas = (max(size, round(height * scale)), max(size, round(width * scale)))
        rows, cols = tile_starts(canvas[0], size), tile_starts(canvas[1], size)
        if len(rows) * len(cols) <= max_tiles:
            break
        side *= math.sqrt(len(rows) * len(cols) / max_tiles) * 1.02
        scale_from = scale_from.removesuffix(" (max tiles)") + " (max tiles)"
    return TilePlan((height, width), canvas, size, tuple((y, x) for y in rows for x in cols), tile, side, scale_from,
                    detail)


def fits_one_tile(height: int, width: int, side: float) -> bool:
    """Whether a photo is judged as one stretched tile of ``side`` pixels (see :data:`ONE_TILE_SLACK`)."""
    return max(height, width) <= ONE_TILE_SLACK * side and max(height, width) <= ONE_TILE_ASPECT * min(height, width)


def tile_starts(length: int, size: int) -> list[int]:
    """Evenly spread starts of ``size`` tiles covering ``length`` pixels, overlapping by >= :data:`MIN_OVERLAP`."""
    if length <= size:
        return [0]
    count = math.ceil((length - size) / (size * (1 - MIN_OVERLAP))) + 1
    return [round(i * (length - size) / (count - 1)) for i in range(count)]


def detail_ratio(grey: np.ndarray) -> float:
    """How rich a photo's finest octave of detail is: its energy over the next octave's (the two
    finest levels of a Laplacian pyramid of ``grey``).

    About 1 for a sharp photo (natural images have about as much energy per octave), far lower for
    a soft or enlarged one, whose finest octave is nearly empty. Over the whole photo, so the
    structure it shows (a crack, a joint's edges) outweighs flat wall, whose finest octave is
    mostly noise. A photo without any detail gives ``inf`` (any scale will do).
    """
    import cv2

    down = cv2.pyrDown(grey)
    finest = float(np.mean(np.square(grey - cv2.pyrUp(down, dstsize=(grey.shape[1], grey.shape[0])))))
    next_octave = float(np.mean(np.square(down - cv2.pyrUp(cv2.pyrDown(down), dstsize=(down.shape[1], down.shape[0])))))
    return finest / next_octave if next_octave > 1e-6 else math.inf


def detail_factor(image: np.ndarray, max_factor: float | None = None) -> float:
    """How far a photo can be reduced before its finest detail is as rich as the training photos'.

    The smallest reduction of :data:`DETAIL_FACTORS` (area averaging) whose :func:`detail_ratio`
    reaches :data:`DETAIL_RATIO`; the largest when none does.

    Args:
        image: RGB ``uint8`` ``(H, W, 3)`` or grey ``(H, W)``.
        max_factor: The first reduction at or beyond it is the last tried (it leaves a photo that
            fits one tile, so larger ones change nothing).
    """
    import cv2

    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    grey = grey.astype(np.float32)
    for factor in DETAIL_FACTORS:
        reduced = grey if factor == 1.0 else cv2.resize(
            grey, (max(1, round(grey.shape[1] / factor)), max(1, round(grey.shape[0] / factor))),
            interpolation=cv2.INTER_AREA)
        if min(reduced.shape) < 16 or detail_ratio(reduced) >= DETAIL_RATIO:
            return factor
        if max_factor is not None and factor >= max_factor:
            break
    return factor


def cut_tiles(image: np.ndarray, plan: TilePlan) -> np.ndarray:
    """The model inputs of a plan: ``uint8`` ``(n, size, size, 3)``, C-contiguous."""
    if plan.stretched:
        return resize_to_model_input(image, plan.size)[None]
    canvas = resize_image(image, *plan.canvas_shape)
    s = plan.size
    return np.ascontiguousarray(np.stack([canvas[y : y + s, x : x + s] for y, x in plan.origins]))


@functools.lru_cache(maxsize=4)
def tile_window(size: int) -> np.ndarray:
    """The blending weight of a tile's pixels: ``sin^2`` across each axis (1 at the centre, 1e-3 at the edge)."""
    ramp = np.maximum(np.sin(np.pi * (np.arange(size) + 0.5) / size) ** 2, 1e-3).astype(np.float32)
    window = np.outer(ramp, ramp)
    window.setflags(write=False)
    return window


def blend_tiles(plan: TilePlan, mask_logits: np.ndarray, confidence_logits: np.ndarray) -> tuple[np.ndarray, float]:
    """The tiles' logits as one map on the plan's canvas, and the photo's confidence logit.

    Args:
        plan: The photo's plan.
        mask_logits: float ``(n, size, size)``, one per tile in the plan's order.
        confidence_logits: ``(n,)`` predicted-IoU logits of the tiles.

    Returns:
        float32 ``canvas_shape`` logits (the tile's own for one tile) and the confidence logit.
    """
    if len(mask_logits) != len(plan) or len(confidence_logits) != len(plan):
        raise ValueError(f"got {len(mask_logits)} tile logits and {len(confidence_logits)} confidences for {len(plan)} tiles")
    if len(plan) == 1 and plan.canvas_shape == (plan.size, plan.size):
        return mask_logits[0], float(confidence_logits[0])
    window, s = tile_window(plan.size), plan.size
    total = np.zeros(plan.canvas_shape, np.float32)
    weight = np.zeros(plan.canvas_shape, np.float32)
    areas = np.empty(len(plan), np.float64)
    for index, ((y, x), logits) in enumerate(zip(plan.origins, mask_logits)):
        total[y : y + s, x : x + s] += window * logits
        weight[y : y + s, x : x + s] += window
        areas[index] = float(np.sum(window * sigmoid(logits)))
    # Each tile's confidence counts by the mask it found; a tile of bare wall says little about the mask.
    shares = areas + 1e-6 * float(window.sum())
    confidence = float(np.sum(shares * sigmoid(np.asarray(confidence_logits, np.float32))) / shares.sum())
    confidence = min(max(confidence, 1e-6), 1 - 1e-6)
    return total / weight, math.log(confidence / (1 - confidence))
