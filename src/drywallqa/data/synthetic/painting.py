"""Scene painting for the synthetic sample data: walls, cracks, joints, screws, light, exact masks.

:func:`render_sample_image` draws one drywall photo and the exact mask of every crack or joint
in it, from a seed alone; nothing here writes files (see :mod:`.writing` for the datasets).
The random draws and their order are part of the output: changing either changes every
rendered image, and the tests and ``docs/pseudomasks.md`` figures depend on them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from drywallqa.errors import ConfigError

__all__ = ["CRACKS_DATASET", "JOINTS_DATASET", "RenderedImage", "render_sample_image"]

CRACKS_DATASET = "cracks"
JOINTS_DATASET = "drywall-join"
# Leading seed word of each kind of scene, so the two kinds never share a random stream.
DATASET_CODES = {CRACKS_DATASET: 1, JOINTS_DATASET: 2}
_CLASS_NAMES = {CRACKS_DATASET: "crack", JOINTS_DATASET: "taping_area"}


@dataclass(frozen=True)
class RenderedImage:
    """One synthetic drywall photo with the exact mask of every object drawn in it.

    Attributes:
        image: RGB ``uint8`` ``(S, S, 3)``.
        masks: One ``(S, S)`` bool mask per crack or joint; empty for a background image.
        dataset: ``"cracks"`` or ``"drywall-join"``: which kind of scene it is.
        class_name: Prompt class of the masks: ``"crack"`` or ``"taping_area"``.
    """

    image: np.ndarray
    masks: tuple[np.ndarray, ...]
    dataset: str
    class_name: str

    def __post_init__(self) -> None:
        if self.image.ndim != 3 or self.image.shape[2] != 3 or self.image.dtype != np.uint8:
            raise ValueError(f"image must be uint8 (H, W, 3), got {self.image.dtype} {self.image.shape}")
        for mask in self.masks:
            if mask.shape != self.image.shape[:2] or mask.dtype != bool:
                raise ValueError(f"masks must be bool {self.image.shape[:2]}, got {mask.dtype} {mask.shape}")

    @property
    def mask(self) -> np.ndarray:
        """Union of the object masks, ``(S, S)`` bool."""
        out = np.zeros(self.image.shape[:2], dtype=bool)
        for mask in self.masks:
            out |= mask
        return out

    def __repr__(self) -> str:
        height, width = self.image.shape[:2]
        return (
            f"RenderedImage({self.dataset!r}, {width}x{height}, {len(self.masks)} {self.class_name} mask(s), "
            f"coverage={self.mask.mean():.3f})"
        )


def render_sample_image(
    dataset: str, seed: int | Sequence[int] = 0, *, size: int = 384, background: bool = False
) -> RenderedImage:
    """Render one synthetic drywall photo and its exact masks, without writing anything.

    :func:`generate_sample_data` renders source photo ``<prefix>-NNNN`` of a run with seed ``S``
    as ``render_sample_image(dataset, (S, NNNN), size=size, background=...)`` and exports
    transformed variants of it, so tests can recompute any image's true masks.

    Args:
        dataset: ``"cracks"`` (a mostly painted wall with 1-3 branching cracks, sometimes an
            unannotated joint and screw spots as distractors) or ``"drywall-join"`` (a wall with
            1-3 joints, taped or bare seams, and screw spots).
        seed: Seed, or a sequence of non-negative ints, of the random scene.
        size: Width and height in pixels.
        background: Draw no cracks or joints (distractors still appear).

    Returns:
        The image and one mask per drawn object.
    """
    if dataset not in DATASET_CODES:
        raise ConfigError(f"sample data: unknown dataset {dataset!r}; expected one of {sorted(DATASET_CODES)}")
    rng = np.random.default_rng([DATASET_CODES[dataset], *np.atleast_1d(np.asarray(seed, dtype=np.int64)).tolist()])
    render = _render_crack_scene if dataset == CRACKS_DATASET else _render_joint_scene
    image, masks = render(rng, int(size), not background)
    pixels = np.clip(image + 0.5, 0, 255).astype(np.uint8)
    return RenderedImage(pixels, tuple(masks), dataset, _CLASS_NAMES[dataset])



@lru_cache(maxsize=4)
def _pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    return xs, ys


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Unit-variance-ish noise varying over ``size / cells`` pixels, ``(size, size)`` float32."""
    coarse = rng.standard_normal((cells + 3, cells + 3)).astype(np.float32)
    big = cv2.resize(coarse, (size * (cells + 3) // cells,) * 2, interpolation=cv2.INTER_CUBIC)
    offset = (big.shape[0] - size) // 2  # drop the cubic resize's border artefacts
    return big[offset:offset + size, offset:offset + size]


def _smooth_curve(rng: np.random.Generator, knots: int, coords: np.ndarray, extent: float, scale: float) -> np.ndarray:
    """A random 1-D function (linear between ``knots`` points over ``[-extent, extent]``) at ``coords``."""
    grid = np.linspace(-extent, extent, knots)
    return np.interp(coords, grid, rng.normal(0.0, scale, knots)).astype(np.float32)


_WALL_COLOURS = {
    # Mean RGB of bare gypsum board paper and of common painted finishes.
    "board": (176, 172, 162), "grey board": (165, 165, 160), "primer": (214, 212, 206),
    "warm white": (218, 210, 196), "beige": (204, 193, 172), "light grey": (196, 196, 192),
    "green board": (112, 170, 150),  # moisture-resistant board
}


def _render_wall(rng: np.random.Generator, size: int, colour: str) -> tuple[np.ndarray, np.ndarray]:
    """Painted or bare gypsum: base colour, low-frequency shading, mottling and fine grain.

    Returns:
        ``(image, grain)``: ``(S, S, 3)`` float32 image in 0-255 and the ``(S, S)`` grain field,
        reused so joint compound shares the wall's grain at a lower strength.
    """
    base = np.array(_WALL_COLOURS[colour], dtype=np.float32) + rng.normal(0.0, 2.5, 3).astype(np.float32)
    shading = 6.0 * _smooth_noise(rng, size, int(rng.integers(2, 5)))
    mottling = 1.5 * _smooth_noise(rng, size, max(8, size // 16))
    noise = rng.standard_normal((size, size), dtype=np.float32)
    if "board" in colour:
        # Board paper has a faint fibre direction; paint has an isotropic roller stipple.
        grain = cv2.GaussianBlur(noise, (0, 0), sigmaX=1.6, sigmaY=0.6) * rng.uniform(4.0, 6.0)
    else:
        grain = cv2.GaussianBlur(noise, (0, 0), 0.8) * rng.uniform(3.0, 5.0)
    image = base[None, None, :] + (shading + mottling + grain)[..., None]
    image += 0.6 * rng.standard_normal((size, size, 3), dtype=np.float32)  # slight chroma noise
    return image, grain


def _render_joint_scene(rng: np.random.Generator, size: int, with_joints: bool) -> tuple[np.ndarray, list[np.ndarray]]:
    """A wall with 1-3 joints, taped or bare seams (none for a background image), and screw spots."""
    # Half the walls are photographed before taping (bare seams, as in most of the real export),
    # half after, mostly on bare board, where the mudded tape stands out white.
    taped = rng.random() < 0.5
    colour = str(rng.choice(["board", "board", "board", "grey board", "grey board", "primer"] if taped else
                            ["board", "grey board", "primer", "primer", "green board"]))
    image, grain = _render_wall(rng, size, colour)
    masks = []
    if with_joints:
        n_joints = int(rng.choice([1, 2, 3], p=[0.55, 0.35, 0.10]))
        compound_rgb = _compound_colour(rng, image, colour)
        for orientation in _joint_orientations(rng, n_joints):
            if taped:
                mask = _paint_joint(rng, image, grain, orientation, compound_rgb)
            else:
                mask = _paint_seam(rng, image, orientation)
            if mask.any():
                masks.append(mask)
    _paint_screws(rng, image)
    return _light_and_expose(rng, image), masks


def _render_crack_scene(rng: np.random.Generator, size: int, with_cracks: bool) -> tuple[np.ndarray, list[np.ndarray]]:
    """A mostly painted wall with 1-3 branching cracks (none for a background image)."""
    colour = str(rng.choice(["primer", "warm white", "beige", "light grey", "board"]))
    image, grain = _render_wall(rng, size, colour)
    if rng.random() < 0.3:  # an unannotated joint as a distractor
        _paint_joint(rng, image, grain, _joint_orientations(rng, 1)[0], _compound_colour(rng, image, colour))
    if rng.random() < 0.5:
        _paint_screws(rng, image)
    masks = []
    if with_cracks:
        n_cracks = int(rng.choice([1, 2, 3], p=[0.55, 0.3, 0.15]))
        darkness = np.zeros((size, size), dtype=np.float32)
        for _ in range(n_cracks):
            mask = _draw_crack(rng, size, darkness)
            if mask.any():
                masks.append(mask)
        _paint_cracks(rng, image, darkness)
    return _light_and_expose(rng, image), masks


def _joint_orientations(rng: np.random.Generator, n_joints: int) -> list[str]:
    first = str(rng.choice(["vertical", "horizontal", "diagonal"], p=[0.5, 0.3, 0.2]))
    others = rng.choice(["vertical", "horizontal", "diagonal"], size=n_joints - 1, p=[0.4, 0.4, 0.2]).tolist()
    return [first, *others]


def _compound_colour(rng: np.random.Generator, image: np.ndarray, colour: str) -> np.ndarray:
    """RGB of joint compound on this wall: neutral white on bare board, the paint colour when painted."""
    wall_rgb = image.reshape(-1, 3).mean(axis=0)
    if "board" in colour:
        return np.full(3, wall_rgb.mean() + rng.uniform(20.0, 45.0), dtype=np.float32)
    # Paint covers wall and compound alike: only a slightly brighter, smoother band shows.
    return (wall_rgb + rng.uniform(2.0, 7.0)).astype(np.float32)


def _joint_coordinates(rng: np.random.Generator, size: int, orientation: str) -> tuple[np.ndarray, np.ndarray]:
    """Signed pixel distances along and across a random straight joint line: ``(S, S)`` each."""
    xs, ys = _pixel_grid(size)
    if orientation == "vertical":
        angle = math.pi / 2 + rng.normal(0.0, 0.025)
    elif orientation == "horizontal":
        angle = rng.normal(0.0, 0.025)
    else:
        angle = rng.choice([-1, 1]) * rng.uniform(0.4, 1.15)
    centre = rng.uniform(0.15, 0.85, 2) * size
    along_axis = np.array([math.cos(angle), math.sin(angle)], dtype=np.float32)
    across_axis = np.array([-along_axis[1], along_axis[0]], dtype=np.float32)
    along = (xs - centre[0]) * along_axis[0] + (ys - centre[1]) * along_axis[1]
    across = (xs - centre[0]) * across_axis[0] + (ys - centre[1]) * across_axis[1]
    return along, across


def _paint_seam(rng: np.random.Generator, image: np.ndarray, orientation: str) -> np.ndarray:
    """Paint one untaped butt joint between two boards into ``image``; return its true mask.

    Most photos of the real drywall-join export show boards before taping: the joint is a thin
    dark gap with a slight change of tone between the two boards. The true mask is the band the
    paper tape (52 mm, about 4-7 % of a panel photo) will cover, centred on the gap.
    """
    size = image.shape[0]
    along, across = _joint_coordinates(rng, size, orientation)
    # The two boards catch the light a little differently; the step is soft over a pixel or two.
    image += (rng.normal(0.0, 5.0) * _smoothstep(across / 3.0 + 0.5))[..., None]
    gap_half = rng.uniform(0.5, 1.3)
    gap = np.exp(-((across / gap_half) ** 2))
    mask = np.abs(across) <= size * rng.uniform(0.02, 0.035)
    if rng.random() < 0.25:  # a board ending inside the picture (a T joint)
        end = rng.uniform(-0.3, 0.3) * size
        gap *= 1.0 - _smoothstep(along - end + 0.5)
        mask &= along <= end
    image *= (1.0 - rng.uniform(0.25, 0.55) * gap)[..., None]
    return mask


def _paint_joint(
    rng: np.random.Generator, image: np.ndarray, grain: np.ndarray, orientation: str, compound_rgb: np.ndarray
) -> np.ndarray:
    """Paint one paper-tape joint under feathered compound into ``image``; return its true mask.

    The joint is a straight band; compound opacity falls smoothly from the tape to the feathered
    edge, and the true mask is where the opacity is at least one half, so the mask is exactly
    the visible band.
    """
    size = image.shape[0]
    along, across = _joint_coordinates(rng, size, orientation)
    tape_half = size * rng.uniform(0.018, 0.03)
    feather = tape_half * rng.uniform(1.5, 4.0)  # compound is spread well beyond the tape
    # Each mud edge wanders a little along the joint: trowelled edges are never ruler-straight.
    edge_left = _smooth_curve(rng, 14, along, size, 0.12 * feather)
    edge_right = _smooth_curve(rng, 14, along, size, 0.12 * feather)
    excess = np.where(across < 0, -across - edge_left, across - edge_right) - tape_half
    opacity = 1.0 - _smoothstep(excess / feather)
    if rng.random() < 0.25:  # a butt joint ending inside the picture
        end = rng.uniform(-0.3, 0.3) * size
        opacity *= 1.0 - _smoothstep((along - end) / feather + 0.5)

    streaks = _smooth_curve(rng, int(size // 2), across, size, 1.8)  # trowel marks along the joint
    sanding = 3.0 * _smooth_noise(rng, size, max(4, size // 32))
    # Compound is smoother than board paper: a little of the wall's grain, plus its own marks.
    compound = compound_rgb + (streaks + sanding + 0.4 * grain)[..., None]
    image *= 1.0 - opacity[..., None]
    image += compound * opacity[..., None]

    tape_visibility = rng.uniform(0.0, 0.8)
    on_tape = (1.0 - _smoothstep((np.abs(across) - tape_half) / 1.5 + 0.5)) * opacity
    tape_tint = np.array([-3.0, -4.0, -9.0], dtype=np.float32)  # paper tape: slightly cream
    image += (tape_visibility * on_tape)[..., None] * tape_tint
    tape_edges = np.exp(-(((np.abs(across) - tape_half) / 0.9) ** 2)) * opacity
    crease = np.exp(-((across / 0.8) ** 2)) * opacity
    image -= (tape_visibility * (4.0 * tape_edges + 3.0 * crease))[..., None]
    return opacity >= 0.5


def _paint_screws(rng: np.random.Generator, image: np.ndarray) -> None:
    """Screw heads in rows along studs: compound spots or bare dimples (never annotated)."""
    size = image.shape[0]
    spacing = size * rng.uniform(0.25, 0.42)
    pitch = size * rng.uniform(0.11, 0.2)
    patches = np.zeros((size, size), dtype=np.float32)
    dimples = np.zeros((size, size), dtype=np.float32)
    radius = max(1, int(round(size * rng.uniform(0.004, 0.008))))
    mudded = rng.random() < 0.6
    for x in np.arange(rng.uniform(0, spacing), size, spacing):
        for y in np.arange(rng.uniform(0, pitch), size, pitch):
            if rng.random() < 0.15:
                continue
            cx, cy = int(x + rng.normal(0, 1.5)), int(y + rng.normal(0, 2.0))
            if mudded:
                axes = (int(radius * rng.uniform(2.0, 3.5)), int(radius * rng.uniform(1.5, 2.5)))
                cv2.ellipse(patches, (cx, cy), axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
            else:
                cv2.circle(dimples, (cx, cy), radius, 1.0, -1)
    patches = cv2.GaussianBlur(patches, (0, 0), 1.2)
    dimples = cv2.GaussianBlur(dimples, (0, 0), 0.7)
    image += (patches * rng.uniform(4.0, 10.0))[..., None]
    image -= (dimples * rng.uniform(12.0, 30.0))[..., None]


def _draw_crack(rng: np.random.Generator, size: int, darkness: np.ndarray) -> np.ndarray:
    """Draw one branching crack; return its mask and add its depth to ``darkness`` (0-1)."""
    mask = np.zeros((size, size), dtype=np.uint8)
    start = rng.uniform(0.1, 0.9, 2) * size
    heading = rng.uniform(0, 2 * math.pi)
    width = int(rng.choice([1, 2, 3, 4], p=[0.35, 0.35, 0.2, 0.1]))
    steps = int(rng.integers(30, 90))
    pending = [(start, heading, width, steps, 0)]
    while pending:
        point, heading, width, steps, depth = pending.pop()
        wander, width_drift = 0.0, 0.0
        step_length = size / 96.0
        for i in range(steps):
            # AR(1) wander around a main direction: jagged, but the crack keeps its course.
            wander = 0.75 * wander + rng.normal(0.0, 0.38)
            length = step_length * rng.uniform(0.6, 1.4)
            nxt = point + length * np.array([math.cos(heading + wander), math.sin(heading + wander)])
            taper = math.sin(math.pi * (i + 0.5) / steps) ** 0.5
            # Width drifts slowly: per-step jumps would look like a string of beads.
            width_drift = 0.92 * width_drift + rng.normal(0.0, 0.08)
            thickness = max(1, int(round(width * (0.45 + 0.55 * taper) + width_drift)))
            p, q = tuple(int(round(v)) for v in point), tuple(int(round(v)) for v in nxt)
            cv2.line(mask, p, q, 1, thickness=thickness, lineType=cv2.LINE_8)
            shade = min(1.0, 0.45 + 0.15 * thickness)
            cv2.line(darkness, p, q, shade, thickness=thickness, lineType=cv2.LINE_8)
            if depth < 2 and width > 1 and rng.random() < 0.05:
                branch = heading + wander + rng.choice([-1, 1]) * rng.uniform(0.4, 1.1)
                pending.append((nxt.copy(), branch, width - 1, int(steps * rng.uniform(0.2, 0.5)), depth + 1))
            point = nxt
            if not (-size * 0.2 < point[0] < size * 1.2 and -size * 0.2 < point[1] < size * 1.2):
                break
    # Pinholes where thick strokes overlap would force an RLE; make them crack, as they look.
    pinholes = _small_holes(mask.astype(bool), max_area=12)
    darkness[pinholes] = np.maximum(darkness[pinholes], 0.75)
    return mask.astype(bool) | pinholes


def _small_holes(mask: np.ndarray, max_area: int) -> np.ndarray:
    """Background pixels enclosed by ``mask`` in pieces of at most ``max_area`` pixels."""
    # 4-connected background pairs with 8-connected foreground, the convention of findContours.
    count, labels, stats, _ = cv2.connectedComponentsWithStats((~mask).astype(np.uint8), connectivity=4)
    small = np.zeros(count, dtype=bool)
    small[1:] = stats[1:, cv2.CC_STAT_AREA] <= max_area
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    small[border] = False
    return small[labels] & ~mask


def _paint_cracks(rng: np.random.Generator, image: np.ndarray, darkness: np.ndarray) -> None:
    """Darken the drawn cracks, with a soft rim and a shadow cast away from the light."""
    strength = rng.uniform(0.45, 0.75)
    core = np.maximum(darkness, cv2.GaussianBlur(darkness, (0, 0), 0.7))
    light = rng.uniform(0, 2 * math.pi)
    shift = np.array([[1, 0, 1.5 * math.cos(light)], [0, 1, 1.5 * math.sin(light)]], dtype=np.float32)
    shadow = cv2.GaussianBlur(cv2.warpAffine(darkness, shift, darkness.shape[::-1]), (0, 0), 1.3)
    factor = 1.0 - strength * core - 0.25 * strength * shadow * (darkness == 0)
    tint = np.array([1.0, 0.97, 0.92], dtype=np.float32)  # crack interiors look slightly brown
    image *= np.clip(factor, 0.0, 1.0)[..., None] ** tint


def _light_and_expose(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Directional lighting gradient, vignetting, white balance, exposure and sensor noise."""
    size = image.shape[0]
    xs, ys = _pixel_grid(size)
    direction = rng.uniform(0, 2 * math.pi)
    ramp = ((xs - size / 2) * math.cos(direction) + (ys - size / 2) * math.sin(direction)) / size
    radius2 = ((xs - size / 2) ** 2 + (ys - size / 2) ** 2) / (size / 2) ** 2
    light = (1.0 + rng.uniform(0.05, 0.3) * ramp) * (1.0 - rng.uniform(0.03, 0.22) * radius2)
    # Indoor light is mostly warm; a small random cast on top.
    white_balance = (np.array([1.015, 1.0, 0.975], dtype=np.float32) + rng.normal(0.0, 0.012, 3)).astype(np.float32)
    image *= light[..., None] * white_balance * rng.uniform(0.78, 1.08)
    image += 1.5 * rng.standard_normal(image.shape, dtype=np.float32)
    return image
