"""The leakage entry of a report: scored source groups the model was trained on, or "unknown".

Sample data (drywallqa.data.synthetic) names files the Roboflow way and puts a few drywall-join
source groups in both published train and valid, as the real export does. A fake model folder
records a trainset config; what it trained on is worked out here from the published splits and
the carve, independently of the code under test.
"""

import argparse
import dataclasses
import importlib.util
import json
from pathlib import Path

import pytest
from eval_fixtures import LookupPredictor, perfect, synthetic_fixture  # noqa: F401 (fixture)

from drywallqa.cli.evaluate import add_commands, model_training_groups
from drywallqa.data import AnnotatedDataset, Sample
from drywallqa.data.groups import shared_groups
from drywallqa.evaluation import TrainingGroups, TrainingOverlap, evaluate, training_overlap
from drywallqa.trainsets import TrainSetConfig, build_trainset, training_groups

ROOT = Path(__file__).resolve().parents[2]


def _sample(name: str, split: str, dataset: str = "joints") -> Sample:
    from drywallqa.data.groups import source_group

    return Sample(Path(f"/data/{dataset}/{split}/{name}"), 8, 8, split, dataset, source_group(name))


def _groups_by_split(dataset: AnnotatedDataset) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for s in dataset.samples:
        out.setdefault(s.split, set()).add(s.group)
    return out


def _model_folder(folder: Path, datasets, **config) -> Path:
    """A model folder whose training.json records the trainset of ``datasets`` (as `train` writes it)."""
    trainset_config = TrainSetConfig(datasets=[str(ds.root) for ds in datasets], keep_splits=True,
                                     verify_images=False, **config)
    counts = build_trainset(trainset_config, datasets=datasets).counts()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "training.json").write_text(json.dumps({"trainset_config": trainset_config.to_dict(),
                                                      "trainset_counts": counts}))
    return folder


def test_overlap_counts_groups_images_and_names_them():
    scored = [_sample(f"{src}_jpg.rf.{k:032x}.jpg", "valid") for k, src in enumerate(["a", "a", "b", "c", "d"])]
    training = TrainingGroups("rec", train={("joints", "a"), ("joints", "c"), ("other", "b")},
                              selection={("joints", "d"), ("joints", "a")})
    overlap = training_overlap(scored + scored[:1], training)  # an image scored for two classes counts once
    assert (overlap.known, overlap.scored_groups, overlap.scored_images) == (True, 4, 5)
    assert (overlap.shared_groups, overlap.images_in_shared_groups) == (2, 3)  # "b" of another dataset is not "b" here
    assert overlap.by_dataset == {"joints": 2} and overlap.examples == ["joints/a", "joints/c"]
    assert overlap.selection_shared_groups == 1  # "d"; "a" is already counted as trained on
    assert "joints/a" in overlap.text()


def test_no_shared_group_is_a_known_zero():
    overlap = training_overlap([_sample("x_jpg.rf.0123456789abcdef.jpg", "valid")], TrainingGroups("rec", train=set()))
    assert overlap.known and overlap.shared_groups == 0 and overlap.selection_shared_groups is None


@pytest.mark.parametrize("training", [None, TrainingGroups.unknown("an .onnx file records no training set")])
def test_without_a_record_the_overlap_is_unknown_never_zero(training):
    overlap = training_overlap([_sample("x_jpg.rf.0123456789abcdef.jpg", "valid")], training)
    assert not overlap.known
    assert overlap.shared_groups is None and overlap.images_in_shared_groups is None and not overlap.examples
    assert overlap.text().startswith("unknown")
    with pytest.raises(ValueError):
        TrainingOverlap(known=False, source="x", scored_groups=1, scored_images=1, shared_groups=0)
    with pytest.raises(ValueError):
        TrainingGroups("")


def test_training_groups_are_the_carved_train_split(synthetic, tmp_path):
    model = _model_folder(tmp_path / "model", synthetic)
    groups = training_groups(synthetic, model)
    records = build_trainset(TrainSetConfig(datasets=[str(ds.root) for ds in synthetic], keep_splits=True,
                                            verify_images=False), datasets=synthetic).records
    for split in ("train", "valid"):
        assert groups[split] == {(r.dataset, r.group) for r in records if r.split == split}
    # Every image of published train is in train, valid or test: no group of published valid is carved.
    published_train = {(ds.name, g) for ds in synthetic for g in _groups_by_split(ds).get("train", set())}
    assert groups["train"] and groups["train"] <= published_train


def test_evaluate_reports_the_published_valid_groups_the_model_trained_on(synthetic, tmp_path):
    # Published train carved whole into train: the model trained on every group of published train.
    model = _model_folder(tmp_path / "model", synthetic, fractions={"train": 1.0})
    training = model_training_groups(str(model), synthetic)
    report = evaluate(LookupPredictor(synthetic, perfect), synthetic, split="valid", progress=False, training=training)
    expected = {(ds.name, g) for ds in synthetic
                for g, splits in shared_groups(_groups_by_split(ds)).items() if {"train", "valid"} <= set(splits)}
    assert expected  # the sample data shares drywall-join groups between train and valid
    leakage = report.to_dict()["leakage"]
    assert leakage["known"] and leakage["shared_groups"] == len(expected)
    assert leakage["by_dataset"] == {"drywall-join": len(expected)}
    assert leakage["examples"] == sorted(f"{d}/{g}" for d, g in expected)[:len(leakage["examples"])]
    valid = [s for ds in synthetic for s in ds.samples if s.split == "valid"]
    assert leakage["images_in_shared_groups"] == sum((s.dataset, s.group) in expected for s in valid)
    assert leakage["source"] == str(model / "training.json")
    assert any(line.startswith("leakage: ") for line in report._header_lines())


