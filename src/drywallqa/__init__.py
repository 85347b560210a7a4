"""drywallqa: text-prompted segmentation for drywall quality assurance.

What a notebook needs is importable from here::

    import drywallqa

    predictor = drywallqa.load_predictor()            # the shipped model, fastest runtime here
    result = predictor.predict(image, "segment crack")  # the mask
    predictions = drywallqa.predict("wall.jpg", ["segment crack", "segment taping area"], predictor)
    predictions.verdict, predictions[0].figures, predictions[0].plot(), predictions.save("out")
    dataset = drywallqa.AnnotatedDataset.from_coco("export/train/_annotations.coco.json")
    report = drywallqa.evaluate(predictor, dataset)
    drywallqa.train(drywallqa.TrainConfig.from_yaml("configs/promptunet-lite0.yaml"))

The model, runtime and training names load on first use (torch, ONNX Runtime and Lightning are
not imported by ``import drywallqa``).
"""

from importlib import import_module

from drywallqa._version import __version__
from drywallqa.data.core import AnnotatedDataset, Annotation, Sample
from drywallqa.errors import ConfigError, DataError, DrywallQAError

# Name -> module that defines it, imported on first attribute access (PEP 562).
_LAZY = {
    "Prediction": "drywallqa.inference",
    "Predictions": "drywallqa.inference",
    "Predictor": "drywallqa.inference",
    "SegmentationResult": "drywallqa.inference",
    "load_predictor": "drywallqa.inference",
    "predict": "drywallqa.inference",
    "build_model": "drywallqa.models",
    "evaluate": "drywallqa.evaluation",
    "TrainConfig": "drywallqa.training",
    "train": "drywallqa.training",
}

__all__ = [
    "AnnotatedDataset", "Annotation", "ConfigError", "DataError", "DrywallQAError", "Sample", "__version__", *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'drywallqa' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
