"""Recipes: a paper's protocol as one command, `fer-prep run RECIPE --root DIR [--to STEP]`.

A recipe is a preset (`pipelines/<name>.toml`, or a user's own file) that names its `dataset`.
Its tables are the steps of the chain, run in this order where the recipe has them:

    [video2frame]  the clips' frames (video datasets)
    [align]        the faces; `preset = "fmpn"` at the top inherits that preset's tables, and
                   the recipe's own keys win (`fer_prep.params.load_preset`)
    [folds]        the folds: a scheme or a shipped split
    [masks]        FMPN's pseudo motion masks
    [export]       `format`, `out` (under the work folder; `exports/<recipe>` if not given) and
                   the format's options
    [train]        fer-train's options: one table, or [[train]] runs in order; a list value
                   (ESR's `branches = [1, 2, …]`) is one run per value

`[read]` holds the dataset reader's options (CK+'s `frames`); they and the root go to the stage
that reads the dataset: video2frame where the recipe has it, else align. Each step keeps its
cache (the stages by the runner's up-to-date rule, the export by its marker, training by each
fold's checkpoint: a fold trained on the same inputs with the same settings is kept), so a
second run does nothing. `overrides` (`--set TABLE.KEY=VALUE`) change a value; for train, every
run's.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fer_prep.errors import OptionError
from fer_prep.params import list_presets, load_preset

STEPS = ("video2frame", "align", "folds", "masks", "export", "train")
STAGE_STEPS = ("video2frame", "align", "folds", "masks")  # run by fer-prep's runner
READ, EXPORT, TRAIN, VIDEO_ALIGN = "read", "export", "train", "video-align"
TABLES = (READ, *STEPS[:2], VIDEO_ALIGN, *STEPS[2:])


@dataclass(frozen=True)
class Recipe:
    """A loaded recipe: its name, dataset, tables (overrides applied) and steps in order."""

    name: str
    source: str | Path  # the shipped name or the file: the align stage's preset
    dataset: str
    description: str
    tables: dict[str, Any]
    steps: tuple[str, ...]
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)

    def train_runs(self) -> list[dict[str, Any]]:
        """fer-train's options of each run, in order (a list value expanded, one run each)."""
        table = self.tables.get(TRAIN)
        entries = table if isinstance(table, list) else [table] if table else []
        runs = []
        for entry in entries:
            if entry.get("dataset", self.dataset) != self.dataset:
                raise OptionError(f"recipe {self.name}: [train] dataset {entry['dataset']!r}: a "
                                  f"recipe trains on its own dataset ({self.dataset})")
            lists = [k for k, v in entry.items() if isinstance(v, list)]
            if len(lists) > 1:
                raise OptionError(f"recipe {self.name}: [train] {' and '.join(lists)} are both "
                                  "lists; one list a run (one run per value)")
            values = entry[lists[0]] if lists else [None]
            runs += [{k: v for k, v in entry.items() if k != "dataset"} |
                     ({lists[0]: value} if lists else {}) for value in values]
        return runs

    def export_out(self, work: Path) -> Path:
        """Where the export goes: the [export] table's `out` under `work`."""
        out = Path(str(self.tables.get(EXPORT, {}).get("out", f"exports/{self.name}")))
        return out if out.is_absolute() else work / out


def list_recipes() -> list[str]:
    """The shipped presets that name a dataset (the recipes)."""
    return [name for name in list_presets() if _dataset(load_preset(name)[1])]


def _dataset(tables: dict[str, Any]) -> str | None:
    """A recipe's dataset: its own `dataset`, else its [train] table's (an older preset)."""
    train = tables.get(TRAIN)
    first = train[0] if isinstance(train, list) and train else train or {}
    return tables.get("dataset") or (first.get("dataset") if isinstance(first, dict) else None)


def parse_overrides(items: tuple[str, ...] | list[str]) -> dict[str, dict[str, Any]]:
    """`TABLE.KEY=VALUE` items (`--set`) as tables; VALUE is TOML (`1`, `true`, `[1, 2]`,
    `"x"`), a bare word a string."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        name, sep, text = item.partition("=")
        table, dot, key = name.strip().partition(".")
        if not (sep and dot and table and key):
            raise OptionError(f"--set {item!r}: give TABLE.KEY=VALUE, e.g. train.epochs=1")
        try:
            value = tomllib.loads(f"v = {text.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = text.strip()
        out.setdefault(table, {})[key.replace("-", "_")] = value
    return out


def load_recipe(recipe: str | Path, overrides: dict[str, dict[str, Any]] | None = None
                ) -> Recipe:
    """The recipe `recipe` (a shipped name or a .toml path) with `overrides` applied;
    OptionError when it names no dataset or a table is not a step."""
    label, tables = load_preset(recipe)
    dataset = _dataset(tables)
    if not dataset:
        raise OptionError(f"{label} names no dataset, so it is no recipe; recipes: "
                          f"{', '.join(list_recipes())}")
    tables = dict(tables)
    for table, values in (overrides or {}).items():
        if table not in TABLES:
            raise OptionError(f"--set {table}.…: {table} is not a table of a recipe (tables: "
                              f"{', '.join(TABLES)})")
        own = tables.get(table, {})
        tables[table] = ([{**run, **values} for run in own] if isinstance(own, list)
                         else {**own, **values})
    # align and folds are every chain's; the other steps where the recipe has their table
    steps = tuple(s for s in STEPS if s in tables or s in ("align", "folds"))
    if EXPORT in tables and "format" not in tables[EXPORT]:
        raise OptionError(f"recipe {label}: [export] names no format")
    return Recipe(Path(str(recipe)).stem, recipe, dataset,
                  str(tables.get("description", "")).strip(), tables, steps, overrides or {})


@dataclass
class RecipeResult:
    """What a recipe run did: the steps it ran and where each one's output is."""

    recipe: Recipe
    ran: list[str]
    outputs: dict[str, Path] = field(default_factory=dict)

    def summary(self) -> str:
        lines = [f"recipe {self.recipe.name} ({self.recipe.dataset}): "
                 f"{' → '.join(self.ran)} up to date; outputs:"]
        lines += [f"  {step + ':':12s} {path}" for step, path in self.outputs.items()]
        return "\n".join(lines)


