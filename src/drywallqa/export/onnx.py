"""Export a model to ONNX with its prompt embeddings, and check the file against PyTorch.

:func:`export_onnx` writes three things, each atomically and only after the parity check passed:

- ``<name>.onnx``: the graph of :class:`~drywallqa.export.wrapper.OnnxSegmentationWrapper`
  (dynamic batch, height and width), with ``drywallqa.*`` metadata (model, input size, text
  encoder, prompt file) that :class:`~drywallqa.inference.OnnxPredictor` reads
  (through :mod:`drywallqa.inference.graph_io`);
- ``<name>.encoder.onnx`` and ``<name>.decoder.onnx``: the same model split where the prompt
  first enters (:class:`~drywallqa.export.wrapper.OnnxEncoderWrapper`,
  :class:`~drywallqa.export.wrapper.OnnxDecoderWrapper`), with the same metadata, so that
  ONNX Runtime encodes a photo once for all its prompts; checked too, on every check photo with
  every prompt;
- ``<name>.prompts.json``: embeddings of every prompt of the prompt config
  (:class:`~drywallqa.inference.PromptEmbeddings`);
- optionally ``<name>.int8.onnx`` (:func:`~drywallqa.export.quantize.quantize_onnx_int8`).

The graph comes from PyTorch's TorchScript-based exporter (``dynamo=False``): the torch.export
path needs the ``onnxscript`` package, and the traced graph of these CNNs has only standard ops.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from drywallqa.errors import DrywallQAError
from drywallqa.export.parity import (
    PARITY_MIN_IOU,
    ParityReport,
    compare_outputs,
    synthetic_images,
)
from drywallqa.files import atomic_write
from drywallqa.inference.graph_io import (
    DYNAMIC_AXES,
    GRAPH_LAYOUT,
    INPUT_NAMES,
    METADATA_PREFIX,
    OUTPUT_NAMES,
    feature_names,
    import_onnx,
    run_onnx_file,
    run_split_onnx_files,
    split_dynamic_axes,
    split_graph_paths,
)
from drywallqa.inference.prompt_store import PromptEmbeddings, prompt_store_path
from drywallqa.processing import nhwc_uint8_to_nchw_float, stack_model_inputs

DEFAULT_OPSET = 17
INPUT_DESCRIPTION = "images: float32 (B, 3, H, W) RGB in [0, 1], H and W multiples of 32; prompt_embeddings: float32 (B, D)"


class ExportError(DrywallQAError):
    """An export failed or its output does not match PyTorch."""


@dataclass
class OnnxExport:
    """What :func:`export_onnx` wrote and how well it matches PyTorch.

    Attributes:
        onnx_path: The fp32 ONNX file.
        prompts_path: The prompt-embeddings file next to it.
        parity: fp32 ONNX Runtime vs PyTorch.
        split_paths: The encoder and decoder graphs beside it.
        split_parity: Those two in ONNX Runtime (each photo encoded once, decoded with every
            prompt) vs PyTorch on the same pairs.
        int8_path: The int8 file, when asked for.
        int8_parity: int8 ONNX Runtime vs PyTorch (its IoU cost), when asked for.
        opset: ONNX opset of the graph.
        metadata: The ``drywallqa.*`` metadata stored in the graph.
    """

    onnx_path: Path
    prompts_path: Path
    parity: ParityReport | None
    split_paths: tuple[Path, Path] | None = None
    split_parity: ParityReport | None = None
    int8_path: Path | None = None
    int8_parity: ParityReport | None = None
    opset: int = DEFAULT_OPSET
    metadata: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        """Lines for the console: files written and parity."""
        lines = [f"wrote {self.onnx_path} (opset {self.opset}) and {self.prompts_path}"]
        if self.parity is not None:
            lines.append(self.parity.summary())
        if self.split_paths is not None:
            lines.append(f"wrote {self.split_paths[0]} and {self.split_paths[1]} (a photo encoded once for all its prompts)")
        if self.split_parity is not None:
            lines.append(self.split_parity.summary())
        if self.int8_path is not None:
            lines.append(f"wrote {self.int8_path}")
        if self.int8_parity is not None:
            lines.append(self.int8_parity.summary().replace(" FAILED", " (int8: not required)"))
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return {
            "onnx_path": str(self.onnx_path),
            "prompts_path": str(self.prompts_path),
            "parity": self.parity.to_dict() if self.parity else None,
            "split_paths": [str(p) for p in self.split_paths] if self.split_paths else None,
            "split_parity": self.split_parity.to_dict() if self.split_parity else None,
            "int8_path": str(self.int8_path) if self.int8_path else None,
            "int8_parity": self.int8_parity.to_dict() if self.int8_parity else None,
            "opset": self.opset,
            "metadata": self.metadata,
        }


def export_onnx(
    model,
    path: str | os.PathLike,
    *,
    opset: int = DEFAULT_OPSET,
    prompt_config=None,
    check: bool = True,
    check_images: int = 4,
    int8: bool = False,
    calibration_images: Sequence[np.ndarray] | None = None,
) -> OnnxExport:
    """Export ``model`` to ONNX, store its prompt embeddings and check parity with PyTorch.

    Args:
        model: A :class:`~drywallqa.models.PromptSegmentationModel` (any device; it is exported
            from a CPU float32 copy and left as it was).
        path: Output ``.onnx`` file; ``<stem>.prompts.json`` is written beside it.
        opset: ONNX opset version.
        prompt_config: :class:`~drywallqa.data.prompts.PromptConfig` whose prompts are embedded;
            the built-in one by default.
        check: Compare ONNX Runtime with PyTorch on ``check_images`` synthetic photos at the
            model's input size (the encoder and decoder graphs with every prompt of the check on
            every photo) and refuse to write files with IoU below 0.999.
        check_images: Number of synthetic photos for the check (and for int8 calibration).
        int8: Also write ``<stem>.int8.onnx``, statically quantised, and measure its IoU cost.
        calibration_images: RGB ``uint8`` ``(H, W, 3)`` images to calibrate int8 activations on
            (real photos are best); synthetic photos by default.

    Returns:
        An :class:`OnnxExport` with the paths and parity reports.

    Raises:
        ExportError: If the export fails or the fp32 graph does not match PyTorch.
    """
    import torch

    import_onnx()  # fail before any work when the export extra is missing
    path = Path(path)
    if path.suffix.lower() != ".onnx":
        raise ExportError(f"{path}: the output file must end in .onnx")
    export_model = _cpu_float32_copy(model)
    size = int(export_model.default_image_size)
    metadata = {
        "model": export_model.name,
        "image_size": str(size),
        "size_divisor": str(export_model.size_divisor),
        "text_encoder": export_model.config.text_encoder,
        "embed_dim": str(export_model.embed_dim),
        "prompts_file": prompt_store_path(path).name,
        "precision": "fp32",
        "inputs": INPUT_DESCRIPTION,
        "model_config": _json(export_model.config.to_dict()),
        "graph_layout": str(GRAPH_LAYOUT),
    }
    store = PromptEmbeddings.from_model(export_model, prompt_config)

    with tempfile.TemporaryDirectory(prefix="drywallqa-export-") as tmp:
        tmp_onnx = Path(tmp) / path.name
        # Trace at two small images: batch 2 keeps the batch axis from being specialised to 1,
        # and the dynamic axes make the traced size irrelevant.
        trace_size = 2 * export_model.size_divisor
        dummy = (torch.rand(2, 3, trace_size, trace_size), torch.from_numpy(store.lookup(store.prompts[:1] * 2)))
        _trace_to_onnx(export_model, "whole", dummy, tmp_onnx, opset)
        _write_metadata(tmp_onnx, metadata)
        tmp_split = split_graph_paths(tmp_onnx)
        feature_shapes = _trace_split(export_model, dummy, tmp_split, opset)
        for part, split_path in zip(("encoder", "decoder"), tmp_split):
            # The features' shapes at the model's input size: a TensorRT profile needs them.
            _write_metadata(split_path, {**metadata, "graph_part": part, "feature_shapes": _json(feature_shapes)})

        images, prompts = synthetic_images(check_images, size=max(size, 64)) if check or int8 else ([], [])
        reference = run_torch_reference(export_model, images, prompts, store) if check else None
        parity = split_parity = None
        if check and reference is not None:
            parity = compare_outputs(reference, run_onnx_file(tmp_onnx, images, prompts, store, size), "onnxruntime fp32")
            if not parity.passed:
                raise ExportError(f"{parity.summary()}; nothing was written to {path}")
            split_parity = _check_split(export_model, tmp_onnx, images, store, size)
            if not split_parity.passed:
                raise ExportError(f"{split_parity.summary()}; nothing was written to {path}")

        int8_path = int8_parity = None
        if int8:
            from drywallqa.export.quantize import calibration_feeds, quantize_onnx_int8

            tmp_int8 = Path(tmp) / (path.stem + ".int8.onnx")
            int8_images, int8_prompts, int8_reference, int8_label = images, prompts, reference, "onnxruntime int8"
            if calibration_images is not None:
                # Every canonical prompt on every kind of photo: activations of wrong-prompt calls
                # (near-empty masks) need their ranges too.
                canonical = store.canonical_prompts() or store.prompts
                int8_images = list(calibration_images)
                int8_prompts = [canonical[i % len(canonical)] for i in range(len(int8_images))]
                if check:
                    # A trained model's int8 cost only shows on real photos; synthetic ones say little.
                    int8_reference = run_torch_reference(export_model, int8_images, int8_prompts, store)
                    int8_label = f"onnxruntime int8 on {len(int8_images)} calibration photo(s)"
            quantize_onnx_int8(tmp_onnx, tmp_int8, calibration_feeds(int8_images, int8_prompts, store, size))
            _write_metadata(tmp_int8, {**metadata, "precision": "int8"})
            if check and int8_reference is not None:
                int8_parity = compare_outputs(
                    int8_reference, run_onnx_file(tmp_int8, int8_images, int8_prompts, store, size), int8_label,
                    max_logit_diff=None,
                )
            int8_path = path.with_name(path.stem + ".int8.onnx")
            _move_atomically(tmp_int8, int8_path)

        prompts_path = store.save(prompt_store_path(path))
        split_paths = split_graph_paths(path)
        for source, destination in zip(tmp_split, split_paths):
            _move_atomically(source, destination)
        # The whole graph last: a cache that finds it finds its split graphs too.
        _move_atomically(tmp_onnx, path)
    return OnnxExport(path, prompts_path, parity, split_paths, split_parity, int8_path, int8_parity, opset, metadata)


def _check_split(model, whole_path: Path, images: Sequence[np.ndarray], store: PromptEmbeddings,
                 size: int) -> ParityReport:
    """The encoder and decoder graphs against PyTorch: every check photo encoded once and decoded
    with every prompt of the check (its own and the others), each pair as PyTorch runs it alone."""
    canonical = list(dict.fromkeys(store.canonical_prompts() or store.prompts))[:2]
    index = [i for i in range(len(images)) for _ in canonical]
    pair_prompts = canonical * len(images)
    reference = run_torch_reference(model, [images[i] for i in index], pair_prompts, store)
    candidate = run_split_onnx_files(whole_path, images, pair_prompts, index, store, size)
    return compare_outputs(reference, candidate, f"onnxruntime fp32 encoder + decoder, {len(canonical)} prompts a photo")


def run_torch_reference(
    model, images: Sequence[np.ndarray], prompts: Sequence[str], store: PromptEmbeddings
) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch fp32 outputs on ``images`` resized to the model's input, as NumPy arrays.

    Returns:
        float32 ``(B, H, W)`` mask logits and ``(B,)`` confidence logits.
    """
    import torch

    batch = nhwc_uint8_to_nchw_float(stack_model_inputs(images, model.default_image_size))
    with torch.inference_mode():
        output = model(torch.from_numpy(batch), torch.from_numpy(store.lookup(prompts)))
    return output.mask_logits[:, 0].float().numpy(), output.confidence_logits.float().numpy()


