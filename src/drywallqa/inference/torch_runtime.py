"""PyTorch runtime: :class:`ModelPredictor` runs any registered model with every speed option
(bf16/fp16 autocast, channels_last, torch.compile, CUDA graphs), and several prompts per image
from one encoding (the model's ``encode`` / ``decode``); torch is imported on first use."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from drywallqa.errors import ConfigError
from drywallqa.inference.core import BatchedPredictor
from drywallqa.processing import logit_threshold

if TYPE_CHECKING:
    from drywallqa.models import PromptSegmentationModel

PRECISIONS = ("fp32", "bf16", "fp16")


class ModelPredictor(BatchedPredictor):
    """A :class:`Predictor` over any registered PyTorch model, with deployment speed options.

    Images are stretched to the model's square input, as in training, and the mask logits are
    resized back to each image's own size before the threshold, so thin structures keep sub-pixel
    edges. Speed options: ``precision`` (``"bf16"`` autocast on CPU with AVX-512-BF16/AMX or GPU,
    ``"fp16"`` on GPU only), ``channels_last`` (NHWC memory format, about 2x faster for depthwise
    convolutions in oneDNN and cuDNN; the uint8 NHWC batch already has that layout),
    ``compile`` (:func:`torch.compile`) and ``cuda_graphs`` (one captured graph per input shape,
    which removes the per-kernel launch cost that dominates small-batch GPU inference), and
    ``fold_batchnorm`` (:func:`~drywallqa.inference.folding.fold_batchnorm`). GPU-only options
    raise :class:`~drywallqa.errors.ConfigError` on CPU instead of silently doing nothing.

    Batches (of images through the whole model or its encoder, of pairs through its decoder) are
    padded to the next power of two (``pad_batches``, on CUDA by default), so a driver
    whose batch size varies call by call (``watch`` takes whatever frames are waiting) meets a
    handful of shapes: each new shape costs a graph capture, a compilation or cuDNN's kernel
    choice once, and :meth:`warm_up` pays them all before the first frame.

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
        fold_batchnorm: Fold each BatchNorm into the convolution before it (a copy of the model;
            ``model`` is left as it is); None: on CUDA.
        pad_batches: Pad each batch to the next power of two (at most ``batch_size``); None: on CUDA.

    Raises:
        ConfigError: For an unknown precision, fp16 or CUDA graphs without CUDA, or a bad size.
    """

    def __init__(
        self,
        model: PromptSegmentationModel,
        *,
        image_size: int | None = None,
        device: str | None = None,
        threshold: float = 0.5,
        batch_size: int = 8,
        precision: str = "fp32",
        channels_last: bool = True,
        compile: bool | str = False,
        cuda_graphs: bool = False,
        fold_batchnorm: bool | None = None,
        pad_batches: bool | None = None,
    ) -> None:
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
        cuda = self.device.type == "cuda"
        self.folded_batchnorms = 0
        if cuda if fold_batchnorm is None else fold_batchnorm:
            model, self.folded_batchnorms = _folded(model)
        self.pad_batches = cuda if pad_batches is None else bool(pad_batches)
        self.decode_batch_size = None if cuda else 1  # see BatchedPredictor.decode_batch_size
        self.model = model.to(self.device).eval().to(memory_format=self.memory_format)
        self.compile_mode = None if compile is False else ("default" if compile is True else str(compile))
        if self.compile_mode:
            _allow_recompiles(len(batch_buckets(self.batch_size)) ** 2 + 2)  # the decoder: pairs x encoded buckets
        self._forward = (
            torch.compile(self.model, mode=self.compile_mode, dynamic=False) if self.compile_mode else self.model
        )
        # The model's parts as they run: compiled, or the methods themselves.
        self._encode_part = torch.compile(self._encode, mode=self.compile_mode, dynamic=False) if self.compile_mode \
            else self._encode
        self._decode_part = torch.compile(self._decode, mode=self.compile_mode, dynamic=False) if self.compile_mode \
            else self._decode
        self._decode_rows_part = torch.compile(self._decode_rows, mode=self.compile_mode, dynamic=False) \
            if self.compile_mode else self._decode_rows
        # Per model part and input shapes: what runs it (a replayed CUDA graph, or the part), made once.
        self._runners: dict[tuple, Callable[..., Any]] = {}
        options = [precision] + ["channels_last"] * self.channels_last
        options += [f"compile={self.compile_mode}"] * bool(self.compile_mode) + ["cuda_graphs"] * self.cuda_graphs
        self.name = f"{getattr(model, 'name', type(model).__name__)}/torch-{self.device.type}-{'-'.join(options)}"

    def __repr__(self) -> str:
        return f"ModelPredictor({self.name}, image_size={self.image_size})"

    @property
    def autocast_dtype(self) -> Any:
        """The autocast dtype, or None for fp32."""
        import torch

        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)

    def forward_batch(self, images: np.ndarray, prompts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Run the model on a ``uint8`` ``(B, S, S, 3)`` batch; see :meth:`BatchedPredictor.forward_batch`."""
        return self._forward_embedded(images, self.model.embed_prompts(list(prompts)))

    def _forward_embedded(self, images: np.ndarray, embeddings: Any) -> tuple[np.ndarray, np.ndarray]:
        """The forward on ``images`` and prompt ``embeddings``, the batch padded to its bucket."""
        count = images.shape[0]
        images, embeddings = self._padded(images), self._padded_embeddings(embeddings, count)
        with self._inference():
            mask_logits, confidence_logits = self._run("forward", self._forward, (self._pixels(images), embeddings))
        return _to_numpy((mask_logits[:count], confidence_logits[:count]))

    def encode_batch(self, images: np.ndarray) -> Any:
        """The model's :meth:`~drywallqa.models.PromptSegmentationModel.encode` of a ``uint8``
        ``(N, S, S, 3)`` batch: its features, on the device (rows past ``N`` are the padding's);
        see :meth:`BatchedPredictor.encode_batch`."""
        with self._inference():
            return self._run("encode", self._encode_part, (self._pixels(self._padded(images)),))

    def decode_batch(self, features: Any, prompts: Sequence[str], image_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The model's :meth:`~drywallqa.models.PromptSegmentationModel.decode` of :meth:`encode_batch`'s
        features; see :meth:`BatchedPredictor.decode_batch`."""
        return self._decode_embedded(features, self.model.embed_prompts(list(prompts)), image_index)

    def _decode_embedded(self, features: Any, embeddings: Any, image_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The decoder on ``features``, prompt ``embeddings`` and ``image_index``, the pairs padded to their bucket."""
        import torch

        count = len(image_index)
        index = np.asarray(image_index, dtype=np.int64)
        padded = batch_bucket(count, self.batch_size) if self.pad_batches else count
        index = np.concatenate([index, np.zeros(padded - count, np.int64)])  # padding decodes image 0, unread
        embeddings = self._padded_embeddings(embeddings, count)
        with self._inference():
            if count and not self.pad_batches and np.array_equal(index, np.arange(index[0], index[0] + count)):
                # A run of consecutive images (one pair of a photo, or each photo's own prompt):
                # their rows of the features in place, not gathered into a copy. (Padded batches
                # keep one decoder shape per bucket, which warm_up runs.)
                rows = tuple(feature[int(index[0]) : int(index[0]) + len(index)] for feature in features)
                mask_logits, confidence_logits = self._run("decode rows", self._decode_rows_part, (*rows, embeddings))
            else:
                mask_logits, confidence_logits = self._run(
                    "decode", self._decode_part, (*features, embeddings, torch.as_tensor(index).to(self.device)))
        return _to_numpy((mask_logits[:count], confidence_logits[:count]))

    def _padded(self, images: np.ndarray) -> np.ndarray:
        """``images`` with zero images up to their batch bucket (as they are without ``pad_batches``)."""
        count = images.shape[0]
        padded = batch_bucket(count, self.batch_size) if self.pad_batches else count
        if padded == count:
            return images
        return np.concatenate([images, np.zeros((padded - count, *images.shape[1:]), images.dtype)])

    def _padded_embeddings(self, embeddings: Any, count: int) -> Any:
        """Prompt ``embeddings`` of ``count`` pairs, the last repeated up to their bucket, float32 on the device."""
        import torch

        padded = batch_bucket(count, self.batch_size) if self.pad_batches else count
        if padded > count:
            embeddings = torch.cat([embeddings, embeddings[-1:].expand(padded - count, -1)])
        return embeddings.to(self.device, dtype=torch.float32)

    def warm_up(self, largest: int | None = None) -> int:
        """Run every padded batch shape up to ``largest`` images (``batch_size`` by default) once,
        through the whole model and through its encoder and decoder (every pair bucket on every
        encoded bucket), so captures, compilations and kernel choices happen now rather than on
        a live frame.

        Returns:
            The number of shapes run (none without ``pad_batches``: every batch size is its own shape).
        """
        import torch

        if not self.pad_batches:
            return 0
        largest = min(int(largest or self.batch_size), self.batch_size)
        sizes = [b for b in batch_buckets(self.batch_size) if b <= batch_bucket(largest, self.batch_size)]
        runs = 0
        for size in sizes:
            blank = np.zeros((size, self.image_size, self.image_size, 3), np.uint8)
            self._forward_embedded(blank, torch.zeros(size, self.model.embed_dim))
            features = self.encode_batch(blank)
            for pairs in sizes:
                self._decode_embedded(features, torch.zeros(pairs, self.model.embed_dim), np.zeros(pairs, np.int64))
            runs += 2 + len(sizes)
        return runs

    def _pixels(self, images: np.ndarray) -> Any:
        """A ``uint8`` NHWC batch as float ``[0, 1]`` NCHW on the device, in the predictor's memory format."""
        import torch

        # uint8 goes to the device (4x fewer bytes than float), is scaled there, and the
        # permuted NHWC view already has channels_last strides.
        pixels = torch.from_numpy(images).to(self.device, non_blocking=True).permute(0, 3, 1, 2)
        return pixels.float().mul_(1.0 / 255.0).contiguous(memory_format=self.memory_format)

    @contextlib.contextmanager
    def _inference(self) -> Iterator[None]:
        """Inference mode under the predictor's autocast."""
        import torch

        dtype = self.autocast_dtype
        # Cached autocast weight casts must not outlive a CUDA graph capture.
        with torch.inference_mode(), torch.autocast(
            self.device.type, dtype=dtype, enabled=dtype is not None, cache_enabled=not self.cuda_graphs
        ):
            yield

    def _encode(self, pixels: Any) -> Any:
        return self.model.encode(pixels)

    def _decode(self, *inputs: Any) -> Any:
        *features, embeddings, index = inputs
        return self.model.decode(tuple(features), embeddings, index)

    def _decode_rows(self, *inputs: Any) -> Any:
        *features, embeddings = inputs
        return self.model.decode(tuple(features), embeddings)

    def _run(self, part: str, function: Callable[..., Any], inputs: tuple) -> Any:
        """``function(*inputs)``, through a CUDA graph of this part and input shapes when asked for."""
        key = (part, *(tuple(tensor.shape) for tensor in inputs))
        runner = self._runners.get(key)
        if runner is None:
            runner = self._runners[key] = self._capture(part, function, inputs) if self.cuda_graphs else function
        return runner(*inputs)

    def _capture(self, part: str, function: Callable[..., Any], inputs: tuple) -> Callable[..., Any]:
        """A CUDA graph of ``function`` (the model ``part``) for these input shapes, as a function that replays it."""
        import torch

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

        def replay(*inputs: Any) -> Any:
            for static, tensor in zip(static_inputs, inputs):
                static.copy_(tensor)
            graph.replay()
            return static_output

        return replay

def batch_bucket(count: int, limit: int) -> int:
    """The padded size of a batch of ``count``: the next power of two, at most ``limit`` (and never
    below ``count``).

    Example:
        >>> [batch_bucket(n, 6) for n in (1, 2, 3, 5, 6, 9)]
        [1, 2, 4, 6, 6, 9]
    """
    return max(count, min(1 << max(count - 1, 0).bit_length(), limit))


def batch_buckets(limit: int) -> list[int]:
    """Every padded batch size up to ``limit``: ``[1, 2, 4, ..., limit]``."""
    return sorted({batch_bucket(n, limit) for n in range(1, limit + 1)})


def _folded(model: PromptSegmentationModel) -> tuple[PromptSegmentationModel, int]:
    """``model`` with its BatchNorms folded (a copy), and how many; the model itself when it has no
    forward on ``(images, prompt embeddings)`` to check the folding with."""
    import torch

    from drywallqa.inference.folding import fold_batchnorm

    side = 2 * int(getattr(model, "size_divisor", 32))
    try:
        device = next(model.parameters()).device
        example = (torch.rand(1, 3, side, side, device=device), torch.randn(1, int(model.embed_dim), device=device))
        return fold_batchnorm(model, example)
    except Exception:  # noqa: BLE001 - a model this check cannot run stays as it is
        return model, 0


def _allow_recompiles(shapes: int) -> None:
    """Let torch.compile keep a compiled graph per padded batch shape (its default limit is 8)."""
    import torch._dynamo

    config = torch._dynamo.config
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
    setattr(config, name, max(getattr(config, name), shapes))



def _to_numpy(output: Any) -> tuple[np.ndarray, np.ndarray]:
    """A :class:`~drywallqa.models.ModelOutput` as float32 ``(B, S, S)`` and ``(B,)`` arrays."""
    mask_logits, confidence_logits = output
    return mask_logits[:, 0].float().cpu().numpy(), confidence_logits.float().cpu().numpy()

