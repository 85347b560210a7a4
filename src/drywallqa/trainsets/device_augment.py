"""The training augmentation on whole batches of tensors, on their device: :class:`BatchAugmenter`.

The same :class:`~drywallqa.trainsets.config.AugmentationConfig` as the albumentations pipeline
of :mod:`drywallqa.trainsets.augment`, with the same transforms, probabilities and parameter
distributions (albumentations 2), drawn independently per item, in the same order:

1. horizontal and vertical flip, rotation by a multiple of 90° (square images);
2. small-angle rotation, then affine (zoom per axis, shift per axis, shear per axis), resampled
   once: the image bilinearly, the mask nearest, both reflected at the border;
3. brightness/contrast (``x * (1 + c) + b``), Gaussian noise, Gaussian blur (separable kernel of
   3 or 5 pixels, sigma 0.5-3), on the image only;
4. coarse dropout: rectangles set to 0 in the image and cleared in the target.

Every draw and transform is a tensor operation on the batch's device: nothing is copied to the
host and nothing waits for it, so a GPU augments a batch in a fraction of a millisecond instead
of a loader worker taking milliseconds per photo. Two details differ from OpenCV, neither of
which changes what a model learns: the border is reflected about the edge (``BORDER_REFLECT``,
the edge pixel repeated) rather than about the edge pixel (``BORDER_REFLECT_101``), and the
output stays float in ``[0, 1]`` instead of being rounded to ``uint8``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from drywallqa.trainsets.config import AugmentationConfig


class BatchAugmenter:
    """Augment a batch of images and masks together on their device.

    Args:
        config: The augmentation parameters; the defaults if None.

    Example:
        >>> augment = BatchAugmenter(AugmentationConfig())
        >>> images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
        >>> masks = (images[:, :1] > 128).to(torch.uint8)
        >>> out_images, out_masks = augment(images, masks)
        >>> out_images.dtype, tuple(out_masks.shape)
        (torch.float32, (4, 1, 32, 32))
    """

    def __init__(self, config: AugmentationConfig | None = None):
        self.config = config or AugmentationConfig()

    def __call__(self, images: Tensor, masks: Tensor, active: Tensor | None = None,
                 generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Augment ``images`` and ``masks`` with independent draws per item.

        Args:
            images: ``(B, 3, H, W)``, ``uint8`` in ``[0, 255]`` or float in ``[0, 1]``.
            masks: ``(B, 1, H, W)`` in ``{0, 1}``, any dtype.
            active: ``(B,)`` bool: items to augment (the others pass unchanged); all if None.
            generator: Random generator on the batch's device; the device's default if None.

        Returns:
            ``(images, masks)``: float32 ``(B, 3, H, W)`` in ``[0, 1]`` and float32 ``(B, 1, H, W)``
            in ``{0, 1}``.
        """
        if images.ndim != 4 or images.shape[1] != 3 or masks.shape != (images.shape[0], 1, *images.shape[2:]):
            raise ValueError(f"expected images (B, 3, H, W) and masks (B, 1, H, W), got {tuple(images.shape)} and "
                             f"{tuple(masks.shape)}")
        c = self.config
        x = images.float().div(255.0) if images.dtype == torch.uint8 else images.float()
        m = masks.float()
        draw = _Draws(x.shape[0], x.device, generator, active)
        x, m = _flip(x, m, draw.fires(c.hflip_p), -1)
        x, m = _flip(x, m, draw.fires(c.vflip_p), -2)
        if c.rotate90_p > 0:
            x, m = _rotate90(x, m, draw.fires(c.rotate90_p), draw.integers(0, 3))
        if c.rotate_p > 0 or c.affine_p > 0:
            x, m = _warp(x, m, self._geometry(draw, x.shape[-2], x.shape[-1]))
        if c.brightness_contrast_p > 0:
            fires = draw.fires(c.brightness_contrast_p)
            alpha = 1.0 + draw.uniform(-c.contrast_limit, c.contrast_limit)
            beta = draw.uniform(-c.brightness_limit, c.brightness_limit)
            x = torch.where(_items(fires), (x * _items(alpha) + _items(beta)).clamp(0.0, 1.0), x)
        if c.noise_p > 0:
            fires = draw.fires(c.noise_p)
            sigma = draw.uniform(*c.noise_std_range)
            noise = torch.randn(x.shape, device=x.device, generator=generator) * _items(sigma)
            x = torch.where(_items(fires), (x + noise).clamp(0.0, 1.0), x)
        if c.blur_p > 0:
            x = _blur(x, draw.fires(c.blur_p), draw.uniform(0.5, 3.0), _kernel_sizes(draw, c.blur_limit),
                      radius=c.blur_limit[1] // 2)
        if c.dropout_p > 0:
            holes = self._holes(draw, x.shape[-2], x.shape[-1])
            x = x.masked_fill(holes, 0.0)
            m = m.masked_fill(holes, 0.0)
        return x, m

    def _geometry(self, draw: _Draws, height: int, width: int) -> Tensor:
        """``(B, 3, 3)`` forward maps (input pixel -> output pixel, pixel-centre coordinates) of the
        small rotation followed by the affine transform; the identity where neither fires."""
        c = self.config
        batch, device = draw.batch, draw.device
        rotate = torch.where(draw.fires(c.rotate_p), draw.uniform(-c.rotate_limit, c.rotate_limit), 0.0)
        affine = draw.fires(c.affine_p)
        scale_x, scale_y = draw.uniform(*c.scale_range), draw.uniform(*c.scale_range)
        # albumentations truncates the shift to whole pixels.
        shift_x = torch.trunc(draw.uniform(*c.translate_range) * width)
        shift_y = torch.trunc(draw.uniform(*c.translate_range) * height)
        shear_x, shear_y = -draw.uniform(*c.shear_range), -draw.uniform(*c.shear_range)
        one, zero = torch.ones(batch, device=device), torch.zeros(batch, device=device)
        scale_x, scale_y = torch.where(affine, scale_x, one), torch.where(affine, scale_y, one)
        shift_x, shift_y = torch.where(affine, shift_x, zero), torch.where(affine, shift_y, zero)
        shear_x, shear_y = torch.where(affine, shear_x, zero), torch.where(affine, shear_y, zero)

        centre = _translation(torch.full((batch,), (width - 1) / 2, device=device),
                              torch.full((batch,), (height - 1) / 2, device=device))
        to_origin = _affine_inverse(centre)
        rotation = _rotation(torch.deg2rad(rotate))
        scale = _matrix(scale_x, zero, zero, zero, scale_y, zero)
        shear = _matrix(one, torch.tan(torch.deg2rad(shear_x)), zero, torch.tan(torch.deg2rad(shear_y)), one, zero)
        affine_map = centre @ _translation(shift_x, shift_y) @ shear @ scale @ to_origin
        return affine_map @ (centre @ rotation @ to_origin)

    def _holes(self, draw: _Draws, height: int, width: int) -> Tensor:
        """``(B, 1, H, W)`` bool: the coarse-dropout rectangles of the items whose dropout fires."""
        c = self.config
        fires = draw.fires(c.dropout_p)
        most = c.dropout_holes_range[1]
        count = draw.integers(*c.dropout_holes_range)
        hole_h = (draw.uniform(*c.dropout_size_range, most) * height).long().clamp(1, height)
        hole_w = (draw.uniform(*c.dropout_size_range, most) * width).long().clamp(1, width)
        top = (draw.uniform(0.0, 1.0, most) * (height - hole_h + 1)).long()
        left = (draw.uniform(0.0, 1.0, most) * (width - hole_w + 1)).long()
        used = (torch.arange(most, device=draw.device)[None, :] < count[:, None]) & fires[:, None]
        rows = torch.arange(height, device=draw.device)[None, None, :]
        cols = torch.arange(width, device=draw.device)[None, None, :]
        in_rows = (rows >= top[..., None]) & (rows < (top + hole_h)[..., None])  # (B, holes, H)
        in_cols = (cols >= left[..., None]) & (cols < (left + hole_w)[..., None])  # (B, holes, W)
        holes = (in_rows[..., :, None] & in_cols[..., None, :] & used[..., None, None]).any(dim=1)
        return holes[:, None]


class _Draws:
    """Per-item random draws on the batch's device; ``active`` gates whether transforms fire."""

    def __init__(self, batch: int, device: torch.device, generator: torch.Generator | None, active: Tensor | None):
        self.batch, self.device, self.generator = batch, device, generator
        self.active = active.to(device=device, dtype=torch.bool) if active is not None else None

    def uniform(self, low: float, high: float, *more: int) -> Tensor:
        u = torch.rand((self.batch, *more), device=self.device, generator=self.generator)
        return low + (high - low) * u

    def integers(self, low: int, high: int) -> Tensor:
        """Uniform integers in ``[low, high]`` (both included), ``(B,)`` long."""
        return torch.randint(low, high + 1, (self.batch,), device=self.device, generator=self.generator)

    def fires(self, probability: float) -> Tensor:
        fired = torch.rand(self.batch, device=self.device, generator=self.generator) < probability
        return fired & self.active if self.active is not None else fired


def _items(values: Tensor) -> Tensor:
    """``(B,)`` -> ``(B, 1, 1, 1)``, to broadcast over images and masks."""
    return values[:, None, None, None]


def _flip(x: Tensor, m: Tensor, fires: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    return torch.where(_items(fires), x.flip(dim), x), torch.where(_items(fires), m.flip(dim), m)


def _rotate90(x: Tensor, m: Tensor, fires: Tensor, turns: Tensor) -> tuple[Tensor, Tensor]:
    """Rotate each firing item by ``turns`` quarter turns (0-3, as albumentations draws them)."""
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"rotation by 90 degrees needs square images, got {x.shape[-2]}x{x.shape[-1]}")
    for k in (1, 2, 3):
        pick = _items(fires & (turns == k))
        x = torch.where(pick, torch.rot90(x, k, dims=(-2, -1)), x)
        m = torch.where(pick, torch.rot90(m, k, dims=(-2, -1)), m)
    return x, m


def _matrix(a: Tensor, b: Tensor, c: Tensor, d: Tensor, e: Tensor, f: Tensor) -> Tensor:
    """``(B, 3, 3)`` affine matrices ``[[a, b, c], [d, e, f], [0, 0, 1]]``."""
    zero, one = torch.zeros_like(a), torch.ones_like(a)
    return torch.stack([torch.stack([a, b, c], -1), torch.stack([d, e, f], -1), torch.stack([zero, zero, one], -1)], -2)


def _translation(x: Tensor, y: Tensor) -> Tensor:
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    return _matrix(one, zero, x, zero, one, y)


def _rotation(radians: Tensor) -> Tensor:
    cos, sin, zero = torch.cos(radians), torch.sin(radians), torch.zeros_like(radians)
    return _matrix(cos, sin, zero, -sin, cos, zero)


def _affine_inverse(matrices: Tensor) -> Tensor:
    """Inverse of ``(B, 3, 3)`` affine matrices in closed form (``torch.linalg.inv`` checks for
    singular input, which waits for the device)."""
    a, b, c = matrices[:, 0, 0], matrices[:, 0, 1], matrices[:, 0, 2]
    d, e, f = matrices[:, 1, 0], matrices[:, 1, 1], matrices[:, 1, 2]
    det = a * e - b * d
    ia, ib, id_, ie = e / det, -b / det, -d / det, a / det
    return _matrix(ia, ib, -(ia * c + ib * f), id_, ie, -(id_ * c + ie * f))


def _warp(x: Tensor, m: Tensor, forward: Tensor) -> tuple[Tensor, Tensor]:
    """Resample images (bilinear) and masks (nearest) under the forward maps, reflecting at the
    border; items whose map is the identity are returned exactly as they were."""
    batch, _, height, width = x.shape
    # Pixel-centre coordinates -> grid_sample's [-1, 1] (align_corners=False puts -1 at the left edge).
    # Filled on the device: a tensor made from a Python list would be copied from the host.
    to_grid = torch.eye(3, device=x.device)
    to_grid[0, 0], to_grid[0, 2] = 2.0 / width, 1.0 / width - 1.0
    to_grid[1, 1], to_grid[1, 2] = 2.0 / height, 1.0 / height - 1.0
    # The grid maps each output location to the input location it reads, so the inverse map.
    theta = (to_grid @ _affine_inverse(forward) @ _affine_inverse(to_grid[None]))[:, :2]
    grid = F.affine_grid(theta, [batch, 1, height, width], align_corners=False)
    warped_x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    warped_m = F.grid_sample(m, grid, mode="nearest", padding_mode="reflection", align_corners=False)
    moved = _items((forward - torch.eye(3, device=x.device)).abs().amax(dim=(1, 2)) > 0)
    return torch.where(moved, warped_x, x), torch.where(moved, warped_m, m)


def _kernel_sizes(draw: _Draws, blur_limit: tuple[int, int]) -> Tensor:
    """Kernel sides as albumentations draws them: an integer in the range, made odd by adding 1."""
    sizes = draw.integers(*blur_limit)
    return sizes + (sizes % 2 == 0).long()


def _blur(x: Tensor, fires: Tensor, sigma: Tensor, sizes: Tensor, radius: int) -> Tensor:
    """Separable Gaussian blur per item (its own sigma and kernel side), reflecting at the border.

    Every item is convolved with a kernel of the largest side the config allows (``2 * radius + 1``),
    zero beyond the item's own radius, which is what its own smaller kernel computes; one grouped
    convolution then blurs the whole batch with static shapes.
    """
    batch, channels, height, width = x.shape
    radius = min(radius, height - 1, width - 1)
    offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    weights = torch.exp(-0.5 * (offsets[None, :] / sigma[:, None]) ** 2)
    weights = torch.where(offsets[None, :].abs() <= (sizes[:, None] // 2), weights, 0.0)
    weights = weights / weights.sum(dim=1, keepdim=True)
    kernel = weights.repeat_interleave(channels, dim=0)  # (B * C, K)
    flat = x.reshape(1, batch * channels, height, width)
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="reflect"), kernel[:, None, None, :], groups=batch * channels)
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="reflect"), kernel[:, None, :, None], groups=batch * channels)
    return torch.where(_items(fires), flat.reshape(batch, channels, height, width), x)