def _cpu_float32_copy(model):
    """The model itself when already a CPU float32 eval-mode model, else an eval-mode CPU float32 copy."""
    import copy

    import torch

    parameter = next(model.parameters(), None)
    on_cpu_fp32 = parameter is None or (parameter.device.type == "cpu" and parameter.dtype == torch.float32)
    if on_cpu_fp32 and not model.training:
        return model
    # Copy rather than move: exporting must not change the caller's model (device, dtype, mode).
    return copy.deepcopy(model).to("cpu", torch.float32).eval()


def _trace_split(model, dummy: tuple, paths: tuple[Path, Path], opset: int) -> list[list[int]]:
    """Trace the encoder graph at ``dummy``'s images, then the decoder graph at their features.

    Returns:
        Each feature's shape after the batch axis at the model's input size.
    """
    import torch

    size = int(model.default_image_size)
    with torch.no_grad():  # not inference mode: the tracer records on these tensors
        features = tuple(model.encode(dummy[0]))
        shapes = [list(feature.shape[1:]) for feature in model.encode(torch.zeros(1, 3, size, size))]
    _trace_to_onnx(model, "encoder", (dummy[0],), paths[0], opset, feature_count=len(features))
    _trace_to_onnx(model, "decoder", (*features, dummy[1]), paths[1], opset, feature_count=len(features))
    return shapes


