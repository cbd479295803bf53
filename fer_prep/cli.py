"""`fer-prep`: generated from the dataset and stage registries, a thin layer over the Python API.

`fer-prep <dataset> <stage>` exists for every registered dataset and every stage that applies to
it; its options are the dataset reader's and the stage's parameter dataclasses, so a dataset or
stage registered anywhere (a plugin, a test) gets its commands without a line here. The
cross-dataset commands (`folds`, `masks`, `export`, `list`, `sample`) sit beside them. Every
command calls `fer_prep.runner.run` (or `export`) and prints; nothing here decides a result.

Exit codes: 0 done (rows that failed are in the manifest), 1 a user mistake (`Error: …` on one
line: a wrong path, option or input), 2 a bug (its traceback), 130 interrupted.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from fer_prep import __version__
from fer_prep.errors import FerPrepError
from fer_prep.params import field_type

CROSS = ("export", "folds", "list", "masks", "report", "run", "sample", "status")


def _example(text: str) -> str:
    """A help epilog showing an example, kept verbatim by click."""
    return "\b\nExample:\n  " + text


class LazyChoice(click.Choice):
    """A click.Choice whose names come from a registry when first needed (parsing or help), so
    building the command imports nothing."""

    def __init__(self, names: Callable[[], Sequence[str]]) -> None:
        self._names = names
        super().__init__([])

    @property
    def choices(self) -> Sequence[str]:
        return list(self._names())

    @choices.setter
    def choices(self, _: Sequence[str]) -> None:
        pass


class NumberOrAll(click.ParamType):
    """A positive number, or `all` (None: no limit), e.g. --fps all."""

    name = "N|all"

    def __init__(self, kind: type) -> None:
        self.kind = kind

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> Any:
        if value is None or value == "all":
            return None
        try:
            return self.kind(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is neither 'all' nor a number", param, ctx)


def field_options(cls: type, dataset_defaults: dict | None = None) -> list[click.Option]:
    """One click option per field of the dataclass `cls`, from its `option(...)` metadata.

    Every default is None, so an option not given never overrides the preset or the library
    default (timm's rule); the help shows the value the default preset resolves to.
    """
    resolve = getattr(cls, "resolve", None)
    defaults = resolve(None, dataset_defaults) if resolve else None
    out = []
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if not meta:
            continue
        flag = "--" + f.name.replace("_", "-")
        kind = field_type(cls, f.name)
        default = f.default if defaults is None else getattr(defaults, f.name)
        shown = "" if default is None else f" [default: {default}]"
        if kind is bool:
            out.append(click.Option([f"{flag}/--no-{flag[2:]}", f.name], default=None,
                                    help=meta["help"] + shown))
            continue
        if meta.get("choices") is not None:
            found = meta["choices"]
            ptype: Any = LazyChoice(found if callable(found) else lambda c=found: c)
        elif kind is float and f.name == "fps":
            ptype = NumberOrAll(float)
        elif kind in (int, float) and (meta.get("low"), meta.get("high")) != (None, None):
            rng = click.IntRange if kind is int else click.FloatRange
            ptype = rng(meta.get("low"), meta.get("high"))
        else:
            ptype = kind
        out.append(click.Option([flag, f.name], type=ptype, default=None,
                                help=meta["help"] + shown))
    return out


class Progress:
    """The runner's progress callback: a tqdm bar on a terminal, else a line every ~10 %."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.what = ""
        self.start = self.last = time.monotonic()
        self.next_mark = 0

    def __call__(self, what: str, done: int, total: int) -> None:
        if sys.stderr.isatty():
            if self.bar is None or self.what != what:
                from tqdm import tqdm

                self.close()
                self.bar = tqdm(total=total, desc=what, unit="item")
                self.what = what
            self.bar.update(done - self.bar.n)
            return
        now = time.monotonic()
        if what != self.what or done == 0:
            self.what, self.start, self.last, self.next_mark = what, now, now, 1
            return
        if done >= self.next_mark or now - self.last > 30 or done == total:
            rate = done / max(now - self.start, 1e-9)
            eta = (total - done) / rate if rate else float("inf")
            click.echo(f"{what}: {done}/{total} ({rate:.1f} items/s, ETA {eta:.0f} s)", err=True)
            self.last = now
            self.next_mark = done + max(1, total // 10)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class _Echo(logging.Handler):
    """The library's log lines on stderr, as the tool's own: `warning: …`."""

    def emit(self, record: logging.LogRecord) -> None:
        prefix = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
        click.echo(prefix + record.getMessage(), err=True)


def _work_options(shard: bool = True) -> list[click.Option]:
    """--work and how the batches run (and, for one stage, `--shard`)."""
    options = [
        click.Option(["--work"], type=click.Path(file_okay=False, path_type=Path),
                     default=Path("fer-work"), show_default=True,
                     help="Work folder; a stage writes WORK/<dataset>/<stage>/."),
        click.Option(["--jobs", "-j"], type=click.IntRange(0), default=0, show_default=True,
                     help="Worker processes (0 = all cores)."),
        click.Option(["--force"], is_flag=True, help="Redo the stage even if up to date."),
        click.Option(["--cluster"], metavar="local:N",
                     help="Run the batches on a Dask LocalCluster of N worker processes "
                          "(instead of --jobs)."),
        click.Option(["--scheduler"], metavar="tcp://HOST:PORT", envvar="FER_PREP_SCHEDULER",
                     help="Run the batches on a running Dask cluster; its workers must see "
                          "--work at the same path [$FER_PREP_SCHEDULER]."),
        click.Option(["--shard"], metavar="I/N|slurm",
                     help="Map only share I of N of the items (0 ≤ I < N; slurm: this SLURM "
                          "array task's) and save them, no manifest: shards run at once, and "
                          "the same command without --shard then writes the stage."),
    ]
    return options if shard else options[:-1]


DATASET_HELP = ("Dataset whose WORK/<dataset>/ to use: a registered one (`fer-prep list`) or "
                "the --name a class-folder or image-sequence tree was aligned under.")


def _datasets() -> list[str]:
    from fer_prep.datasets import list_datasets

    return list_datasets()


def _cross_stages() -> dict[str, str]:
    """command → stage name of the stages run as `fer-prep <command> --dataset D`."""
    from fer_prep.stages import get_stage, list_stages

    return {get_stage(s).command: s for s in list_stages() if get_stage(s).cross}


def stage_command(stage_name: str, dataset: str | None, name: str) -> click.Command:
    """The command running `stage_name`: on `dataset`, or (cross) on the one --dataset names."""
    from fer_prep.datasets import get_dataset
    from fer_prep.stages import get_stage

    stage = get_stage(stage_name)
    params: list[click.Parameter] = []
    if dataset is None:
        params.append(click.Option(["--dataset"], required=True, help=DATASET_HELP))
    ds = get_dataset(dataset) if dataset else None
    if stage.root != "none":
        what = ds.root_help if ds else "The dataset root."
        if stage.root == "optional":
            what = ROOT_HELP.get(stage_name, what)
        params.append(click.Option(["--root"], type=click.Path(path_type=Path),
                                   required=stage.root == "required", help=what))
    if ds is not None and stage.root != "none" and stage.reader_options:
        params += field_options(ds.Options)
    if stage.Params.preset_tables:
        from fer_prep.params import list_presets

        params.append(click.Option(["--preset"], help="A recipe in pipelines/ (or a .toml "
                                   "file) giving the defaults below [default].",
                                   type=str, metavar="|".join(list_presets()) + "|FILE"))
    params += field_options(stage.Params, ds.defaults if ds else None)
    params += _work_options()

    def callback(work: Path, jobs: int, force: bool, cluster: str | None,
                 scheduler: str | None, shard: str | None, **given: Any) -> None:
        from fer_prep.runner import run

        chosen = given.pop("dataset", dataset)
        root, preset = given.pop("root", None), given.pop("preset", None)
        progress = Progress()
        try:
            result = run(chosen, stage_name, work, root=root, preset=preset, jobs=jobs,
                         force=force, progress=progress, cluster=cluster, scheduler=scheduler,
                         shard=shard, **{k: v for k, v in given.items() if v is not None})
        finally:
            progress.close()
        click.echo(result.summary())

    where = f"fer-prep {dataset} {name}" if dataset else f"fer-prep {name} --dataset ckplus"
    example = EXAMPLES.get(stage_name, "{cmd} --work fer-work")
    return click.Command(name, params=params, callback=callback, help=stage.help(),
                         short_help=stage.help().splitlines()[0],
                         epilog=_example(example.format(cmd=where, dataset=dataset or "ckplus")))


ROOT_HELP = {
    "align-video": "The dataset root, for --from-video.",
    "folds": "The dataset root: folds from its labels alone, no faces needed (CK+).",
}
EXAMPLES = {
    "align": "{cmd} --root /data/{dataset} --work fer-work --backend dlib-hog",
    "align-video": "{cmd} --work fer-work --preset emotion-fan --smooth",
    "video2frame": "{cmd} --root /data/{dataset} --work fer-work --fps all --max-side 720",
    "folds": "{cmd} --work fer-work --scheme fmpn",
    "masks": "{cmd} --work fer-work --warp dense --per-sample",
}


class DatasetGroup(click.Group):
    """`fer-prep <dataset>`: a command per stage that applies to the dataset."""

    def __init__(self, dataset: str) -> None:
        from fer_prep.datasets import get_dataset

        self.dataset = get_dataset(dataset)
        super().__init__(dataset, help=self.dataset.title, short_help=self.dataset.title)

    def list_commands(self, ctx: click.Context) -> list[str]:
        from fer_prep.stages import stages_for

        return sorted(stages_for(self.dataset))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        from fer_prep.stages import stages_for

        stage = stages_for(self.dataset).get(name)
        return None if stage is None else stage_command(stage, self.dataset.name, name)


class OneLineErrors:
    """A click command whose `main` applies the exit-code convention (module docstring): a
    `FerPrepError` or a usage error is one `Error:` line and exit 1; a bug its traceback and 2."""

    debug = False

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        previous = signal.getsignal(signal.SIGTERM)
        try:
            signal.signal(signal.SIGTERM, _terminate)
        except ValueError:  # not the main thread
            previous = None
        try:
            return super().main(*args, standalone_mode=False, **kwargs)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            hint = f" (see {exc.ctx.command_path} --help)" if getattr(exc, "ctx", None) else ""
            click.echo(f"Error: {exc.format_message()}{hint}", err=True)
            sys.exit(1)
        except FerPrepError as exc:
            if self.debug:
                traceback.print_exc()
            click.echo(f"Error: {exc}", err=True)
            sys.exit(1)
        except (KeyboardInterrupt, click.Abort):
            click.echo("Interrupted: run the same command again to resume; what is finished is "
                       "kept.", err=True)
            sys.exit(130)
        except Exception:
            traceback.print_exc()
            click.echo("an internal error (a bug): please report it with the traceback "
                       "above.", err=True)
            sys.exit(2)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


class Root(OneLineErrors, click.Group):
    """The `fer-prep` group: datasets from the registry, then the cross-dataset commands."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*_datasets(), *CROSS]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in CROSS and name in (cross := _cross_stages()):
            return stage_command(cross[name], None, name)
        if name in CROSS:
            return super().get_command(ctx, name)
        return DatasetGroup(name) if name in _datasets() else None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        datasets = [(n, self.get_command(ctx, n).get_short_help_str(70)) for n in _datasets()]
        cross = [(n, self.get_command(ctx, n).get_short_help_str(70)) for n in CROSS]
        with formatter.section("Datasets (fer-prep DATASET STAGE --help)"):
            formatter.write_dl(datasets)
        with formatter.section("Commands"):
            formatter.write_dl(cross)


def _terminate(signum: int, frame: Any) -> None:
    """SIGTERM ends the run as Ctrl-C does: workers stopped, finished items kept."""
    raise KeyboardInterrupt


@click.group(cls=Root, context_settings={"help_option_names": ["-h", "--help"]},
             epilog=_example("fer-prep sample --out sample-data && "
                             "fer-prep ckplus align --root sample-data/ckplus"))
@click.version_option(__version__, prog_name="fer-prep")
@click.option("--debug", is_flag=True, help="Show the traceback of every error.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Turn public FER datasets into aligned faces, landmarks, folds, masks and manifests."""
    OneLineErrors.debug = debug
    log = logging.getLogger("fer_prep")
    if not any(isinstance(h, _Echo) for h in log.handlers):
        log.addHandler(_Echo())
        log.setLevel(logging.INFO)
        log.propagate = False



@main.command("list", epilog=_example("fer-prep list"))
def list_() -> None:
    """List the registered datasets, stages, backends, templates, schemes, exports, presets
    and recipes."""
    from fer_prep.align import TEMPLATES
    from fer_prep.datasets import get_dataset
    from fer_prep.exports import EXPORTS
    from fer_prep.faces import list_backends
    from fer_prep.folds import SCHEMES
    from fer_prep.params import list_presets, load_preset
    from fer_prep.recipes import describe, list_recipes
    from fer_prep.splits import list_splits
    from fer_prep.stages import get_stage, list_stages, stages_for

    click.echo("datasets:")
    for name in _datasets():
        ds = get_dataset(name)
        click.echo(f"  {name:13s} {ds.kind:9s} {' '.join(sorted(stages_for(ds)))}: {ds.title}")
    click.echo("stages:")
    for name in list_stages():
        stage = get_stage(name)
        click.echo(f"  {name:13s} → WORK/<dataset>/{stage.folder}/  "
                   f"{stage.help().splitlines()[0]}")
    click.echo("backends:     " + ", ".join(list_backends()))
    click.echo("templates:")
    for name in TEMPLATES.names():
        tpl = TEMPLATES.get(name)
        click.echo(f"  {name:13s} {tpl.size}px pad {tpl.padding}: {tpl.doc}")
    click.echo("fold schemes: " + ", ".join(SCHEMES.names()))
    click.echo("exports:      " + ", ".join(EXPORTS.names()))
    click.echo("splits:       " + ", ".join(list_splits()))
    recipes = list_recipes()
    click.echo("presets:")
    for name in list_presets():
        if name not in recipes:
            text = " ".join(load_preset(name)[1].get("description", "").split())
            click.echo(f"  {name:13s} {text}")
    click.echo("recipes (fer-prep run NAME --root DIR):")
    for name in recipes:
        click.echo(f"  {name:24s} {describe(name)}")


@main.command(epilog=_example("fer-prep sample --out sample-data"))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder to write the sample datasets into.")
@click.option("--dataset", "only", multiple=True, type=LazyChoice(_datasets),
              help="Only this dataset's sample (repeatable) [every dataset's].")
def sample(out: Path, only: tuple[str, ...]) -> None:
    """Write a tiny sample of every dataset in its original layout (made from a photograph
    shipped with scikit-image), for demos and tests without the real data."""
    from fer_prep.datasets import get_dataset

    for name in only or _datasets():
        root = get_dataset(name).write_sample(out)
        click.echo(f"{name} sample written to {root}")


@main.command("export", epilog=_example(
    "fer-prep export fmpn --dataset ckplus --work fer-work --out FMPN-FER/datasets/CKPlus\n"
    "  fer-prep export emotion-fan --dataset afew --out Emotion-FAN/data\n"
    "  fer-prep export imagefolder --dataset ckplus --out ck-folds --copy\n"
    "  fer-prep export landmark-driven --dataset ckplus --out ck-ldfer --size 48"))
@click.argument("format_", metavar="FORMAT", type=LazyChoice(lambda: _exports()))
@click.option("--dataset", required=True, help=DATASET_HELP)
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=Path("fer-work"),
              show_default=True, help="Work folder holding WORK/<dataset>/folds/ and align/.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder to write (the seed's data root).")
@click.option("--link/--copy", default=True, show_default=True,
              help="Faces as hard links (symbolic links across filesystems), or as copies.")
@click.option("--size", type=click.IntRange(16, 2048),
              help="landmark-driven only: image side in pixels [48, the seed's --image_width].")
@click.option("--force", is_flag=True,
              help="Write into an --out holding other files (replacing only our files).")
@click.option("--allow-empty", is_flag=True,
              help="Write an export the seed's loader would fail on (an empty test fold, a test "
                   "class without its mask) instead of refusing.")
def export_(format_: str, dataset: str, work: Path, out: Path, link: bool, size: int | None,
            force: bool, allow_empty: bool) -> None:
    """Write the folds of a dataset, with its faces, in a seed paper's own layout.

    fmpn: FMPN-FER; emotion-fan: Emotion-FAN; imagefolder: torchvision / MA-Net;
    landmark-driven: Landmark-Driven FER. A face file that is missing is named and left out.
    """
    from fer_prep.exports import export

    if size is not None and format_ != "landmark-driven":
        raise click.UsageError("--size applies to landmark-driven only")
    options = {} if size is None else {"size": size}
    result = export(format_, dataset, work, out, how="link" if link else "copy", force=force,
                    allow_empty=allow_empty, **options)
    for message in result.skipped:
        click.echo(f"warning: {message}", err=True)
    click.echo(result.summary())


def _steps() -> list[str]:
    from fer_prep.recipes import STEPS

    return list(STEPS)


@main.command("run", epilog=_example(
    "fer-prep run fmpn-ckplus --root /data/CK+ --work fer-work --to masks\n"
    "  fer-prep run emotion-fan-afew --root /data/AFEW --set train.epochs=60\n"
    "  fer-prep run my-protocol.toml --root /data/RAF-DB/basic"))
@click.argument("recipe", metavar="RECIPE")
@click.option("--root", type=click.Path(path_type=Path),
              help="The dataset's root, as its `fer-prep DATASET align --root` takes it.")
@click.option("--to", type=LazyChoice(_steps),
              help="Stop after this step [the recipe's last].")
@click.option("--set", "sets", multiple=True, metavar="TABLE.KEY=VALUE",
              help="Change one of the recipe's values, e.g. train.epochs=1, folds.k=5, "
                   "align.size=112 (a TOML value; repeatable; train: every run's).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True, help="The train step's device.")
def run_(recipe: str, root: Path | None, to: str | None, sets: tuple[str, ...], device: str,
         work: Path, jobs: int, force: bool, cluster: str | None, scheduler: str | None) -> None:
    """Run a paper's protocol, a recipe in pipelines/ (`fer-prep list`) or your own .toml:
    video2frame, align, folds, masks, export and train as it says, each step cached (a second
    run does nothing), then print where every output is."""
    from fer_prep.recipes import parse_overrides, run_recipe

    progress = Progress()
    try:
        result = run_recipe(recipe, root, work, to, overrides=parse_overrides(sets), jobs=jobs,
                            force=force, device=device, progress=progress, echo=click.echo,
                            cluster=cluster, scheduler=scheduler)
    finally:
        progress.close()
    click.echo(result.summary())


run_.params += _work_options(shard=False)


@main.command(epilog=_example("fer-prep status --work fer-work"))
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=Path("fer-work"),
              show_default=True, help="The work folder to look at.")
@click.option("--dataset", help="Only this dataset [every dataset in the work folder].")
def status(work: Path, dataset: str | None) -> None:
    """Each dataset's stages in a work folder: rows by status, complete / partial / stale, the
    parameters that differ from the defaults, and the command to run next."""
    from fer_prep.reports.status import format_status, work_status

    click.echo(format_status(work_status(work, dataset)), nl=False)


@main.command(epilog=_example("fer-prep report --work fer-work --out report.html"))
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=Path("fer-work"),
              show_default=True, help="The work folder to report on.")
@click.option("--dataset", help="Only this dataset [every dataset in the work folder].")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="The HTML file to write [WORK/report.html].")
@click.option("--screenshot", type=click.Path(dir_okay=False, path_type=Path),
              help="Also save a PNG of the page's top as headless Chromium draws it.")
def report(work: Path, dataset: str | None, out: Path | None, screenshot: Path | None) -> None:
    """One self-contained HTML page to check a work folder by eye: stages, failures, faces per
    class, sources with landmarks, the worst alignments, clips over time, masks, folds and
    training runs."""
    from fer_prep.reports import report as reporting

    page = reporting.build_report(work, dataset, out)
    click.echo(f"report: {page}")
    if screenshot is not None:
        click.echo(f"screenshot: {reporting.screenshot(page, screenshot)}")


def _exports() -> list[str]:
    from fer_prep.exports import EXPORTS

    return EXPORTS.names()


if __name__ == "__main__":
    main()
