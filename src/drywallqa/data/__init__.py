"""Dataset layer: one in-memory representation for COCO, YOLO and mask-folder datasets."""

from drywallqa.data.core import AnnotatedDataset, Annotation, Sample, canonical_split
from drywallqa.data.groups import shared_groups, source_group, split_groups
from drywallqa.data.prompts import PromptClass, PromptConfig
from drywallqa.data.synthetic import SampleDataPaths, generate_sample_data

__all__ = [
    "AnnotatedDataset", "Annotation", "PromptClass", "PromptConfig", "Sample", "SampleDataPaths", "canonical_split", "generate_sample_data",
    "shared_groups", "source_group", "split_groups",
]
