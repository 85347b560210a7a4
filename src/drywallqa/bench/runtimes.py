"""The runtimes ``drywallqa bench`` builds: PromptUNet on each runtime label (from one export made
before any timing), and the CLIPSeg and SAM baselines with random weights."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from drywallqa.bench.settings import BenchSettings
from drywallqa.errors import ConfigError


@dataclass
class PromptUNetContext:
    """What every PromptUNet runtime of one run shares: the model, its exports and the inputs."""

    model: Any
    settings: BenchSettings
    workdir: Path
    images: list[np.ndarray]
    prompts: list[str]
    onnx_path: Path | None = None
    int8_path: Path | None = None
    export_error: str = ""
    #: Outputs of :data:`~drywallqa.bench.settings.REFERENCE_RUNTIME` on :attr:`images`, once it ran.
    reference: tuple[np.ndarray, np.ndarray] | None = None

    def batch(self, size: int) -> tuple[np.ndarray, list[str]]:
        """``size`` model-size uint8 images (cycling the samples) and their prompts."""
        from drywallqa.processing import stack_model_inputs

        picks = [i % len(self.images) for i in range(size)]
        stacked = stack_model_inputs([self.images[i] for i in picks], self.settings.image_size)
        return stacked, [self.prompts[i] for i in picks]


def export_for_runtimes(context: PromptUNetContext, runtimes: Sequence[str]) -> None:
    """Export the model once, before any timing, when an ONNX Runtime or TensorRT runtime will run."""
    from drywallqa.export.onnx import export_onnx

    if not any(r.startswith(("onnxruntime", "tensorrt")) for r in runtimes):
        return
    try:
        result = export_onnx(context.model, context.workdir / "promptunet.onnx", check=False,
                             int8="onnxruntime-int8" in runtimes, check_images=len(context.images))
    except Exception as exc:  # noqa: BLE001 - recorded as the reason those runtimes are skipped
        context.export_error = f"ONNX export failed: {exc}"
        return
    context.onnx_path, context.int8_path = result.onnx_path, result.int8_path


def _exported_path(context: PromptUNetContext, int8: bool) -> Path:
    path = context.int8_path if int8 else context.onnx_path
    if path is None:
        raise RuntimeError(context.export_error or "the model was not exported")
    return path


def runtime_unavailable(runtime: str, settings: BenchSettings) -> str:
    """Why ``runtime`` cannot run here, or ``""``."""
    import torch

    from drywallqa.hardware import auto_precision
    from drywallqa.inference.onnx_runtime import default_providers
    from drywallqa.inference.tensorrt_runtime import tensorrt_available

    cuda = settings.device == "cuda"
    if cuda and not torch.cuda.is_available():
        return "no CUDA device"
    if runtime.startswith("tensorrt") and not tensorrt_available():
        return "TensorRT not installed or no GPU (see `drywallqa export --format tensorrt` for the trtexec command)"
    if ("cuda-graphs" in runtime or "fp16" in runtime and runtime.startswith("torch")) and not cuda:
        return "GPU only"
    if "bf16" in runtime and not cuda and (choice := auto_precision("cpu")).precision != "bf16":
        return f"bf16 would be emulated here: {choice.reason}"
    if runtime.endswith("-1-thread") and settings.threads == 1:
        return "the same as the runtime without -1-thread (threads is 1)"
    if runtime.endswith("-1-thread") and cuda:
        return "CPU thread variant"
    if runtime.startswith("onnxruntime-int8") and cuda:
        return "int8 QDQ graphs target the CPU execution provider"
    if runtime.startswith("onnxruntime") and cuda and "CUDAExecutionProvider" not in default_providers():
        return "this onnxruntime build has no CUDAExecutionProvider (pip install onnxruntime-gpu)"
    return ""


def build_promptunet_predictor(runtime: str, context: PromptUNetContext):
    """The :class:`~drywallqa.inference.BatchedPredictor` for a runtime label."""
    from drywallqa.inference import ModelPredictor, OnnxPredictor, TensorRTPredictor

    settings = context.settings
    common: dict[str, Any] = {"image_size": settings.image_size, "batch_size": max(settings.promptunet.batch_sizes)}
    if runtime.startswith("torch"):
        precision = "fp16" if "fp16" in runtime else "bf16" if "bf16" in runtime else "fp32"
        return ModelPredictor(
            context.model, device=settings.device, precision=precision,
            channels_last="channels-last" in runtime or "compile" in runtime or "cuda-graphs" in runtime,
            # Plain torch.compile: max-autotune spends minutes per input shape, more than a bench run has.
            compile="compile" in runtime,
            cuda_graphs="cuda-graphs" in runtime, **common,
        )
    if runtime.startswith("onnxruntime"):
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if settings.device == "cuda" else ["CPUExecutionProvider"]
        path = _exported_path(context, int8="int8" in runtime)
        threads = 1 if runtime.endswith("-1-thread") else settings.threads
        return OnnxPredictor(path, providers=providers, intra_op_threads=threads, **common)
    if runtime.startswith("tensorrt"):
        return TensorRTPredictor(_exported_path(context, int8=False), **common)
    raise ConfigError(f"unknown runtime {runtime!r}")


def _clipseg_model(quick: bool):
    from transformers import CLIPSegConfig, CLIPSegForImageSegmentation

    if quick:
        config = CLIPSegConfig(
            text_config={"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2, "num_hidden_layers": 2},
            vision_config={"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2,
                           "num_hidden_layers": 2, "image_size": 64, "patch_size": 16},
            projection_dim=32, extract_layers=[1], reduce_dim=16, decoder_num_attention_heads=2,
            decoder_intermediate_size=32,
        )
    else:
        config = CLIPSegConfig()  # rd64: ViT-B/16 CLIP, reduce_dim 64
    return CLIPSegForImageSegmentation(config).eval()


def _sam_model(quick: bool):
    from transformers import SamConfig, SamModel

    if quick:
        config = SamConfig(
            vision_config={"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "mlp_dim": 64,
                           "image_size": 64, "patch_size": 16, "output_channels": 32, "global_attn_indexes": [1],
                           "window_size": 2, "num_pos_feats": 16},
            prompt_encoder_config={"hidden_size": 32, "image_size": 64, "patch_size": 16, "mask_input_channels": 4},
            mask_decoder_config={"hidden_size": 32, "mlp_dim": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                                 "iou_head_hidden_dim": 32},
        )
    else:
        config = SamConfig()  # ViT-B image encoder, 1024 px
    return SamModel(config).eval()


def baseline_builder(name: str, settings: BenchSettings):
    import torch

    device = torch.device(settings.device)

    def build():
        torch.manual_seed(settings.seed)
        model = (_clipseg_model if name == "clipseg" else _sam_model)(settings.quick).to(device)
        parameters = sum(p.numel() for p in model.parameters())
        size = settings.clipseg_size if name == "clipseg" else settings.sam_size
        inputs: dict[int, dict] = {}

        def run(batch: int):
            if batch not in inputs:
                generator = torch.Generator().manual_seed(settings.seed)
                pixels = torch.rand(batch, 3, size, size, generator=generator).to(device)
                if name == "clipseg":
                    embedding = torch.randn(batch, model.config.projection_dim, generator=generator).to(device)
                    inputs[batch] = {"pixel_values": pixels, "conditional_embeddings": embedding}
                else:
                    box = torch.tensor([[[size * 0.2, size * 0.2, size * 0.7, size * 0.6]]]).repeat(batch, 1, 1)
                    inputs[batch] = {"pixel_values": pixels, "input_boxes": box.to(device), "multimask_output": False}
            # On a GPU the baselines run in bf16 autocast, as they would be deployed there.
            with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
                output = model(**inputs[batch])
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            return output

        return run, parameters

    return build
