"""The frozen-encoder embedding cache: a frozen image encoder's output per image, on disk.

Keyed by a hash of the encoder input and of the encoder itself, so fine-tuning a decoder does
not re-run a ViT on images it has seen (see :class:`EmbeddingCache`).
"""

from __future__ import annotations

import functools
import hashlib
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from drywallqa.files import atomic_write


class EmbeddingCache:
    """Frozen image-encoder outputs on disk, one safetensors file per image and encoder.

    The key of an entry is a hash of the encoder input of one image (the resized, normalised
    float pixels, so any change in preprocessing misses) and the ``encoder_key`` of the model (a
    hash of the frozen encoder's weights and name), so two models never share entries. Entries
    are written atomically and stored in float32, so a hit returns exactly what the encoder
    computed. Augmented training images differ every epoch and never hit: the cache pays off with
    augmentation off, for validation images, and across runs on the same images.

    Sizes per image: SAM ViT ``256x64x64`` floats (4 MiB), CLIPSeg three ViT-B/16 layers at 352
    px (4.5 MiB).

    Args:
        directory: Cache folder (created on first write).

    Attributes:
        hits: Images served from disk since creation.
        misses: Images computed (and written) since creation.

    Example:
        >>> cache = EmbeddingCache("runs/embedding-cache")                       # doctest: +SKIP
        >>> features = cache.get_or_compute("sam-b:1f2e", pixels, encode)        # doctest: +SKIP
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.hits = 0
        self.misses = 0

    @staticmethod
    def image_key(pixels: Tensor) -> str:
        """Hash of one image's encoder input ``(3, H, W)`` (shape, dtype and values)."""
        array = pixels.detach().to("cpu", torch.float32).contiguous().numpy()
        digest = hashlib.blake2b(digest_size=16)
        digest.update(f"{tuple(array.shape)}".encode())
        digest.update(array.tobytes())
        return digest.hexdigest()

    def path(self, encoder_key: str, image_key: str) -> Path:
        """File of one entry: ``<directory>/<encoder_key>/<2 hex>/<image_key>.safetensors``."""
        return self.directory / encoder_key / image_key[:2] / f"{image_key}.safetensors"

    def get_or_compute(
        self, encoder_key: str, pixels: Tensor, encode: Callable[[Tensor], dict[str, Tensor]]
    ) -> dict[str, Tensor]:
        """Encoder outputs of a batch, reading cached images and computing (and storing) the rest.

        Args:
            encoder_key: Identifies the frozen encoder (see :meth:`TransformersPromptModel.encoder_key`).
            pixels: float ``(B, 3, H, W)``, the encoder input.
            encode: Runs the encoder on a sub-batch; returns batch-first tensors by name.

        Returns:
            The same dict ``encode(pixels)`` would return, on ``pixels.device``.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file, save_file

        keys = [self.image_key(image) for image in pixels]
        found: list[dict[str, Tensor] | None] = []
        for key in keys:
            path = self.path(encoder_key, key)
            entry = None
            if path.is_file():
                try:
                    entry = load_file(str(path))
                except (OSError, SafetensorError) as exc:
                    # A truncated entry (e.g. a killed run on a full disk) is recomputed and replaced.
                    warnings.warn(f"{path}: unreadable embedding cache entry, recomputing ({exc})", stacklevel=2)
            found.append(entry)
        missing = [i for i, entry in enumerate(found) if entry is None]

        def write(tensors: dict[str, Tensor], tmp: Path) -> None:
            save_file(tensors, str(tmp))

        if missing:
            computed = encode(pixels[missing])
            for row, index in enumerate(missing):
                new: dict[str, Tensor] = {
                    name: value[row].detach().to("cpu", torch.float32).contiguous() for name, value in computed.items()
                }
                atomic_write(self.path(encoder_key, keys[index]), functools.partial(write, new))
                found[index] = new
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        entries = [entry for entry in found if entry is not None]  # every one, found or computed
        return {name: torch.stack([entry[name] for entry in entries]).to(pixels.device) for name in entries[0]}

    def __repr__(self) -> str:
        return f"EmbeddingCache({str(self.directory)!r}, hits={self.hits}, misses={self.misses})"
