"""`fer-prep`: a thin click layer over the Python API (every command is a few lines)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import click

from fer_prep import __version__


def _example(text: str) -> str:
    """A help epilog showing an example, kept verbatim by click."""
    return "\b\nExample:\n  " + text


def root_option(help_text: str, required: bool = True):
    """--root: the dataset folder in its original published layout."""
    return click.option("--root", type=click.Path(exists=True, file_okay=False, path_type=Path),
                        required=required, help=help_text)


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
        click.option("--format", type=click.Choice(["png", "jpg"]),
                     help="Chip files: png (lossless) or jpg (q95, faster) [png; jpg for video]."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def resolve_align(preset: str, video: bool = False, **given: Any):
    """AlignParams from the preset (its `[video-align]` over `[align]` for clips), every option
    the user gave winning."""
    from fer_prep.stages.align import AlignParams
    from pipelines import load_preset

    recipe = load_preset(preset)
    values = dict(recipe.get("align", {}))
    if video:
        values.update(recipe.get("video-align", {}))
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
    """Write tiny CK+ and AFEW datasets made from a photograph shipped with scikit-image."""
    from fer_prep.sample import SampleError, write_afew_sample, write_ckplus_sample

    ck = write_ckplus_sample(out)
    click.echo(f"CK+ sample written to {ck}\n  next: fer-prep ckplus align --root {ck}")
    try:
        afew_root = write_afew_sample(out)
    except SampleError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"AFEW sample written to {afew_root}\n"
               f"  next: fer-prep afew video2frame --root {afew_root} && fer-prep afew align")


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


def _names(module: str, registry: str) -> list[str]:
    """The names in `module.registry` (fold schemes, export formats) for a click.Choice."""
    return getattr(importlib.import_module(module), registry).names()


@main.command("folds", epilog=_example(
    "fer-prep folds --dataset ckplus --work fer-work --scheme fmpn\n"
    "  fer-prep folds --dataset ckplus --root /data/CK+ --scheme emotion-fan   # labels only\n"
    "  fer-prep folds --dataset afew --split afew-emotion-fan-v1               # scheme file"))
@click.option("--dataset", required=True, help="Dataset whose WORK/<dataset>/align/ to read.")
@click.option("--scheme", type=click.Choice(_names("fer_prep.folds", "SCHEMES")),
              help="Fold scheme [subject-kfold; file when --split is given].")
@click.option("--k", type=click.IntRange(2), default=10, show_default=True,
              help="Number of folds (k-fold schemes).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed (subject-kfold).")
@root_option("CK+ only: folds from its Emotion/ labels alone, no faces needed.", required=False)
@click.option("--split", help="Scheme file: a shipped split's name or a split CSV.")
@work_options
def folds_(dataset: str, scheme: str | None, k: int, seed: int, root: Path | None,
           split: str | None, work: Path, jobs: int, force: bool) -> None:
    """Put every sample in a cross-validation fold; write WORK/<dataset>/folds/.

    Writes a manifest (sample → fold) and fold_<K>/train.csv, test.csv. Subject schemes never
    put one subject in train and test of a fold. One process: --jobs is ignored.
    """
    from fer_prep.stages.folds import folds

    scheme = scheme or ("file" if split else "subject-kfold")
    try:
        result = folds(dataset, work, scheme, k, seed, root=root, split_file=split, force=force)
    except (KeyError, FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc.args[0] if exc.args else exc)) from None
    click.echo(result.summary())
    click.echo(f"  folds:    {result.folder}/fold_<K>/{{train,test}}.csv")


@main.command("export", epilog=_example(
    "fer-prep export fmpn --dataset ckplus --work fer-work --out FMPN-FER/datasets/CKPlus\n"
    "  fer-prep export emotion-fan --dataset afew --out Emotion-FAN/data\n"
    "  fer-prep export imagefolder --dataset ckplus --out ck-folds --copy\n"
    "  fer-prep export landmark-driven --dataset ckplus --out ck-ldfer --size 48"))
@click.argument("format_", metavar="FORMAT",
                type=click.Choice(_names("fer_prep.exports", "EXPORTS")))
@click.option("--dataset", required=True, help="Dataset whose WORK/<dataset>/folds/ to export.")
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=Path("fer-work"),
              show_default=True, help="Work folder holding WORK/<dataset>/folds/ and align/.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder to write (the seed's data root).")
@click.option("--link/--copy", default=True, show_default=True,
              help="Faces as hard links (symbolic links across filesystems), or as copies.")
@click.option("--size", type=click.IntRange(16, 2048),
              help="landmark-driven only: image side in pixels [48, the seed's --image_width].")
@click.option("--force", is_flag=True,
              help="Write into an --out holding other files (replacing only our names).")
def export_(format_: str, dataset: str, work: Path, out: Path, link: bool, size: int | None,
            force: bool) -> None:
    """Write the folds of a dataset, with its faces, in a seed paper's own layout.

    fmpn: FMPN-FER; emotion-fan: Emotion-FAN; imagefolder: torchvision / MA-Net;
    landmark-driven: Landmark-Driven FER. A face file that is missing is named and left out.
    """
    from fer_prep.exports import export

    if size is not None and format_ != "landmark-driven":
        raise click.UsageError("--size applies to landmark-driven only")
    options = {} if size is None else {"size": size}
    try:
        result = export(format_, dataset, work, out, how="link" if link else "copy",
                        force=force, **options)
    except KeyError as exc:  # an unknown name; its message lists the valid ones
        raise click.ClickException(str(exc.args[0])) from None
    except (OSError, ValueError) as exc:  # --out taken, no folds yet, a dataset the format lacks
        raise click.ClickException(str(exc)) from None
    for message in result.skipped:
        click.echo(f"warning: {message}", err=True)
    click.echo(result.summary())


@main.command("masks", epilog=_example(
    "fer-prep ckplus align --root /data/CK+ --preset fmpn && fer-prep masks --dataset ckplus\n"
    "  fer-prep masks --dataset ckplus --folds fmpn --warp dense --per-sample\n"
    "  fer-prep export fmpn --dataset ckplus --out FMPN-FER/datasets/CKPlus   # imgs_res/"))
@click.option("--dataset", required=True, help="Dataset whose WORK/<dataset>/align/ to read.")
@click.option("--folds", "fold_scheme",
              type=click.Choice([s for s in _names("fer_prep.folds", "SCHEMES") if s != "file"]),
              help="Make these folds first (fmpn: FMPN's published ones where shipped) "
                   "[the folds as they stand; fmpn's if there are none].")
@click.option("--per-sample", is_flag=True, help="Also write each peak face's own map.")
@click.option("--size", type=click.IntRange(8, 2048), help="Mask side in pixels [the chips'].")
@click.option("--blur", type=click.FloatRange(0),
              help="Gaussian σ in mask pixels, 0 = none [FMPN's: 1.5 per 70 px].")
@click.option("--warp", type=click.Choice(["similarity", "dense"]), default="similarity",
              show_default=True, help="similarity: the chips as aligned; dense: each neutral "
                                      "warped onto its peak over the 68 landmarks first.")
@click.option("--equalize/--no-equalize", default=True, show_default=True,
              help="Histogram-equalise the masks, as FMPN's are.")
@work_options
def masks_(dataset: str, fold_scheme: str | None, per_sample: bool, size: int | None,
           blur: float | None, warp: str, equalize: bool, work: Path, jobs: int,
           force: bool) -> None:
    """Pseudo facial-motion masks (FMPN-FER): per fold and class, the mean |peak − neutral| of
    the aligned faces of the fold's training part.

    Writes WORK/<dataset>/masks/<fold>/<class>.png (FMPN's class order), panel.png (all masks
    in one picture) and a manifest. Needs a neutral and a peak face of each sequence.
    """
    from fer_prep.stages.masks import masks

    try:
        result = masks(dataset, work, folds=fold_scheme, per_sample=per_sample, size=size,
                       blur=blur, warp=warp, equalize=equalize, jobs=jobs, force=force)
    except (KeyError, FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc.args[0] if exc.args else exc)) from None
    click.echo(result.summary())


@main.group()
def ckplus() -> None:
    """CK+ (Extended Cohn-Kanade) in its original layout."""


@ckplus.command("align", epilog=_example(
    "fer-prep ckplus align --root /data/CK+ --work fer-work --backend dlib-hog --frames all"))
@root_option("CK+ root holding cohn-kanade-images/ and Emotion/.")
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


def frame_options(func):
    """--fps / --max-side: which frames come out of a video, and how large."""
    func = click.option("--max-side", type=click.IntRange(16), default=None,
                        help="Shrink frames to fit PX × PX (never enlarged).")(func)
    return click.option("--fps", default="all", show_default=True,
                        help="Every frame ('all') or N frames per second.")(func)


def _fps(value: str) -> float | None:
    if value == "all":
        return None
    try:
        fps = float(value)
    except ValueError:
        message = f"{value!r} is neither 'all' nor a number"
        raise click.BadParameter(message, param_hint="--fps") from None
    if fps <= 0:
        raise click.BadParameter("must be positive", param_hint="--fps")
    return fps


@main.group()
def afew() -> None:
    """AFEW (EmotiW) videos in their original layout."""


@afew.command("video2frame", epilog=_example(
    "fer-prep afew video2frame --root /data/AFEW --work fer-work --fps all --max-side 720"))
@root_option("AFEW root holding Train_AFEW/ and Val_AFEW/.")
@frame_options
@click.option("--quality", type=click.IntRange(2, 31), default=2, show_default=True,
              help="JPEG quality as ffmpeg's -q:v (2 best, 31 worst).")
@work_options
def afew_video2frame(root: Path, fps: str, quality: int, max_side: int | None, work: Path,
                     jobs: int, force: bool) -> None:
    """Extract every frame of every clip into WORK/afew/frames/<split>/<Class>/<clip>/."""
    from fer_prep.adapters.afew import read_afew
    from fer_prep.stages.video2frame import FrameParams, video2frame

    params = FrameParams(fps=_fps(fps), quality=quality, max_side=max_side)
    result = video2frame(read_afew(root), work, params, jobs=jobs, force=force)
    click.echo(result.summary())
    click.echo(f"  frames:   {result.folder}")


@afew.command("align", epilog=_example(
    "fer-prep afew align --work fer-work --backend mediapipe --smooth\n"
    "  fer-prep afew align --from-video --root /data/AFEW --preset emotion-fan"))
@click.option("--smooth", is_flag=True, help="Smooth landmarks over time before cutting chips.")
@click.option("--from-video", is_flag=True,
              help="Decode the videos directly (needs --root); no frame files are written.")
@root_option("AFEW root, for --from-video.", required=False)
@frame_options
@align_options
@work_options
def afew_align(smooth: bool, from_video: bool, root: Path | None, fps: str,
               max_side: int | None, preset: str, work: Path, jobs: int, force: bool,
               **align: Any) -> None:
    """Align every frame of every clip into WORK/afew/align/, following faces through clips.

    Reads the frames of `afew video2frame` (or, with --from-video, the videos). A frame with no
    face borrows the nearest detected frame's landmarks (status `borrowed`); a clip without any
    face gives `no_face` rows. --fps / --max-side apply with --from-video.
    """
    from fer_prep.manifest import read_manifest
    from fer_prep.stages.align_video import ClipParams, align_clips, clips_from_frames

    if from_video:
        if root is None:
            raise click.UsageError("--from-video needs --root (the AFEW folder)")
        from fer_prep.adapters.afew import read_afew

        clips = read_afew(root)
        clip = ClipParams(smooth=smooth, from_video=True, fps=_fps(fps), max_side=max_side)
    else:
        frames_dir = work / "afew" / "frames"
        try:
            frames = read_manifest(frames_dir)
        except FileNotFoundError as exc:
            raise click.ClickException(f"{exc}: `fer-prep afew video2frame` makes it") from None
        clips = clips_from_frames(frames, frames_dir)
        clip = ClipParams(smooth=smooth)
    params = resolve_align(preset, video=True, **align)
    result = align_clips(clips, work, params, clip, jobs=jobs, force=force)
    click.echo(result.summary())
    click.echo(f"  faces:    {result.folder / 'faces'}")


if __name__ == "__main__":
    main()
