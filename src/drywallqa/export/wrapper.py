"""A trace-friendly wrapper around a model for ONNX export (the role of segment-anything's ``utils/onnx.py``).

The wrapper fixes the graph's contract, independent of any architecture (names and dynamic axes in
:mod:`drywallqa.inference.graph_io`):

- inputs ``images``: float32 ``(B, 3, H, W)`` RGB in ``[0, 1]``, ``H`` and ``W`` multiples of 32;
  ``prompt_embeddings``: float32 ``(B, D)`` (rows of ``<name>.prompts.json``);
- outputs ``mask_logits``: float32 ``(B, 1, H, W)``; ``confidence_logits``: float32 ``(B,)``.

The split graphs (:class:`OnnxEncoderWrapper`, :class:`OnnxDecoderWrapper`) are the model's
``encode`` and ``decode``: the features of each image once, then one decoder row per (image,
prompt) pair, its image's features gathered by the runtime.

Normalisation is already inside the model's ``forward``, so the graph takes raw ``[0, 1]`` pixels.
The ``uint8 -> float`` step stays outside the graph on purpose: it is one fused NumPy pass
(:func:`~drywallqa.processing.nhwc_uint8_to_nchw_float`, well under 1 ms at 448x448) and a
float NCHW input is what TensorRT and every ONNX consumer expect.
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["OnnxDecoderWrapper", "OnnxEncoderWrapper", "OnnxSegmentationWrapper"]


class OnnxSegmentationWrapper(nn.Module):
    """``(images, prompt_embeddings) -> (mask_logits, confidence_logits)`` as a plain tuple.

    Args:
        model: A :class:`~drywallqa.models.PromptSegmentationModel` in eval mode.

    Example:
        >>> import torch
        >>> from drywallqa.models import build_model
        >>> model = build_model("promptunet", pretrained=False, text_encoder="hashing").eval()
        >>> wrapper = OnnxSegmentationWrapper(model)
        >>> masks, scores = wrapper(torch.rand(1, 3, 64, 64), model.embed_prompts(["segment crack"]))
        >>> tuple(masks.shape), tuple(scores.shape)
        ((1, 1, 64, 64), (1,))
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: Tensor, prompt_embeddings: Tensor) -> tuple[Tensor, Tensor]:
        """
        Args:
            images: float32 ``(B, 3, H, W)`` RGB in ``[0, 1]``.
            prompt_embeddings: float32 ``(B, D)``.

        Returns:
            ``mask_logits`` ``(B, 1, H, W)`` and ``confidence_logits`` ``(B,)``.
        """
        output = self.model(images, prompt_embeddings)
        # A NamedTuple output would be flattened anyway; a plain tuple keeps the names explicit.
        return output.mask_logits, output.confidence_logits


class OnnxEncoderWrapper(nn.Module):
    """``images -> features.0 ... features.K-1``: the model's prompt-free :meth:`encode`.

    Args:
        model: A :class:`~drywallqa.models.PromptSegmentationModel` in eval mode.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        """
        Args:
            images: float32 ``(N, 3, H, W)`` RGB in ``[0, 1]``.

        Returns:
            The model's features, ``N`` rows each.
        """
        return tuple(self.model.encode(images))


class OnnxDecoderWrapper(nn.Module):
    """``(features.0 ... features.K-1, prompt_embeddings) -> (mask_logits, confidence_logits)``: the
    model's :meth:`decode`, one row of every feature tensor per prompt.

    Args:
        model: A :class:`~drywallqa.models.PromptSegmentationModel` in eval mode.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, *inputs: Tensor) -> tuple[Tensor, Tensor]:
        """
        Args:
            inputs: The features (``M`` rows each), then float32 ``prompt_embeddings`` ``(M, D)``.

        Returns:
            ``mask_logits`` ``(M, 1, H, W)`` and ``confidence_logits`` ``(M,)``.
        """
        *features, prompt_embeddings = inputs
        output = self.model.decode(tuple(features), prompt_embeddings)
        return output.mask_logits, output.confidence_logits
