"""``two-stage``: boxes from any source, refined into a mask by SAM.

The boxes come from a :class:`~drywallqa.models.box_sources.BoxSource` (a detector's files, a
zero-shot detector, another model, annotations or the full image; see
:mod:`drywallqa.models.box_sources`) for the class the prompt names (:class:`PromptClassEncoder`).
SAM (v1 checkpoints through ``transformers.SamModel``, :mod:`drywallqa.models.sam_parts`) gets
every box of an image as a separate prompt; the masks are merged by the maximum over boxes.
``textsam`` reuses the prompt-class encoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from drywallqa.data.prompts import PromptConfig
from drywallqa.errors import ConfigError, DrywallQAError
from drywallqa.models.base import ModelOutput, PromptModelConfig, _is_exporting, check_image_size
from drywallqa.models.box_sources import BoxSource, BoxSourceConfig, build_box_source
from drywallqa.models.registry import register_model
from drywallqa.models.sam_parts import (
    DEFAULT_SAM_WEIGHTS,
    SAM_PIXEL_MEAN,
    SAM_PIXEL_STD,
    load_sam_model,
    merge_prompt_masks,
    sam_box_tokens,
    sam_decode,
    sam_image_embeddings,
    sam_no_mask_dense,
)
from drywallqa.models.text import TextEncoder
from drywallqa.models.transformers_base import (
    EMPTY_LOGIT,
    TransformersPromptModel,
    probability_to_logit,
    resize_pixels,
    upsample_logits,
)

# -- prompts -> classes ---------------------------------------------------------------------------


class PromptClassEncoder(TextEncoder):
    """Prompt -> one-hot of its class in a :class:`PromptConfig` (all zeros for an unknown prompt).

    A prompt belongs to the class :meth:`PromptConfig.class_of` gives, the package's one rule, so a
    prompt such as ``"detect crack"`` that serving judges as a crack is a crack here too.

    Args:
        prompt_config: The classes; their order fixes the one-hot positions.
    """

    name = "prompt-class"

    def __init__(self, prompt_config: PromptConfig):
        super().__init__()
        self.prompt_config = prompt_config
        self.class_names = tuple(prompt_config.classes)
        self.dim = len(self.class_names)

    def class_of(self, prompt: str) -> str | None:
        """The class a prompt names (:meth:`PromptConfig.class_of`, the rule serving judges by), or None."""
        found = self.prompt_config.class_of(prompt)
        return found.name if found is not None else None

    def _encode_uncached(self, prompts: list[str]) -> Tensor:
        out = torch.zeros(len(prompts), self.dim)
        for row, prompt in enumerate(prompts):
            class_name = self.class_of(prompt)
            if class_name is not None:
                out[row, self.class_names.index(class_name)] = 1.0
        return out

    def classes_from_onehot(self, onehot: Tensor) -> list[str | None]:
        """Inverse of the encoding, per row: the class, or None for an all-zero row."""
        rows = onehot.detach().float().cpu()
        return [self.class_names[int(row.argmax())] if float(row.max()) > 0.5 else None for row in rows]


def load_prompt_config(path: str | None) -> PromptConfig:
    """The prompt config at ``path``, or the built-in one."""
    return PromptConfig.from_yaml(path) if path else PromptConfig.default()


# -- the model ------------------------------------------------------------------------------------


@dataclass
class TwoStageConfig(BoxSourceConfig, PromptModelConfig):
    """Configuration of :class:`TwoStage`.

    Attributes:
        text_encoder: Always ``"prompt-class"``: prompts are mapped to classes, not embedded.
        image_size: Side of the square input (a multiple of 32); resized to SAM's 1024 inside.
        weights: SAM (v1) checkpoint, hub id or folder.
        pretrained: Load SAM's weights (False: random, for tests).
        architecture: SAM's transformers config, filled in from the weights.
        boxes: Box source (required); see :class:`BoxSourceConfig` for it and the other box fields.
    """

    text_encoder: str = "prompt-class"
    image_size: int = 1024
    weights: str | None = DEFAULT_SAM_WEIGHTS
    pretrained: bool = True
    architecture: dict | None = None

    def __post_init__(self) -> None:
        if self.text_encoder != "prompt-class":
            raise ConfigError("two-stage maps prompts to classes: text_encoder must be 'prompt-class'")
        check_image_size(self.image_size)
        if self.boxes is None:
            raise ConfigError(
                "two-stage needs a box source: boxes=coco:FILE, yolo:DIR, detector:ID, model:SPEC, "
                "annotations:DATASET or full-image"
            )
        self.box_classes = tuple(self.box_classes)
        self.check_box_fields()


@register_model("two-stage")
class TwoStage(TransformersPromptModel):
    """Boxes from a :class:`BoxSource`, each refined by SAM; the masks merged by their maximum.

    Evaluation and prediction only. SAM's image encoder and prompt encoder are frozen; its mask
    decoder keeps transformers' ``requires_grad`` (gradients can be inspected), but
    :meth:`segment` refuses training mode, so ``drywallqa train`` stops at its first step.

    Confidence: the mean of SAM's predicted IoU over the image's boxes; 0.5 (undecided) for an
    image without boxes, whose mask is empty.

    Only ``full-image`` boxes export: the other sources run Python (files, a detector, connected
    components) and raise under ``torch.export``.

    Args:
        config: Settings; defaults to :class:`TwoStageConfig` ``()``.
        load_pretrained: Read SAM's weights when ``config.pretrained``.

    Example:
        >>> model = build_from_spec("two-stage:/models/sam-vit-base",                       # doctest: +SKIP
        ...     {"boxes": "coco:det.json", "box_images": "data/cracks/valid/_annotations.coco.json"})
    """

    config_class = TwoStageConfig
    config: TwoStageConfig
    text_encoder: PromptClassEncoder
    box_source: BoxSource
    trainable = False
    zero_shot = True

    def __init__(self, config: TwoStageConfig | None = None, *, load_pretrained: bool = True):
        config = config if config is not None else TwoStageConfig()
        prompt_config = load_prompt_config(config.prompts)
        sam, config.architecture = load_sam_model(
            config.weights,
            config.architecture,
            config.pretrained and load_pretrained,
            how_to_pass="--model two-stage:DIR",
        )
        super().__init__(config, SAM_PIXEL_MEAN, SAM_PIXEL_STD, PromptClassEncoder(prompt_config))
        self.sam = sam
        box_source = build_box_source(config, prompt_config)
        assert box_source is not None  # TwoStageConfig requires boxes
        self.box_source = box_source
        self.freeze()

    def frozen_modules(self) -> list[nn.Module]:
        return [self.sam.vision_encoder, self.sam.prompt_encoder, self.sam.shared_image_embedding]

    @property
    def native_image_size(self) -> int:
        return int(self.sam.config.vision_config.image_size)

    @property
    def display_name(self) -> str:
        return f"{self.name}+boxes:{self.box_source.spec}"

    @property
    def metadata(self) -> dict[str, Any]:
        return {
            **super().metadata,
            "box_prompts": self.box_source.description,
            "box_prompts_from_ground_truth": self.box_source.uses_ground_truth,
        }

    def forward_normalized(self, pixels: Tensor, prompt_embeddings: Tensor) -> ModelOutput:
        size = tuple(pixels.shape[-2:])
        if _is_exporting() and not self.box_source.exportable:
            raise DrywallQAError(
                f"two-stage with boxes from {self.box_source.spec} cannot be exported (the box source runs Python); "
                "export the detector and SAM separately, or use boxes=full-image"
            )
        images = pixels * self.pixel_std + self.pixel_mean
        # An exportable source (full-image) needs no classes: no Python runs inside the graph.
        classes = [] if self.box_source.exportable else self.text_encoder.classes_from_onehot(prompt_embeddings)
        boxes, _scores, valid = self.box_source.boxes_tensor(images, classes)
        if boxes.shape[1] == 0:
            empty = pixels.new_full((pixels.shape[0], 1, *size), EMPTY_LOGIT)
            return ModelOutput(empty, pixels.new_zeros(pixels.shape[0]))
        native = self.native_image_size
        embeddings = sam_image_embeddings(self.sam, resize_pixels(pixels, native))["image_embeddings"]
        sparse = sam_box_tokens(self.sam, boxes * native)
        masks, iou = sam_decode(self.sam, embeddings, sparse, sam_no_mask_dense(self.sam, embeddings))
        merged = merge_prompt_masks(masks, valid)
        weights = valid.to(iou.dtype)
        mean_iou = (iou.clamp(0, 1) * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        confidence = torch.where(valid.any(dim=1), mean_iou, torch.full_like(mean_iou, 0.5))
        return ModelOutput(upsample_logits(merged, size), probability_to_logit(confidence))
