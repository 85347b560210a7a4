"""PyTorch runtime: :class:`drywallqa.inference.ModelPredictor` has every speed option
(bf16/fp16 autocast, channels_last, torch.compile, CUDA graphs); this name is kept for the
runtime factory and benchmarks."""

from drywallqa.inference import PRECISIONS, ModelPredictor

TorchRuntimePredictor = ModelPredictor

__all__ = ["PRECISIONS", "TorchRuntimePredictor"]