def test_datasets_that_do_not_match_the_record_give_unknown(synthetic, tmp_path):
    model = _model_folder(tmp_path / "model", synthetic)
    record = json.loads((model / "training.json").read_text())
    record["trainset_counts"]["valid"]["crack"]["original"] += 1  # another dataset than the one given
    (model / "training.json").write_text(json.dumps(record))
    training = model_training_groups(str(model), synthetic)
    assert not training.known and "crack" in training.source and "'valid'" in training.source


def test_a_subset_of_the_training_datasets_keeps_its_carve(synthetic, tmp_path):
    model = _model_folder(tmp_path / "model", synthetic)
    joints = [ds for ds in synthetic if ds.name == "drywall-join"]
    both, alone = training_groups(synthetic, model), training_groups(joints, model)
    assert alone["train"] == {key for key in both["train"] if key[0] == "drywall-join"}


@pytest.fixture
def fake_model(monkeypatch, synthetic):
    monkeypatch.setattr("drywallqa.inference.load_predictor",
                        lambda spec, device=None: LookupPredictor(synthetic, perfect, name=f"fake:{spec}"))


def _run(argv):
    parser = argparse.ArgumentParser(prog="drywallqa")
    add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    assert args.handler(args) == 0


def test_cli_prints_and_writes_the_leakage(fake_model, synthetic, tmp_path, capsys):
    model = _model_folder(tmp_path / "model", synthetic, fractions={"train": 1.0})
    data = [str(ds.root) for ds in synthetic]
    _run(["evaluate", "--model", str(model), "--data", *data, "--json", str(tmp_path / "r.json"), "--no-progress"])
    leakage = json.loads((tmp_path / "r.json").read_text())["leakage"]
    assert leakage["known"] and leakage["shared_groups"] > 0
    out = capsys.readouterr().out
    assert "leakage: " in out and leakage["examples"][0] in out


def test_cli_model_without_record_is_unknown_unless_splits_from_names_one(fake_model, synthetic, tmp_path):
    record = _model_folder(tmp_path / "run", synthetic, fractions={"train": 1.0})
    exported = tmp_path / "export" / "model.onnx"  # an exported file: no training.json beside it
    data = [str(ds.root) for ds in synthetic]
    _run(["evaluate", "--model", str(exported), "--data", *data, "--json", str(tmp_path / "a.json"), "--no-progress"])
    assert json.loads((tmp_path / "a.json").read_text())["leakage"]["known"] is False
    _run(["evaluate", "--model", str(exported), "--data", *data, "--splits-from", str(record), "--split", "published_valid",
          "--json", str(tmp_path / "b.json"), "--no-progress"])
    leakage = json.loads((tmp_path / "b.json").read_text())["leakage"]
    assert leakage["known"] and leakage["shared_groups"] > 0 and "--splits-from" in leakage["source"]


def _model_card():
    spec = importlib.util.spec_from_file_location("model_card", ROOT / "scripts" / "model_card.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_model_card_renders_the_leakage_entry(synthetic, tmp_path):
    card = _model_card()
    model = _model_folder(tmp_path / "model", synthetic, fractions={"train": 1.0})
    known = evaluate(LookupPredictor(synthetic, perfect), synthetic, split="valid", progress=False,
                     training=model_training_groups(str(model), synthetic)).to_dict()
    line = card.leakage_line(known)
    assert f"{known['leakage']['shared_groups']} of the {known['leakage']['scored_groups']}" in line
    assert known["leakage"]["examples"][0] in line
    unknown = {**known, "leakage": dataclasses.asdict(TrainingOverlap(False, "no record", 3, 4))}
    assert "unknown" in card.leakage_line(unknown).lower()
    older = {k: v for k, v in known.items() if k != "leakage"}  # written before reports had the entry
    assert card.leakage_line(older) != card.leakage_line(known) and "unknown" not in card.leakage_line(older).lower()


def test_published_drywall_join_valid_against_the_shipped_model(shared_data):
    """The real export: drywall-join valid shares source groups with published train (what `data
    inspect` reports); those the shipped model trained on or chose its checkpoint with are among them."""
    datasets = [AnnotatedDataset.load(shared_data / name) for name in ("cracks", "drywall-join")]
    training = model_training_groups(None, datasets)
    assert training.known, training.source
    joints = datasets[1]
    valid = [s for s in joints.samples if s.split == "valid"]
    overlap = training_overlap(valid, training)
    published = {("drywall-join", g) for g, splits in shared_groups(_groups_by_split(joints)).items()
                 if {"train", "valid"} <= set(splits)}
    valid_groups = {(s.dataset, s.group) for s in valid}
    assert overlap.shared_groups > 0
    assert valid_groups & training.train <= published and valid_groups & training.selection <= published
    print(f"drywall-join valid: {len(valid_groups)} groups, {len(published)} shared with published train; "
          f"{overlap.shared_groups} trained on, {overlap.selection_shared_groups} in the checkpoint's validation groups")
