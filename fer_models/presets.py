"""Training presets: a paper's row as one command, `fer-train --preset NAME --root DIR`.

A training preset is one of fer-prep's TOML presets (pipelines/) with a `[train]` table: the
dataset, the model and `fer_models.train.train`'s options. Given the dataset's root, the
preset first prepares the faces through fer-prep's runner, cached as every stage is (a second
run reads what the first made): align with the preset's `[align]` table and its `[read]` table
(the dataset reader's options, e.g. CK+'s `frames`), then folds with its `[folds]` table.
Options given on the command line win over the preset's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fer_prep.errors import OptionError
from fer_prep.params import list_presets, load_preset

TRAIN, READ, FOLDS = "train", "read", "folds"
#: what a [train] table must name
REQUIRED = ("dataset", "model")


def training_presets() -> list[str]:
    """The shipped presets with a [train] table."""
    return [name for name in list_presets() if TRAIN in load_preset(name)[1]]


def train_table(preset: str | Path) -> dict[str, Any]:
    """The preset's [train] table; OptionError when it has none or misses the dataset or
    model."""
    label, tables = load_preset(preset)
    table = tables.get(TRAIN)
    if not isinstance(table, dict):
        raise OptionError(f"preset {label} has no [train] table; training presets: "
                          f"{', '.join(training_presets()) or 'none'}")
    missing = [key for key in REQUIRED if key not in table]
    if missing:
        raise OptionError(f"preset {label}: [train] names no {' and no '.join(missing)}")
    return dict(table)


def prepare(preset: str | Path, root: str | Path, work: str | Path,
            echo: Callable[[str], None] = print, progress: Callable | None = None) -> None:
    """Bring the preset's dataset's align and folds stages up to date from `root` (cached);
    echo each stage's summary. `progress`: the runner's progress callback."""
    from fer_prep.runner import run

    _, tables = load_preset(preset)
    dataset = train_table(preset)["dataset"]
    echo(run(dataset, "align", work, root=root, preset=preset, progress=progress,
             **tables.get(READ, {})).summary())
    echo(run(dataset, "folds", work, **tables.get(FOLDS, {})).summary())
