"""`fer-prep`: a thin click layer over the Python API (every command is a few lines)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from fer_prep import __version__


def _example(text: str) -> str:
    """A help epilog showing an example, kept verbatim by click."""
    return "\b\nExample:\n  " + text


def work_options(func):
    """--work / --jobs / --force, shared by every stage command."""
    func = click.option("--force", is_flag=True, help="Redo the stage even if up to date.")(func)
    func = click.option(
        "--jobs", "-j", type=int, default=0, show_default=True,
        help="Worker processes (0 = all cores).",
    )(func)
    return click.option(
        "--work", type=click.Path(file_okay=False, path_type=Path), default=Path("fer-work"),
        show_default=True, help="Work folder; a stage writes WORK/<dataset>/<stage>/.",
    )(func)


def align_options(func):
    """Face backend and alignment options; unset ones come from the preset."""
    from fer_prep.align import TEMPLATES
    from fer_prep.faces import list_backends
    from pipelines import list_presets

    options = [
        click.option("--preset", type=click.Choice(list_presets()), default="default",
                     show_default=True, help="Recipe in pipelines/ giving the defaults below."),
        click.option("--backend", type=click.Choice(list_backends()),
                     help="Face detector + landmarks [preset: mediapipe]."),
        click.option("--template", type=click.Choice(TEMPLATES.names()),
                     help="Alignment template [preset: eyes]."),
        click.option("--size", type=click.IntRange(16, 2048), help="Chip side in pixels [224]."),
        click.option("--padding", type=click.FloatRange(0, 2),
                     help="Margin around the template, dlib's convention [0.25]."),
        click.option("--grey/--colour", "grey", default=None, help="Grey or colour chips."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def resolve_align(preset: str, **given: Any):
    """AlignParams from the preset, with every option the user gave winning."""
    from fer_prep.stages.align import AlignParams
    from pipelines import load_preset

    values = dict(load_preset(preset).get("align", {}))
    values.update({k: v for k, v in given.items() if v is not None})
    return AlignParams(**values)


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=_example(
    "fer-prep sample --out sample-data && fer-prep ckplus align --root sample-data/ckplus"))
@click.version_option(__version__, prog_name="fer-prep")
def main() -> None:
    """Turn public FER datasets into aligned faces, landmarks and manifests."""


@main.command(epilog=_example("fer-prep sample --out sample-data"))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder to write the sample datasets into.")
def sample(out: Path) -> None:
    """Write a tiny CK+-layout dataset made from a photograph shipped with scikit-image."""
    from fer_prep.sample import write_ckplus_sample

    root = write_ckplus_sample(out)
    click.echo(f"CK+ sample written to {root}\n  next: fer-prep ckplus align --root {root}")


@main.command("list", epilog=_example("fer-prep list"))
def list_() -> None:
    """List the registered face backends, alignment templates and presets."""
    from fer_prep.align import TEMPLATES
    from fer_prep.faces import list_backends
    from pipelines import list_presets, load_preset

    click.echo("backends:  " + ", ".join(list_backends()))
    click.echo("templates:")
    for name in TEMPLATES.names():
        tpl = TEMPLATES.get(name)
        click.echo(f"  {name:11s} {tpl.size}px pad {tpl.padding}: {tpl.doc}")
    click.echo("presets:")
    for name in list_presets():
        click.echo(f"  {name:11s} {' '.join(load_preset(name).get('description', '').split())}")


@main.group()
def ckplus() -> None:
    """CK+ (Extended Cohn-Kanade) in its original layout."""


@ckplus.command("align", epilog=_example(
    "fer-prep ckplus align --root /data/CK+ --work fer-work --backend dlib-hog --frames all"))
@click.option("--root", type=click.Path(exists=True, file_okay=False, path_type=Path),
              required=True, help="CK+ root holding cohn-kanade-images/ and Emotion/.")
@click.option("--frames", type=click.Choice(["neutral-peak", "peak", "all"]),
              default="neutral-peak", show_default=True,
              help="First + last three frames (FMPN), last three, or every frame.")
@click.option("--include-unlabelled", is_flag=True, help="Also sequences without an Emotion file.")
@align_options
@work_options
def ckplus_align(root: Path, frames: str, include_unlabelled: bool, preset: str, work: Path,
                 jobs: int, force: bool, **align: Any) -> None:
    """Detect, landmark and align the faces of CK+ into WORK/ckplus/align/."""
    from fer_prep.adapters.ckplus import read_ckplus
    from fer_prep.stages.align import align as run_align

    samples = read_ckplus(root, frames=frames, include_unlabelled=include_unlabelled)
    result = run_align(samples, work, resolve_align(preset, **align), jobs=jobs, force=force)
    click.echo(result.summary())
    click.echo(f"  faces:    {result.folder / 'faces'}")


if __name__ == "__main__":
    main()
