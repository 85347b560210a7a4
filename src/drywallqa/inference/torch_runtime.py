"""PyTorch runtime: :class:`ModelPredictor` runs any registered model with every speed option
(bf16/fp16 autocast, channels_last, torch.compile, CUDA graphs), and several prompts per image
from one encoding (the model's ``encode`` / ``decode``); torch is imported on first use."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np

from drywallqa.errors import ConfigError
from drywallqa.inference.core import BatchedPredictor
from drywallqa.processing import logit_threshold

PRECISIONS = ("fp32", "bf16", "fp16")


class ModelPredictor(BatchedPredictor):
    """A :class:`Predictor` over any registered PyTorch model, with deployment speed options.

    Images are stretched to the model's square input, as in training, and the mask logits are
    resized back to each image's own size before the threshold, so thin structures keep sub-pixel
    edges. Speed options: ``precision`` (``"bf16"`` autocast on CPU with AVX-512-BF16/AMX or GPU,
    ``"fp16"`` on GPU only), ``channels_last`` (NHWC memory format, about 2x faster for depthwise
    convolutions in oneDNN and cuDNN; the uint8 NHWC batch already has that layout),
    ``compile`` (:func:`torch.compile`) and ``cuda_graphs`` (one captured graph per input shape,
    which removes the per-kernel launch cost that dominates small-batch GPU inference). GPU-only
    options raise :class:`~drywallqa.errors.ConfigError` on CPU instead of silently doing nothing.

    Args:
        model: A :class:`~drywallqa.models.PromptSegmentationModel`; moved to ``device``.
        image_size: Square input side; the model's ``default_image_size`` by default.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``... (default: CUDA when available).
        threshold: Probability threshold in ``(0, 1)``.
        batch_size: Images per forward pass.
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (autocast; fp16 needs CUDA).
        channels_last: Run convolutions in NHWC memory format.
        compile: ``False``, ``True`` (default mode) or a :func:`torch.compile` mode such as
            ``"max-autotune"``; ``"reduce-overhead"`` also uses CUDA graphs on GPU.
        cuda_graphs: Capture and replay a CUDA graph per input shape (CUDA only).

    Raises:
        ConfigError: For an unknown precision, fp16 or CUDA graphs without CUDA, or a bad size.
    """

    def __init__(
        self,
        model,
        *,
        image_size: int | None = None,
        device: str | None = None,
        threshold: float = 0.5,
        batch_size: int = 8,
        precision: str = "fp32",
        channels_last: bool = True,
        compile: bool | str = False,
        cuda_graphs: bool = False,
    ):
        import torch

        if precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if self.device.type != "cuda" and precision == "fp16":
            raise ConfigError("fp16 autocast needs a CUDA device; on CPU use precision='bf16' or 'fp32'")
        if self.device.type != "cuda" and cuda_graphs:
            raise ConfigError("cuda_graphs needs a CUDA device; drop it on CPU")
        self.image_size = int(image_size or model.default_image_size)
        if self.image_size % model.size_divisor:
            raise ConfigError(f"image_size must be a multiple of {model.size_divisor}, got {self.image_size}")
        logit_threshold(threshold)  # validates the range
        self.threshold = float(threshold)
        self.batch_size = int(batch_size)
        self.precision = precision
        self.channels_last = bool(channels_last)
        self.cuda_graphs = bool(cuda_graphs)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.to(self.device).eval().to(memory_format=self.memory_format)
        self.compile_mode = None if compile is False else ("default" if compile is True else str(compile))
        self._forward = (
            torch.compile(self.model, mode=self.compile_mode, dynamic=False) if self.compile_mode else self.model
        )
        if self.compile_mode:
            self._encode = torch.compile(self._encode, mode=self.compile_mode, dynamic=False)
            self._decode = torch.compile(self._decode, mode=self.compile_mode, dynamic=False)
        self._graphs: dict[tuple, tuple] = {}
        options = [precision] + ["channels_last"] * self.channels_last
        options += [f"compile={self.compile_mode}"] * bool(self.compile_mode) + ["cuda_graphs"] * self.cuda_graphs
        self.name = f"{getattr(model, 'name', type(model).__name__)}/torch-{self.device.type}-{'-'.join(options)}"

    def __repr__(self) -> str:
        return f"ModelPredictor({self.name}, image_size={self.image_size})"

    @property
    def autocast_dtype(self):
        """The autocast dtype, or None for fp32."""
        import torch

        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)

    def forward_batch(self, images: np.ndarray, prompts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Run the model on a ``uint8`` ``(B, S, S, 3)`` batch; see :meth:`BatchedPredictor.forward_batch`."""
        embeddings = self.model.embed_prompts(list(prompts)).to(self.device)
        with self._inference():
            output = self._run("forward", self._forward, (self._pixels(images), embeddings))
        return _to_numpy(output)

    def encode_batch(self, images: np.ndarray):
        """The model's :meth:`~drywallqa.models.PromptSegmentationModel.encode` of a ``uint8``
        ``(N, S, S, 3)`` batch: its features, on the device; see :meth:`BatchedPredictor.encode_batch`."""
        with self._inference():
            return self._run("encode", self._encode, (self._pixels(images),))

    def decode_batch(self, features, prompts: Sequence[str], image_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The model's :meth:`~drywallqa.models.PromptSegmentationModel.decode` of :meth:`encode_batch`'s
        features; see :meth:`BatchedPredictor.decode_batch`."""
        import torch

        embeddings = self.model.embed_prompts(list(prompts)).to(self.device)
        index = torch.as_tensor(np.asarray(image_index, dtype=np.int64)).to(self.device)
        with self._inference():
            output = self._run("decode", self._decode, (*features, embeddings, index))
        return _to_numpy(output)

    def _pixels(self, images: np.ndarray):
        """A ``uint8`` NHWC batch as float ``[0, 1]`` NCHW on the device, in the predictor's memory format."""
        import torch

        # uint8 goes to the device (4x fewer bytes than float), is scaled there, and the
        # permuted NHWC view already has channels_last strides.
        pixels = torch.from_numpy(images).to(self.device, non_blocking=True).permute(0, 3, 1, 2)
        return pixels.float().mul_(1.0 / 255.0).contiguous(memory_format=self.memory_format)

    @contextlib.contextmanager
    def _inference(self):
        """Inference mode under the predictor's autocast."""
        import torch

        dtype = self.autocast_dtype
        # Cached autocast weight casts must not outlive a CUDA graph capture.
        with torch.inference_mode(), torch.autocast(
            self.device.type, dtype=dtype, enabled=dtype is not None, cache_enabled=not self.cuda_graphs
        ):
            yield

    def _encode(self, pixels):
        return self.model.encode(pixels)

    def _decode(self, *inputs):
        *features, embeddings, index = inputs
        return self.model.decode(tuple(features), embeddings, index)

    def _run(self, part: str, function, inputs: tuple):
        """``function(*inputs)``, through a CUDA graph of this part and input shapes when asked for."""
        return self._replay_cuda_graph(part, function, inputs) if self.cuda_graphs else function(*inputs)

    def _replay_cuda_graph(self, part: str, function, inputs: tuple):
        """Run ``function`` through a CUDA graph captured for this part and these input shapes (on first use)."""
        import torch

        key = (part, *(tuple(tensor.shape) for tensor in inputs))
        if key not in self._graphs:
            static_inputs = tuple(tensor.clone() for tensor in inputs)
            # Warm up on a side stream first, as torch.cuda.graph requires (lazy init, autotuning).
            stream = torch.cuda.Stream(self.device)
            stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(stream):
                for _ in range(3):
                    function(*static_inputs)
            torch.cuda.current_stream(self.device).wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_output = function(*static_inputs)
            self._graphs[key] = (graph, static_inputs, static_output)
        graph, static_inputs, static_output = self._graphs[key]
        for static, tensor in zip(static_inputs, inputs):
            static.copy_(tensor)
        graph.replay()
        return static_output


def _to_numpy(output) -> tuple[np.ndarray, np.ndarray]:
    """A :class:`~drywallqa.models.ModelOutput` as float32 ``(B, S, S)`` and ``(B,)`` arrays."""
    mask_logits, confidence_logits = output
    return mask_logits[:, 0].float().cpu().numpy(), confidence_logits.float().cpu().numpy()

