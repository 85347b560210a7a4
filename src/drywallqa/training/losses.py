"""The one training loss: α·BCE + β·Dice + γ·Focal on mask logits, plus the confidence head's loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from drywallqa.config_schema import NonNegativeFloat, config_dataclass


@config_dataclass(where="loss")
class LossConfig:
    """Loss weights.

    Attributes:
        bce: α, weight of binary cross-entropy.
        dice: β, weight of soft Dice (per image, so thin cracks count as much as big joints).
        focal: γ, weight of the focal loss.
        focal_gamma: Focusing exponent of the focal loss.
        confidence: Weight of the confidence head's MSE against the true IoU of the predicted mask.
    """

    bce: NonNegativeFloat = 1.0
    dice: NonNegativeFloat = 1.0
    focal: NonNegativeFloat = 0.5
    focal_gamma: NonNegativeFloat = 2.0
    confidence: NonNegativeFloat = 0.1

    def __post_init__(self) -> None:
        if self.bce + self.dice + self.focal == 0:
            raise ValueError("at least one of bce, dice, focal must be positive")


class SegmentationLoss(nn.Module):
    """``bce·BCE + dice·Dice + focal·Focal (+ confidence·MSE)``; returns every part for logging.

    Example:
        >>> loss = SegmentationLoss(LossConfig())
        >>> parts = loss(torch.zeros(2, 1, 8, 8), torch.ones(2, 1, 8, 8))
        >>> sorted(parts)
        ['bce', 'dice', 'focal', 'total']
    """

    def __init__(self, config: LossConfig | None = None):
        super().__init__()
        self.config = config or LossConfig()

    def forward(self, mask_logits: Tensor, targets: Tensor, confidence_logits: Tensor | None = None) -> dict[str, Tensor]:
        """Compute the loss.

        Args:
            mask_logits: float ``(B, 1, H, W)``.
            targets: float ``(B, 1, H, W)`` in ``{0, 1}``; an all-zero target is a negative.
            confidence_logits: float ``(B,)`` predicted-IoU logits, or None.

        Returns:
            ``{"total", "bce", "dice", "focal"[, "confidence"]}``, scalar tensors.
        """
        cfg = self.config
        logits, targets = mask_logits.float(), targets.float()
        bce_map = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        probs = torch.sigmoid(logits)
        parts = {"bce": bce_map.mean()}
        # Soft Dice per image, smoothed by 1 so an empty target asks for an empty prediction.
        dims = tuple(range(1, logits.ndim))
        inter = (probs * targets).sum(dims)
        parts["dice"] = (1 - (2 * inter + 1) / (probs.sum(dims) + targets.sum(dims) + 1)).mean()
        p_t = probs * targets + (1 - probs) * (1 - targets)
        parts["focal"] = ((1 - p_t) ** cfg.focal_gamma * bce_map).mean()
        total = cfg.bce * parts["bce"] + cfg.dice * parts["dice"] + cfg.focal * parts["focal"]
        if confidence_logits is not None and cfg.confidence > 0:
            true_iou = predicted_mask_iou(logits, targets)
            parts["confidence"] = F.mse_loss(torch.sigmoid(confidence_logits.float()), true_iou)
            total = total + cfg.confidence * parts["confidence"]
        parts["total"] = total
        return parts


@torch.no_grad()
def predicted_mask_iou(mask_logits: Tensor, targets: Tensor) -> Tensor:
    """``(B,)`` IoU of each predicted mask (logit > 0) with its target: what the confidence head
    learns to predict. An empty prediction of an empty target scores 1, of a non-empty one 0."""
    dims = tuple(range(1, mask_logits.ndim))
    predicted = mask_logits > 0
    truth = targets > 0.5
    inter = (predicted & truth).sum(dims).float()
    union = (predicted | truth).sum(dims).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
