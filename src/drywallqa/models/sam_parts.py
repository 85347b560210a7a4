"""SAM (v1, ``transformers.SamModel``) as parts: loading, image embeddings, box tokens, mask decoding.

``two-stage`` and ``textsam`` run SAM's encoders and decoder themselves (their own prompt
tokens, several prompts per image); ``sam3`` merges masks the same way. The pseudo-mask method
``sam`` loads its checkpoint through :func:`load_sam_checkpoint` too, so every SAM in drywallqa
resolves weights by the one policy of :mod:`drywallqa.models.weights`.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor, nn

from drywallqa.errors import ConfigError, DrywallQAError
from drywallqa.models.transformers_base import EMPTY_LOGIT
from drywallqa.models.weights import architecture_dict, load_hf_model, load_pretrained

#: SAM's pixel normalisation (ImageNet statistics, as its image processor).
SAM_PIXEL_MEAN = (0.485, 0.456, 0.406)
SAM_PIXEL_STD = (0.229, 0.224, 0.225)
DEFAULT_SAM_WEIGHTS = "facebook/sam-vit-base"
#: transformers ``model_type`` values of the SAM family (what the pseudo-mask method accepts).
SAM_MODEL_TYPES = ("sam", "sam2", "sam_hq")


def load_sam_checkpoint(
    weights: str | os.PathLike,
    *,
    how_to_pass: str,
    offline: bool | None = None,
    with_processor: bool = False,
) -> Any:
    """A SAM-family model (``AutoModel``), and its ``AutoProcessor`` when asked, on CPU.

    Args:
        weights: Local folder or hub id (e.g. ``facebook/sam-vit-base``, ``facebook/sam2.1-hiera-tiny``).
        how_to_pass: The option that takes the folder, for the download hint.
        offline: Never touch the network; default from ``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``.
        with_processor: Also load the checkpoint's processor.

    Returns:
        The model, or ``(model, processor)`` with ``with_processor``.

    Raises:
        DrywallQAError: One line with the download command when the weights cannot be read, or
            when the checkpoint is not a SAM-family model.
    """
    from transformers import AutoModel, AutoProcessor

    def load(source: str, local: bool) -> Any:
        model = AutoModel.from_pretrained(source, local_files_only=local)
        return (model, AutoProcessor.from_pretrained(source, local_files_only=local)) if with_processor else model

    loaded = load_pretrained(
        load, weights, what="SAM", how_to_pass=how_to_pass, offline=offline, suggested_hub_id=DEFAULT_SAM_WEIGHTS
    )
    model = loaded[0] if with_processor else loaded
    model_type = getattr(model.config, "model_type", "")
    if model_type not in SAM_MODEL_TYPES:
        raise DrywallQAError(
            f"{weights} holds a {model_type!r} model, not a SAM model; "
            f"expected one of {', '.join(SAM_MODEL_TYPES)} (e.g. {DEFAULT_SAM_WEIGHTS})"
        )
    return loaded


def load_sam_model(
    weights: str | None, architecture: dict | None, load_weights: bool, how_to_pass: str
) -> tuple[nn.Module, dict[str, Any]]:
    """A ``transformers.SamModel`` with its tied positional embedding untied (both stay frozen).

    Pretrained weights go through :func:`load_sam_checkpoint`, as for the pseudo-mask method, so
    both stages resolve weights the same way.

    Raises:
        ConfigError: For a checkpoint that is not SAM v1 (SAM 2 and HQ-SAM have other decoders).
        DrywallQAError: When the weights cannot be found (one line with the download command).
    """
    from transformers import SamConfig, SamModel

    if load_weights:
        if weights is None:
            raise ConfigError("SAM: give weights (a hub id or a folder) or an architecture dict")
        sam = load_sam_checkpoint(weights, how_to_pass=how_to_pass)
        architecture = architecture_dict(sam.config)
    else:
        sam, architecture = load_hf_model(
            SamModel,
            SamConfig,
            weights=weights,
            architecture=architecture,
            load_weights=False,
            what="SAM",
            how_to_pass=how_to_pass,
        )
    if sam.config.model_type != "sam":
        raise ConfigError(
            f"{weights} holds a {sam.config.model_type!r} model; this architecture needs a SAM (v1) checkpoint "
            f"such as {DEFAULT_SAM_WEIGHTS}, facebook/sam-vit-large or facebook/sam-vit-huge"
        )
    # transformers ties the prompt encoder's positional embedding to the image-wide one; safetensors
    # cannot store shared tensors, and both are frozen, so a copy behaves the same.
    shared = sam.prompt_encoder.shared_embedding
    shared.positional_embedding = nn.Parameter(sam.shared_image_embedding.positional_embedding.detach().clone())
    return sam, architecture


def sam_image_embeddings(sam: nn.Module, pixels: Tensor) -> dict[str, Tensor]:
    """SAM's frozen image encoder on normalised pixels at its native size: ``{"image_embeddings": (B, C, h, w)}``."""
    with torch.no_grad():
        return {"image_embeddings": sam.vision_encoder(pixels).last_hidden_state}


def sam_box_tokens(sam: nn.Module, boxes: Tensor) -> Tensor:
    """Prompt-encoder tokens of boxes: ``(B, K, 4)`` xyxy in SAM input pixels -> ``(B, K, 2, C)``."""
    sparse, _dense = sam.prompt_encoder(input_points=None, input_labels=None, input_boxes=boxes, input_masks=None)
    return sparse


def sam_no_mask_dense(sam: nn.Module, image_embeddings: Tensor) -> Tensor:
    """SAM's dense prompt for "no mask input", broadcast to ``image_embeddings``' shape."""
    return sam.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1).expand_as(image_embeddings)


def sam_decode(sam: nn.Module, image_embeddings: Tensor, sparse: Tensor, dense: Tensor) -> tuple[Tensor, Tensor]:
    """SAM's mask decoder, one mask per prompt.

    Args:
        sam: A ``transformers.SamModel``.
        image_embeddings: ``(B, C, h, w)``.
        sparse: ``(B, K, T, C)``: ``K`` prompts per image of ``T`` tokens each.
        dense: ``(B, C, h, w)``.

    Returns:
        Low-resolution mask logits ``(B, K, 4h, 4w)`` and predicted IoUs ``(B, K)``.
    """
    positional = sam.get_image_wide_positional_embeddings().expand(image_embeddings.shape[0], -1, -1, -1)
    masks, iou = sam.mask_decoder(
        image_embeddings=image_embeddings,
        image_positional_embeddings=positional,
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
        multimask_output=False,
    )
    return masks[:, :, 0], iou[:, :, 0]


def merge_prompt_masks(masks: Tensor, valid: Tensor) -> Tensor:
    """Union of several prompts' masks as the maximum of their logits over valid prompts.

    Args:
        masks: ``(B, K, h, w)`` logits.
        valid: ``(B, K)`` bool.

    Returns:
        ``(B, 1, h, w)``; :data:`~drywallqa.models.transformers_base.EMPTY_LOGIT` where an image has no valid prompt.
    """
    gated = torch.where(valid[:, :, None, None], masks, torch.full_like(masks, -1e4))
    merged = gated.amax(dim=1, keepdim=True)
    any_valid = valid.any(dim=1)[:, None, None, None]
    return torch.where(any_valid, merged, torch.full_like(merged, EMPTY_LOGIT))
