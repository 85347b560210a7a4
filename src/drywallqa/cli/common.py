"""Arguments shared by the commands that load a model (evaluate, predict, serve, watch)."""

from __future__ import annotations

import argparse
import sys

from drywallqa.inference import RUNTIME_CHOICES, check_tile

MODEL_HELP = (
    "model folder from save_pretrained or `drywallqa train`, NAME[:WEIGHTS] for a registered architecture "
    "on hub weights (clipseg:DIR, sam3:DIR, two-stage:DIR), a transformers folder, a YAML spec, or an .onnx "
    "file (default: the shipped model)"
)


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """``--model``, ``--model-arg KEY=VALUE`` (repeatable) and ``--device``."""
    parser.add_argument("--model", metavar="M", default=None, help=MODEL_HELP)
    parser.add_argument(
        "--model-arg", action="append", default=[], metavar="KEY=VALUE",
        help="extra model config field, YAML-parsed (repeatable), e.g. boxes=annotations:DIR for textsam",
    )
    parser.add_argument("--device", help="torch device (default: CUDA when available)")
    parser.add_argument(
        "--runtime", choices=RUNTIME_CHOICES, default="auto",
        help="auto (default): the fastest runtime giving the model's own masks, printed: ONNX Runtime on a CPU "
        "(the model folder exported once, with its parity check, and cached by weight hash in "
        "$DRYWALLQA_CACHE or ~/.cache/drywallqa), PyTorch on CUDA; or torch, onnx, tensorrt",
    )
    parser.add_argument(
        "--tta", choices=("none", "hflip", "hvflip"), default="none",
        help="test-time flips: average the logits of the image and its horizontal (hflip, 2x the cost) or "
        "also vertical flips (hvflip, 4x) (default none)",
    )


def add_qa_rules_args(parser: argparse.ArgumentParser) -> None:
    """``--qa-rules FILE`` and ``--prompts YAML`` (``--thresholds FILE``: the old name of ``--qa-rules``, hidden)."""
    parser.add_argument("--qa-rules", metavar="FILE",
                        help="QA rules YAML: each class's figures, what nothing found means (defect, required) and the "
                        "pass/fail rules (default: the built-in configs/qa-rules.yaml)")
    parser.add_argument("--thresholds", dest="qa_rules", metavar="FILE", action=_RenamedOption,
                        help=argparse.SUPPRESS)
    parser.add_argument("--prompts", metavar="YAML", help="prompt classes (default: the built-in prompts.yaml)")


class _RenamedOption(argparse.Action):
    """``--thresholds``, the old name of ``--qa-rules``: still works, with one warning line."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"warning: {option_string} is now --qa-rules (the QA rules file; --threshold stays the mask "
              "probability threshold)", file=sys.stderr)
        setattr(namespace, self.dest, values)


def load_qa_rules(args: argparse.Namespace):
    """The ``--qa-rules`` file and the ``--prompts`` classes, checked against each other.

    Cheap: commands call it before loading a model, so a typo in either file fails at once.

    Returns:
        ``(QARules, PromptConfig or None)`` (None: the built-in prompt classes).

    Raises:
        ConfigError: Naming the file and field (an unknown key, ``required: "yes"``, a ``required``
            class that is no prompt class, ...).
    """
    from drywallqa.data import PromptConfig
    from drywallqa.qa import QARules

    prompt_config = PromptConfig.from_yaml(args.prompts) if args.prompts else None
    return QARules.load(args.qa_rules).check_classes(prompt_config), prompt_config
def add_tile_arg(parser: argparse.ArgumentParser) -> None:
    """``--tile auto|off|PX`` (checked by :func:`tile_option`, before the model loads)."""
    parser.add_argument(
        "--tile", default="auto", metavar="auto|off|PX",
        help="auto (default): photos larger or more elongated than what the model learned from are judged in "
        "overlapping tiles at its scale (from --mm-per-px when given), logits blended; off: every photo stretched "
        "to the model's square; PX: tiles of PX photo pixels (>= 64)",
    )


def tile_option(args: argparse.Namespace) -> str | int:
    """The parsed ``--tile``, checked: one line naming ``--tile`` for a bad value (ConfigError)."""
    return check_tile(getattr(args, "tile", "auto"), "--tile")


def model_args(args: argparse.Namespace) -> dict:
    """The ``--model-arg`` values as a dict."""
    from drywallqa.training.config import set_dotted

    values: dict = {}
    for item in args.model_arg:
        set_dotted(values, item)
    return values


def load_model_predictor(args: argparse.Namespace, **kwargs):
    """:func:`drywallqa.inference.load_predictor` from the parsed model arguments."""
    from drywallqa.inference import load_predictor  # lazy: pulls in the model stack

    extra = model_args(args)
    if extra:
        kwargs["model_args"] = extra
    if getattr(args, "tta", "none") != "none":
        kwargs["tta"] = args.tta
    if getattr(args, "runtime", "auto") != "auto":
        kwargs["runtime"] = args.runtime
    if hasattr(args, "tile"):
        kwargs["tile"] = tile_option(args)
    return load_predictor(args.model, device=args.device, **kwargs)
