"""`fer-train`: a thin click layer over `fer_models.train.train`, generated from the registries.

Its options are this invocation's (the machine, a preset: declared here), the run's
(`fer_models.protocols.TrainOptions`) and every registered model's own (its options dataclass,
`fer_models.models.options` for the built-in ones), built from the dataclasses' fields as
fer-prep's commands are. The command builds them when asked, so a model registered anywhere (a
plugin, a test, after this module is imported) has its options without a line here. An option
several models take is one, its help naming them; every option defaults to None, so one left
unset never overrides a model's own default (which the help shows in brackets).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from fer_models.models import MODELS, options_class
from fer_models.presets import training_presets
from fer_models.protocols import TrainOptions
from fer_prep.cli import LazyChoice, OneLineErrors
from fer_prep.errors import OptionError
from fer_prep.params import choices_of, field_type

EXAMPLE = """\b
Examples:
  fer-train --preset ckplus48 --root /data/CK+
  fer-prep ckplus align --root /data/CK+ && fer-prep folds --dataset ckplus
  fer-train --dataset ckplus --model resnet18 --fold all
  fer-train --dataset ckplus --model fan --at-type self --fold 3 --epochs 60
  fer-prep masks --dataset ckplus && fer-train --dataset ckplus --model fmpn --stage 1
  fer-train --dataset ckplus --model fmpn --stage 2 --pretrained imagenet --resume
  for n in $(seq 1 9); do fer-train --dataset affectnet --model esr --grow --branches $n; done
  fer-train --dataset ckplus --model mafer --step 1 && fer-train --dataset ckplus --model mafer"""


class NumberOr(click.ParamType):
    """A number in a range, or one word beside it (`--fold all`, `--test-blur auto`)."""

    def __init__(self, kind: type, word: str, what: str, low: float | None,
                 high: float | None) -> None:
        self.kind, self.word, self.what, self.low, self.high = kind, word, what, low, high
        self.name = f"{kind.__name__}|{word}"

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        if str(value) == self.word:
            return self.word
        try:
            number = self.kind(str(value))
        except ValueError:
            self.fail(f"{value!r} is neither {self.what} nor {self.word!r}", param, ctx)
        low, high = self.low, self.high
        if (low is not None and number < low) or (high is not None and number > high):
            span = f"{'-inf' if low is None else f'{low:g}'}…" \
                   f"{'inf' if high is None else f'{high:g}'}"
            self.fail(f"{number:g} is out of range {span}", param, ctx)
        return number


def _shown(default: Any) -> str:
    """A default as the help shows it: 1e-3 as 0.001, 10.0 as 10, False as off."""
    if isinstance(default, bool):
        return "on" if default else "off"
    return f"{default:g}" if isinstance(default, float) else str(default)


def _option(name: str, kind: type, meta: Mapping[str, Any], help: str) -> click.Option:
    """The click option of a field of type `kind` with `meta` (`option(...)`'s): a flag for a
    bool, else its type, choices or range; None when not given."""
    flag = "--" + name.replace("_", "-")
    if kind is bool:
        return click.Option([flag, name], is_flag=True, default=None, help=help)
    metavar = meta.get("metavar")
    low, high = meta.get("low"), meta.get("high")
    if meta.get("word"):
        ptype: Any = NumberOr(kind, meta["word"], meta["what"], low, high)
        metavar = f"{metavar}|{meta['word']}"
    elif meta.get("choices") is not None:
        found = meta["choices"]
        ptype = LazyChoice(found) if callable(found) else click.Choice(found)
    elif kind in (int, float) and (low, high) != (None, None):
        ptype = (click.IntRange if kind is int else click.FloatRange)(
            low, high, min_open=bool(meta.get("open_low")))
    else:
        ptype = kind
    return click.Option([flag, name], type=ptype, help=help, metavar=metavar)


def _run_option(field: dataclasses.Field) -> click.Option:
    """The click option of a `TrainOptions` field; its default (if any) in brackets."""
    shown = "" if field.default is None else f" [{_shown(field.default)}]"
    return _option(field.name, field_type(TrainOptions, field.name), field.metadata,
                   f"{field.metadata['help']}{shown}.")


def _model_option(name: str, takers: Sequence[tuple[str, type, dataclasses.Field]]
                  ) -> click.Option:
    """One click option for the field `name` of each model in `takers` (model, options class,
    field): the help names the models (grouped by help and default), the choices are all of
    theirs; a ValueError where their types or ranges differ (a bug in a model's options)."""
    def typed(cls: type, field: dataclasses.Field) -> tuple:
        meta = field.metadata
        return (field_type(cls, field.name), meta.get("low"), meta.get("high"),
                bool(meta.get("open_low")), meta.get("word"))

    first = typed(*takers[0][1:])
    if any(typed(cls, field) != first for _, cls, field in takers):
        raise ValueError(f"option {name} differs in type or range between models "
                         f"{', '.join(model for model, *_ in takers)}")
    groups: dict[tuple[str, str], list[str]] = {}
    for model, _, field in takers:
        groups.setdefault((field.metadata["help"], _shown(field.default)), []).append(model)
    help = "; ".join(f"{', '.join(models)}: {text} [{default}]"
                     for (text, default), models in groups.items())
    metas = [field.metadata for *_, field in takers]
    meta = dict(metas[0])
    if len(metas) > 1 and any(m.get("choices") is not None for m in metas):
        meta["choices"] = lambda: list(dict.fromkeys(c for m in metas for c in choices_of(m) or ()))
    return _option(name, first[0], meta, help + ".")


def _generated(models: Sequence[str]) -> list[click.Option]:
    """The options of a run, then those of `models`: one option per field name."""
    takers: dict[str, list[tuple[str, type, dataclasses.Field]]] = {}
    for model in models:
        cls = options_class(model)
        for field in dataclasses.fields(cls):
            takers.setdefault(field.name, []).append((model, cls, field))
    return [*(_run_option(field) for field in dataclasses.fields(TrainOptions)),
            *(_model_option(name, found) for name, found in takers.items())]


class Command(OneLineErrors, click.Command):
    """fer-train's command: its own options (`invocation`), then the run's and the registered
    models', generated again whenever the registry has changed since they were last asked for;
    user mistakes are one `Error:` line and exit 1, as in fer-prep."""

    @property
    def params(self) -> list[click.Parameter]:
        """One list while the registry stays as it is: click adds its help option to it and
        takes it off again."""
        models = tuple((name, MODELS.get(name)) for name in MODELS.names())
        if models != self._models:
            params = [*self.invocation, *_generated([name for name, _ in models])]
            names = [p.name for p in params]
            twice = sorted({name for name in names if names.count(name) > 1})
            if twice:  # a bug in a model's options
                raise ValueError(f"a model's option is already an option of fer-train: "
                                 f"{', '.join(map(str, twice))}")
            self._models, self._params = models, params
        return self._params

    @params.setter
    def params(self, value: list[click.Parameter]) -> None:
        self.invocation, self._models = value, None


@click.command(cls=Command, context_settings={"help_option_names": ["-h", "--help"]},
               epilog=EXAMPLE)
@click.option("--preset", metavar="RECIPE|FILE",
              help="A training recipe (pipelines/, or a .toml with a [train] table or "
                   "[[train]] runs): its dataset, model and options, each run in order; "
                   "options given here win (recipes: " + ", ".join(training_presets()) + ").")
@click.option("--root", type=click.Path(path_type=Path),
              help="With --preset: the dataset's root, prepared first as the recipe says "
                   "(its stages: align, folds, masks; cached, so a second run only trains).")
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=Path("fer-work"),
              show_default=True, help="Work folder of fer-prep.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True, help="auto: CUDA when present, else CPU.")
@click.option("--precision", type=click.Choice(["auto", "bf16", "fp32"]), default="auto",
              show_default=True,
              help="auto: bf16 autocast (channels_last) on CUDA and on CPUs with native bf16 "
                   "(AVX-512 BF16 or AMX: 2–3× faster), float32 elsewhere.")
@click.option("--resume", is_flag=True, help="Continue each fold from its last.pt.")
@click.option("--workers", type=click.IntRange(0), help="Loader workers [min(4, cores)].")
@click.option("--cache-gb", type=click.FloatRange(0), default=4.0, show_default=True,
              help="Decode the chips once into memory when they fit in this much.")
@click.option("--quiet", is_flag=True, help="No progress bars (epoch lines only).")
def main(preset: str | None, root: Path | None, work: Path, device: str, precision: str,
         workers: int | None, cache_gb: float, resume: bool, quiet: bool, **given: Any) -> None:
    """Train a FER model on fer-prep's faces, folds (and masks), fold by fold.

    Reads WORK/<dataset>/align/ and folds/ (and masks/ for fmpn), never the dataset folders
    (but with --preset and --root, which prepare them first). Writes
    WORK/<dataset>/train/<model>/: metrics.json, results.md (the protocol's table),
    confusion.png, fold_<K>/ (last.pt, best.pt, metrics.json, confusion.png), and prints the
    accuracy per fold and the mean.
    """
    from fer_models.report import accuracy_table
    from fer_models.train import train

    given = {k: v for k, v in given.items() if v is not None}
    runs = [given]
    if preset is not None:
        from fer_models.presets import train_runs

        dataset, recipe_runs = train_runs(preset)
        runs = []
        for run in recipe_runs:  # options given apply to every run; the same run trains once
            merged = {"dataset": dataset, **train_options(run, f"preset {preset}"), **given}
            if merged not in runs:
                runs.append(merged)
        if root is not None:
            from fer_models.presets import prepare
            from fer_prep.cli import Progress

            progress = Progress()
            try:
                prepare(preset, root, work, click.echo, None if quiet else progress)
            finally:
                progress.close()
    elif root is not None:
        raise click.UsageError("--root prepares the faces a --preset names; without a preset, "
                               "prepare them with fer-prep (see the examples)")
    for key in ("dataset", "model"):
        if any(key not in run for run in runs):
            raise click.UsageError(f"Missing option '--{key}' (or a --preset that names it)")
    for run in runs:
        dataset, model = run.pop("dataset"), run.pop("model")
        metrics = train(dataset, work, model, device=device, precision=precision,
                        resume=resume, workers=workers,
                        cache_gb=cache_gb, progress=not quiet, echo=click.echo, **run)
        click.echo(accuracy_table(metrics))
        folder = work / dataset / "train" / metrics["run"]
        click.echo(f"metrics: {folder / 'metrics.json'}, table: {folder / 'results.md'}")


#: the options of the machine and of this invocation, not of the recipe
NOT_IN_PRESETS = tuple(p.name for p in main.invocation)


def train_options(values: dict[str, Any], label: str) -> dict[str, Any]:
    """A recipe run's values, each checked and converted as its fer-train option would be;
    OptionError naming `label` for a key that is not an option a recipe can set."""
    params = {p.name: p for p in main.params}
    ctx = click.Context(main)
    out = {}
    for key, value in values.items():
        param = params.get(key)
        if param is None or key in NOT_IN_PRESETS:
            raise OptionError(f"{label}: [train] {key} is not a fer-train option a recipe can "
                              "set")
        try:
            out[key] = param.type_cast_value(ctx, value)
        except click.BadParameter as exc:
            raise OptionError(f"{label}: [train] {key}: {exc.message}") from None
    return out
