"""The one weight-loading policy of the transformers-based models and the SAM pseudo-mask method.

``weights`` is a Hugging Face hub id or a local folder:

- a folder is read as is (``local_files_only``);
- a hub id is read from the local cache first (no network), then downloaded only when the hub
  is not switched off (``HF_HUB_OFFLINE=1`` or ``TRANSFORMERS_OFFLINE=1``);
- anything else (a path that does not exist) fails at once.

When nothing can be read, the error is one line naming the weights, why they cannot be read,
the ``huggingface-cli download`` command and the option that takes the folder.

transformers' logging is quietened only while loading (:func:`quiet_transformers` restores the
previous verbosity and progress-bar state), never globally. transformers is imported inside
functions only, so importing this module stays fast.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from drywallqa.errors import ConfigError, DrywallQAError

if TYPE_CHECKING:
    from torch import nn

Loaded = TypeVar("Loaded")

#: What the download hint names when ``weights`` is a folder, not a hub id.
UNKNOWN_HUB_ID = "<hub id>"


def looks_like_hub_id(weights: str) -> bool:
    """``org/name`` or ``name`` (letters, digits, ``-_.``), not a path like ``./x`` or ``/x/y``."""
    return re.fullmatch(r"[A-Za-z0-9][\w.\-]*(/[A-Za-z0-9][\w.\-]*)?", str(weights)) is not None


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` forbids network access."""
    return any(
        os.environ.get(key, "").strip().lower() in {"1", "true", "yes", "on"}
        for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def download_hint(weights: str, how_to_pass: str, suggested_hub_id: str = UNKNOWN_HUB_ID) -> str:
    """The instruction for getting ``weights`` onto a machine without network access.

    Args:
        weights: Hub id or folder the user gave.
        how_to_pass: The option that takes the folder, e.g. ``"--model clipseg:DIR"``.
        suggested_hub_id: Hub id to name when ``weights`` is a folder (e.g. the default checkpoint).
    """
    hub_id = weights if looks_like_hub_id(weights) else suggested_hub_id
    return (
        f"download them where there is network access with `huggingface-cli download {hub_id} --local-dir DIR`, "
        f"copy DIR here and pass {how_to_pass}"
    )


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' progress bars and warnings inside the block, then restore both."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bar_was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bar_was_enabled:
            hf_logging.enable_progress_bar()


def load_pretrained(
    load: Callable[[str, bool], Loaded],
    weights: str | os.PathLike,
    *,
    what: str,
    how_to_pass: str,
    offline: bool | None = None,
    suggested_hub_id: str = UNKNOWN_HUB_ID,
) -> Loaded:
    """Call ``load(source, local_files_only)`` on a local folder or a hub id, with one clear error.

    A folder is loaded as is. A hub id is tried in the local cache first (no network), then on
    the hub unless ``offline``.

    Args:
        load: E.g. ``lambda source, local: AutoConfig.from_pretrained(source, local_files_only=local)``.
        weights: Hub id or local folder.
        what: What is loaded, for messages (``"CLIPSeg"``).
        how_to_pass: The option that takes the folder, e.g. ``"--model clipseg:DIR"``.
        offline: Never touch the network; default :func:`hub_offline`.
        suggested_hub_id: See :func:`download_hint`.

    Raises:
        DrywallQAError: One line naming the weights, why they cannot be read and the download
            command, when the folder is missing or incomplete or the hub id cannot be had.
    """
    weights = str(weights)
    hint = download_hint(weights, how_to_pass, suggested_hub_id)
    offline = hub_offline() if offline is None else offline
    local = Path(weights).expanduser()
    if local.is_dir():
        sources = [(str(local), True)]
    elif not looks_like_hub_id(weights):
        raise DrywallQAError(f"{what} weights folder {weights} does not exist; {hint}")
    else:
        # The cache first (fast, no network); the hub only when allowed.
        sources = [(weights, True)] + ([] if offline else [(weights, False)])
    last_error: Exception | None = None
    with quiet_transformers():
        for source, local_only in sources:
            try:
                return load(source, local_only)
            except (OSError, ValueError) as exc:
                last_error = exc
    first = str(last_error).strip().splitlines()[0][:160] if last_error else ""
    if local.is_dir():
        raise DrywallQAError(f"{what} weights folder {weights} is not a complete {what} checkpoint ({first}); {hint}")
    raise DrywallQAError(f"{what} weights {weights} are not available offline ({first}); {hint}")


def load_tokenizer(weights: str, *, what: str, how_to_pass: str) -> Any:
    """The tokenizer stored with a checkpoint (``AutoTokenizer``), via :func:`load_pretrained`'s rules."""
    from transformers import AutoTokenizer

    return load_pretrained(
        lambda source, local: AutoTokenizer.from_pretrained(source, local_files_only=local),
        weights, what=what, how_to_pass=how_to_pass,
    )


def architecture_dict(hf_config: Any) -> dict[str, Any]:
    """A transformers config as a JSON-clean dict (tuples become lists), for a drywallqa config."""
    return json.loads(hf_config.to_json_string(use_diff=False))


def load_hf_model(
    model_class: Any,
    config_class: Any,
    *,
    weights: str | None,
    architecture: Mapping[str, Any] | None,
    load_weights: bool,
    what: str,
    how_to_pass: str,
) -> tuple[nn.Module, dict[str, Any]]:
    """Build a transformers model from pretrained weights, or randomly initialised from its config.

    Args:
        model_class: E.g. ``CLIPSegForImageSegmentation``.
        config_class: Its config class, e.g. ``CLIPSegConfig``.
        weights: Hub id or folder of the pretrained checkpoint.
        architecture: The config as a dict (recorded in drywallqa checkpoints); when given and
            ``load_weights`` is False nothing is read from ``weights``.
        load_weights: Read the pretrained weights (else random initialisation: a drywallqa
            checkpoint overwrites them, or a test wants a random model).
        what: For error messages.
        how_to_pass: For error messages.

    Returns:
        ``(model, architecture)`` with the architecture as a JSON-clean dict.
    """
    if load_weights or architecture is None:
        if weights is None:
            raise ConfigError(f"{what}: give weights (a hub id or a folder) or an architecture dict")
        if load_weights:
            model = load_pretrained(
                lambda source, local: model_class.from_pretrained(source, local_files_only=local),
                weights,
                what=what,
                how_to_pass=how_to_pass,
            )
            return model, architecture_dict(model.config)
        hf_config = load_pretrained(
            lambda source, local: config_class.from_pretrained(source, local_files_only=local),
            weights,
            what=what,
            how_to_pass=how_to_pass,
        )
    else:
        hf_config = config_class.from_dict(dict(architecture))
    with quiet_transformers():
        model = model_class(hf_config)
    return model, architecture_dict(model.config)
