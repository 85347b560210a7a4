"""``two-stage``: boxes from any source, refined into a mask by SAM; plus the box sources.

Box sources (config field ``boxes``; the prompt is mapped to a class by the same
:class:`~drywallqa.data.prompts.PromptConfig` as training):

- ``coco:RESULTS.json``: a detector's COCO results (``image_id``, ``category_id``, ``bbox`` xywh px,
  ``score``); ``box_images`` names the COCO annotation file they refer to.
- ``yolo:LABELS_DIR``: a detector's YOLO txt files (``cls cx cy w h [score]``); ``box_images`` is
  the images folder (default ``LABELS_DIR/../images``), ``box_classes`` the names by id (default
  from a nearby ``data.yaml``).
- ``detector:ID_OR_DIR``: a transformers zero-shot detector (Grounding DINO, OWL-ViT), queried
  with ``detector_queries`` (default: the class name).
- ``model:SPEC``: one box per connected component of a drywallqa model's mask.
- ``annotations:DATASET``: the dataset's annotated boxes: **ground truth**, an upper bound, never
  a result.
- ``full-image``: one box covering the image (a no-detector baseline).

File sources know images by name, but a model only sees pixels: each listed image is read once
and reduced to a 16x16 colour thumbnail (its *fingerprint*), and an input image gets the boxes
of the listed image with the nearest fingerprint, if it is near enough. This matches an image
after any resize, stretch or JPEG re-decode, without the predictor passing file names.

SAM (v1 checkpoints through ``transformers.SamModel``) gets every box of an image as a separate
prompt; the masks are merged by the maximum over boxes. ``textsam`` reuses the sources and the
SAM helpers of this module.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from drywallqa.data.prompts import PromptConfig, normalise_name
from drywallqa.errors import ConfigError, DataError, DrywallQAError
from drywallqa.models.base import ModelOutput, PromptModelConfig
from drywallqa.models.hub import (
    EMPTY_LOGIT,
    TransformersPromptModel,
    check_image_size,
    load_hf_model,
    load_pretrained,
    probability_to_logit,
    quiet_transformers,
    resize_pixels,
    upsample_logits,
)
from drywallqa.models.registry import register_model
from drywallqa.models.text import TextEncoder

#: SAM's pixel normalisation (ImageNet statistics, as its image processor).
SAM_PIXEL_MEAN = (0.485, 0.456, 0.406)
SAM_PIXEL_STD = (0.229, 0.224, 0.225)
DEFAULT_SAM_WEIGHTS = "facebook/sam-vit-base"
#: Side of the thumbnail that identifies an image (16x16x3 = 768 numbers).
FINGERPRINT_SIDE = 16
#: Largest mean absolute thumbnail difference (in [0, 1] intensity) still counted as the same image.
FINGERPRINT_TOLERANCE = 0.03
BOX_SOURCE_KINDS = ("coco", "yolo", "detector", "model", "annotations", "full-image")


# -- SAM through transformers --------------------------------------------------------------------


def load_sam_model(
    weights: str | None, architecture: dict | None, load_weights: bool, how_to_pass: str
) -> tuple[nn.Module, dict[str, Any]]:
    """A ``transformers.SamModel`` with its tied positional embedding untied (both stay frozen).

    Pretrained weights go through the pseudo-mask method's loader
    (:func:`drywallqa.pseudomask.sam.load_sam`), so both stages resolve weights the same way.

    Raises:
        ConfigError: For a checkpoint that is not SAM v1 (SAM 2 and HQ-SAM have other decoders).
        DrywallQAError: When the weights cannot be found (one line with the download command).
    """
    from transformers import SamConfig, SamModel

    from drywallqa.models.hub import architecture_dict

    if load_weights:
        from drywallqa.pseudomask.sam import load_sam

        with quiet_transformers():
            sam, _processor, _device = load_sam(weights, device="cpu")
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
        ``(B, 1, h, w)``; :data:`~drywallqa.models.hub.EMPTY_LOGIT` where an image has no valid prompt.
    """
    gated = torch.where(valid[:, :, None, None], masks, torch.full_like(masks, -1e4))
    merged = gated.amax(dim=1, keepdim=True)
    any_valid = valid.any(dim=1)[:, None, None, None]
    return torch.where(any_valid, merged, torch.full_like(merged, EMPTY_LOGIT))


# -- prompts -> classes ---------------------------------------------------------------------------


