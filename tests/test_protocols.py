"""fer-train's protocols on real faces: FER2013's Training / PublicTest / PrivateTest on the 400
shared rows (their last 100 put in PublicTest and PrivateTest, as the full file has them), the
FER+ soft-label loss on the same rows with FER+'s votes, the epoch chosen on the validation split
or (labelled so) on the test part, mean class accuracy, clip accuracy, class-balanced epochs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from test_train import _learn
from torch.utils.data import default_collate

from fer_models.cli import main
from fer_models.data import FaceDataset, SeededSampler, augment, class_weights
from fer_models.inputs import VALIDATION, read_inputs
from fer_models.models import create_model
from fer_models.protocols import clip_confusion, mean_class_accuracy
from fer_models.train import train
from fer_prep.runner import run

FAST = {"epochs": 2, "size": 48, "batch_size": 32, "workers": 0, "progress": False,
        "device": "cpu"}


def _usage(i: int, usage: str) -> str:
    """Rows 301–350 PublicTest, 351–400 PrivateTest (FER2013's order: Training first)."""
    return "PublicTest" if 300 < i <= 350 else "PrivateTest" if 350 < i <= 400 else usage


@pytest.fixture(scope="module")
def fer_work(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fer2013")
    lines = (shared / "data/fer2013/fer2013.csv").read_text().splitlines()
    rows = [",".join([*line.split(",")[:2], _usage(i, line.split(",")[2])])
            for i, line in enumerate(lines[1:], start=1)]
    (root / "fer2013.csv").write_text("\n".join([lines[0], *rows]) + "\n")
    votes = (shared / "data/fer2013/fer2013new.csv").read_text().splitlines()
    relabelled = [votes[0]] + [",".join([_usage(i, line.split(",", 1)[0]),
                                         line.split(",", 1)[1]])
                               for i, line in enumerate(votes[1:], start=1)]
    (root / "fer2013new.csv").write_text("\n".join(relabelled) + "\n")
    work = tmp_path_factory.mktemp("work")
    for dataset in ("fer2013", "ferplus"):
        run(dataset, "align", work, root=root, jobs=2, first_row=0)  # the full file's first 400
        run(dataset, "folds", work)  # official: Training / PrivateTest, PublicTest left out
    return work


def test_fer2013_protocol_reports_privatetest_at_the_publictest_epoch(fer_work: Path) -> None:
    inputs = read_inputs("fer2013", fer_work)
    assert len(inputs.part(0, "validation")) == 50  # PublicTest, in no train part
    assert len(inputs.part(0, "test")) == 50 and len(inputs.part(0, "train")) == 300
    assert not (inputs.part(0, "train")["fold"] == VALIDATION).any()
    metrics = train("fer2013", fer_work, "resnet18", **FAST)
    assert metrics["protocol"] == "fer2013" and metrics["selected_by"] == "validation"
    fold = metrics["folds"]["0"]
    assert fold["n_test"] == 50 and fold["n_validation"] == 50
    history = fold["history"]
    best = max(history, key=lambda h: h["validation_accuracy"])
    assert fold["selected_epoch"] == best["epoch"]  # the epoch of the best PublicTest accuracy
    assert fold["accuracy"] == best["test_accuracy"]  # PrivateTest at that epoch
    table = (fer_work / "fer2013/train/resnet18/results.md").read_text()
    assert "report PrivateTest" in table and "validation split" in table
    assert f"| 0 | 300 | 50 | {best['epoch']} | {100 * fold['accuracy']:.2f} |" in table


def test_choosing_on_the_test_part_is_labelled(fer_work: Path) -> None:
    result = CliRunner().invoke(main, ["--dataset", "fer2013", "--work", str(fer_work),
                                       "--model", "resnet18", "--epochs", "2", "--size", "48",
                                       "--device", "cpu", "--workers", "0", "--quiet",
                                       "--select", "test"])
    assert result.exit_code == 0, result.output
    assert "epoch chosen on TEST" in result.output
    table = (fer_work / "fer2013/train/resnet18/results.md").read_text()
    assert "ON THE TEST PART" in table
    metrics = json.loads((fer_work / "fer2013/train/resnet18/metrics.json").read_text())
    fold = metrics["folds"]["0"]
    assert fold["accuracy"] == max(h["test_accuracy"] for h in fold["history"])


def test_ferplus_soft_label_loss_targets_the_vote_distribution(fer_work: Path) -> None:
    inputs = read_inputs("ferplus", fer_work)
    assert inputs.soft is not None and inputs.soft.shape == (len(inputs.rows),
                                                            len(inputs.classes))
    np.testing.assert_allclose(inputs.soft.sum(1), 1.0, rtol=1e-5)
    assert (inputs.soft.argmax(1) == inputs.rows["target"].to_numpy()).mean() > 0.9
    assert (inputs.soft.max(1) < 1).any()  # real distributions, not one-hot labels
    soft = train("ferplus", fer_work, "resnet18", loss="soft", **FAST)
    hard = train("ferplus", fer_work, "resnet18", **FAST)
    assert soft["config"]["loss"] == "soft" and soft["protocol"] == "ferplus"
    assert soft["folds"]["0"]["history"][0]["train_loss"] != \
        hard["folds"]["0"]["history"][0]["train_loss"]


def test_soft_labels_need_votes(fer_work: Path) -> None:
    result = CliRunner().invoke(main, ["--dataset", "fer2013", "--work", str(fer_work),
                                       "--model", "resnet18", "--loss", "soft"])
    assert result.exit_code == 1 and "--loss soft needs vote distributions" in result.output


def test_mean_class_accuracy_and_clip_accuracy() -> None:
    confusion = np.array([[8, 2, 0], [1, 1, 0], [0, 0, 0]])  # class 2 untested
    assert mean_class_accuracy(confusion) == pytest.approx((0.8 + 0.5) / 2)
    probs = np.array([[0.6, 0.4], [0.2, 0.8], [0.3, 0.7], [0.9, 0.1]])
    clips = np.array(["a", "a", "a", "b"])  # a: mean (0.37, 0.63) → 1; b → 0
    np.testing.assert_array_equal(clip_confusion(probs, np.array([1, 1, 1, 0]), clips, 2),
                                  [[1, 0], [0, 1]])


def test_balanced_epochs_draw_every_class_alike() -> None:
    targets = torch.tensor([0] * 90 + [1] * 9 + [2] * 1)
    sampler = SeededSampler(len(targets), seed=0, shuffle=True, weights=class_weights(targets))
    drawn = np.bincount([int(targets[i]) for i, _ in sampler], minlength=3)
    assert drawn.sum() == 100 and drawn.min() > 20  # about a third each, not 90/9/1
    assert [i for i, _ in sampler] == [i for i, _ in sampler]  # the same draw for an epoch


@pytest.mark.parametrize(("name", "options"), [
    ("esr", {"branches": 3}), ("manet", {}), ("dfr", {"base": "esr", "branches": 3}),
    ("dfr", {"base": "manet"}), ("mafer", {"step": 1, "downsample_prob": 1.0,
                                            "curriculum_images": 0}), ("mafer", {"step": 2}),
], ids=["esr", "manet", "dfr-esr", "dfr-manet", "mafer-step1", "mafer-step2"])
def test_the_new_models_learn_a_batch_of_fer2013_faces(fer_work: Path, name: str,
                                                        options: dict) -> None:
    """ESR, MA-Net, DFR and MAFER on real 48-px FER2013 faces (resized to 64 px, as a run at
    --size 64 reads them): the loss falls below 0.7× its start within 8 steps."""
    inputs = read_inputs("fer2013", fer_work)
    data = FaceDataset(inputs, inputs.part(0, "train"), 64, train=True)
    batch = augment(default_collate([data[(i, 7 + i)] for i in range(8)]))
    torch.manual_seed(0)
    net = create_model(name, len(inputs.classes), **options)
    losses = _learn(net, batch)
    assert all(np.isfinite(losses)) and losses[-1] < 0.7 * losses[0], losses
