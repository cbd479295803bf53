"""Training recipes: a paper's row as one command, `fer-train --preset NAME --root DIR`.

A training preset is a recipe (`fer_prep.recipes`: a preset in pipelines/ that names its
dataset) with a `[train]` table, or `[[train]]` runs in order: the model and fer-train's
options. Given the dataset's root, the recipe's stages run first through fer-prep's runner,
cached as every stage is (a second run reads what the first made); then each run trains.
Options given on the command line win over the recipe's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fer_prep.errors import OptionError
from fer_prep.params import load_preset
from fer_prep.recipes import STAGE_STEPS, TRAIN, list_recipes, load_recipe, run_recipe


def training_presets() -> list[str]:
    """The shipped recipes with a [train] table."""
    return [name for name in list_recipes() if TRAIN in load_preset(name)[1]]


def train_runs(preset: str | Path) -> tuple[str, list[dict[str, Any]]]:
    """(dataset, every run's options) of a training recipe; OptionError when it has none."""
    if TRAIN not in load_preset(preset)[1]:
        raise OptionError(f"preset {preset} has no [train] table; training presets: "
                          f"{', '.join(training_presets()) or 'none'}")
    recipe = load_recipe(preset)
    return recipe.dataset, recipe.train_runs()


def prepare(preset: str | Path, root: str | Path, work: str | Path,
            echo: Callable[[str], None] = print, progress: Callable | None = None) -> None:
    """Bring the recipe's stages (align, folds, and masks where it has them) up to date from
    `root` (cached); echo each stage's summary. `progress`: the runner's progress callback."""
    recipe = load_recipe(preset)
    last = [step for step in recipe.steps if step in STAGE_STEPS][-1]
    run_recipe(preset, root, work, to=last, echo=echo, progress=progress)