class PromptClassEncoder(TextEncoder):
    """Prompt -> one-hot of its class in a :class:`PromptConfig` (all zeros for an unknown prompt).

    A prompt belongs to a class when it equals (normalised) the class's canonical prompt, a
    paraphrase or a held-out paraphrase, or the class name or an alias.

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
        """The class a prompt names, or None."""
        found = self.prompt_config.class_of_prompt(prompt)
        if found is not None:
            return found.name
        key = normalise_name(prompt.removeprefix("segment "))
        for prompt_class in self.prompt_config.classes.values():
            if key in {normalise_name(prompt_class.name), *(normalise_name(a) for a in prompt_class.aliases)}:
                return prompt_class.name
        return None

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


# -- box sources ------------------------------------------------------------------------------------


@dataclass
class BoxSourceConfig:
    """Config fields of box prompts, shared by ``two-stage`` and ``textsam`` (see the module docstring).

    Attributes:
        boxes: Source spec: ``coco:FILE``, ``yolo:DIR``, ``detector:ID_OR_DIR``, ``model:SPEC``,
            ``annotations:DATASET``, ``full-image``; None for no boxes.
        box_images: For ``coco``: the COCO annotation file the results refer to (image ids,
            file names, categories). For ``yolo``: the images folder.
        box_classes: For ``yolo``: class names by id (default: ``names`` of a ``data.yaml``
            next to or above the labels folder).
        box_score_threshold: Boxes scoring below this are dropped (detector and file sources).
        max_boxes: At most this many boxes per image and prompt, highest scores first.
        prompts: Prompt config YAML mapping prompts to classes (default: the built-in one).
        detector_queries: Class -> text query for ``detector`` (default: the class name, e.g.
            ``taping area``).
    """

    boxes: str | None = None
    box_images: str | None = None
    box_classes: tuple[str, ...] = ()
    box_score_threshold: float = 0.3
    max_boxes: int = 8
    prompts: str | None = None
    detector_queries: dict[str, str] | None = None

    def check_box_fields(self) -> None:
        """Validate the box fields (called from the model configs' ``__post_init__``)."""
        if self.boxes is not None:
            kind = self.boxes.split(":", 1)[0]
            if kind not in BOX_SOURCE_KINDS:
                raise ConfigError(
                    f"unknown box source {self.boxes!r}; expected one of: coco:FILE, yolo:DIR, detector:ID_OR_DIR, "
                    "model:SPEC, annotations:DATASET, full-image"
                )
            if kind != "full-image" and not self.boxes.partition(":")[2]:
                raise ConfigError(f"box source {self.boxes!r} needs a value after '{kind}:'")
            if kind == "coco" and not self.box_images:
                raise ConfigError(
                    "boxes=coco:RESULTS.json needs box_images=ANNOTATIONS.json, the COCO file the results refer to"
                )
        if not 0.0 <= self.box_score_threshold <= 1.0:
            raise ConfigError(f"box_score_threshold must be in [0, 1], got {self.box_score_threshold}")
        if self.max_boxes < 1:
            raise ConfigError(f"max_boxes must be >= 1, got {self.max_boxes}")


@dataclass
class ImageBoxes:
    """The boxes of one image for one class.

    Attributes:
        boxes: ``(K, 4)`` float32 xyxy, normalised to ``[0, 1]`` by the image's width and height.
        scores: ``(K,)`` float32 in ``[0, 1]`` (1 for annotations).
    """

    boxes: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        if len(self.boxes) != len(self.scores):
            raise ValueError(f"got {len(self.boxes)} boxes but {len(self.scores)} scores")

    @classmethod
    def empty(cls) -> ImageBoxes:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32))

    def top(self, threshold: float, limit: int) -> ImageBoxes:
        """Boxes scoring at least ``threshold``, the ``limit`` best."""
        keep = np.flatnonzero(self.scores >= threshold)
        keep = keep[np.argsort(-self.scores[keep], kind="stable")][:limit]
        return ImageBoxes(self.boxes[keep].clip(0.0, 1.0), self.scores[keep])


