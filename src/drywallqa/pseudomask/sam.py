"""Segment Anything (SAM, SAM 2) through transformers, prompted with the boxes.

All boxes of an image go through the model in one batched call: the image is encoded once and
the mask decoder runs per box. Weights come from a local folder (``save_pretrained`` layout:
``config.json``, weights, ``preprocessor_config.json``) or a Hugging Face hub id, which is only
read from the local cache when there is no network.

Example:
    >>> method = SamMethod("checkpoints/sam-vit-base")           # doctest: +SKIP
    >>> masks = method(image, boxes, "taping_area")              # doctest: +SKIP
"""

from __future__ import annotations

import os
from typing import ClassVar

import numpy as np

from drywallqa.models.sam_parts import DEFAULT_SAM_WEIGHTS, load_sam_checkpoint
from drywallqa.pseudomask.base import PseudoMaskMethod, box_masks

#: The option that takes a SAM folder, for the download hint.
HOW_TO_PASS = "--weights DIR (weights=DIR)"


def load_sam(weights: str | os.PathLike, device: str | None = None, offline: bool | None = None):
    """Load a SAM-family model and its processor, by the weight policy of :mod:`drywallqa.models.weights`.

    Args:
        weights: Local folder or hub id (e.g. ``facebook/sam-vit-base``, ``facebook/sam2.1-hiera-tiny``).
        device: Torch device; CUDA when available by default.
        offline: Never touch the network; default from ``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``.

    Returns:
        ``(model, processor, device)`` with the model in eval mode on ``device``.

    Raises:
        DrywallQAError: One line saying what to download and how to pass it, when the weights
            are neither a local folder nor in the cache and cannot be downloaded, or when the
            checkpoint is not a SAM model.
    """
    import torch

    model, processor = load_sam_checkpoint(weights, how_to_pass=HOW_TO_PASS, offline=offline, with_processor=True)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return model.to(device).eval(), processor, device


class SamMethod(PseudoMaskMethod):
    """SAM / SAM 2 masks from box prompts (see the module docstring).

    Args:
        weights: Local folder or hub id.
        device: Torch device; CUDA when available by default.
        multimask: Ask for SAM's three candidate masks per box and keep the one with the highest
            predicted IoU (default: SAM's single box-prompt mask).
        min_fill: Masks covering at most this share of their box fall back to the box.
        offline: See :func:`load_sam`.
    """

    name: ClassVar[str] = "sam"
    uses_torch: ClassVar[bool] = True

    def __init__(
        self,
        weights: str | os.PathLike = DEFAULT_SAM_WEIGHTS,
        *,
        device: str | None = None,
        multimask: bool = False,
        min_fill: float = 0.0,
        offline: bool | None = None,
    ):
        if not 0 <= min_fill < 1:
            raise ValueError(f"min_fill must be in [0, 1), got {min_fill}")
        self.weights, self.multimask, self.min_fill = str(weights), bool(multimask), float(min_fill)
        self.model, self.processor, self.device = load_sam(weights, device, offline)

    def config(self) -> dict:
        return {"weights": self.weights, "model_type": self.model.config.model_type,
                "multimask": self.multimask, "min_fill": self.min_fill}

    def predict_boxes(self, image: np.ndarray, boxes: np.ndarray, class_name: str) -> np.ndarray:
        import torch

        height, width = image.shape[:2]
        inputs = self.processor(images=image, input_boxes=[boxes.astype(np.float32).tolist()], return_tensors="pt")
        model_inputs = {k: inputs[k].to(self.device) for k in ("pixel_values", "input_boxes")}
        with torch.inference_mode():
            outputs = self.model(**model_inputs, multimask_output=self.multimask)
        extra = [inputs["reshaped_input_sizes"]] if "reshaped_input_sizes" in inputs else []
        logits = self.processor.post_process_masks(
            outputs.pred_masks.float().cpu(), inputs["original_sizes"], *extra, binarize=False
        )[0]  # (N, M, H, W) float logits at the image's size
        if self.multimask and logits.shape[1] > 1:
            best = outputs.iou_scores[0].float().cpu().argmax(dim=-1)
            logits = logits[torch.arange(len(boxes)), best]
        else:
            logits = logits[:, 0]
        masks = (logits > 0).numpy()
        fallback = box_masks(boxes, height, width)
        for i in range(len(boxes)):
            inside = masks[i] & fallback[i]
            if inside.sum() <= self.min_fill * fallback[i].sum():
                masks[i] = fallback[i]
        return masks
