"""Self-training: a trained drywallqa model refines each box.

The model segments the whole image with the class's canonical prompt (from
:class:`drywallqa.data.prompts.PromptConfig`), and each box keeps the predicted pixels inside
it. Boxes where the model predicts nothing fall back to the filled box, so no annotation is lost.
"""

from __future__ import annotations

import os
from typing import ClassVar

import numpy as np

from drywallqa.errors import DrywallQAError
from drywallqa.processing import check_threshold, foreground
from drywallqa.pseudomask.base import PseudoMaskMethod, box_masks


class ModelMethod(PseudoMaskMethod):
    """Pseudo-masks from a trained :class:`drywallqa.models.PromptSegmentationModel`.

    Args:
        weights: Checkpoint folder written by ``save_pretrained`` (``drywallqa train``).
        device: Torch device; CUDA when available by default.
        threshold: Probability threshold of the mask.
        image_size: Square side the image is resized to; the model's own size by default.
        prompts: ``{class_name: prompt}`` overrides of the canonical prompts.
        empty: ``"box"`` (fill boxes where the model predicts nothing) or ``"empty"``.
    """

    name: ClassVar[str] = "model"
    uses_torch: ClassVar[bool] = True

    def __init__(
        self,
        weights: str | os.PathLike,
        *,
        device: str | None = None,
        threshold: float = 0.5,
        image_size: int | None = None,
        prompts: dict[str, str] | None = None,
        empty: str = "box",
    ):
        threshold = check_threshold(threshold)
        if empty not in ("box", "empty"):
            raise ValueError(f"empty must be 'box' or 'empty', got {empty!r}")
        try:
            import torch

            from drywallqa.models import PromptSegmentationModel
        except ImportError as exc:
            raise DrywallQAError(f"the 'model' pseudo-mask method needs drywallqa.models and torch ({exc})") from exc
        from drywallqa.data.prompts import PromptConfig

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.weights = str(weights)
        self.model = PromptSegmentationModel.from_pretrained(weights, map_location=self.device).eval()
        self.threshold, self.empty = float(threshold), empty
        self.image_size = int(image_size or self.model.default_image_size)
        divisor = self.model.size_divisor
        if self.image_size % divisor:
            raise ValueError(f"image_size must be a multiple of {divisor}, got {self.image_size}")
        self.prompt_config = PromptConfig.default()
        self.prompts = dict(prompts or {})

    def config(self) -> dict:
        return {"weights": self.weights, "model": self.model.name, "threshold": self.threshold,
                "image_size": self.image_size, "prompts": self.prompts, "empty": self.empty}

    def prompt_for(self, class_name: str) -> str:
        """The prompt used for boxes of ``class_name`` (its canonical prompt by default)."""
        if class_name in self.prompts:
            return self.prompts[class_name]
        known = self.prompt_config.classes.get(class_name)
        return known.prompt if known else f"segment {class_name.replace('_', ' ')}"

    def predict_boxes(self, image: np.ndarray, boxes: np.ndarray, class_name: str) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        height, width = image.shape[:2]
        pixels = torch.from_numpy(np.ascontiguousarray(image)).to(self.device).permute(2, 0, 1)[None].float() / 255.0
        resized = F.interpolate(pixels, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        with torch.inference_mode():
            logits = self.model.segment(resized, [self.prompt_for(class_name)]).mask_logits
            logits = F.interpolate(logits.float(), size=(height, width), mode="bilinear", align_corners=False)
        probability = torch.sigmoid(logits)[0, 0].cpu().numpy()
        predicted = foreground(probability, self.threshold)
        filled = box_masks(boxes, height, width)
        masks = filled & predicted[None]
        if self.empty == "box":
            for i in range(len(boxes)):
                if not masks[i].any():
                    masks[i] = filled[i]
        return masks