class BoxSource:
    """Gives each image the boxes of the class its prompt names.

    Subclasses implement :meth:`image_boxes`.

    Attributes:
        spec: The ``boxes`` value it was built from, for reports.
        uses_ground_truth: The boxes are annotations: scores measured with them are an upper bound.
        exportable: :meth:`boxes_tensor` is made of tensor operations only.
    """

    uses_ground_truth: ClassVar[bool] = False
    exportable: ClassVar[bool] = False

    def __init__(self, spec: str, score_threshold: float = 0.3, max_boxes: int = 8):
        self.spec = spec
        self.score_threshold = score_threshold
        self.max_boxes = max_boxes

    def image_boxes(self, images: Tensor, classes: list[str | None]) -> list[ImageBoxes]:
        """Boxes per image.

        Args:
            images: float ``(B, 3, H, W)`` RGB in ``[0, 1]`` (the model input).
            classes: The class each image's prompt names (None: no class, no boxes).
        """
        raise NotImplementedError

    def boxes_tensor(self, images: Tensor, classes: list[str | None]) -> tuple[Tensor, Tensor, Tensor]:
        """:meth:`image_boxes` packed into tensors, padded to the most boxes in the batch.

        Returns:
            ``boxes`` ``(B, K, 4)`` normalised xyxy, ``scores`` ``(B, K)``, ``valid`` ``(B, K)`` bool.
        """
        found = [b.top(self.score_threshold, self.max_boxes) for b in self.image_boxes(images, classes)]
        count = max([len(b.boxes) for b in found] + [0])
        boxes = images.new_zeros(len(found), count, 4)
        scores = images.new_zeros(len(found), count)
        valid = torch.zeros(len(found), count, dtype=torch.bool, device=images.device)
        for row, image_boxes in enumerate(found):
            n = len(image_boxes.boxes)
            boxes[row, :n] = torch.from_numpy(image_boxes.boxes).to(boxes)
            scores[row, :n] = torch.from_numpy(image_boxes.scores).to(scores)
            valid[row, :n] = True
        return boxes, scores, valid

    @property
    def description(self) -> str:
        """One line for reports."""
        suffix = " (ground-truth boxes: scores are an upper bound, not a result)" if self.uses_ground_truth else ""
        return f"{self.spec}{suffix}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r})"


class FullImageBoxes(BoxSource):
    """One box covering the whole image, for every prompt: SAM without a detector (a baseline)."""

    exportable = True

    def boxes_tensor(self, images: Tensor, classes: list[str | None] | None = None) -> tuple[Tensor, Tensor, Tensor]:
        batch = images.shape[0]
        boxes = images.new_tensor([0.0, 0.0, 1.0, 1.0]).view(1, 1, 4).expand(batch, 1, 4)
        scores = images.new_ones(1, 1).expand(batch, 1)
        return boxes, scores, torch.ones_like(scores, dtype=torch.bool)

    def image_boxes(self, images: Tensor, classes: list[str | None]) -> list[ImageBoxes]:
        return [ImageBoxes(np.array([[0, 0, 1, 1]]), np.ones(1)) for _ in range(images.shape[0])]


def image_fingerprint(image: np.ndarray) -> np.ndarray:
    """16x16 area-averaged RGB thumbnail of a ``uint8`` ``(H, W, 3)`` image, as 768 floats in ``[0, 1]`` (CHW order)."""
    import cv2

    thumbnail = cv2.resize(image, (FINGERPRINT_SIDE, FINGERPRINT_SIDE), interpolation=cv2.INTER_AREA)
    return (thumbnail.astype(np.float32) / 255.0).transpose(2, 0, 1).reshape(-1)


def tensor_fingerprints(images: Tensor) -> np.ndarray:
    """:func:`image_fingerprint` of float ``(B, 3, H, W)`` images in ``[0, 1]``: ``(B, 768)``."""
    pooled = F.adaptive_avg_pool2d(images.detach().float(), FINGERPRINT_SIDE)
    return pooled.flatten(1).cpu().numpy()


class IndexedBoxes(BoxSource):
    """Boxes listed per image file, found for an input image by its fingerprint.

    Args:
        spec: For reports.
        entries: ``(image_path, {class: ImageBoxes})`` per listed image.
        score_threshold: See :class:`BoxSource`.
        max_boxes: See :class:`BoxSource`.
        uses_ground_truth: The boxes are annotations.
    """

    def __init__(
        self,
        spec: str,
        entries: list[tuple[Path, dict[str, ImageBoxes]]],
        score_threshold: float = 0.3,
        max_boxes: int = 8,
        uses_ground_truth: bool = False,
    ):
        super().__init__(spec, score_threshold, max_boxes)
        self.uses_ground_truth = uses_ground_truth
        self.entries = entries
        self._fingerprints: np.ndarray | None = None
        self.unmatched = 0

    def _index(self) -> np.ndarray:
        # Images are read on first use only, so building the model for export or a listing stays cheap.
        if self._fingerprints is None:
            from drywallqa.files import read_image

            if not self.entries:
                raise DataError(f"box source {self.spec}: lists no images")
            self._fingerprints = np.stack([image_fingerprint(read_image(path)) for path, _ in self.entries])
        return self._fingerprints

    def image_boxes(self, images: Tensor, classes: list[str | None]) -> list[ImageBoxes]:
        index = self._index()
        out: list[ImageBoxes] = []
        unmatched = 0
        for fingerprint, class_name in zip(tensor_fingerprints(images), classes, strict=True):
            distances = np.abs(index - fingerprint).mean(axis=1)
            nearest = int(distances.argmin())
            if distances[nearest] > FINGERPRINT_TOLERANCE:
                unmatched += 1
                out.append(ImageBoxes.empty())
                continue
            out.append(
                self.entries[nearest][1].get(class_name, ImageBoxes.empty()) if class_name else ImageBoxes.empty()
            )
        if unmatched:
            self.unmatched += unmatched
            warnings.warn(
                f"box source {self.spec}: {unmatched} image(s) match no listed image (nearest thumbnail differs by "
                f"more than {FINGERPRINT_TOLERANCE}); they get no boxes, so an empty mask",
                stacklevel=2,
            )
        return out


