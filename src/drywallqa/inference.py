"""The one prediction interface every model family sits behind.

A :class:`Predictor` takes RGB ``uint8`` images of any size and a text prompt and returns a
:class:`SegmentationResult` at the image's own size. It owns resizing, normalisation (inside the
model), upsampling and thresholding, so evaluation, prediction and serving never special-case an
architecture or a runtime (PyTorch, ONNX Runtime, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from drywallqa.errors import ConfigError
from drywallqa.processing import (
    logit_threshold,
    resize_to_model_input,
    sigmoid,
    stack_model_inputs,
    upsample_logits,
)


@dataclass
class SegmentationResult:
    """A binary mask for one image and one prompt.

    Attributes:
        prompt: The prompt text.
        mask: ``(H, W)`` bool at the input image's size.
        confidence: The model's own estimate of the mask's IoU, in ``[0, 1]``.
        probabilities: ``(H, W)`` float32 foreground probabilities, when asked for.
        threshold: Probability threshold that produced ``mask``.
    """

    prompt: str
    mask: np.ndarray
    confidence: float
    probabilities: np.ndarray | None = None
    threshold: float = 0.5
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mask.ndim != 2 or self.mask.dtype != bool:
            raise ValueError(f"mask must be (H, W) bool, got {self.mask.shape} {self.mask.dtype}")
        if self.probabilities is not None and self.probabilities.shape != self.mask.shape:
            raise ValueError(f"probabilities shape {self.probabilities.shape} != mask shape {self.mask.shape}")

    @property
    def coverage(self) -> float:
        """Share of image pixels in the mask."""
        return float(self.mask.mean()) if self.mask.size else 0.0

    def __repr__(self) -> str:
        h, w = self.mask.shape
        return (
            f"SegmentationResult(prompt={self.prompt!r}, mask={h}x{w}, coverage={self.coverage:.2%}, "
            f"confidence={self.confidence:.3f})"
        )


class Predictor:
    """Base class: image(s) + prompt(s) → :class:`SegmentationResult` (s).

    Subclasses implement :meth:`predict_batch`; :meth:`predict` is the one-image convenience.

    Attributes:
        name: Short label of the model and runtime.
        threshold: Probability threshold of prompts whose class has none in :attr:`thresholds`.
        thresholds: Per prompt class (``{"crack": 0.45, ...}``): the calibrated thresholds a model
            folder's ``calibration.json`` gives (see :func:`drywallqa.evaluation.calibrate_thresholds`).
    """

    name: str = "predictor"
    threshold: float = 0.5
    thresholds: dict[str, float] = {}

    def threshold_for(self, prompt: str) -> float:
        """The threshold of ``prompt``: its class's calibrated one, else :attr:`threshold`."""
        if not self.thresholds:
            return self.threshold
        from drywallqa.data.prompts import PromptConfig

        prompt_class = PromptConfig.default().class_of_prompt(prompt)
        return self.thresholds.get(prompt_class.name, self.threshold) if prompt_class else self.threshold

    def set_thresholds(self, thresholds: dict[str, float]) -> None:
        """Use these per-class thresholds (each in ``(0, 1)``); an empty mapping clears them."""
        for name, value in thresholds.items():
            logit_threshold(value)  # validates the range
        self.thresholds = {str(k): float(v) for k, v in thresholds.items()}

    def predict_batch(
        self, images: Sequence[np.ndarray], prompts: Sequence[str], *, return_probabilities: bool = False
    ) -> list[SegmentationResult]:
        """Segment ``images[i]`` with ``prompts[i]``.

        Args:
            images: RGB ``uint8`` arrays of shape ``(H, W, 3)``; sizes may differ.
            prompts: One prompt per image.
            return_probabilities: Also return the per-pixel probabilities.
        """
        raise NotImplementedError

    def predict(self, image: np.ndarray, prompt: str, *, return_probabilities: bool = False) -> SegmentationResult:
        """Segment one RGB ``uint8`` ``(H, W, 3)`` image with one prompt."""
        return self.predict_batch([image], [prompt], return_probabilities=return_probabilities)[0]


