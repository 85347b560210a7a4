"""The exported graph's interface, read without torch: input and output names, metadata, one run.

- ``images``: float32 ``(B, 3, H, W)`` RGB in ``[0, 1]``, ``H`` and ``W`` multiples of 32;
- ``prompt_embeddings``: float32 ``(B, D)``;
- ``mask_logits``: float32 ``(B, 1, H, W)``; ``confidence_logits``: float32 ``(B,)``.

:func:`drywallqa.export.export_onnx` writes graphs with these names and ``drywallqa.*`` metadata;
the runtimes (:mod:`~drywallqa.inference.onnx_runtime`, :mod:`~drywallqa.inference.tensorrt_runtime`)
read them through this module.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
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