def coco_results_boxes(
    results_path: str, annotations_path: str, prompt_config: PromptConfig, score_threshold: float, max_boxes: int
) -> IndexedBoxes:
    """Boxes from a COCO results file (a list of ``image_id``, ``category_id``, ``bbox``, ``score``).

    Args:
        results_path: The detector's results json.
        annotations_path: The COCO annotation file the results refer to: image ids, file names
            (relative to its folder), sizes and categories (names resolved to classes).
    """
    from drywallqa.files import read_json

    results = read_json(results_path)
    if isinstance(results, dict) and "annotations" in results:
        results = results["annotations"]  # a full COCO file of predictions
    if not isinstance(results, list):
        raise DataError(f"{results_path}: expected a COCO results list of {{image_id, category_id, bbox, score}}")
    coco = read_json(annotations_path)
    if not isinstance(coco, dict) or not isinstance(coco.get("images"), list):
        raise DataError(f"{annotations_path}: expected a COCO annotation file with 'images' and 'categories'")
    folder = Path(annotations_path).parent
    classes = {
        c["id"]: prompt_config.resolve(str(c.get("name", "")), c.get("supercategory")).name
        for c in coco.get("categories", [])
    }
    images = {im["id"]: im for im in coco["images"]}
    per_image: dict[Any, dict[str, list[tuple[list[float], float]]]] = {}
    for number, result in enumerate(results):
        try:
            image = images[result["image_id"]]
            x, y, w, h = (float(v) for v in result["bbox"])
            class_name = classes[result["category_id"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(
                f"{results_path}: result #{number} is not a valid COCO result for {annotations_path} ({exc!r})"
            ) from exc
        width, height = float(image["width"]), float(image["height"])
        box = [x / width, y / height, (x + w) / width, (y + h) / height]
        per_image.setdefault(result["image_id"], {}).setdefault(class_name, []).append(
            (box, float(result.get("score", 1.0)))
        )
    entries = []
    for image_id, image in images.items():
        found = per_image.get(image_id, {})
        entries.append(
            (
                folder / image["file_name"],
                {
                    c: ImageBoxes(np.array([b for b, _ in items]), np.array([s for _, s in items]))
                    for c, items in found.items()
                },
            )
        )
    return IndexedBoxes(f"coco:{results_path}", entries, score_threshold, max_boxes)


def yolo_boxes(
    labels_dir: str,
    images_dir: str | None,
    class_names: tuple[str, ...],
    prompt_config: PromptConfig,
    score_threshold: float,
    max_boxes: int,
) -> IndexedBoxes:
    """Boxes from YOLO txt files (``cls cx cy w h [score]``, normalised), one per image stem.

    Args:
        labels_dir: Folder of ``<image stem>.txt``.
        images_dir: Folder of the images (default: ``labels_dir/../images``).
        class_names: Names by class id (default: ``names`` from a ``data.yaml`` in or above
            ``labels_dir``'s parent).
    """
    from drywallqa.files import IMAGE_SUFFIXES

    labels = Path(labels_dir)
    images_folder = Path(images_dir) if images_dir else labels.parent / "images"
    if not labels.is_dir():
        raise DataError(f"{labels}: YOLO labels folder not found")
    if not images_folder.is_dir():
        raise DataError(f"{images_folder}: images folder of the YOLO labels not found; pass box_images=DIR")
    names = tuple(class_names) or _yolo_names(labels)
    entries = []
    for image_path in sorted(p for p in images_folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        label_file = labels / f"{image_path.stem}.txt"
        found: dict[str, list[tuple[list[float], float]]] = {}
        lines = label_file.read_text(encoding="utf-8").splitlines() if label_file.is_file() else []
        for line_number, line in enumerate(lines, start=1):
            parts = line.split()
            if not parts:
                continue
            try:
                class_id = int(parts[0])
                cx, cy, w, h = (float(v) for v in parts[1:5])
                score = float(parts[5]) if len(parts) > 5 else 1.0
                class_name = prompt_config.resolve(names[class_id]).name
            except (ValueError, IndexError) as exc:
                raise DataError(
                    f"{label_file}:{line_number}: expected 'class cx cy w h [score]' with a class id below "
                    f"{len(names)} ({', '.join(names)}); got {line!r}"
                ) from exc
            found.setdefault(class_name, []).append(([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], score))
        entries.append(
            (
                image_path,
                {
                    c: ImageBoxes(np.array([b for b, _ in items]), np.array([s for _, s in items]))
                    for c, items in found.items()
                },
            )
        )
    return IndexedBoxes(f"yolo:{labels_dir}", entries, score_threshold, max_boxes)


def _yolo_names(labels: Path) -> tuple[str, ...]:
    import yaml

    for folder in (labels, labels.parent, labels.parent.parent, labels.parent.parent.parent):
        for candidate in (folder / "data.yaml", folder / "data.yml"):
            if candidate.is_file():
                names = (yaml.safe_load(candidate.read_text(encoding="utf-8")) or {}).get("names")
                if isinstance(names, dict):
                    return tuple(str(names[k]) for k in sorted(names))
                if isinstance(names, list):
                    return tuple(str(n) for n in names)
    raise ConfigError(f"{labels}: no data.yaml with 'names' found near the YOLO labels; pass box_classes=[name, ...]")


def annotation_boxes(dataset: str, score_threshold: float, max_boxes: int) -> IndexedBoxes:
    """The annotated boxes of a dataset (any format :meth:`AnnotatedDataset.load` reads): ground truth."""
    from drywallqa.data.core import AnnotatedDataset

    loaded = AnnotatedDataset.load(dataset)
    entries = []
    for sample in loaded:
        scale = np.array([sample.width, sample.height, sample.width, sample.height], dtype=np.float32)
        entries.append(
            (
                sample.image_path,
                {c: ImageBoxes(sample.boxes(c) / scale, np.ones(len(sample.boxes(c)))) for c in sample.classes},
            )
        )
    return IndexedBoxes(f"annotations:{dataset}", entries, score_threshold, max_boxes, uses_ground_truth=True)


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
        model_spec: Anything :func:`~drywallqa.models.hub.build_from_spec` accepts (a trained folder).
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
        from drywallqa.models.hub import build_from_spec

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
        prompts = [self.prompt_config.classes[classes[i]].prompt for i in rows]
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


def build_box_source(config: BoxSourceConfig, prompt_config: PromptConfig) -> BoxSource | None:
    """The :class:`BoxSource` a config's ``boxes`` field names, or None."""
    if config.boxes is None:
        return None
    kind, _, value = config.boxes.partition(":")
    common = {"score_threshold": config.box_score_threshold, "max_boxes": config.max_boxes}
    if kind == "full-image":
        return FullImageBoxes(config.boxes, **common)
    if kind == "coco":
        return coco_results_boxes(value, config.box_images, prompt_config, **common)
    if kind == "yolo":
        return yolo_boxes(value, config.box_images, tuple(config.box_classes), prompt_config, **common)
    if kind == "annotations":
        return annotation_boxes(value, **common)
    if kind == "detector":
        queries = {name: name.replace("_", " ") for name in prompt_config.classes}
        queries.update(config.detector_queries or {})
        return DetectorBoxes(config.boxes, value, queries, **common)
    if kind == "model":
        return ModelMaskBoxes(config.boxes, value, prompt_config, **common)
    raise ConfigError(f"unknown box source {config.boxes!r}")


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
        self.box_source = build_box_source(config, prompt_config)
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
        from drywallqa.models.base import _is_exporting

        size = tuple(pixels.shape[-2:])
        if _is_exporting() and not self.box_source.exportable:
            raise DrywallQAError(
                f"two-stage with boxes from {self.box_source.spec} cannot be exported (the box source runs Python); "
                "export the detector and SAM separately, or use boxes=full-image"
            )
        images = pixels * self.pixel_std + self.pixel_mean
        classes = None if self.box_source.exportable else self.text_encoder.classes_from_onehot(prompt_embeddings)
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
