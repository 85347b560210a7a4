"""Tiny randomly initialised transformers checkpoints (config, weights, tokenizer) for the tests.

Importable as ``tiny_checkpoints`` (tests/ is on pytest's pythonpath). Each loads like the real
checkpoint (``from_pretrained(directory)``) but has a few thousand parameters and predicts noise,
so the classic architectures run without network access.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from drywallqa.errors import ConfigError
from drywallqa.models.weights import quiet_transformers

TINY_KINDS = ("clipseg", "sam", "sam3", "clip", "grounding-dino")
TINY_COMPLETE_MARKER = "drywallqa-tiny-complete"


def save_tiny_checkpoint(kind: str, directory: str | os.PathLike | None = None) -> Path:
    """Write a tiny randomly initialised transformers checkpoint (config, weights, tokenizer).

    It loads like the real one (``from_pretrained(directory)``) but has a few thousand
    parameters and predicts noise: for tests and smoke runs without network access.

    Args:
        kind: ``"clipseg"`` (CLIPSeg, 64 px), ``"sam"`` (SAM, 128 px), ``"sam3"`` (SAM 3, 112 px),
            ``"clip"`` (a CLIP model, for textsam's ``text_weights``) or ``"grounding-dino"``.
        directory: Output folder (missing or empty); by default a folder per kind and
            transformers version in the system temp folder, reused when it is already complete.

    Returns:
        The folder.
    """
    import tempfile

    import transformers

    if kind not in TINY_KINDS:
        raise ConfigError(f"unknown tiny checkpoint kind {kind!r}; expected one of: {', '.join(TINY_KINDS)}")
    if directory is None:
        directory = Path(tempfile.gettempdir()) / f"drywallqa-tiny-{kind}-transformers-{transformers.__version__}"
    directory = Path(directory)
    if (directory / TINY_COMPLETE_MARKER).is_file():
        return directory
    directory.parent.mkdir(parents=True, exist_ok=True)
    # Built in a scratch folder and renamed into place, so a concurrent or interrupted call never
    # leaves a half-written checkpoint behind the marker.
    scratch = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    torch_state = torch.random.get_rng_state()
    torch.manual_seed(0)
    try:
        with quiet_transformers():
            _TINY_BUILDERS[kind](scratch)
        (scratch / TINY_COMPLETE_MARKER).write_text("ok\n")
        if directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()
        try:
            os.replace(scratch, directory)
        except OSError:
            if not (directory / TINY_COMPLETE_MARKER).is_file():  # not another process's complete copy
                raise
    finally:
        torch.random.set_rng_state(torch_state)
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)
    return directory


def _tiny_clip_tokenizer(directory: Path) -> int:
    """A character-level CLIP tokenizer (lower-case letters and digits); returns its vocab size."""
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for char in "abcdefghijklmnopqrstuvwxyz0123456789":
        vocab[char] = len(vocab)
        vocab[char + "</w>"] = len(vocab)
    CLIPTokenizer(vocab=vocab, merges=[]).save_pretrained(directory)
    return len(vocab)


def _tiny_clip_text_config(vocab_size: int) -> dict[str, Any]:
    # eos_token_id=1 is the tiny vocabulary's <|endoftext|>: CLIP pools at the first eos token.
    return {
        "vocab_size": vocab_size,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": 16,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "pad_token_id": 1,
        "projection_dim": 16,
    }


def _save_tiny_clipseg(directory: Path) -> None:
    from transformers import CLIPSegConfig, CLIPSegForImageSegmentation

    vocab_size = _tiny_clip_tokenizer(directory)
    text = _tiny_clip_text_config(vocab_size)
    text.pop("projection_dim")
    config = CLIPSegConfig(
        text_config=text,
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 3,
            "num_attention_heads": 2,
            "image_size": 64,
            "patch_size": 16,
        },
        projection_dim=16,
        extract_layers=[0, 1, 2],
        reduce_dim=16,
        decoder_num_attention_heads=2,
        decoder_intermediate_size=32,
    )
    CLIPSegForImageSegmentation(config).save_pretrained(directory)


def _save_tiny_sam(directory: Path) -> None:
    from transformers import SamConfig, SamImageProcessor, SamModel, SamProcessor

    config = SamConfig(
        vision_config={
            "hidden_size": 32,
            "output_channels": 16,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 128,
            "patch_size": 16,
            "mlp_dim": 64,
            "window_size": 4,
            "global_attn_indexes": [1],
            "num_pos_feats": 8,
        },
        prompt_encoder_config={
            "hidden_size": 16,
            "image_size": 128,
            "image_embedding_size": 8,
            "mask_input_channels": 4,
        },
        mask_decoder_config={
            "hidden_size": 16,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "mlp_dim": 32,
            "iou_head_hidden_dim": 16,
        },
    )
    SamModel(config).save_pretrained(directory)
    processor = SamProcessor(SamImageProcessor(size={"longest_edge": 128}, pad_size={"height": 128, "width": 128}))
    processor.save_pretrained(directory)


def _save_tiny_sam3(directory: Path) -> None:
    from transformers import Sam3Config, Sam3Model

    vocab_size = _tiny_clip_tokenizer(directory)
    config = Sam3Config(
        vision_config={
            "backbone_config": {
                "model_type": "sam3_vit_model",
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "image_size": 112,
                "patch_size": 14,
                "window_size": 4,
                "global_attn_indexes": [1],
                "pretrain_image_size": 56,
            },
            "fpn_hidden_size": 32,
            "backbone_feature_sizes": [[32, 32], [16, 16], [8, 8]],
        },
        text_config=_tiny_clip_text_config(vocab_size),
        geometry_encoder_config={"hidden_size": 32, "num_layers": 1, "num_attention_heads": 2, "intermediate_size": 64},
        detr_encoder_config={"hidden_size": 32, "num_layers": 1, "num_attention_heads": 2, "intermediate_size": 64},
        detr_decoder_config={
            "hidden_size": 32,
            "num_layers": 2,
            "num_queries": 8,
            "num_attention_heads": 2,
            "intermediate_size": 64,
        },
        mask_decoder_config={"hidden_size": 32, "num_upsampling_stages": 3, "num_attention_heads": 2},
    )
    Sam3Model(config).save_pretrained(directory)


def _save_tiny_clip(directory: Path) -> None:
    from transformers import CLIPConfig, CLIPModel

    vocab_size = _tiny_clip_tokenizer(directory)
    text = {**_tiny_clip_text_config(vocab_size), "projection_dim": 24}
    config = CLIPConfig(
        text_config=text,
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 16,
            "projection_dim": 24,
        },
        projection_dim=24,
    )
    CLIPModel(config).save_pretrained(directory)


def _save_tiny_grounding_dino(directory: Path) -> None:
    from transformers import (
        BertTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessorPil,
        GroundingDinoProcessor,
    )

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "segment", "crack", "taping", "area", "a", "the"]
    (directory / "vocab.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(str(directory / "vocab.txt"))
    config = GroundingDinoConfig(
        backbone_config={
            "model_type": "swin",
            "embed_dim": 16,
            "depths": [1, 1, 1, 1],
            "num_heads": [1, 1, 1, 1],
            "window_size": 4,
            "image_size": 64,
            "out_indices": [2, 3, 4],
        },
        text_config={
            "model_type": "bert",
            "vocab_size": len(words),
            "hidden_size": 16,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 32,
            "max_position_embeddings": 64,
        },
        d_model=32,
        encoder_layers=1,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        num_queries=8,
        num_feature_levels=3,
        encoder_n_points=2,
        decoder_n_points=2,
        max_text_len=16,
    )
    GroundingDinoForObjectDetection(config).save_pretrained(directory)
    image_processor = GroundingDinoImageProcessorPil(size={"shortest_edge": 64, "longest_edge": 64})
    GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(directory)


_TINY_BUILDERS: dict[str, Callable[[Path], None]] = {
    "clipseg": _save_tiny_clipseg,
    "sam": _save_tiny_sam,
    "sam3": _save_tiny_sam3,
    "clip": _save_tiny_clip,
    "grounding-dino": _save_tiny_grounding_dino,
}
