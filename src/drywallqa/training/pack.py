"""Training packs for a training config: what :func:`build_pack` puts in, what training takes out.

The pack format lives in :mod:`drywallqa.trainsets.pack`; this module adds the two things only a
model knows: the embeddings of every prompt the training uses (so the text encoder's weights need
not travel) and the pretrained weights of the model's encoder (so its weights package need not
be installed where the pack is trained on).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from drywallqa.errors import ConfigError
from drywallqa.trainsets import TrainSetConfig, build_trainset
from drywallqa.trainsets.pack import DEFAULT_MAX_MIB, PackSummary, TrainingPack, write_pack

if TYPE_CHECKING:
    from drywallqa.models import PromptSegmentationModel
    from drywallqa.training.config import TrainConfig
    from drywallqa.trainsets import TrainSet


def build_pack(
    config: TrainConfig,
    out: str | os.PathLike,
    *,
    image_format: str = "auto",
    quality: int | None = None,
    originals: tuple[str, ...] = (),
    max_mib: float = DEFAULT_MAX_MIB,
    overwrite: bool = False,
    say: Callable[[str], None] | None = None,
    image_size: int | None = None,
    pretrained_for: tuple[TrainConfig, ...] = (),
    split_quality: dict[str, int] | None = None,
) -> PackSummary:
    """Pack the training set of ``config`` (its ``data`` section) with the model's prompt
    embeddings and pretrained encoder weights, for ``drywallqa train --pack``.

    Args:
        config: The training config the pack is for (``data.datasets`` set to source folders).
        out: The pack folder.
        image_format, quality, originals, max_mib, overwrite, image_size, split_quality: See
            :func:`drywallqa.trainsets.pack.write_pack`.
        say: Called with a line per step.
        pretrained_for: Other recipes trained from the same pack whose models start from
            pretrained encoder weights (e.g. ``encoder: lite2``): their weights travel too, one file
            per encoder.

    Returns:
        The :class:`PackSummary`.
    """
    from drywallqa.training.run import init_source, initial_model

    say = say or (lambda line: None)
    if config.pack:
        raise ConfigError("trainset pack: the config names a pack already (pack:); pack from dataset folders")
    trainset = build_trainset(TrainSetConfig.from_dict(config.data))
    say(trainset.check_line())
    model = initial_model(config, trainset.config.image_size, init_source(config))
    embeddings = model.text_encoder.encode(sorted(_prompts_of(trainset)))
    wants_pretrained = config.model.init_from is None and getattr(model.config, "pretrained", False)
    pretrained = model.pretrained_state() if wants_pretrained and model.pretrained_prefixes else None
    more: dict[str, dict] = {}
    for other in pretrained_for:
        if other.model.init_from is not None:
            continue  # it starts from a saved model, not from pretrained weights
        extra = initial_model(other, trainset.config.image_size, None)
        encoder = getattr(extra.config, "encoder", None)
        if encoder and getattr(extra.config, "pretrained", False) and extra.pretrained_prefixes:
            more[encoder] = {"state": extra.pretrained_state(), "model": {"name": extra.name, "args": extra.config.to_dict()}}
    return write_pack(
        trainset, out,
        embeddings=dict(zip(sorted(_prompts_of(trainset)), embeddings)), text_encoder=model.config.text_encoder,
        pretrained=pretrained,
        model={"name": model.name, "args": model.config.to_dict()} if pretrained else None,
        image_format=image_format, quality=quality, originals=originals, max_mib=max_mib, overwrite=overwrite, say=say,
        image_size=image_size, more_pretrained=more or None, split_quality=split_quality,
    )


def _prompts_of(trainset: TrainSet) -> set[str]:
    """Every prompt a training or evaluation of ``trainset`` may embed: the records' prompts and
    every prompt of every class (canonical, paraphrases, held-out)."""
    prompts = {p for r in trainset.records for p in r.prompts}
    for name in trainset.class_names:
        pc = trainset.prompt_class(name)
        prompts.update((pc.prompt, *pc.training_prompts, *pc.heldout))
    return prompts


def open_pack(config: TrainConfig) -> TrainingPack | None:
    """The checked pack ``config.pack`` names, or None when training from dataset folders.

    Raises:
        ConfigError: If the pack is missing or was not built by ``drywallqa trainset pack``.
        DataError: If a file of the pack differs from its checksum.
    """
    if not config.pack:
        return None
    if not Path(config.pack).is_dir():
        raise ConfigError(f"pack {config.pack}: no such folder; build one with `drywallqa trainset pack`")
    return TrainingPack.open(config.pack)


def apply_pack(model: PromptSegmentationModel, pack: TrainingPack, config: TrainConfig) -> None:
    """Give a model built for ``config`` the pack's prompt embeddings and, when it trains from
    pretrained weights (built with ``load_pretrained=False``), the pack's pretrained weights.

    Raises:
        ConfigError: If the pack holds pretrained weights of another model or encoder.
    """
    model.text_encoder.add_cached(pack.embeddings(model.config.text_encoder))
    if config.model.init_from is None and getattr(model.config, "pretrained", False) and pack.has_pretrained:
        encoder = getattr(model.config, "encoder", None)
        state = pack.pretrained(encoder)
        if state is None:
            carried = ", ".join(str(e) for e in pack.pretrained_encoders().values())
            raise ConfigError(f"{pack.path}: the pack carries the pretrained weights of {carried}, none for encoder "
                              f"{encoder}; rebuild it with --pretrained-for this recipe")
        extra = (pack.manifest.get("pretrained") or {}).get(encoder or "")
        recorded = ((extra or {}).get("model") or pack.manifest.get("model") or {}).get("args", {})
        model.load_pretrained_state(state, source=f"{pack.path} (pretrained weights of {recorded})")
