"""ONNX Runtime behind the :class:`~drywallqa.inference.Predictor` interface.

:class:`OnnxPredictor` runs a file written by :func:`~drywallqa.export.export_onnx` with the
CUDA execution provider when ONNX Runtime has it and the CPU one otherwise. Prompts are looked up
in the ``<name>.prompts.json`` stored next to the graph; an unknown prompt is an error naming the
known ones, unless ``embed_unknown_prompts=True`` lets the model's text encoder embed it.

CPU settings (:func:`create_session`): all graph optimisations (constant folding, Conv+BN+ReLU
fusion, NCHWc layout for AVX-512/AVX2 convolutions), one intra-op thread per available core,
sequential execution, and a float input buffer reused across calls.

When the export has its encoder and decoder graphs beside the whole one (``<stem>.encoder.onnx``,
``<stem>.decoder.onnx``, :mod:`~drywallqa.inference.graph_io`), those two do the work: a photo is
encoded once and decoded per prompt, in calls of :attr:`~OnnxPredictor.decode_batch_size` pairs (on a
CPU one pair a call: two pairs at once measured slower than two calls, their activations
outgrowing the caches). An older export without them runs whole, once per (photo, prompt) pair.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from drywallqa.errors import ConfigError, DrywallQAError
from drywallqa.inference.core import BatchedPredictor
from drywallqa.inference.graph_io import METADATA_PREFIX, OUTPUT_NAMES, feature_names, split_graph_paths, take_rows
from drywallqa.inference.prompt_store import PromptEmbeddings, prompt_store_path
from drywallqa.processing import logit_threshold, nhwc_uint8_to_nchw_float

GPU_PROVIDERS = ("CUDAExecutionProvider",)


def available_cores() -> int:
    """CPU cores this process may run on (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def import_onnxruntime() -> Any:
    """Import ``onnxruntime`` or fail with the install command."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise DrywallQAError(
            'the ONNX runtime needs onnxruntime: pip install "drywallqa[export]" (or onnxruntime-gpu for CUDA)'
        ) from exc
    return onnxruntime


def default_providers() -> list[str]:
    """ONNX Runtime execution providers to use: CUDA when this build has it, then CPU."""
    available = import_onnxruntime().get_available_providers()
    return [p for p in GPU_PROVIDERS if p in available] + ["CPUExecutionProvider"]


def providers_for_device(device: str) -> list:
    """Execution providers for a torch-style device name: ``"cpu"`` or ``"cuda"`` / ``"cuda:N"``.

    Raises:
        ConfigError: For another device, or ``"cuda"`` without CUDA support in this onnxruntime build.
    """
    kind = str(device).split(":")[0]
    if kind == "cpu":
        return ["CPUExecutionProvider"]
    if kind == "cuda":
        if "CUDAExecutionProvider" not in import_onnxruntime().get_available_providers():
            raise ConfigError(
                "device 'cuda' needs onnxruntime with the CUDA execution provider: pip install onnxruntime-gpu"
            )
        index = int(str(device).split(":")[1]) if ":" in str(device) else 0
        return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    raise ConfigError(f"device must be 'cpu' or 'cuda' for ONNX Runtime, got {device!r}")


def create_session(
    path: str | os.PathLike,
    *,
    providers: Sequence[str] | None = None,
    intra_op_threads: int | None = None,
    optimization_level: str = "all",
    allow_spinning: bool = True,
    profile_prefix: str | None = None,
) -> Any:
    """An ``onnxruntime.InferenceSession`` tuned for low-latency inference.

    Args:
        path: ``.onnx`` file.
        providers: Execution providers in priority order, names or ``(name, options)`` pairs;
            :func:`default_providers` by default.
        intra_op_threads: Threads per operator; one per available core by default.
        optimization_level: ``"disable"``, ``"basic"``, ``"extended"`` or ``"all"``.
        allow_spinning: Let idle intra-op threads spin for the next task (ONNX Runtime's default,
            lowest latency on a dedicated machine). Turn it off on a machine shared with other
            work: there a spinning thread burns the core its partner needs, which measured 2x
            slower than one thread.
        profile_prefix: Write an ONNX Runtime profile (JSON) with this file prefix.

    Raises:
        ConfigError: For an unknown optimisation level or provider.
        DrywallQAError: If the file is missing or not loadable.
    """
    ort = import_onnxruntime()
    levels = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    if optimization_level not in levels:
        raise ConfigError(f"unknown optimization_level {optimization_level!r}; expected one of: {', '.join(levels)}")
    providers = list(providers) if providers is not None else default_providers()
    names = [p[0] if isinstance(p, tuple) else p for p in providers]
    unknown = [name for name in names if name not in ort.get_available_providers()]
    if unknown:
        raise ConfigError(
            f"ONNX Runtime provider(s) {', '.join(unknown)} not available in this build; "
            f"available: {', '.join(ort.get_available_providers())}"
        )
    path = Path(path)
    if not path.is_file():
        raise DrywallQAError(f"{path}: no such ONNX file (write one with `drywallqa export --format onnx`)")
    options = ort.SessionOptions()
    options.graph_optimization_level = levels[optimization_level]
    options.intra_op_num_threads = int(intra_op_threads or available_cores())
    # One image's graph is a chain of convolutions: inter-op parallelism has nothing to overlap.
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # unused-initializer notices are not actionable for users
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:  # ORT raises its own exception types (Fail, InvalidGraph, ...)
        raise DrywallQAError(f"{path}: ONNX Runtime cannot load it ({exc})") from exc


class OnnxPredictor(BatchedPredictor):
    """A :class:`~drywallqa.inference.Predictor` running an exported ONNX graph in ONNX Runtime.

    Same semantics as :class:`~drywallqa.inference.ModelPredictor`: images are stretched to the
    model's square input, the logits resized back to each image and thresholded.

    Args:
        path: ``.onnx`` file from :func:`~drywallqa.export.export_onnx` (fp32 or int8).
        prompts: Prompt embeddings, a path to a ``.prompts.json`` file, or None for the file the
            graph's metadata names (``<stem>.prompts.json`` next to it).
        threshold: Probability threshold in ``(0, 1)``.
        batch_size: Images per ONNX Runtime call.
        image_size: Square input side; the exported model's own by default.
        providers: ONNX Runtime execution providers; by default from ``device``.
        device: ``"cpu"`` (CPU provider only), ``"cuda"`` (CUDA provider, then CPU), or None for
            CUDA when this onnxruntime build has it, else CPU. Ignored when ``providers`` is given.
        intra_op_threads: Threads per operator; one per available core by default.
        allow_spinning: Let idle threads spin (see :func:`create_session`); turn off on shared machines.
        embed_unknown_prompts: Embed prompts missing from the stored embeddings with the
            model's text encoder (needs its package); by default they raise :class:`ConfigError`.

    Raises:
        DrywallQAError: If the graph or its prompt embeddings cannot be loaded.

    Example:
        >>> predictor = OnnxPredictor("promptunet.onnx")                     # doctest: +SKIP
        >>> predictor.predict(image, "segment crack")                        # doctest: +SKIP
        SegmentationResult(prompt='segment crack', mask=640x640, coverage=1.20%, confidence=0.612)
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        prompts: PromptEmbeddings | str | os.PathLike | None = None,
        threshold: float = 0.5,
        batch_size: int = 8,
        image_size: int | None = None,
        providers: Sequence[str] | None = None,
        device: str | None = None,
        intra_op_threads: int | None = None,
        allow_spinning: bool = True,
        embed_unknown_prompts: bool = False,
    ):
        if providers is None and device is not None:
            providers = providers_for_device(device)
        self.path = Path(path)
        self._session_options: dict[str, Any] = {"providers": providers, "intra_op_threads": intra_op_threads,
                                 "allow_spinning": allow_spinning}
        self._session = None
        split = split_graph_paths(self.path)
        self.split = all(part.is_file() for part in split) and self.path.is_file()
        if self.split:
            self.encoder_session, self.decoder_session = (create_session(part, **self._session_options) for part in split)
        else:
            self.encoder_session = self.decoder_session = None
        meta = (self.encoder_session or self.session).get_modelmeta().custom_metadata_map
        self.metadata = {k[len(METADATA_PREFIX):]: v for k, v in meta.items() if k.startswith(METADATA_PREFIX)}
        divisor = int(self.metadata.get("size_divisor", 32))
        self.image_size = int(image_size or self.metadata.get("image_size", 0))
        if self.image_size <= 0 or self.image_size % divisor:
            raise ConfigError(
                f"image_size must be a positive multiple of {divisor}, got {self.image_size or 'none'}"
                + ("" if image_size else f" ({self.path} has no drywallqa.image_size metadata: pass image_size=)")
            )
        logit_threshold(threshold)  # validates the range
        self.threshold = float(threshold)
        self.batch_size = int(batch_size)
        self.prompt_embeddings = self._load_prompts(prompts)
        self.embed_unknown_prompts = bool(embed_unknown_prompts)
        self._text_encoder: Any = None  # the models' text encoder, built on the first unknown prompt
        self._input_buffer: np.ndarray | None = None
        self.providers = (self.encoder_session or self.session).get_providers()
        runtime = "onnxruntime-cuda" if self.providers[0] in GPU_PROVIDERS else "onnxruntime"
        if runtime == "onnxruntime":
            self.decode_batch_size = 1  # see BatchedPredictor.decode_batch_size
        precision = self.metadata.get("precision", "fp32")
        self.name = f"{self.metadata.get('model', self.path.stem)}/{runtime}-{precision}"

    def __repr__(self) -> str:
        return (
            f"OnnxPredictor({str(self.path)!r}, image_size={self.image_size}, providers={self.providers}, "
            f"prompts={len(self.prompt_embeddings)}, encoder_decoder={self.split})"
        )

    @property
    def session(self) -> Any:
        """The whole graph's session; with encoder and decoder graphs beside it, made on first use
        only (those two do the work)."""
        if self._session is None:
            self._session = create_session(self.path, **self._session_options)
        return self._session

    def _load_prompts(self, prompts: PromptEmbeddings | str | os.PathLike | None) -> PromptEmbeddings:
        if isinstance(prompts, PromptEmbeddings):
            store = prompts
        else:
            if prompts is None:
                named = self.metadata.get("prompts_file")
                prompts = self.path.with_name(named) if named else prompt_store_path(self.path)
            if not Path(prompts).is_file():
                raise DrywallQAError(
                    f"{prompts}: prompt embeddings for {self.path} not found; export the model with "
                    "`drywallqa export --format onnx`, which writes them next to the graph, or pass prompts="
                )
            store = PromptEmbeddings.load(prompts)
        expected = self.metadata.get("embed_dim")
        if expected is not None and int(expected) != store.embed_dim:
            raise ConfigError(f"prompt embeddings have dimension {store.embed_dim}, but {self.path} expects {expected}")
        return store

    def embed(self, prompts: Sequence[str]) -> np.ndarray:
        """Embeddings of ``prompts``: stored ones, plus the text encoder's when allowed.

        Returns:
            float32 ``(len(prompts), D)``.

        Raises:
            ConfigError: For a prompt without a stored embedding (unless ``embed_unknown_prompts``),
                naming the known prompts.
        """
        store = self.prompt_embeddings
        missing = store.missing(prompts)
        if not missing:
            return store.lookup(prompts)
        if not self.embed_unknown_prompts:
            raise ConfigError(
                f"no stored embedding for prompt(s) {', '.join(map(repr, missing))}; known prompts: "
                f"{', '.join(map(repr, store.prompts))}. Use one of them, or pass embed_unknown_prompts=True "
                f"to embed new prompts with the {store.text_encoder!r} text encoder"
            )
        if self._text_encoder is None:
            from drywallqa.models.text import build_text_encoder

            self._text_encoder = build_text_encoder(store.text_encoder)
        new = self._text_encoder.encode(missing).numpy()
        # Later calls find these without the encoder.
        self.prompt_embeddings = PromptEmbeddings(
            store.prompts + missing,
            np.concatenate([store.embeddings, new]),
            store.text_encoder,
            store.model,
            store.classes + [""] * len(missing),
            store.kinds + ["extra"] * len(missing),
        )
        return self.prompt_embeddings.lookup(prompts)

    def forward_batch(self, images: np.ndarray, prompts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Run the model on a ``uint8`` ``(B, S, S, 3)`` batch; see :meth:`BatchedPredictor.forward_batch`."""
        if self.split:
            return self.decode_batch(self.encode_batch(images), prompts, np.arange(len(images)))
        embeddings = self.embed(prompts)
        mask_logits, confidence_logits = self.session.run(
            list(OUTPUT_NAMES), {"images": self._float_input(images), "prompt_embeddings": embeddings}
        )
        return mask_logits[:, 0], confidence_logits

    def encode_batch(self, images: np.ndarray) -> Any:
        """The encoder graph's features of a ``uint8`` ``(N, S, S, 3)`` batch (the images themselves
        for an export without one); see :meth:`BatchedPredictor.encode_batch`."""
        if not self.split:
            return images
        return self.encoder_session.run(None, {"images": self._float_input(images)})

    def decode_batch(self, features: Any, prompts: Sequence[str], image_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The decoder graph on each pair's image features and prompt; see :meth:`BatchedPredictor.decode_batch`."""
        if not self.split:
            return super().decode_batch(features, prompts, image_index)
        feed = {name: take_rows(feature, image_index) for name, feature in zip(feature_names(len(features)), features)}
        mask_logits, confidence_logits = self.decoder_session.run(
            list(OUTPUT_NAMES), {**feed, "prompt_embeddings": self.embed(prompts)}
        )
        return mask_logits[:, 0], confidence_logits

    def _float_input(self, images: np.ndarray) -> np.ndarray:
        """A ``uint8`` NHWC batch as the graph's float NCHW input, in a buffer reused across calls."""
        shape = (images.shape[0], 3, *images.shape[1:3])
        if self._input_buffer is None or self._input_buffer.shape != shape:
            self._input_buffer = np.empty(shape, dtype=np.float32)
        return nhwc_uint8_to_nchw_float(images, out=self._input_buffer)
