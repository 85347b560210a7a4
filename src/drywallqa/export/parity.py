"""Does an exported or accelerated runtime give the masks PyTorch gives? Parity reports and sample images.

Two mask agreements are measured, both with the project's one IoU definition
(:func:`drywallqa.evaluation.metrics.iou_score`, pooled over the images, empty/empty scoring 1):

- ``mask_iou``: masks at the served threshold (logit > 0, i.e. probability 0.5);
- ``median_split_iou``: masks at each reference image's median logit. An untrained or barely
  trained model can put every pixel below 0, which makes ``mask_iou`` 1.0 trivially; splitting at
  the median always compares half the pixels, so this one is informative for any weights.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PARITY_MIN_IOU = 0.999
# Exported fp32 graphs reorder float operations; logits of a 3.5M-parameter CNN move by ~1e-5.
PARITY_MAX_ABS_LOGIT_DIFF = 1e-3


@dataclass(frozen=True)
class ParityReport:
    """Agreement of a candidate runtime's outputs with the reference (PyTorch fp32) outputs.

    Attributes:
        candidate: Label of the runtime compared, e.g. ``"onnxruntime fp32"``.
        images: Number of images compared.
        image_size: Side of the square model input.
        max_abs_logit_diff: Largest ``|candidate - reference|`` over all mask logits.
        max_abs_confidence_diff: Largest difference of the confidence logits.
        mask_iou: Pooled IoU of the masks at probability 0.5.
        median_split_iou: Pooled IoU of the masks split at each reference image's median logit.
        min_iou: Required IoU for :attr:`passed`.
        max_logit_diff: Allowed logit difference for :attr:`passed` (None: not checked).
    """

    candidate: str
    images: int
    image_size: int
    max_abs_logit_diff: float
    max_abs_confidence_diff: float
    mask_iou: float
    median_split_iou: float
    min_iou: float = PARITY_MIN_IOU
    max_logit_diff: float | None = PARITY_MAX_ABS_LOGIT_DIFF

    @property
    def passed(self) -> bool:
        """Both IoUs reach :attr:`min_iou` and the logit difference is within :attr:`max_logit_diff`."""
        logits_ok = self.max_logit_diff is None or self.max_abs_logit_diff <= self.max_logit_diff
        return logits_ok and min(self.mask_iou, self.median_split_iou) >= self.min_iou

    def summary(self) -> str:
        """One line for the console."""
        verdict = "ok" if self.passed else "FAILED"
        return (
            f"parity {self.candidate} vs PyTorch fp32 on {self.images} image(s) at {self.image_size}px: "
            f"max |logit diff| {self.max_abs_logit_diff:.2e}, confidence {self.max_abs_confidence_diff:.2e}, "
            f"mask IoU {self.mask_iou:.5f}, median-split IoU {self.median_split_iou:.5f} "
            f"(need >= {self.min_iou}) {verdict}"
        )

    def to_dict(self) -> dict:
        """JSON-ready dict, including :attr:`passed`."""
        return {
            "candidate": self.candidate,
            "images": self.images,
            "image_size": self.image_size,
            "max_abs_logit_diff": self.max_abs_logit_diff,
            "max_abs_confidence_diff": self.max_abs_confidence_diff,
            "mask_iou": self.mask_iou,
            "median_split_iou": self.median_split_iou,
            "min_iou": self.min_iou,
            "max_logit_diff": self.max_logit_diff,
            "passed": self.passed,
        }


def compare_outputs(
    reference: tuple[np.ndarray, np.ndarray],
    candidate: tuple[np.ndarray, np.ndarray],
    label: str,
    *,
    min_iou: float = PARITY_MIN_IOU,
    max_logit_diff: float | None = PARITY_MAX_ABS_LOGIT_DIFF,
) -> ParityReport:
    """Compare two runtimes' ``(mask_logits, confidence_logits)`` on the same inputs.

    Args:
        reference: float ``(B, [1,] H, W)`` mask logits and ``(B,)`` confidence logits (PyTorch fp32).
        candidate: The same from the runtime under test.
        label: Name of the candidate for the report.
        min_iou: IoU :attr:`ParityReport.passed` requires.
        max_logit_diff: Logit difference :attr:`ParityReport.passed` allows (None: any).

    Raises:
        ValueError: If the shapes differ.
    """
    from drywallqa.evaluation.metrics import get_stats, iou_score

    ref_logits = np.asarray(reference[0], dtype=np.float32).reshape(len(reference[0]), *reference[0].shape[-2:])
    cand_logits = np.asarray(candidate[0], dtype=np.float32).reshape(len(candidate[0]), *candidate[0].shape[-2:])
    if ref_logits.shape != cand_logits.shape:
        raise ValueError(f"mask logits shape {cand_logits.shape} != reference {ref_logits.shape}")
    medians = np.median(ref_logits.reshape(len(ref_logits), -1), axis=1)[:, None, None]
    return ParityReport(
        candidate=label,
        images=len(ref_logits),
        image_size=int(ref_logits.shape[-1]),
        max_abs_logit_diff=float(np.abs(ref_logits - cand_logits).max()),
        max_abs_confidence_diff=float(
            np.abs(np.asarray(reference[1], np.float32) - np.asarray(candidate[1], np.float32)).max()
        ),
        mask_iou=float(iou_score(*get_stats(cand_logits > 0, ref_logits > 0), reduction="pooled")),
        median_split_iou=float(
            iou_score(*get_stats(cand_logits > medians, ref_logits > medians), reduction="pooled")
        ),
        min_iou=min_iou,
        max_logit_diff=max_logit_diff,
    )


def synthetic_samples(count: int = 4, size: int = 384, seed: int = 0) -> list[tuple[bytes, str]]:
    """Synthetic drywall photos as JPEG bytes, each with its class's canonical prompt.

    Rendered by :func:`drywallqa.data.synthetic.generate_sample_data` into a temporary folder
    (half cracks, half joints), so parity checks, int8 calibration and the benchmark run on
    realistic textures without any dataset on disk.

    Args:
        count: Number of samples (1 to 8 come from one render of 8 images; more render more).
        size: Side of the square photos in pixels (>= 64).
        seed: Render seed.

    Returns:
        ``count`` pairs ``(jpeg_bytes, prompt)``, alternating crack and joint photos.
    """
    from drywallqa.data.prompts import PromptConfig
    from drywallqa.data.synthetic import generate_sample_data

    classes = PromptConfig.default().classes
    crack_prompt, joint_prompt = classes["crack"].prompt, classes["taping_area"].prompt
    render = max(8, 2 * ((count + 1) // 2))
    with tempfile.TemporaryDirectory(prefix="drywallqa-samples-") as tmp:
        paths = generate_sample_data(Path(tmp) / "data", images=render, seed=seed, size=size)
        cracks = sorted(paths.cracks.rglob("*.jpg"))
        joints = sorted(paths.drywall_join.rglob("*.jpg"))
        samples: list[tuple[bytes, str]] = []
        for crack, joint in zip(cracks, joints):
            samples += [(crack.read_bytes(), crack_prompt), (joint.read_bytes(), joint_prompt)]
    return samples[:count]


def synthetic_images(count: int = 4, size: int = 384, seed: int = 0) -> tuple[list[np.ndarray], list[str]]:
    """:func:`synthetic_samples`, decoded: RGB ``uint8`` ``(size, size, 3)`` arrays and their prompts."""
    from drywallqa.files import decode_image_bytes

    samples = synthetic_samples(count, size, seed)
    return [decode_image_bytes(data) for data, _ in samples], [prompt for _, prompt in samples]