def run_recipe(recipe: str | Path, root: str | Path | None, work: str | Path = "fer-work",
               to: str | None = None, *, overrides: dict[str, dict[str, Any]] | None = None,
               jobs: int | None = None, force: bool = False, device: str = "auto",
               progress: Callable | None = None, echo: Callable[[str], None] = print,
               cluster: str | None = None, scheduler: str | None = None) -> RecipeResult:
    """Run `recipe`'s chain on the dataset at `root` up to step `to` (every step when None),
    each step cached; echo each step's summary. Raises a FerPrepError for every mistake."""
    rec = load_recipe(recipe, overrides)
    work = Path(work)
    steps = rec.steps
    if to is not None:
        if to not in steps:
            raise OptionError(f"--to {to}: recipe {rec.name} has no {to} step (its steps: "
                              f"{', '.join(steps)})")
        steps = steps[:steps.index(to) + 1]
    if root is None and any(s in STAGE_STEPS[:2] for s in steps):
        raise OptionError(f"recipe {rec.name} reads {rec.dataset}: give its --root")
    from fer_prep.runner import resolve

    for step in steps:  # every stage's values checked before the first one runs
        if step in STAGE_STEPS:
            command, kwargs = _stage_call(rec, rec.dataset, step, root, work)
            resolve(rec.dataset, command, work, **kwargs)
    # a mistake in the training runs, or no training package, before hours of align
    runs = train_step().plan(rec.name, rec.train_runs()) if TRAIN in steps else []
    result = RecipeResult(rec, list(steps))
    dataset = rec.dataset  # WORK/<name>/: a class-folder tree read with `name` is renamed
    for step in steps:
        if step in STAGE_STEPS:
            done = _stage(rec, dataset, step, root, work, jobs=jobs, force=force,
                          progress=progress, cluster=cluster, scheduler=scheduler)
            echo(done.summary())
            result.outputs[step] = done.folder
            dataset = done.folder.parent.name
        elif step == EXPORT:
            result.outputs[step] = _export(rec, dataset, work, force, echo)
        else:
            result.outputs[step] = train_step().run(dataset, runs, work, device, force,
                                                    progress is not None, echo)
    return result


def _stage(rec: Recipe, dataset: str, step: str, root: str | Path | None, work: Path,
           **how: Any) -> Any:
    """One stage of the chain through the runner; the first one reads the dataset."""
    from fer_prep.runner import run

    command, kwargs = _stage_call(rec, dataset, step, root, work)
    return run(dataset, command, work, **kwargs, **how)


def _stage_call(rec: Recipe, dataset: str, step: str, root: str | Path | None, work: Path
                ) -> tuple[str, dict[str, Any]]:
    """(command, the runner's keyword arguments) of one stage step of the chain."""
    from fer_prep.datasets import get_dataset
    from fer_prep.stages import stages_for

    commands = stages_for(get_dataset(dataset, work))
    if step not in commands:
        raise OptionError(f"recipe {rec.name}: {step} does not apply to {rec.dataset} (its "
                          f"stages: {', '.join(sorted(commands))})")
    reader = next(s for s in rec.steps if s in STAGE_STEPS)
    if step == "align":  # the recipe is align's preset; overrides win over it
        options = {**rec.overrides.get("align", {}), **rec.overrides.get(VIDEO_ALIGN, {})}
        from_video = options.get("from_video", rec.tables.get("align", {}).get("from_video"))
    else:
        options, from_video = dict(rec.tables.get(step, {})), False
    reads = step == reader or bool(from_video)
    if reads:
        options = {**rec.tables.get(READ, {}), **options}
    return commands[step], {"root": root if reads else None,
                            "preset": rec.source if step == "align" else None, **options}


def _export(rec: Recipe, dataset: str, work: Path, force: bool, echo: Callable[[str], None]
            ) -> Path:
    from fer_prep.exports import export

    table = dict(rec.tables[EXPORT])
    name, out = table.pop("format"), rec.export_out(work)
    table.pop("out", None)
    how = table.pop("how", "link")
    allow_empty = bool(table.pop("allow_empty", False))
    done = export(name, dataset, work, out, how=how, force=force, allow_empty=allow_empty,
                  **table)
    echo(done.summary())
    return out


def train_step() -> Any:
    """What runs a recipe's [train] step: the module registered under the entry point
    `fer_prep.steps: train` (fer_models' `train_step`, in this distribution), with
    `plan(recipe, runs)` and `run(dataset, runs, work, …)`. fer_prep never imports fer_models:
    training sits above data preparation. OptionError saying what to install when it is not
    there (fer-prep without its training extra)."""
    from importlib.metadata import entry_points

    install = "pip install 'fer-prep[train]'"
    found = entry_points(group="fer_prep.steps", name=TRAIN)
    if not found:
        raise OptionError(f"the train step needs fer-prep's training package: {install}")
    try:
        return next(iter(found)).load()
    except ImportError as exc:
        raise OptionError(f"the train step needs fer-prep's training extra ({exc.name} is not "
                          f"installed): {install}") from None


def describe(name: str) -> str:
    """A recipe's one-line description for listings."""
    rec = load_recipe(name)
    return f"{rec.dataset}: {' → '.join(rec.steps)}. {rec.description}"

