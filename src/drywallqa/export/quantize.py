"""int8 quantisation of an exported graph with ``onnxruntime.quantization``.

Static quantisation (QDQ format, per-channel int8 weights, uint8 activations calibrated by
min/max on sample images; the first and last convolutions kept fp32) is the variant for CNNs: ONNX Runtime's dynamic quantisation turns
every convolution into ``ConvInteger``, which on CPU measured about 10x slower than fp32 for
PromptUNet. The graph is first pre-processed (ONNX Runtime's basic optimisations fold each
BatchNorm into its convolution); quantising the raw export instead left the folded biases as
computed tensors, and the result ran slower than fp32. Whether static int8 beats fp32 depends on the CPU (it needs VNNI-class integer dot
products and enough work per depthwise convolution); ``drywallqa bench`` measures it, and
:func:`~drywallqa.export.export_onnx` reports its IoU cost against PyTorch fp32.

Calibrate on real photos (``--calibration``, chosen by :func:`calibration_paths`): activation
ranges taken from the synthetic images fit a trained model's real inputs badly, and int8 masks
then drift far from fp32.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from drywallqa.errors import ConfigError, DrywallQAError
from drywallqa.processing import nhwc_uint8_to_nchw_float, stack_model_inputs


def calibration_paths(folders: Sequence[str | os.PathLike], count: int) -> list[Path]:
    """Up to ``count`` photos to calibrate int8 on: evenly spaced within each folder, shared equally
    between the folders.

    Raises:
        ConfigError: If ``count`` is below 1, or a folder is missing or holds no images (the
            messages name the ``drywallqa export`` flags).
    """
    from drywallqa.files import list_images

    if count < 1:
        raise ConfigError(f"--calibration-images must be at least 1, got {count}")
    chosen = []
    for index, folder in enumerate(folders):
        if not Path(folder).is_dir():
            raise ConfigError(f"--calibration {folder}: not a folder")
        images = list_images(folder)
        if not images:
            raise ConfigError(f"--calibration {folder}: no images in it")
        share = count // len(folders) + (1 if index < count % len(folders) else 0)
        step = max(len(images) / max(share, 1), 1.0)
        chosen += [images[int(i * step)] for i in range(min(share, len(images)))]
    return chosen


def calibration_feeds(
    images: Sequence[np.ndarray], prompts: Sequence[str], store, size: int
) -> list[dict[str, np.ndarray]]:
    """ONNX Runtime input dicts (one image each) for calibrating activation ranges.

    Args:
        images: RGB ``uint8`` ``(H, W, 3)`` photos, resized to ``size`` like served images.
        prompts: One prompt per image.
        store: :class:`~drywallqa.inference.PromptEmbeddings` holding the prompts.
        size: Model input side.

    Raises:
        DrywallQAError: If there is no image.
    """
    if not images:
        raise DrywallQAError("int8 calibration needs at least one image")
    embeddings = store.lookup(prompts)
    return [
        {
            "images": nhwc_uint8_to_nchw_float(stack_model_inputs([image], size)),
            "prompt_embeddings": embeddings[i : i + 1],
        }
        for i, image in enumerate(images)
    ]


def edge_convolutions(path: str | os.PathLike) -> list[str]:
    """Names of the first and the last convolution of a graph (nodes are stored in topological order).

    They stay fp32 in the int8 graph: the stem sees raw pixels and the mask head writes the logits
    that are thresholded, and both are small, so keeping them costs little time for a slightly
    closer match to fp32 (``drywallqa export --int8 --calibration DIR`` prints the agreement).
    """
    import onnx

    convolutions = [node.name for node in onnx.load(str(path), load_external_data=False).graph.node if node.op_type == "Conv"]
    return sorted({convolutions[0], convolutions[-1]}) if convolutions else []


def quantize_onnx_int8(
    source: str | os.PathLike, destination: str | os.PathLike, feeds: Iterable[dict[str, np.ndarray]]
) -> Path:
    """Statically quantise an fp32 ONNX graph to int8 (QDQ, per-channel weights).

    Args:
        source: fp32 ``.onnx`` file from :func:`~drywallqa.export.export_onnx`.
        destination: Output ``.onnx`` file (overwritten).
        feeds: Calibration input dicts, e.g. from :func:`calibration_feeds`.

    Returns:
        ``destination``.

    Raises:
        DrywallQAError: If ``onnxruntime`` is missing or quantisation fails.
    """
    try:
        import onnxruntime as ort
        from onnxruntime.quantization import (
            CalibrationDataReader,
            QuantFormat,
            QuantType,
            quantize_static,
        )
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as exc:
        raise DrywallQAError('int8 quantisation needs onnxruntime: pip install "drywallqa[export]"') from exc

    class _Reader(CalibrationDataReader):
        def __init__(self, batches: Iterable[dict[str, np.ndarray]]):
            self._batches = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._batches, None)

    # The quantiser logs advice through the root logger and its sessions log a notice per unused
    # initializer; neither is actionable for a user running an export.
    root_logger = logging.getLogger()
    previous_level = root_logger.level
    root_logger.setLevel(logging.ERROR)
    ort.set_default_logger_severity(3)
    try:
        with tempfile.TemporaryDirectory(prefix="drywallqa-quant-") as tmp:
            prepared = Path(tmp) / "prepared.onnx"
            # Symbolic shape inference gives up on the dynamic height/width; ONNX's own is enough.
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
            quantize_static(
                str(prepared),
                str(destination),
                _Reader(feeds),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=edge_convolutions(prepared),
            )
    except Exception as exc:  # the quantiser raises assorted types; all mean "could not quantise"
        raise DrywallQAError(f"int8 quantisation of {source} failed: {exc}") from exc
    finally:
        root_logger.setLevel(previous_level)
        ort.set_default_logger_severity(2)  # ONNX Runtime's default (warnings); it has no getter
    return Path(destination)