def check_image(image: np.ndarray) -> np.ndarray:
    """Validate an input image: RGB ``uint8`` ``(H, W, 3)`` (a grey ``(H, W)`` image is expanded)."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ConfigError(f"expected an RGB uint8 image of shape (H, W, 3), got {image.shape} {image.dtype}")
    return image


def check_prompt(prompt: str, max_length: int = 200) -> str:
    """Validate a prompt: non-empty after stripping, at most ``max_length`` characters."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise ConfigError("prompt is empty: give a text such as 'segment crack'")
    if len(prompt) > max_length:
        raise ConfigError(f"prompt is {len(prompt)} characters long; the limit is {max_length}")
    return prompt.strip()


def logits_to_result(
    mask_logits: np.ndarray,
    confidence_logit: float,
    prompt: str,
    image_shape: tuple[int, ...],
    threshold: float = 0.5,
    return_probabilities: bool = False,
) -> SegmentationResult:
    """Turn one image's model-resolution logits into a :class:`SegmentationResult` at image size.

    Args:
        mask_logits: float ``(h, w)`` mask logits at the model's input resolution.
        confidence_logit: The model's predicted-IoU logit for this image.
        prompt: The prompt the mask answers.
        image_shape: Shape of the original image, ``(H, W)`` or ``(H, W, 3)``.
        threshold: Probability threshold in ``(0, 1)``.
        return_probabilities: Also return float32 ``(H, W)`` probabilities.

    Returns:
        The result, with ``mask`` of shape ``(H, W)``.
    """
    height, width = image_shape[:2]
    logits = upsample_logits(mask_logits, height, width)
    return SegmentationResult(
        prompt=prompt,
        mask=logits > logit_threshold(threshold),
        confidence=float(sigmoid(np.float32(confidence_logit))),
        probabilities=sigmoid(logits) if return_probabilities else None,
        threshold=threshold,
    )



