"""The [train] step of fer-prep's recipes (`fer-prep run`), registered as the entry point
`fer_prep.steps: train`: fer_prep finds it there and never imports fer_models.

`plan` checks every run's options as fer-train checks its command line, before any stage runs;
`run` trains each run in order, a fold already trained on the same inputs with the same settings
kept (`fer_models.train.KEEP`).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from fer_prep.errors import OptionError
from fer_prep.recipes import TRAIN


def plan(recipe: str, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every [train] run's options, checked and converted; OptionError naming the recipe (or
    what to install, when torch is not there)."""
    from fer_models.cli import train_options

    missing = [name for name in ("torch", "torchvision", "timm") if find_spec(name) is None]
    if missing:
        raise OptionError(f"the train step needs fer-prep's training extra ({missing[0]} is not "
                          "installed): pip install 'fer-prep[train]'")
    checked = [train_options(values, f"recipe {recipe}") for values in runs]
    if not checked:
        raise OptionError(f"recipe {recipe}: [train] holds no run")
    for number, options in enumerate(checked, 1):
        if "model" not in options:
            raise OptionError(f"recipe {recipe}: [train] run {number} names no model")
    return checked


def run(dataset: str, runs: list[dict[str, Any]], work: Path, device: str, force: bool,
        progress: bool, echo: Callable[[str], None]) -> Path:
    """Every run in order: a fold already trained with these settings on these inputs is kept,
    any other trained afresh (`force`: every fold); the last run's metrics.json."""
    from fer_models.report import accuracy_table
    from fer_models.train import KEEP, train

    path = work
    for number, options in enumerate(runs, 1):
        options = dict(options)
        model = options.pop("model")
        echo(f"train run {number}/{len(runs)}: {model} "
             + " ".join(f"{k}={v}" for k, v in sorted(options.items())))
        metrics = train(dataset, work, model, device=device, resume=False if force else KEEP,
                        progress=progress, echo=echo, **options)
        echo(accuracy_table(metrics))
        path = work / dataset / TRAIN / metrics["run"] / "metrics.json"
    return path
