"""Box sources that run a model: a transformers zero-shot detector, or a drywallqa model's mask components."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from drywallqa.data.prompts import PromptConfig
from drywallqa.errors import ConfigError
from drywallqa.models.box_sources import BoxSource, ImageBoxes
from drywallqa.models.specs import build_from_spec
from drywallqa.models.transformers_base import resize_pixels
from drywallqa.models.weights import load_pretrained


def _to_uint8_images(images: Tensor) -> list[np.ndarray]:
    return [
        (image.detach().float().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy() for image in images
    ]


class DetectorBoxes(BoxSource):
    """Boxes from a transformers zero-shot detector (``AutoModelForZeroShotObjectDetection``).

    The detector is a plain attribute (not a submodule): it is frozen, reloaded from its weights
    and kept out of checkpoints. It runs on the input's device.

    Args:
        spec: For reports.
        weights: Hub id or folder, e.g. ``IDEA-Research/grounding-dino-base``.
        queries: Class -> text query.
    """

    def __init__(
        self, spec: str, weights: str, queries: dict[str, str], score_threshold: float = 0.3, max_boxes: int = 8
    ):
        super().__init__(spec, score_threshold, max_boxes)
        from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

        how = "boxes=detector:DIR"
        self.detector = (
            load_pretrained(
                lambda source, local: AutoModelForZeroShotObjectDetection.from_pretrained(
                    source, local_files_only=local
                ),
                weights,
                what="zero-shot detector",
                how_to_pass=how,
            )
            .eval()
            .requires_grad_(False)
        )
        self.processor = load_pretrained(
            lambda source, local: AutoProcessor.from_pretrained(source, local_files_only=local),
            weights,
            what="zero-shot detector processor",
            how_to_pass=how,
        )
        self.queries = queries
        self.grounded = "grounding" in self.detector.config.model_type

    @torch.no_grad()
    def image_boxes(self, images: Tensor, classes: list[str | None]) -> list[ImageBoxes]:
        import inspect

        if next(self.detector.parameters()).device != images.device:
            self.detector.to(images.device)
        out: list[ImageBoxes] = []
        post_process = (
            getattr(self.processor, "post_process_grounded_object_detection", None)
            or self.processor.post_process_object_detection
        )
        accepted = inspect.signature(post_process).parameters
        for image, class_name in zip(_to_uint8_images(images), classes, strict=True):
            if class_name is None:
                out.append(ImageBoxes.empty())
                continue
            query = self.queries.get(class_name, class_name.replace("_", " "))
            # Grounding DINO wants lower-case phrases ending with '.'; OWL-ViT a list of queries per image.
            text = f"{query.lower().rstrip('.')}." if self.grounded else [[query]]
            inputs = self.processor(images=[image], text=text, return_tensors="pt")
            inputs = {k: v.to(images.device) if torch.is_tensor(v) else v for k, v in inputs.items()}
            outputs = self.detector(**inputs)
            kwargs: dict[str, Any] = {"threshold": self.score_threshold, "target_sizes": [image.shape[:2]]}
            if "input_ids" in accepted and "input_ids" in inputs:
                kwargs["input_ids"] = inputs["input_ids"]
            if "text_threshold" in accepted:
                kwargs["text_threshold"] = self.score_threshold
            result = post_process(outputs, **kwargs)[0]
            height, width = image.shape[:2]
            boxes = result["boxes"].float().cpu().numpy().reshape(-1, 4) / np.array([width, height, width, height])
            out.append(ImageBoxes(boxes, result["scores"].float().cpu().numpy()))
        return out


class ModelMaskBoxes(BoxSource):
    """One box per connected component of a drywallqa model's mask for the class's canonical prompt.

    Args:
        spec: For reports.
        model_spec: Anything :func:`~drywallqa.models.specs.build_from_spec` accepts (a trained folder).
        prompt_config: Canonical prompt per class.
        min_area: Components smaller than this share of the image are dropped (noise).
    """

    def __init__(
        self,
        spec: str,
        model_spec: str,
        prompt_config: PromptConfig,
        score_threshold: float = 0.3,
        max_boxes: int = 8,
        min_area: float = 1e-4,
    ):
        super().__init__(spec, score_threshold, max_boxes)
        model = build_from_spec(model_spec)
        if model is None:
            raise ConfigError(f"box source {spec}: {model_spec} is not a model folder or spec")
        # A plain attribute, not a submodule: its weights stay out of this model's checkpoint.
        self.model = model.eval().requires_grad_(False)
        self.prompt_config = prompt_config
        self.min_area = min_area

    @torch.no_grad()
    def image_boxes(self, images: Tensor, classes: list[str | None]) -> list[ImageBoxes]:
        import cv2

        if next(self.model.parameters()).device != images.device:
            self.model.to(images.device)
        out: list[ImageBoxes] = [ImageBoxes.empty() for _ in classes]
        rows = [i for i, c in enumerate(classes) if c is not None and c in self.prompt_config.classes]
        if not rows:
            return out
        size = self.model.default_image_size
        resized = resize_pixels(images[rows].float(), size)
        prompts = [self.prompt_config.classes[str(classes[i])].prompt for i in rows]  # rows have a class
        probabilities = torch.sigmoid(self.model.segment(resized, prompts).mask_logits.float())[:, 0].cpu().numpy()
        for row, probability in zip(rows, probabilities, strict=True):
            count, labels, stats, _ = cv2.connectedComponentsWithStats(
                (probability > 0.5).astype(np.uint8), connectivity=8
            )
            boxes, scores = [], []
            for component in range(1, count):
                x, y, w, h, area = stats[component]
                if area < self.min_area * size * size:
                    continue
                boxes.append([x / size, y / size, (x + w) / size, (y + h) / size])
                scores.append(float(probability[labels == component].max()))
            out[row] = ImageBoxes(np.array(boxes).reshape(-1, 4), np.array(scores))
        return out
