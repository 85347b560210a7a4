#!/usr/bin/env python
"""What a training pack's photos cost: a model scored on the carved validation groups from the
dataset folders and from the pack's copies of the same photos, against the same true masks.

    python scripts/device/pack_fidelity.py [--pack .device/pack] [--data ../shared/data] [--model DIR]
    (scripts/device/pack_fidelity.sh runs it with those defaults)

Both scorings are :func:`drywallqa.evaluation.evaluate` on the folders' samples (threshold 0.5,
the carved validation split of the model's training record, never a reported split); the second
feeds the model the pack's pixels instead of the original photo's: a copy at native size is
resized to the model's input as a photo would be, a copy already at the model's input size (a
pack at the training resolution) goes in as it is, and the masks are upsampled to the photo's own
size in both cases. The difference is what training on the pack's pixels instead of the photos'
risks. Prints a Markdown table (docs/gpu.md keeps it) and writes it with ``--json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from drywallqa.data import AnnotatedDataset
from drywallqa.evaluation import evaluate
from drywallqa.inference import BatchedPredictor, load_predictor, logits_to_result
from drywallqa.processing import resize_to_model_input
from drywallqa.trainsets import resplit_like_training
from drywallqa.trainsets.items import read_rgb
from drywallqa.trainsets.pack import TrainingPack


def _digest(image: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()


class PackPixels(BatchedPredictor):
    """A predictor that answers for a folder photo with the pack's copy of it as the model's input.

    Args:
        inner: The model's batched predictor.
        copies: ``{digest of the decoded folder photo: the pack's copy, RGB uint8}``.
    """

    def __init__(self, inner: BatchedPredictor, copies: dict[str, np.ndarray]):
        self.inner, self.copies = inner, copies
        self.name, self.image_size, self.batch_size = f"{inner.name} on the pack", inner.image_size, inner.batch_size
        self.threshold = inner.threshold

    def threshold_for(self, prompt: str) -> float:
        return self.inner.threshold_for(prompt)

    def forward_batch(self, images: np.ndarray, prompts: Sequence[str]):
        return self.inner.forward_batch(images, prompts)

    def predict_batch(self, images, prompts, *, return_probabilities: bool = False):
        inputs = np.stack([resize_to_model_input(self.copies[_digest(image)], self.image_size) for image in images])
        results = []
        for start in range(0, len(images), self.batch_size):
            chunk = slice(start, start + self.batch_size)
            logits, confidence = self.inner.forward_batch(inputs[chunk], list(prompts[chunk]))
            for image, prompt, mask_logits, conf in zip(images[chunk], prompts[chunk], logits, confidence):
                results.append(logits_to_result(mask_logits, float(conf), prompt, image.shape, self.threshold_for(prompt),
                                                return_probabilities))
        return results


def pack_copies(pack: TrainingPack, datasets: Sequence[AnnotatedDataset], split: str) -> dict[str, np.ndarray]:
    """The pack's copy of every photo of ``split``, keyed by the digest of the decoded folder photo."""
    packed = {}
    for rel in pack.manifest["split_of_images"]:
        path = pack.path / rel
        packed[(Path(rel).parts[1], path.stem)] = path
    copies = {}
    for dataset in datasets:
        for sample in dataset.split(split):
            source = Path(sample.image_path)
            copy = packed.get((sample.dataset, source.stem))
            if copy is None:
                raise SystemExit(f"{source}: not in the pack {pack.path} (built from other data?)")
            copies[_digest(sample.load_image())] = read_rgb(copy)
    return copies


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pack", default=".device/pack")
    parser.add_argument("--data", default="../shared/data", help="the root holding cracks/ and drywall-join/")
    parser.add_argument("--model", default="src/drywallqa/weights/promptunet")
    parser.add_argument("--split", default="valid", help="the carved split to score (valid: the goal's; train: "
                        "what the training photos' re-encoding moves)")
    parser.add_argument("--max-images", type=int, help="score at most this many photos per class")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)

    pack = TrainingPack.open(args.pack)
    datasets = [AnnotatedDataset.load(Path(args.data) / name) for name in ("cracks", "drywall-join")]
    datasets = resplit_like_training(datasets, args.model)
    predictor = load_predictor(args.model, threshold=0.5, say=None)
    scores = {}
    copies = pack_copies(pack, datasets, args.split)
    for label, scorer in (("folders", predictor), ("pack", PackPixels(predictor, copies))):
        report = evaluate(scorer, datasets, split=args.split, threshold=0.5, max_images=args.max_images, progress=False)
        scores[label] = {name: {"images": c.images, "iou": c.iou.mean} for name, c in report.classes.items()}
    images = pack.manifest["images"]
    how = "original files" if images.get("quality") is None else f"WebP q{images['quality']}, {images['psnr_db']} dB PSNR"
    for name, group in (images.get("split_quality") or {}).items():
        how += f"; {name} photos WebP q{group['quality']}, {group['psnr_db']} dB PSNR"
    if images.get("size"):
        how += f", at {images['size']}x{images['size']} (the training resolution)"
    elif images.get("quality") is not None and images.get("originals"):
        how += f" ({', '.join(images['originals'])} as original files)"
    print(f"carved {args.split} groups, model {args.model}, threshold 0.5; pack images: {how}")
    print("| class | images | IoU from folders | IoU from the pack | difference |")
    print("|---|---|---|---|---|")
    for name in sorted(scores["folders"]):
        a, b = scores["folders"][name]["iou"], scores["pack"][name]["iou"]
        print(f"| {name} | {scores['folders'][name]['images']} | {a:.4f} | {b:.4f} | {b - a:+.4f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"pack": images, "model": args.model, "split": args.split,
                                               "scores": scores}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
