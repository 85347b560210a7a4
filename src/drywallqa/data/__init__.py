"""Dataset layer: one in-memory representation for COCO, YOLO and mask-folder datasets."""

from drywallqa.data.core import AnnotatedDataset, Annotation, Sample, canonical_split
from drywallqa.data.groups import shared_groups, source_group, split_groups
from drywallqa.data.prompts import PromptClass, PromptConfig

__all__ = [
    "AnnotatedDataset", "Annotation", "PromptClass", "PromptConfig", "Sample", "canonical_split",
    "shared_groups", "source_group", "split_groups",
]
