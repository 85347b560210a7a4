"""What the machine offers for reduced precision: the one rule that picks bf16, fp16 or fp32.

On a CPU, bf16 is fast only with native bf16 instructions (AMX-BF16 on Xeon Sapphire Rapids and
later, AVX512-BF16 on Cooper Lake, Zen 4 and later). Elsewhere PyTorch emulates it by converting
to and from fp32 around every kernel, which trained the project's model 3-10x slower than fp32
on an AVX2-only AMD EPYC. The check reads the kernel's CPU flags (``/proc/cpuinfo``); without
them (macOS, Windows) the choice is fp32. torch is imported only to ask about a CUDA device.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
# The /proc/cpuinfo flags of native bf16 arithmetic, in the order they are named in a reason.
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
PRECISIONS = ("bf16", "fp16", "fp32")
LIGHTNING_PRECISIONS = {"bf16": "bf16-mixed", "fp16": "16-mixed", "fp32": "32-true"}


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision :func:`auto_precision` chose and why.

    Attributes:
        precision: ``"bf16"``, ``"fp16"`` (both as autocast over fp32 weights) or ``"fp32"``.
        reason: What about the device decided it, for logs and run records.
    """

    precision: str
    reason: str

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")

    @property
    def lightning(self) -> str:
        """The Lightning ``Trainer(precision=...)`` value: ``bf16-mixed``, ``16-mixed`` or ``32-true``."""
        return LIGHTNING_PRECISIONS[self.precision]

    def __str__(self) -> str:
        return f"{self.precision} ({self.reason})"


def cpu_flags(cpuinfo: Path | None = None) -> frozenset[str]:
    """The CPU's feature flags from the first ``flags`` line of ``/proc/cpuinfo``; empty when unreadable."""
    with contextlib.suppress(OSError, UnicodeDecodeError):
        for line in (cpuinfo or CPUINFO).read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.partition(":")[2].split())
    return frozenset()


def cpu_bf16_flags(cpuinfo: Path | None = None) -> tuple[str, ...]:
    """Which of :data:`CPU_BF16_FLAGS` this CPU has (empty: bf16 would be emulated)."""
    flags = cpu_flags(cpuinfo)
    return tuple(flag for flag in CPU_BF16_FLAGS if flag in flags)


def _torch_cpu_capability() -> str | None:
    """torch's widest vector kernels here (``AVX512``, ``AVX2``...), or None when unknown."""
    try:
        import torch

        return torch.backends.cpu.get_cpu_capability()
    except (ImportError, AttributeError, RuntimeError):
        return None


def auto_precision(device: str = "cpu", cpuinfo: Path | None = None) -> PrecisionChoice:
    """The fastest precision that trains and runs at full speed on ``device``.

    Args:
        device: ``"cpu"`` or a CUDA device (``"cuda"``, ``"cuda:1"``).
        cpuinfo: The file to read the CPU flags from (tests); ``/proc/cpuinfo`` by default.

    Returns:
        bf16 on a GPU that supports it, else fp16; on a CPU, bf16 only with AMX-BF16 or
        AVX512-BF16, else fp32.
    """
    if str(device).startswith("cuda"):
        import torch

        name = torch.cuda.get_device_name(device) if torch.cuda.is_available() else "the GPU"
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return PrecisionChoice("bf16", f"{name} supports bf16")
        return PrecisionChoice("fp16", f"{name} has no bf16: fp16 with loss scaling")
    found = cpu_bf16_flags(cpuinfo)
    if found:
        return PrecisionChoice("bf16", f"the CPU has {' and '.join(found)}")
    capability = _torch_cpu_capability()
    kernels = f"; torch's kernels here: {capability}" if capability else ""
    return PrecisionChoice(
        "fp32", f"the CPU has neither {' nor '.join(CPU_BF16_FLAGS)}, so bf16 would be emulated{kernels}"
    )


def cpu_name() -> str:
    """The processor's model name (``/proc/cpuinfo``), for the machine line beside a measured figure."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"