def _trace_to_onnx(model, part: str, args: tuple, path: Path, opset: int, feature_count: int = 0) -> None:
    """Trace the ``"whole"`` model, its ``"encoder"`` or its ``"decoder"`` to an ONNX file."""
    import torch

    from drywallqa.export.wrapper import OnnxDecoderWrapper, OnnxEncoderWrapper, OnnxSegmentationWrapper

    features = feature_names(feature_count)
    encoder_axes, decoder_axes = split_dynamic_axes(feature_count)
    parts: dict[str, tuple[Any, list[str], list[str], dict]] = {
        "whole": (OnnxSegmentationWrapper, list(INPUT_NAMES), list(OUTPUT_NAMES), DYNAMIC_AXES),
        "encoder": (OnnxEncoderWrapper, ["images"], features, encoder_axes),
        "decoder": (OnnxDecoderWrapper, [*features, "prompt_embeddings"], list(OUTPUT_NAMES), decoder_axes),
    }
    wrapper, inputs, outputs, axes = parts[part]
    with warnings.catch_warnings():
        # The TorchScript exporter announces its deprecation and notes unfoldable slices on every
        # call; neither says anything about this graph.
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", message=".*will be removed.*")
        warnings.filterwarnings("ignore", message=".*Constant folding.*")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        try:
            torch.onnx.export(
                wrapper(model).eval(),
                args,
                str(path),
                dynamo=False,
                input_names=inputs,
                output_names=outputs,
                dynamic_axes=axes,
                opset_version=opset,
                do_constant_folding=True,
            )
        except Exception as exc:  # the exporter raises many types; all mean "this model did not export"
            what = "" if part == "whole" else f" ({part} graph)"
            raise ExportError(f"ONNX export of {model.name!r}{what} at opset {opset} failed: {exc}") from exc


def _write_metadata(path: Path, metadata: dict[str, str]) -> None:
    onnx = import_onnx()
    model = onnx.load(str(path))
    kept = [p for p in model.metadata_props if not p.key.startswith(METADATA_PREFIX)]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = METADATA_PREFIX + key, str(value)
    onnx.save(model, str(path))


def _move_atomically(source: Path, destination: Path) -> None:
    atomic_write(destination, lambda tmp: shutil.copyfile(source, tmp))


def _json(value) -> str:
    import json

    return json.dumps(value, sort_keys=True)


__all__ = [
    "DEFAULT_OPSET",
    "PARITY_MIN_IOU",
    "ExportError",
    "OnnxExport",
    "export_onnx",
    "run_torch_reference",
]
