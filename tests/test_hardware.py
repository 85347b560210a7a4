"""The one precision rule: bf16 on a CPU only with native bf16 instructions, whatever CPU runs the tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from drywallqa import hardware
from drywallqa.hardware import PrecisionChoice, auto_precision, cpu_bf16_flags
from drywallqa.training.config import TrainConfig
from drywallqa.training.run import training_precision

REPO = Path(__file__).resolve().parents[1]
AVX2_ONLY = "fpu sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma"  # an AMD EPYC of the Zen 2/3 kind
CPUINFO = {
    "avx2-only": (AVX2_ONLY, ()),
    "avx512 without bf16": (AVX2_ONLY + " avx512f avx512bw avx512_vnni", ()),
    "zen4": (AVX2_ONLY + " avx512f avx512bw avx512_bf16", ("avx512_bf16",)),
    "sapphire rapids": (AVX2_ONLY + " avx512f avx512_bf16 amx_tile amx_bf16 amx_int8", ("amx_bf16", "avx512_bf16")),
}


def write_cpuinfo(tmp_path, flags: str):
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
    return path


@pytest.mark.parametrize("cpu", list(CPUINFO))
def test_cpu_gets_bf16_only_with_native_bf16_instructions(cpu, tmp_path):
    flags, bf16_flags = CPUINFO[cpu]
    cpuinfo = write_cpuinfo(tmp_path, flags)
    assert cpu_bf16_flags(cpuinfo) == bf16_flags
    choice = auto_precision("cpu", cpuinfo)
    assert choice.precision == ("bf16" if bf16_flags else "fp32")
    assert choice.lightning == ("bf16-mixed" if bf16_flags else "32-true")
    assert all(flag in choice.reason for flag in bf16_flags or hardware.CPU_BF16_FLAGS)


def test_no_cpu_flags_means_fp32(tmp_path):
    assert auto_precision("cpu", tmp_path / "missing").precision == "fp32"
    (tmp_path / "binary").write_bytes(b"\xff\xfe flags")
    assert auto_precision("cpu", tmp_path / "binary").precision == "fp32"


def test_this_machine_follows_the_rule():
    choice = auto_precision("cpu")
    assert choice.precision == ("bf16" if cpu_bf16_flags() else "fp32")


def test_cuda_gets_bf16_where_the_gpu_supports_it(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Test GPU")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    assert auto_precision("cuda") == PrecisionChoice("bf16", "Test GPU supports bf16")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    assert auto_precision("cuda:0").lightning == "16-mixed"


def test_precision_choice_is_validated():
    with pytest.raises(ValueError, match="precision must be one of"):
        PrecisionChoice("int4", "no")


def test_training_auto_precision_follows_the_cpu(tmp_path, monkeypatch):
    monkeypatch.setattr(hardware, "CPUINFO", write_cpuinfo(tmp_path, CPUINFO["avx2-only"][0]))
    precision, reason = training_precision("auto", on_gpu=False)
    assert precision == "32-true" and reason.startswith("auto: ") and "amx_bf16" in reason
    monkeypatch.setattr(hardware, "CPUINFO", write_cpuinfo(tmp_path, CPUINFO["sapphire rapids"][0]))
    assert training_precision("auto", on_gpu=False)[0] == "bf16-mixed"
    assert training_precision("bf16-mixed", on_gpu=False) == ("bf16-mixed", "trainer.precision")


@pytest.mark.parametrize("config", sorted(REPO.glob("configs/*.yaml")), ids=lambda p: p.name)
def test_training_configs_leave_precision_to_the_machine(config):
    """The CPU recipes once named bf16-mixed (chosen on AMX machines): 3-10x slower where it is emulated."""
    if "trainer" in yaml.safe_load(config.read_text()):
        assert TrainConfig.from_yaml(config).trainer.precision == "auto"


def test_bench_measures_cpu_bf16_only_where_it_is_native(tmp_path, monkeypatch):
    from drywallqa.bench import BenchSettings
    from drywallqa.bench.runtimes import runtime_unavailable

    settings = BenchSettings.create(quick=True, device="cpu")
    monkeypatch.setattr(hardware, "CPUINFO", write_cpuinfo(tmp_path, CPUINFO["avx2-only"][0]))
    assert "emulated" in runtime_unavailable("torch-bf16-channels-last", settings)
    assert runtime_unavailable("torch-fp32-channels-last", settings) == ""
    monkeypatch.setattr(hardware, "CPUINFO", write_cpuinfo(tmp_path, CPUINFO["zen4"][0]))
    assert runtime_unavailable("torch-bf16-channels-last", settings) == ""