class BatchedPredictor(Predictor):
    """A :class:`Predictor` whose runtime only maps a uint8 batch to logits.

    :meth:`predict_batch` validates the inputs, resizes them with :func:`resize_to_model_input`,
    runs :meth:`forward_batch` in chunks of :attr:`batch_size` and post-processes each image with
    :func:`logits_to_result`. Subclasses set :attr:`image_size`, :attr:`threshold`,
    :attr:`batch_size` and :attr:`name`, and implement :meth:`forward_batch`.

    Attributes:
        name: Short label of the model and runtime, e.g. ``"promptunet/onnxruntime"``.
        image_size: Side of the square model input.
        threshold: Probability threshold of the mask, in ``(0, 1)``.
        batch_size: Images per :meth:`forward_batch` call.
    """

    image_size: int = 448
    batch_size: int = 8

    def forward_batch(self, images: np.ndarray, prompts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Run the model on a batch already at the model's input size (the batched array path).

        Args:
            images: ``uint8`` ``(B, S, S, 3)`` RGB, ``S`` a multiple of 32 (usually :attr:`image_size`).
            prompts: ``B`` prompts.

        Returns:
            ``(mask_logits, confidence_logits)``: float32 ``(B, S, S)`` and ``(B,)`` NumPy arrays.
        """
        raise NotImplementedError

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """One image as :meth:`forward_batch` takes it: checked and stretched to :attr:`image_size`.

        With :meth:`finish`, the halves of :meth:`predict_batch` around the model call, for drivers
        that resize and post-process in their own threads while one thread runs the model
        (:class:`drywallqa.serving.batching.MicroBatcher`).
        """
        return resize_to_model_input(check_image(image), self.image_size)

    def finish(self, mask_logits: np.ndarray, confidence_logit: float, prompt: str, image_shape: tuple[int, ...],
               return_probabilities: bool = False) -> SegmentationResult:
        """One image's model output as its :class:`SegmentationResult` at the image's size."""
        return logits_to_result(mask_logits, confidence_logit, prompt, image_shape, self.threshold_for(prompt),
                                return_probabilities)

    def predict_batch(
        self, images: Sequence[np.ndarray], prompts: Sequence[str], *, return_probabilities: bool = False
    ) -> list[SegmentationResult]:
        """Segment ``images[i]`` with ``prompts[i]``.

        Args:
            images: RGB ``uint8`` ``(H, W, 3)`` arrays; sizes may differ.
            prompts: One prompt per image.
            return_probabilities: Also return per-pixel probabilities.

        Returns:
            One :class:`SegmentationResult` per image, at that image's size.

        Raises:
            ConfigError: If the counts differ, an image is not RGB uint8 or a prompt is empty.
        """
        if len(images) != len(prompts):
            raise ConfigError(f"got {len(images)} images but {len(prompts)} prompts; give one prompt per image")
        prompts = [check_prompt(p) for p in prompts]
        images = [check_image(image) for image in images]
        results: list[SegmentationResult] = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            chunk_prompts = prompts[start : start + len(chunk)]
            mask_logits, confidence_logits = self.forward_batch(stack_model_inputs(chunk, self.image_size), chunk_prompts)
            for image, prompt, logits, confidence in zip(chunk, chunk_prompts, mask_logits, confidence_logits):
                results.append(self.finish(logits, confidence, prompt, image.shape, return_probabilities))
        return results


#: Test-time augmentation choices: the views whose logits are averaged, as flip axes of a NHWC batch.
TTA_VIEWS = {"none": (), "hflip": ((2,),), "hvflip": ((2,), (1,), (1, 2))}


class FlipTTAPredictor(BatchedPredictor):
    """Test-time augmentation over any batched runtime: average the logits of flipped views.

    Each batch runs once with the original images and once per flipped view (in one call to the
    wrapped runtime); every view's logits are flipped back and the mean logit is thresholded.
    ``hflip`` doubles the cost, ``hvflip`` (also vertical and both) quadruples it. Whether it
    pays is a measurement: ``drywallqa evaluate --tta hflip`` beside the same run without it.

    Args:
        inner: The runtime whose ``forward_batch`` does the work (PyTorch, ONNX Runtime, ...).
        views: A key of :data:`TTA_VIEWS`.

    Raises:
        ConfigError: For an unknown ``views`` name.
    """

    def __init__(self, inner: BatchedPredictor, views: str = "hflip"):
        if views not in TTA_VIEWS or views == "none":
            raise ConfigError(f"tta must be one of {', '.join(k for k in TTA_VIEWS if k != 'none')}, got {views!r}")
        self.inner = inner
        self.views = views
        self.image_size, self.batch_size, self.threshold = inner.image_size, inner.batch_size, inner.threshold
        self.name = f"{inner.name}+tta-{views}"

    def __getattr__(self, name: str):
        # Everything else (metadata, device, model...) is the wrapped runtime's.
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def forward_batch(self, images: np.ndarray, prompts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        flips = TTA_VIEWS[self.views]
        views = [images] + [np.flip(images, axis=axes) for axes in flips]
        mask_logits, confidence_logits = self.inner.forward_batch(
            np.ascontiguousarray(np.concatenate(views)), list(prompts) * len(views)
        )
        n = len(images)
        # Mask logits are (B, S, S): a NHWC flip axis (1 = rows, 2 = columns) maps to the same axis.
        total = mask_logits[:n].astype(np.float32, copy=True)
        for index, axes in enumerate(flips, start=1):
            total += np.flip(mask_logits[index * n : (index + 1) * n], axis=axes)
        count = len(views)
        return total / count, confidence_logits.reshape(count, n).mean(axis=0)


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
        import torch

        embeddings = self.model.embed_prompts(list(prompts)).to(self.device)
        # uint8 goes to the device (4x fewer bytes than float), is scaled there, and the
        # permuted NHWC view already has channels_last strides.
        pixels = torch.from_numpy(images).to(self.device, non_blocking=True).permute(0, 3, 1, 2)
        pixels = pixels.float().mul_(1.0 / 255.0).contiguous(memory_format=self.memory_format)
        dtype = self.autocast_dtype
        # Cached autocast weight casts must not outlive a CUDA graph capture.
        with torch.inference_mode(), torch.autocast(
            self.device.type, dtype=dtype, enabled=dtype is not None, cache_enabled=not self.cuda_graphs
        ):
            mask_logits, confidence_logits = (
                self._replay_cuda_graph(pixels, embeddings) if self.cuda_graphs else self._forward(pixels, embeddings)
            )
        return (
            mask_logits[:, 0].float().cpu().numpy(),
            confidence_logits.float().cpu().numpy(),
        )

    def _replay_cuda_graph(self, pixels, embeddings):
        """Run through a CUDA graph captured for this input shape (captured on first use)."""
        import torch

        key = (tuple(pixels.shape), tuple(embeddings.shape))
        if key not in self._graphs:
            static_pixels, static_embeddings = pixels.clone(), embeddings.clone()
            # Warm up on a side stream first, as torch.cuda.graph requires (lazy init, autotuning).
            stream = torch.cuda.Stream(self.device)
            stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(stream):
                for _ in range(3):
                    self._forward(static_pixels, static_embeddings)
            torch.cuda.current_stream(self.device).wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_output = self._forward(static_pixels, static_embeddings)
            self._graphs[key] = (graph, static_pixels, static_embeddings, static_output)
        graph, static_pixels, static_embeddings, static_output = self._graphs[key]
        static_pixels.copy_(pixels)
        static_embeddings.copy_(embeddings)
        graph.replay()
        return static_output


def model_predictor(model, **kwargs: Any) -> ModelPredictor:
    """A :class:`~drywallqa.inference.ModelPredictor` named after the model's :attr:`display_name`.

    The evaluation report records the predictor's name, so e.g. ``textsam+boxes:annotations``
    shows that box prompts came from ground truth. ``predictor.metadata`` holds the model's
    :attr:`~drywallqa.models.hub.TransformersPromptModel.metadata`.

    Args:
        model: Any registered model.
        **kwargs: :class:`~drywallqa.inference.ModelPredictor` arguments (``device``, ``threshold``, ...).
    """
    predictor = ModelPredictor(model, **kwargs)
    # Reports name the model, not the runtime options (those are in ModelPredictor's own name).
    predictor.name = str(getattr(model, "display_name", None) or getattr(model, "name", None) or predictor.name)
    predictor.metadata = dict(getattr(model, "metadata", {}) or {"architecture": predictor.name})
    return predictor


def default_model_path():
    """Folder of the model shipped inside the package (``drywallqa/weights/promptunet``)."""
    from importlib import resources

    return resources.files("drywallqa").joinpath("weights/promptunet")


def load_predictor(spec: str | None = None, device: str | None = None, model_args: dict | None = None,
                   tta: str = "none", *, runtime: str = "auto", say=print, **kwargs) -> Predictor:
    """Build a :class:`Predictor` from a model spec, on the fastest runtime that gives its own masks.

    Args:
        spec: ``None`` for the shipped default model; a folder written by ``save_pretrained``
            (``config.json`` + ``model.safetensors``); ``NAME[:WEIGHTS]`` for a registered
            architecture built from hub weights (``clipseg:DIR``, ``sam3:DIR``, ``two-stage:DIR``);
            a transformers folder; a YAML spec; or an ``.onnx`` file (ONNX Runtime).
        device: Torch device; CUDA when available by default.
        model_args: Extra model config fields (e.g. ``{"boxes": "annotations:DIR"}``); PyTorch only.
        tta: Test-time augmentation, a key of :data:`TTA_VIEWS` (see :class:`FlipTTAPredictor`).
        runtime: ``"auto"``: :func:`drywallqa.export.factory.best_available` (ONNX Runtime on a CPU,
            from an export of the model folder made once and cached by weight hash, when it passes
            the parity check; PyTorch on CUDA); or ``"torch"``, ``"onnx"``, ``"tensorrt"``.
        say: Called with one line naming the runtime used (None: silent).
        **kwargs: Passed to the runtime (``threshold``, ``batch_size``, ``image_size``; PyTorch's
            :class:`ModelPredictor` options such as ``precision`` select PyTorch).

    Raises:
        ConfigError: For an unknown runtime or TTA, or model arguments on another runtime.
        DrywallQAError: If the model cannot be found or loaded, with what to do about it.
    """
    from drywallqa.export.factory import load_runtime, runtime_for_spec

    if tta not in TTA_VIEWS:
        raise ConfigError(f"tta must be one of {', '.join(TTA_VIEWS)}, got {tta!r}")
    explicit_threshold = kwargs.get("threshold") is not None
    if not explicit_threshold:
        kwargs.pop("threshold", None)
    if (runtime == "torch" and runtime_for_spec(spec) == "torch") or (runtime == "auto" and model_args):
        predictor = _load_runtime(spec, device, model_args, **kwargs)
        if say is not None:
            say(f"runtime: {predictor.name} ({'--runtime torch' if runtime == 'torch' else 'model arguments need PyTorch'})")
    elif model_args:
        raise ConfigError(f"model arguments ({', '.join(model_args)}) need --runtime torch, not {runtime}")
    else:
        predictor = load_runtime(spec, runtime, device=device, say=say or (lambda line: None), **kwargs)
    if tta != "none":
        if not isinstance(predictor, BatchedPredictor):
            raise ConfigError(f"test-time flips need a batched runtime; {predictor.name} is not one")
        predictor = FlipTTAPredictor(predictor, tta)
    if not explicit_threshold:
        # A model folder's calibrated per-class thresholds apply unless a threshold is given.
        predictor.set_thresholds(read_calibration(calibration_file(spec)).get("thresholds", {}))
    return predictor

CALIBRATION_FILE = "calibration.json"


def calibration_file(spec: str | None):
    """Where the calibrated thresholds of a spec's weights live: ``calibration.json`` in a model
    folder (the shipped one for None), ``<stem>.calibration.json`` beside an exported runtime file
    (``drywallqa export`` writes it); None for other specs."""
    from pathlib import Path

    if spec is None:
        return Path(str(default_model_path())) / CALIBRATION_FILE
    path = Path(str(spec))
    if path.suffix in (".onnx", ".plan", ".engine"):
        return path.with_suffix(".calibration.json")
    return path / CALIBRATION_FILE if (path / "config.json").is_file() else None


def write_calibration(path, sweep, command: str = "") -> None:
    """Write a model's ``calibration.json`` from a per-class threshold sweep
    (:func:`drywallqa.evaluation.calibrate_thresholds`), atomically."""
    from datetime import datetime, timezone

    from drywallqa.files import atomic_write_json

    atomic_write_json(path, {
        "thresholds": dict(sorted(sweep.chosen_per_class.items())),
        "chosen_on": {"split": sweep.split, "images": sweep.images, "objective": "per-image mean IoU of the class",
                      "candidates": sweep.thresholds, "mean_iou": sweep.per_class},
        "command": command,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }, indent=1)


def read_calibration(path) -> dict:
    """A calibration file (see :func:`calibration_file`): per-class thresholds and how they were
    chosen; ``{}`` when ``path`` is None or missing.

    Raises:
        ConfigError: If the file exists but is not a calibration, naming it.
    """
    from drywallqa.files import read_json

    if path is None or not path.is_file():
        return {}
    data = read_json(path)
    thresholds = data.get("thresholds") if isinstance(data, dict) else None
    if not isinstance(thresholds, dict) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 1 for v in thresholds.values()
    ):
        raise ConfigError(f"{path}: expected {{\"thresholds\": {{class: probability in (0, 1)}}}}")
    return data


def _load_runtime(spec: str | None, device: str | None, model_args: dict | None, **kwargs) -> Predictor:
    from pathlib import Path

    from drywallqa.errors import DrywallQAError
    from drywallqa.models import PromptSegmentationModel, build_from_spec

    if spec is not None and str(spec).endswith((".onnx", ".plan", ".engine")):
        from drywallqa.export import load_runtime_predictor  # ONNX Runtime or TensorRT by suffix

        return load_runtime_predictor(spec, device=device, **kwargs)
    if spec is not None:
        model = build_from_spec(spec, model_args)
        if model is not None:
            return model_predictor(model, device=device, **kwargs)
    path = Path(str(default_model_path())) if spec is None else Path(spec)
    if not path.exists():
        if spec is None:
            raise DrywallQAError(f"no shipped model at {path}; train one with `drywallqa train` and pass --model RUN/model")
        raise DrywallQAError(f"{path}: no such model folder (expected config.json + model.safetensors from save_pretrained)")
    model = PromptSegmentationModel.from_pretrained(path, map_location="cpu")
    return ModelPredictor(model, device=device, **kwargs)
