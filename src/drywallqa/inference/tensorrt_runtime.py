"""TensorRT: an fp16 engine built from the exported ONNX graph, behind the Predictor interface.

Needs an NVIDIA GPU and the ``tensorrt`` Python package (TensorRT 10 API). Without it every entry
point raises :class:`TensorRTUnavailable`, whose message gives the install command and the
equivalent ``trtexec`` command line (see :func:`trtexec_command`), e.g.::

    trtexec --onnx=promptunet.onnx --saveEngine=promptunet.fp16.plan --fp16 \\
        --minShapes=images:1x3x448x448,prompt_embeddings:1x384 \\
        --optShapes=images:4x3x448x448,prompt_embeddings:4x384 \\
        --maxShapes=images:16x3x448x448,prompt_embeddings:16x384

An engine is specific to the GPU model and TensorRT version that built it; the input size is
fixed to the model's square input and the batch ranges over ``1..max_batch``. Buffers are torch
CUDA tensors, so no pycuda or cuda-python is needed.

When an exported ``.onnx`` has its encoder and decoder graphs beside it (``<stem>.encoder.onnx``,
``<stem>.decoder.onnx``), each gets an engine of its own (``<stem>.encoder.fp16.plan``...), so a
photo is encoded once for all its prompts; the whole graph's engine serves exports without them
and a ``.plan`` file given by name.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from drywallqa.errors import DrywallQAError
from drywallqa.inference.core import BatchedPredictor
from drywallqa.inference.graph_io import feature_names, read_metadata, split_graph_paths
from drywallqa.inference.prompt_store import PromptEmbeddings, prompt_store_path
from drywallqa.processing import logit_threshold

ENGINE_SUFFIX = ".fp16.plan"
DEFAULT_MAX_BATCH = 16
DEFAULT_OPT_BATCH = 4


class TensorRTUnavailable(DrywallQAError):
    """TensorRT or a CUDA GPU is missing; the message says how to get it or use trtexec."""


def tensorrt_available() -> bool:
    """True when the ``tensorrt`` package is importable and torch sees a CUDA GPU."""
    import torch

    return importlib.util.find_spec("tensorrt") is not None and torch.cuda.is_available()


def trtexec_command(
    onnx_path: str | os.PathLike,
    engine_path: str | os.PathLike | None = None,
    *,
    image_size: int = 448,
    embed_dim: int = 384,
    opt_batch: int = DEFAULT_OPT_BATCH,
    max_batch: int = DEFAULT_MAX_BATCH,
    fp16: bool = True,
) -> str:
    """The ``trtexec`` command that builds the same engine as :func:`build_tensorrt_engine`."""
    engine_path = engine_path or default_engine_path(onnx_path)

    def shapes(batch: int) -> str:
        return f"images:{batch}x3x{image_size}x{image_size},prompt_embeddings:{batch}x{embed_dim}"

    return (
        f"trtexec --onnx={onnx_path} --saveEngine={engine_path}{' --fp16' if fp16 else ''} "
        f"--minShapes={shapes(1)} --optShapes={shapes(opt_batch)} --maxShapes={shapes(max_batch)}"
    )


def default_engine_path(onnx_path: str | os.PathLike) -> Path:
    """``model.onnx`` -> ``model.fp16.plan`` beside it."""
    onnx_path = Path(onnx_path)
    return onnx_path.with_name(onnx_path.stem + ENGINE_SUFFIX)


def _row_shapes(onnx_path: Path, image_size: int, embed_dim: int) -> dict[str, tuple[int, ...]]:
    """Each input of an exported graph and its shape after the batch axis, at ``image_size``.

    The decoder graph's feature shapes come from its ``feature_shapes`` metadata (at the export's
    input size), scaled to ``image_size``.
    """
    import json

    metadata = read_metadata(onnx_path) if onnx_path.is_file() else {}
    part = metadata.get("graph_part", "whole")
    images: dict[str, tuple[int, ...]] = {"images": (3, image_size, image_size)}
    if part == "encoder":
        return images
    embeddings = {"prompt_embeddings": (embed_dim,)}
    if part != "decoder":
        return {**images, **embeddings}
    scale = image_size / int(metadata["image_size"])
    shapes = json.loads(metadata["feature_shapes"])
    return {**{name: (channels, round(height * scale), round(width * scale))
               for name, (channels, height, width) in zip(feature_names(len(shapes)), shapes)}, **embeddings}


def _shape_args(onnx_path: Path, image_size: int | None = None) -> dict[str, int]:
    """Input size and embedding size of an exported graph, from its metadata when the file exists."""
    metadata = read_metadata(onnx_path) if onnx_path.is_file() else {}
    return {
        "image_size": int(image_size) if image_size else int(metadata.get("image_size", 448)),
        "embed_dim": int(metadata.get("embed_dim", 384)),
    }


def import_tensorrt(onnx_path: str | os.PathLike = "model.onnx", **command_args: Any) -> Any:
    """Import ``tensorrt`` on a CUDA machine, or raise :class:`TensorRTUnavailable` saying what to do."""
    import torch

    command = trtexec_command(onnx_path, **command_args)
    if not torch.cuda.is_available():
        raise TensorRTUnavailable(
            "TensorRT needs an NVIDIA GPU and this machine has none (torch.cuda.is_available() is False); "
            f"on a GPU machine: pip install tensorrt, or build the engine with: {command}"
        )
    try:
        import tensorrt
    except ImportError as exc:
        raise TensorRTUnavailable(
            f"TensorRT is not installed (no `tensorrt` module): pip install tensorrt, or build the engine with: {command}"
        ) from exc
    return tensorrt


def build_tensorrt_engine(
    onnx_path: str | os.PathLike,
    engine_path: str | os.PathLike | None = None,
    *,
    image_size: int | None = None,
    fp16: bool = True,
    opt_batch: int = DEFAULT_OPT_BATCH,
    max_batch: int = DEFAULT_MAX_BATCH,
    workspace_gib: float = 4.0,
) -> Path:
    """Build a TensorRT engine from an exported ONNX graph and write it atomically.

    Args:
        onnx_path: fp32 ``.onnx`` file from :func:`~drywallqa.export.export_onnx`.
        engine_path: Output file; ``<stem>.fp16.plan`` beside the ONNX file by default.
        image_size: Square input side; the exported model's own (from its metadata) by default.
        fp16: Let TensorRT use fp16 kernels (weights and activations), with fp32 accumulation.
        opt_batch: Batch size the kernels are tuned for.
        max_batch: Largest batch the engine accepts.
        workspace_gib: Scratch memory TensorRT may use while choosing kernels.

    Returns:
        The engine file.

    Raises:
        TensorRTUnavailable: Without TensorRT or a GPU (the message has the trtexec command).
        DrywallQAError: If the graph does not parse or the build fails.
    """
    from drywallqa.files import atomic_write_bytes

    onnx_path = Path(onnx_path)
    shape_args = _shape_args(onnx_path, image_size)
    size, embed_dim = shape_args["image_size"], shape_args["embed_dim"]
    engine_path = Path(engine_path) if engine_path else default_engine_path(onnx_path)
    trt = import_tensorrt(
        onnx_path, engine_path=engine_path, opt_batch=opt_batch, max_batch=max_batch, fp16=fp16, **shape_args
    )
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # TensorRT 10 networks are always explicit-batch; older versions need the flag.
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH") and int(trt.__version__.split(".")[0]) < 10:
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise DrywallQAError(f"{onnx_path}: TensorRT cannot parse the graph: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * 2**30))
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for name, row in _row_shapes(onnx_path, size, embed_dim).items():
        profile.set_shape(name, (1, *row), (opt_batch, *row), (max_batch, *row))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise DrywallQAError(f"{onnx_path}: the TensorRT build failed (see the TensorRT log above)")
    return atomic_write_bytes(engine_path, bytes(serialized))


class TensorRTPredictor(BatchedPredictor):
    """A :class:`~drywallqa.inference.Predictor` running a TensorRT engine on the GPU.

    Args:
        path: An engine (``.plan`` / ``.engine``) or an exported ``.onnx`` file; for the latter the
            engine ``<stem>.fp16.plan`` beside it is reused, or built when missing. With the
            export's encoder and decoder graphs beside it, their engines are used (built when
            missing) instead.
        prompts: Prompt embeddings or their file; by default ``<onnx stem>.prompts.json``.
        threshold: Probability threshold in ``(0, 1)``.
        batch_size: Images per engine call (at most the engine's ``max_batch``).
        image_size: Square input side the engine was built for; from the ONNX metadata by default.
        device: CUDA device.

    Raises:
        TensorRTUnavailable: Without TensorRT or a GPU.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        prompts: PromptEmbeddings | str | os.PathLike | None = None,
        threshold: float = 0.5,
        batch_size: int = 8,
        image_size: int | None = None,
        device: str = "cuda",
    ):
        import torch

        path = Path(path)
        onnx_path = path if path.suffix.lower() == ".onnx" else path.with_name(path.name.split(".")[0] + ".onnx")
        shape_args = _shape_args(onnx_path, image_size)
        trt = import_tensorrt(onnx_path, **shape_args)
        self.device = torch.device(device)
        split = split_graph_paths(onnx_path)
        self.split = path.suffix.lower() == ".onnx" and all(part.is_file() for part in split)
        if self.split:  # an engine per graph: a photo encoded once for all its prompts
            self.encoder, self.decoder = (_Engine(trt, _engine_for(part, image_size), self.device) for part in split)
        else:
            self.whole = _Engine(trt, _engine_for(onnx_path, image_size) if path.suffix.lower() == ".onnx" else path,
                                 self.device)
        self.image_size = shape_args["image_size"]
        logit_threshold(threshold)  # validates the range
        self.threshold = float(threshold)
        self.batch_size = int(batch_size)
        if not isinstance(prompts, PromptEmbeddings):
            prompts = PromptEmbeddings.load(prompts or prompt_store_path(onnx_path))
        self.prompt_embeddings = prompts
        self.name = f"{prompts.model or 'model'}/tensorrt-fp16"

    def forward_batch(self, images: np.ndarray, prompts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Run the engine on a ``uint8`` ``(B, S, S, 3)`` batch; see :meth:`BatchedPredictor.forward_batch`."""
        if self.split:
            return self.decode_batch(self.encode_batch(images), prompts, np.arange(len(images)))
        outputs = self.whole.run({"images": self._pixels(images), "prompt_embeddings": self._embeddings(prompts)})
        return outputs["mask_logits"][:, 0].cpu().numpy(), outputs["confidence_logits"].cpu().numpy()

    def encode_batch(self, images: np.ndarray) -> Any:
        """The encoder engine's features (CUDA tensors) of a ``uint8`` ``(N, S, S, 3)`` batch; the images
        themselves without one. See :meth:`BatchedPredictor.encode_batch`."""
        if not self.split:
            return images
        outputs = self.encoder.run({"images": self._pixels(images)})
        return [outputs[name] for name in feature_names(len(outputs))]

    def decode_batch(self, features: Any, prompts: Sequence[str], image_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The decoder engine on each pair's image features and prompt; see :meth:`BatchedPredictor.decode_batch`."""
        import torch

        if not self.split:
            return super().decode_batch(features, prompts, image_index)
        index = torch.as_tensor(np.asarray(image_index, dtype=np.int64)).to(self.device)
        feed = {name: feature.index_select(0, index) for name, feature in zip(feature_names(len(features)), features)}
        outputs = self.decoder.run({**feed, "prompt_embeddings": self._embeddings(prompts)})
        return outputs["mask_logits"][:, 0].cpu().numpy(), outputs["confidence_logits"].cpu().numpy()

    def _pixels(self, images: np.ndarray) -> Any:
        import torch

        return torch.from_numpy(images).to(self.device).permute(0, 3, 1, 2).float().mul_(1.0 / 255.0).contiguous()

    def _embeddings(self, prompts: Sequence[str]) -> Any:
        import torch

        return torch.from_numpy(self.prompt_embeddings.lookup(prompts)).to(self.device)


def _engine_for(onnx_path: Path, image_size: int | None) -> Path:
    """The engine ``<stem>.fp16.plan`` beside an exported graph, built when missing."""
    engine_path = default_engine_path(onnx_path)
    if not engine_path.is_file():
        build_tensorrt_engine(onnx_path, engine_path, image_size=image_size)
    return engine_path


class _Engine:
    """One deserialised engine and its execution context, run on torch CUDA tensors by tensor name."""

    def __init__(self, trt: Any, path: Path, device: Any) -> None:
        if not Path(path).is_file():
            raise DrywallQAError(f"{path}: no such TensorRT engine")
        self.device = device
        self.engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(Path(path).read_bytes())
        if self.engine is None:
            raise DrywallQAError(f"{path}: cannot load the engine (built by another TensorRT version or GPU?)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]

    def run(self, feeds: dict) -> dict:
        """Outputs (float32 CUDA tensors) by name, for float32 CUDA ``feeds`` by input name."""
        import torch

        feeds = {name: feeds[name].contiguous() for name in self.inputs}  # kept alive until the run ends
        for name, tensor in feeds.items():
            self.context.set_input_shape(name, tuple(tensor.shape))
        outputs = {name: torch.empty(tuple(self.context.get_tensor_shape(name)), dtype=torch.float32, device=self.device)
                   for name in self.outputs}
        for name, tensor in {**feeds, **outputs}.items():
            self.context.set_tensor_address(name, tensor.data_ptr())
        stream = torch.cuda.current_stream(self.device)
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise DrywallQAError("TensorRT execution failed (see the TensorRT log)")
        stream.synchronize()
        return outputs
