"""Training: a YAML config (:class:`TrainConfig`) in, a saved model and its record (:class:`TrainResult`) out.

Example:
    >>> from drywallqa.training import TrainConfig, train                     # doctest: +SKIP
    >>> config = TrainConfig.from_yaml("configs/promptunet-lite0.yaml", ["data.datasets=[../shared/data/cracks]"])
    >>> result = train(config)                                                # doctest: +SKIP

Lightning and torch load when :func:`train` runs, so importing this package stays fast.
"""

from drywallqa.training.config import TrainConfig
from drywallqa.training.run import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "train"]
