"""Training: the shared loss, the LightningModule, the config, a CPU run, resume and a DDP smoke run."""

import json
import os
import subprocess
import sys

import pytest
import torch

from drywallqa.cli import main
from drywallqa.errors import ConfigError
from drywallqa.hardware import auto_precision
from drywallqa.models import PromptSegmentationModel, build_model
from drywallqa.training.config import TrainConfig
from drywallqa.training.losses import LossConfig, SegmentationLoss

TINY = ["--set", "model.args.pretrained=false", "--set", "model.args.text_encoder=hashing",
        "--set", "trainer.num_workers=0", "--set", "trainer.log_every_n_steps=1", "--image-size", "64", "--batch-size", "4"]


@pytest.fixture(scope="module")
def sample_data(tmp_path_factory):
    from drywallqa.data.synthetic import generate_sample_data

    return generate_sample_data(tmp_path_factory.mktemp("data") / "sample", images=24, size=96, seed=1).root


def test_loss_parts_and_weights():
    logits = torch.zeros(2, 1, 8, 8)
    target = torch.zeros(2, 1, 8, 8)
    target[:, :, 2:4] = 1
    parts = SegmentationLoss(LossConfig(bce=1, dice=0, focal=0, confidence=0))(logits, target)
    assert torch.isclose(parts["total"], parts["bce"])
    full = SegmentationLoss(LossConfig())(logits, target, torch.zeros(2))
    expected = full["bce"] + full["dice"] + 0.5 * full["focal"] + 0.1 * full["confidence"]
    assert torch.isclose(full["total"], expected)
    # A perfect prediction has (near) zero segmentation loss.
    perfect = SegmentationLoss(LossConfig(confidence=0))(target * 40 - 20, target)
    assert perfect["total"] < 1e-3


def test_two_optimiser_steps_lower_the_loss():
    torch.manual_seed(0)
    model = build_model("promptunet", pretrained=False, text_encoder="hashing", image_size=64)
    loss = SegmentationLoss(LossConfig())
    images = torch.rand(4, 3, 64, 64)
    masks = torch.zeros(4, 1, 64, 64)
    masks[:, :, 20:30, :] = 1
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(3):
        out = model.segment(images, ["segment crack"])
        total = loss(out.mask_logits, masks, out.confidence_logits)["total"]
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        losses.append(float(total))
    assert losses[2] < losses[0]


def test_config_overrides_and_errors(tmp_path):
    cfg = TrainConfig.from_yaml(None, ["optim.lr=0.01", "model.args.encoder=lite1", "data.negative_rate=0.3"])
    assert cfg.optim.lr == 0.01 and cfg.model.args == {"encoder": "lite1"} and cfg.data["negative_rate"] == 0.3
    with pytest.raises(ConfigError, match="optim.lrr"):
        TrainConfig.from_yaml(None, ["optim.lrr=1"])
    with pytest.raises(ConfigError, match="optim.lr must be float"):
        TrainConfig.from_yaml(None, ["optim.lr=fast"])
    with pytest.raises(ConfigError, match="not found"):
        TrainConfig.from_yaml(tmp_path / "missing.yaml")
    shipped = TrainConfig.from_yaml("configs/promptunet-lite0.yaml")
    assert shipped.model.name == "promptunet" and shipped.loss.focal == 0.5


