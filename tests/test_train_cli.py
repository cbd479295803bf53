"""fer-train is generated from the registries: a model registered after `fer_models.cli` is
imported (a toy, here) has its option in the help, in a recipe's checks and on the command line
that trains it, and every registered model's options dataclass agrees with its constructor."""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner
from torch import nn

from fer_models.cli import main, train_options
from fer_models.models import MODELS, ModelEntry, list_models, model_class, options_class
from fer_models.models.base import Batch, FERModel
from fer_models.models.options import option
from fer_models.protocols import TrainOptions
from fer_models.train import train
from fer_prep.errors import OptionError
from fer_prep.runner import run


@dataclasses.dataclass(frozen=True)
class ToyOptions:
    """The toy's one option."""

    gain: float = option(1.0, "scale of its logits", low=0, open_low=True)


class Toy(FERModel):
    """A linear classifier of each face's mean colour, its logits scaled by `gain`; the class
    records the gain of every instance made."""

    gains: ClassVar[list[float]] = []
    defaults: ClassVar[dict[str, Any]] = {"size": 32, "lr": 1e-2, "epochs": 1, "batch_size": 8}

    def __init__(self, num_classes: int, gain: float = 1.0) -> None:
        super().__init__()
        self.gain = gain
        self.head = nn.Linear(3, num_classes)
        Toy.gains.append(gain)

    def forward(self, batch: Batch) -> Batch:
        return {"logits": self.gain * self.head(self.prepare(batch["image"]).mean((-2, -1)))}


@contextlib.contextmanager
def toy_registered() -> Iterator[None]:
    """`toy` in the model registry for the block, as a plugin would add it."""
    MODELS.add("toy", ModelEntry(f"{__name__}:Toy", f"{__name__}:ToyOptions"))
    Toy.gains.clear()
    try:
        yield
    finally:
        MODELS.unregister("toy")


def _help() -> str:
    result = CliRunner().invoke(main, ["--help"], terminal_width=400)
    assert result.exit_code == 0, result.output
    return result.output


def test_a_model_registered_after_import_has_its_option_in_the_help() -> None:
    assert "--gain" not in _help()
    with toy_registered():
        shown = next(line for line in _help().splitlines() if "--gain" in line)
        assert "toy: scale of its logits [1]." in shown and "[x>0]" in shown
        assert "toy" in next(p for p in main.params if p.name == "model").type.choices
    assert "--gain" not in _help() and "gain" not in {p.name for p in main.params}
    # an option two models share is one, naming both, with their default
    assert "dfr, esr: convolutional branches in the ensemble [9]." in _help()


def test_a_recipe_value_of_a_registered_models_option_is_checked() -> None:
    with toy_registered():
        assert train_options({"model": "toy", "gain": "2.5"}, "recipe r") == {
            "model": "toy", "gain": 2.5}
        with pytest.raises(OptionError, match=r"recipe r: \[train\] gain: 0"):
            train_options({"model": "toy", "gain": 0}, "recipe r")


def test_the_registered_toy_trains_with_its_option(ck_sample: Path, tmp_path: Path) -> None:
    """`--gain 2.5` reaches the model and its run's config; left out, the model's default."""
    work = tmp_path / "work"
    run("ckplus", "align", work, root=ck_sample, jobs=1)
    run("ckplus", "folds", work, k=3)
    args = ["--dataset", "ckplus", "--work", str(work), "--model", "toy", "--fold", "0",
            "--epochs", "1", "--batch-size", "4", "--workers", "0", "--device", "cpu",
            "--quiet"]
    metrics = work / "ckplus/train/toy/metrics.json"
    with toy_registered():
        result = CliRunner().invoke(main, [*args, "--gain", "2.5"])
        assert result.exit_code == 0, result.output
        assert set(Toy.gains) == {2.5}
        config = json.loads(metrics.read_text())["config"]
        assert config["options"] == {"gain": 2.5} and config["size"] == 32  # the toy's default
        Toy.gains.clear()
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        assert set(Toy.gains) == {1.0}
        assert json.loads(metrics.read_text())["config"]["options"] == {}


@pytest.mark.parametrize("name", list_models())
def test_a_models_options_are_its_constructors_with_its_defaults(name: str) -> None:
    """The help shows the options dataclass's defaults: they must be the model's own."""
    takes = inspect.signature(model_class(name).__init__).parameters
    for field in dataclasses.fields(options_class(name)):
        assert field.name in takes, (name, field.name)
        assert takes[field.name].default == field.default, (name, field.name)
        assert field.metadata["help"], (name, field.name)


def test_the_run_options_are_trains_arguments_with_its_defaults() -> None:
    takes = inspect.signature(train).parameters
    for field in dataclasses.fields(TrainOptions):
        if field.name == "backbone":  # a model's option that most models take
            continue
        assert field.name in takes, field.name
        if field.default is not None:
            assert takes[field.name].default == field.default, field.name
