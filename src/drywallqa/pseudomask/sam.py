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
import re
from pathlib import Path
from typing import ClassVar

import numpy as np

from drywallqa.errors import DrywallQAError
from drywallqa.pseudomask.base import PseudoMaskMethod, box_masks

DEFAULT_SAM_WEIGHTS = "facebook/sam-vit-base"
SUPPORTED_MODEL_TYPES = ("sam", "sam2", "sam_hq")


def download_hint(weights: str) -> str:
    """The one-line instruction for getting SAM weights onto a machine without network."""
    hub_id = weights if _looks_like_hub_id(weights) else DEFAULT_SAM_WEIGHTS
    return (
        f"download them where there is network access with `huggingface-cli download {hub_id} --local-dir DIR`, "
        "copy DIR here and pass --weights DIR (weights=DIR)"
    )


def _looks_like_hub_id(weights: str) -> bool:
    """``org/name`` or ``name`` (letters, digits, ``-_.``), not a path like ``./x`` or ``/x/y``."""
    return re.fullmatch(r"[A-Za-z0-9][\w.\-]*(/[A-Za-z0-9][\w.\-]*)?", str(weights)) is not None


def _offline() -> bool:
    return any(os.environ.get(k, "").strip().lower() in {"1", "true", "yes", "on"}
               for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def load_sam(weights: str | os.PathLike, device: str | None = None, offline: bool | None = None):
    """Load a SAM-family model and its processor.

    Args:
        weights: Local folder or hub id (e.g. ``facebook/sam-vit-base``, ``facebook/sam2.1-hiera-tiny``).
        device: Torch device; CUDA when available by default.
        offline: Never touch the network; default from ``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``.

    Returns:
        ``(model, processor, device)`` with the model in eval mode on ``device``.

    Raises:
        DrywallQAError: One line saying what to download and how to pass it, when the weights
            are neither a local folder nor in the cache and cannot be downloaded; or when
            transformers is missing or the checkpoint is not a SAM model.
    """
    try:
        import torch
        import transformers
        from transformers import AutoModel, AutoProcessor
    except ImportError as exc:
        raise DrywallQAError(
            "the 'sam' pseudo-mask method needs transformers and torch: pip install transformers"
        ) from exc
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    weights = str(weights)
    offline = _offline() if offline is None else offline
    local = Path(weights).expanduser()
    if local.is_dir():
        sources = [(str(local), True)]
    elif not _looks_like_hub_id(weights):
        raise DrywallQAError(f"SAM weights folder {weights} does not exist; {download_hint(weights)}")
    else:
        # The cache first (fast, no network); the hub only when allowed.
        sources = [(weights, True)] + ([] if offline else [(weights, False)])
    last_error: Exception | None = None
    for source, local_only in sources:
        try:
            model = AutoModel.from_pretrained(source, local_files_only=local_only)
            processor = AutoProcessor.from_pretrained(source, local_files_only=local_only)
            break
        except (OSError, ValueError) as exc:
            last_error = exc
    else:
        if local.is_dir():
            first = str(last_error).strip().splitlines()[0][:120] if last_error else ""
            raise DrywallQAError(f"SAM weights folder {weights} is not a complete SAM checkpoint ({first}); "
                                 f"{download_hint(weights)}")
        raise DrywallQAError(
            f"SAM weights {weights} are not in the local Hugging Face cache and could not be downloaded; "
            f"{download_hint(weights)}"
        )
    model_type = getattr(model.config, "model_type", "")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise DrywallQAError(
            f"{weights} holds a {model_type!r} model, not a SAM model; "
            f"expected one of {', '.join(SUPPORTED_MODEL_TYPES)} "
            f"(e.g. {DEFAULT_SAM_WEIGHTS})"
        )
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
