"""drywallqa: text-prompted segmentation for drywall quality assurance."""

from drywallqa.data.core import AnnotatedDataset, Annotation, Sample
from drywallqa.errors import DataError, DrywallQAError

__version__ = "0.1.0"

__all__ = ["AnnotatedDataset", "Annotation", "DataError", "DrywallQAError", "Sample", "__version__"]
