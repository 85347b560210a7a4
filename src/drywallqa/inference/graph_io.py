"""The exported graphs' interface, read without torch: input and output names, metadata, runs.

The whole model, ``<stem>.onnx``:

- ``images``: float32 ``(B, 3, H, W)`` RGB in ``[0, 1]``, ``H`` and ``W`` multiples of 32;
- ``prompt_embeddings``: float32 ``(B, D)``;
- ``mask_logits``: float32 ``(B, 1, H, W)``; ``confidence_logits``: float32 ``(B,)``.

Beside it, the same model split where the prompt first enters (:data:`GRAPH_LAYOUT` 2), so that
one encoding serves every prompt of an image:

- ``<stem>.encoder.onnx``: ``images`` ``(N, 3, H, W)`` -> ``features.0`` ... ``features.K-1``
  (float32, ``N`` rows each: the model's prompt-free features);
- ``<stem>.decoder.onnx``: ``features.0`` ... ``features.K-1`` with one row per pair (the rows of
  each pair's image), ``prompt_embeddings`` ``(M, D)`` -> ``mask_logits``, ``confidence_logits``.

:func:`drywallqa.export.export_onnx` writes graphs with these names and ``drywallqa.*`` metadata;
the runtimes (:mod:`~drywallqa.inference.onnx_runtime`, :mod:`~drywallqa.inference.tensorrt_runtime`)
read them through this module.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from drywallqa.errors import DrywallQAError
from drywallqa.processing import nhwc_uint8_to_nchw_float, stack_model_inputs

if TYPE_CHECKING:
    from drywallqa.inference.prompt_store import PromptEmbeddings

INPUT_NAMES = ("images", "prompt_embeddings")
OUTPUT_NAMES = ("mask_logits", "confidence_logits")
# Symbolic dimension names, shared by inputs and outputs so runtimes know they are equal.
DYNAMIC_AXES = {
    "images": {0: "batch", 2: "height", 3: "width"},
    "prompt_embeddings": {0: "batch"},
    "mask_logits": {0: "batch", 2: "height", 3: "width"},
    "confidence_logits": {0: "batch"},
}
#: Prefix of the graph's own metadata keys (``drywallqa.image_size``...).
METADATA_PREFIX = "drywallqa."
#: Version of what an export holds: 1, the whole graph; 2, also its encoder and decoder graphs.
#: Cached exports are keyed by it, so a cache made by an older version is exported again.
GRAPH_LAYOUT = 2
FEATURE_PREFIX = "features."


def split_graph_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """The encoder and decoder graphs beside a whole graph: ``m.onnx`` -> ``m.encoder.onnx``, ``m.decoder.onnx``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.encoder.onnx"), path.with_name(f"{path.stem}.decoder.onnx")


def feature_names(count: int) -> list[str]:
    """Names of the ``count`` feature tensors between the encoder and the decoder graph."""
    return [f"{FEATURE_PREFIX}{i}" for i in range(count)]


def split_dynamic_axes(count: int) -> tuple[dict, dict]:
    """Dynamic axes of the encoder and the decoder graph with ``count`` feature tensors."""
    encoder = {"images": DYNAMIC_AXES["images"]}
    decoder = {"prompt_embeddings": {0: "pairs"}, "mask_logits": {0: "pairs", 2: "height", 3: "width"},
               "confidence_logits": {0: "pairs"}}
    for i, name in enumerate(feature_names(count)):
        encoder[name] = {0: "batch", 2: f"height_{i}", 3: f"width_{i}"}
        decoder[name] = {0: "pairs", 2: f"height_{i}", 3: f"width_{i}"}
    return encoder, decoder


def take_rows(array: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``array[index]`` along the first axis; a view, not a copy, when ``index`` is a run of consecutive rows."""
    index = np.asarray(index)
    if len(index) and np.array_equal(index, np.arange(index[0], index[0] + len(index))):
        return array[index[0] : index[0] + len(index)]
    return np.ascontiguousarray(array[index])


def import_onnx() -> ModuleType:
    """Import the ``onnx`` package or fail with the install command."""
    try:
        import onnx
    except ImportError as exc:
        raise DrywallQAError('ONNX export needs onnx and onnxruntime: pip install "drywallqa[export]"') from exc
    return onnx


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``drywallqa.*`` metadata of an exported ONNX file, without the prefix.

    Raises:
        DrywallQAError: If the file cannot be read as ONNX.
    """
    onnx = import_onnx()
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, OSError, ...: all mean "not a readable model"
        raise DrywallQAError(f"{path}: not a readable ONNX file ({exc})") from exc
    return {p.key[len(METADATA_PREFIX):]: p.value for p in model.metadata_props if p.key.startswith(METADATA_PREFIX)}


def run_onnx_file(
    path: str | os.PathLike, images: Sequence[np.ndarray], prompts: Sequence[str], store: PromptEmbeddings, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """ONNX Runtime (CPU) outputs of an exported file on ``images`` resized to ``size``.

    Returns:
        float32 ``(B, H, W)`` mask logits and ``(B,)`` confidence logits.
    """
    from drywallqa.inference.onnx_runtime import create_session

    session = create_session(path, providers=["CPUExecutionProvider"])
    batch = nhwc_uint8_to_nchw_float(stack_model_inputs(images, size))
    mask_logits, confidence_logits = session.run(
        list(OUTPUT_NAMES), {"images": batch, "prompt_embeddings": store.lookup(prompts)}
    )
    return mask_logits[:, 0], confidence_logits


def run_split_onnx_files(
    path: str | os.PathLike, images: Sequence[np.ndarray], prompts: Sequence[str], image_index: Sequence[int],
    store: PromptEmbeddings, size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """ONNX Runtime (CPU) outputs of the encoder and decoder graphs beside ``path``: ``images``
    encoded once, pair ``m`` decoded from image ``image_index[m]`` with ``prompts[m]``.

    Returns:
        float32 ``(M, H, W)`` mask logits and ``(M,)`` confidence logits.
    """
    from drywallqa.inference.onnx_runtime import create_session

    encoder_path, decoder_path = split_graph_paths(path)
    encoder = create_session(encoder_path, providers=["CPUExecutionProvider"])
    decoder = create_session(decoder_path, providers=["CPUExecutionProvider"])
    features = encoder.run(None, {"images": nhwc_uint8_to_nchw_float(stack_model_inputs(images, size))})
    index = np.asarray(image_index, dtype=np.int64)
    feed = {name: take_rows(feature, index) for name, feature in zip(feature_names(len(features)), features)}
    mask_logits, confidence_logits = decoder.run(list(OUTPUT_NAMES), {**feed, "prompt_embeddings": store.lookup(prompts)})
    return mask_logits[:, 0], confidence_logits
