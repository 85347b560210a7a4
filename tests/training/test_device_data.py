"""Training data on the device (trainer.data_on_device): the same items as the loader path,
the same validation metrics, and a training run end to end (on the CPU here)."""

from __future__ import annotations

import json

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from drywallqa.cli import main
from drywallqa.models import build_model
from drywallqa.training.config import OptimConfig
from drywallqa.training.device_data import DeviceSplit, prompt_embeddings
from drywallqa.training.losses import LossConfig
from drywallqa.training.module import SegmentationModule
from drywallqa.training.run import device_data_splits
from drywallqa.trainsets import TrainSetConfig, build_trainset

TINY = ["--set", "model.args.pretrained=false", "--set", "model.args.text_encoder=hashing",
        "--set", "trainer.num_workers=0", "--set", "trainer.log_every_n_steps=1", "--image-size", "64", "--batch-size", "4"]


@pytest.fixture(scope="module")
def sample_data(tmp_path_factory):
    from drywallqa.data.synthetic import generate_sample_data

    return generate_sample_data(tmp_path_factory.mktemp("data") / "sample", images=24, size=96, seed=1).root


@pytest.fixture(scope="module")
def trainset(sample_data):
    return build_trainset(TrainSetConfig.from_dict({"datasets": [str(sample_data)], "image_size": 64}))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("promptunet", pretrained=False, text_encoder="hashing", image_size=64).eval()


def test_an_evaluation_split_on_the_device_serves_the_loaders_items(trainset, model):
    splits = device_data_splits(trainset, model, 64, batch_size=5)
    valid = splits["valid"]
    reference = trainset.torch_dataset("valid", uint8=True)
    items = [valid.batch(i) for i in range(len(valid))]
    images = torch.cat([b["image"] for b in items])
    masks = torch.cat([b["mask"] for b in items])
    embeddings = torch.cat([b["embedding"] for b in items])
    assert images.shape[0] == len(reference) and len(valid) == -(-len(reference) // 5)
    for i in range(len(reference)):
        item = reference[i]
        assert torch.equal(images[i], item["image"].float() / 255.0)
        assert torch.equal(masks[i], item["mask"].float())
        assert torch.equal(embeddings[i], model.embed_prompts([item["prompt"]])[0])
    assert torch.equal(torch.cat([b["is_negative"] for b in items]),
                       torch.tensor([r.is_negative for r in trainset.split("valid")]))


def test_the_training_split_shuffles_draws_training_prompts_and_augments(trainset, model):
    train = device_data_splits(trainset, model, 64, batch_size=4)["train"]
    records = trainset.split("train")
    assert len(train) == len(records) // 4  # the last, smaller batch is left out
    torch.manual_seed(0)
    train.set_epoch(0)
    first = train.order.clone()
    train.set_epoch(1)
    assert sorted(first.tolist()) == list(range(len(records))) and not torch.equal(first, train.order)
    table = prompt_embeddings(model, trainset)
    allowed = {p for r in records for p in trainset.prompt_class(r.class_name).training_prompts}
    drawn = {next(p for p, e in table.items() if torch.equal(e, row)) for _ in range(20)
             for row in train.batch(0)["embedding"]}
    assert drawn <= allowed and len(drawn) > 1
    batch = train.batch(0)
    assert batch["image"].dtype == torch.float32 and set(batch["mask"].unique().tolist()) <= {0.0, 1.0}


def test_validation_on_the_device_gives_the_loader_paths_metrics(trainset, model):
    valid = device_data_splits(trainset, model, 64, batch_size=4)["valid"]
    loaders = {
        "device": DataLoader(valid, batch_size=None),
        "loader": DataLoader(trainset.torch_dataset("valid", uint8=True), batch_size=4),
    }
    metrics = {}
    for name, loader in loaders.items():
        module = SegmentationModule(model, LossConfig(), OptimConfig(), class_names=trainset.class_names)
        module.device_splits = {"valid": valid}
        trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
        metrics[name] = trainer.validate(module, loader, verbose=False)[0]
    assert metrics["device"].keys() == metrics["loader"].keys() and "val/iou" in metrics["device"]
    for key, value in metrics["loader"].items():
        assert np.isclose(metrics["device"][key], value, atol=1e-5), key


@pytest.mark.integration  # a training run
def test_a_training_run_with_the_data_on_the_device(sample_data, tmp_path):
    out = tmp_path / "run"
    args = ["train", "--data", str(sample_data), "--out", str(out), "--epochs", "1", "--no-progress", *TINY,
            "--set", "trainer.data_on_device=true", "--set", "trainer.limit_train_batches=2"]
    assert main(args) == 0
    record = json.loads((out / "model" / "training.json").read_text())
    assert record["budget"]["data_on_device"] is True and record["best_val_iou"] is not None
    assert record["augmentation"]["on_device"].endswith("BatchAugmenter")


def test_data_on_device_is_refused_for_several_processes(sample_data, tmp_path, capsys):
    args = ["train", "--data", str(sample_data), "--out", str(tmp_path / "r"), *TINY, "--accelerator", "cpu",
            "--devices", "2", "--set", "trainer.data_on_device=true"]
    assert main(args) == 2
    assert "trainer.data_on_device" in capsys.readouterr().err


def test_device_split_needs_every_prompt_embedded(trainset):
    with pytest.raises(KeyError, match="no embedding"):
        DeviceSplit(trainset, "valid", image_size=64, embeddings={}, batch_size=4)


@pytest.mark.integration  # a training run
def test_a_compilation_that_fails_on_the_first_step_trains_eagerly(sample_data, tmp_path, monkeypatch):
    def broken_compile(model, **kwargs):
        def compiled(*args):
            raise RuntimeError("no backend here (simulated)")
        return compiled

    monkeypatch.setattr(torch, "compile", broken_compile)
    out = tmp_path / "run"
    args = ["train", "--data", str(sample_data), "--out", str(out), "--epochs", "1", "--no-progress", *TINY,
            "--set", "trainer.data_on_device=true", "--set", "trainer.limit_train_batches=2", "--set", "trainer.compile=true"]
    with pytest.warns(UserWarning, match="torch.compile failed"):
        assert main(args) == 0
    assert json.loads((out / "model" / "training.json").read_text())["budget"]["compiled"] is False


@pytest.mark.integration  # inductor compiles the forward and backward: minutes on a busy 2-core CPU
def test_a_compiled_training_run(sample_data, tmp_path):
    out = tmp_path / "run"
    args = ["train", "--data", str(sample_data), "--out", str(out), "--epochs", "1", "--no-progress", *TINY,
            "--set", "trainer.data_on_device=true", "--set", "trainer.limit_train_batches=2", "--set", "trainer.compile=true"]
    assert main(args) == 0
    assert json.loads((out / "model" / "training.json").read_text())["budget"]["compiled"] is True