def test_cli_training_run_writes_model_logs_and_curves_then_resumes(sample_data, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--data", str(sample_data), "--out", str(out), "--epochs", "1", "--no-progress", *TINY]
    assert main(args) == 0
    assert "best val IoU" in capsys.readouterr().out
    for name in ("model/config.json", "model/model.safetensors", "model/training.json", "logs/version_0/metrics.csv",
                 "training_curves.png", "checkpoints/last.ckpt"):
        assert (out / name).is_file(), name
    record = json.loads((out / "model" / "training.json").read_text())
    assert record["budget"]["epochs"] == 1 and "augmentation" in record and record["trainset_check"].startswith("check: OK")
    # precision auto: the record says what this machine's CPU got and why (bf16 only with bf16 instructions)
    assert record["budget"]["precision"] == auto_precision("cpu").lightning
    assert record["budget"]["precision_reason"] == f"auto: {auto_precision('cpu').reason}"
    assert record["budget"]["channels_last"] is True
    model = PromptSegmentationModel.from_pretrained(out / "model")
    assert model.default_image_size == 64
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert "augmentation" in ckpt["drywallqa"]
    # --resume continues from last.ckpt up to the new epoch count.
    assert main(["train", "--data", str(sample_data), "--out", str(out), "--epochs", "2", "--resume", "--no-progress", *TINY]) == 0
    resumed = json.loads((out / "model" / "training.json").read_text())["budget"]
    assert resumed["epochs"] == 2
    # The budget counts the attempt before the resume too (its minutes travel in last.ckpt).
    assert resumed["minutes"] >= ckpt["drywallqa_minutes"] > 0
    assert (out / "logs" / "version_0" / "metrics.csv").is_file() and (out / "logs" / "version_1" / "metrics.csv").is_file()


@pytest.mark.integration  # three training runs
def test_init_from_fine_tunes_a_saved_model_at_a_new_size(sample_data, tmp_path, capsys):
    torch.manual_seed(0)
    start = build_model("promptunet", pretrained=False, text_encoder="hashing", image_size=96)
    start.save_pretrained(tmp_path / "start")
    (tmp_path / "start" / "training.json").write_text(json.dumps({"budget": {"minutes": 3.0}, "best_val_iou": 0.5}))
    out = tmp_path / "tuned"
    args = ["train", "--data", str(sample_data), "--out", str(out), "--epochs", "1", "--no-progress", *TINY,
            "--init-from", str(tmp_path / "start"), "--set", "optim.lr=0", "--set", "optim.encoder_lr=0"]
    assert main(args) == 0
    assert "fine-tuning promptunet from" in capsys.readouterr().out
    tuned = PromptSegmentationModel.from_pretrained(out / "model")
    # The input size follows the training set; with zero learning rates the weights are the saved ones
    # (BatchNorm running statistics aside, which training updates without the optimiser).
    assert tuned.default_image_size == 64
    saved, after = start.state_dict(), tuned.state_dict()
    learned = [k for k in saved if saved[k].is_floating_point() and "running_" not in k]
    assert learned and all(torch.equal(saved[k], after[k]) for k in learned)
    # The starting weights' own budget stays on record.
    stages = json.loads((out / "model" / "training.json").read_text())["earlier_stages"]
    assert stages == [{"model": str(tmp_path / "start"), "run": None, "budget": {"minutes": 3.0}, "best_val_iou": 0.5,
                       "image_size": None}]
    # A stage fine-tuned from that one records both, the run folder being the one that trained it.
    assert main(["train", "--data", str(sample_data), "--out", str(tmp_path / "again"), "--epochs", "1", "--no-progress",
                 *TINY, "--init-from", str(out / "model")]) == 0
    stages = json.loads((tmp_path / "again" / "model" / "training.json").read_text())["earlier_stages"]
    assert [stage["model"] for stage in stages] == [str(tmp_path / "start"), str(out / "model")]
    assert [stage["run"] for stage in stages] == [None, str(out)]
    assert main(["train", "--data", str(sample_data), "--out", str(tmp_path / "x"), "--init-from", str(tmp_path / "nope"), *TINY]) == 2
    assert "nope" in capsys.readouterr().err
    (tmp_path / "start" / "training.json").write_text("{broken")
    assert main(["train", "--data", str(sample_data), "--out", str(tmp_path / "y"), "--init-from", str(tmp_path / "start"), *TINY]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "training.json" in err and err.count("\n") == 1


def test_bad_training_config_is_one_line_exit_2(sample_data, tmp_path, capsys):
    assert main(["train", "--data", str(sample_data), "--out", str(tmp_path / "r"), "--set", "optim.lr=fast"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "optim.lr" in err and err.count("\n") == 1


@pytest.mark.integration
def test_ddp_smoke_two_cpu_processes_on_gloo(sample_data, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "drywallqa.cli", "train", "--data", str(sample_data), "--out", str(out), "--epochs", "1",
           "--accelerator", "cpu", "--devices", "2", "--set", "trainer.strategy=ddp", "--no-progress", *TINY]
    env = {**os.environ, "PL_DISABLE_FORK": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("2 process(es) on CPU") == 1  # printed by the first process only
    assert (out / "model" / "model.safetensors").is_file()


def test_warm_up_and_decay_follow_the_clock_under_a_budget(monkeypatch):
    """On a GPU the epoch limit allows far more steps than the budget: the schedule must end with the budget."""
    from types import SimpleNamespace

    from drywallqa.training import module as module_file
    from drywallqa.training.config import OptimConfig
    from drywallqa.training.module import SegmentationModule

    now = [1000.0]
    monkeypatch.setattr(module_file.time, "monotonic", lambda: now[0])
    model = build_model("promptunet", pretrained=False, text_encoder="hashing", image_size=64)
    module = SegmentationModule(model, LossConfig(), OptimConfig(warmup_fraction=0.1, min_lr_ratio=0.0), time_budget_minutes=10)
    monkeypatch.setattr(SegmentationModule, "trainer", SimpleNamespace(estimated_stepping_batches=1_000_000), raising=False)
    factor = module.configure_optimizers()["lr_scheduler"]["scheduler"].lr_lambdas[0]
    assert factor(0) < 0.01                      # start of the warm-up
    now[0] += 60                                 # 10 % of the budget: warm-up over, after 100 of 100,000 warm-up steps
    assert factor(100) == pytest.approx(1.0, abs=0.03)  # the cosine runs over the whole budget, warm-up included
    now[0] += 540                                # the whole budget: decayed to the floor
    assert factor(5000) == pytest.approx(0.0, abs=1e-6)


def test_a_run_stopped_mid_epoch_validates_its_final_weights(sample_data, tmp_path):
    """A step (or time) budget that ends between validations: the final weights are validated and kept when better."""
    out = tmp_path / "run"
    assert main(["train", "--data", str(sample_data), "--out", str(out), "--epochs", "5", "--no-progress", *TINY,
                 "--set", "trainer.max_steps=2"]) == 0
    record = json.loads((out / "model" / "training.json").read_text())
    assert record["budget"]["steps"] == 2 and record["best_val_iou"] is not None
    assert record["kept"] == "final weights (validated after the last step)"


def test_train_only_the_confidence_head_keeps_every_mask_weight(sample_data, tmp_path, capsys):
    torch.manual_seed(0)
    start = build_model("promptunet", pretrained=False, text_encoder="hashing", image_size=64)
    start.save_pretrained(tmp_path / "start")
    out = tmp_path / "refit"
    args = ["train", "--data", str(sample_data), "--out", str(out), "--epochs", "2", "--no-progress", *TINY,
            "--init-from", str(tmp_path / "start"), "--set", "optim.train_only=[confidence_head]",
            "--set", "optim.lr=0.01", "--set", "trainer.monitor=val/confidence_mse"]
    assert main(args) == 0
    saved = start.state_dict()
    after = PromptSegmentationModel.from_pretrained(out / "model").state_dict()
    head = [k for k in saved if k.startswith("confidence_head.")]
    rest = [k for k in saved if not k.startswith("confidence_head.")]
    # BatchNorm statistics included: the masks are exactly the starting model's.
    assert rest and all(torch.equal(saved[k], after[k]) for k in rest)
    assert any(not torch.equal(saved[k], after[k]) for k in head)
    record = json.loads((out / "model" / "training.json").read_text())
    assert record["monitor"]["metric"] == "val/confidence_mse" and 0 <= record["monitor"]["best"] <= 1
    assert record["best_val_iou"] is not None
    metrics = (next((out / "logs").glob("version_*")) / "metrics.csv").read_text().splitlines()[0]
    assert "val/confidence_mse" in metrics  # (r per class needs IoUs that vary; a random model's are all 0)


def test_train_only_and_monitor_are_checked_with_the_field_named(sample_data, tmp_path, capsys):
    base = ["train", "--data", str(sample_data), "--out", str(tmp_path / "r"), "--no-progress", *TINY]
    assert main([*base, "--set", "optim.train_only=[no_such_head]"]) == 2
    err = capsys.readouterr().err
    assert "optim.train_only" in err and "no_such_head" in err and err.count("\n") == 1
    assert main([*base, "--set", "trainer.monitor=val/loss"]) == 2
    err = capsys.readouterr().err
    assert "trainer.monitor" in err and err.count("\n") == 1
    assert main([*base, "--set", "optim.train_only=confidence_head"]) == 2
    assert "optim.train_only" in capsys.readouterr().err


@pytest.mark.parametrize("override, field", [
    ("data.image_size=500", "data.image_size"),
    ("model.args.no_such_field=1", "model.args"),
    ("model.args.encoder=lite9", "model.args"),
    ("data.no_such_field=1", "no_such_field"),
])
def test_data_and_model_sections_are_checked_before_any_data_is_read(tmp_path, capsys, override, field):
    # The dataset folder does not exist: the config error must come first, naming its field.
    args = ["train", "--data", str(tmp_path / "no-data-here"), "--out", str(tmp_path / "r"), "--no-progress",
            "--set", "model.args.pretrained=false", "--set", "model.args.text_encoder=hashing", "--set", override]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and field in err and "no-data-here" not in err and err.count("\n") == 1


def test_a_config_is_checked_when_loaded_not_when_training_starts():
    with pytest.raises(ConfigError, match=r"defaults: data.image_size .*500"):
        TrainConfig.from_yaml(None, ["data.image_size=500"])
    with pytest.raises(ConfigError, match="model.args"):
        TrainConfig.from_yaml(None, ["model.args.decoder=huge"])
    assert TrainConfig.from_yaml(None, ["data.image_size=448"]).data["image_size"] == 448


@pytest.mark.integration  # a training run
def test_init_matching_starts_a_wider_decoder_on_a_saved_models_encoder(sample_data, tmp_path):
    torch.manual_seed(0)
    start = build_model("promptunet", pretrained=False, text_encoder="hashing", image_size=64)
    start.save_pretrained(tmp_path / "start")
    out = tmp_path / "wide"
    args = ["train", "--data", str(sample_data), "--out", str(out), "--epochs", "1", "--no-progress", *TINY,
            "--init-from", str(tmp_path / "start"), "--set", "model.init_matching=true",
            "--set", "model.args.decoder_channels=[48, 40, 32, 24]", "--set", "optim.lr=0", "--set", "optim.encoder_lr=0",
            "--set", "trainer.limit_train_batches=1"]
    assert main(args) == 0
    wide = PromptSegmentationModel.from_pretrained(out / "model")
    assert wide.config.decoder_channels == (48, 40, 32, 24)
    saved, after = start.state_dict(), wide.state_dict()
    encoder = [k for k in saved if k.startswith("encoder.") and saved[k].is_floating_point() and "running_" not in k]
    assert encoder and all(torch.equal(saved[k], after[k]) for k in encoder)
