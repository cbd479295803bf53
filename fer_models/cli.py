"""`fer-train`: a thin click layer over `fer_models.train.train`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from fer_models.models import AT_TYPES, BACKBONE_NAMES, list_models
from fer_models.presets import training_presets
from fer_models.protocols import PROTOCOLS, SELECT
from fer_prep.cli import OneLineErrors

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


#: options of the machine and of this invocation, not of the recipe
NOT_IN_PRESETS = ("preset", "root", "work", "device", "precision", "workers", "cache_gb", "resume",
                  "quiet")


class FoldParam(click.ParamType):
    """A fold number or `all`."""

    name = "K|all"

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> int | str:
        if str(value) == "all":
            return "all"
        try:
            return int(str(value))
        except ValueError:
            self.fail(f"{value!r} is neither a fold number nor 'all'", param, ctx)


class BlurParam(click.ParamType):
    """A σ in pixels (0 or more), or `auto`."""

    name = "SIGMA|auto"

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> float | str:
        if str(value) == "auto":
            return "auto"
        try:
            sigma = float(str(value))
        except ValueError:
            self.fail(f"{value!r} is neither a σ in pixels nor 'auto'", param, ctx)
        if not 0 <= sigma <= 20:
            self.fail(f"{sigma:g}: give a σ of 0 to 20 pixels", param, ctx)
        return sigma


class Command(OneLineErrors, click.Command):
    """fer-train's command: user mistakes are one `Error:` line and exit 1, as in fer-prep."""


@click.command(cls=Command, context_settings={"help_option_names": ["-h", "--help"]},
               epilog=EXAMPLE)
@click.option("--preset", metavar="RECIPE|FILE",
              help="A training recipe (pipelines/, or a .toml with a [train] table or "
                   "[[train]] runs): its dataset, model and options, each run in order; "
                   "options given here win (recipes: " + ", ".join(training_presets()) + ").")
@click.option("--root", type=click.Path(path_type=Path),
              help="With --preset: the dataset's root, prepared first as the recipe says "
                   "(its stages: align, folds, masks; cached, so a second run only trains).")
@click.option("--dataset", help="Dataset whose WORK/<dataset>/ to train on.")
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=Path("fer-work"),
              show_default=True, help="Work folder of fer-prep.")
@click.option("--model", type=click.Choice(list_models()), help="Model to train.")
@click.option("--fold", type=FoldParam(),
              help="The fold to train and test, or all of them in turn [all].")
@click.option("--epochs", type=click.IntRange(1), help="Epochs [model's default: 30].")
@click.option("--batch-size", type=click.IntRange(1), help="Batch size [32] (clips, for fan).")
@click.option("--lr", type=click.FloatRange(0, min_open=True),
              help="AdamW learning rate [1e-3; fmpn 1e-4], cosine-annealed over the epochs.")
@click.option("--size", type=click.IntRange(16, 1024), help="Input side in pixels [224].")
@click.option("--seed", type=int, help="Seed of everything [0].")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True, help="auto: CUDA when present, else CPU.")
@click.option("--precision", type=click.Choice(["auto", "bf16", "fp32"]), default="auto",
              show_default=True,
              help="auto: bf16 autocast (channels_last) on CUDA and on CPUs with native bf16 "
                   "(AVX-512 BF16 or AMX: 2–3× faster), float32 elsewhere.")
@click.option("--pretrained", metavar="PATH|imagenet",
              help="Backbone weights: a local file, or torchvision's ImageNet weights if already "
                   "in its local cache. Never downloaded.")
@click.option("--resume", is_flag=True, help="Continue each fold from its last.pt.")
@click.option("--workers", type=click.IntRange(0), help="Loader workers [min(4, cores)].")
@click.option("--cache-gb", type=click.FloatRange(0), default=4.0, show_default=True,
              help="Decode the chips once into memory when they fit in this much.")
@click.option("--backbone", type=click.Choice([*BACKBONE_NAMES, "seresnet50"]),
              help="Trunk [resnet18; mafer: seresnet50, timm's in VGGFace2's layout].")
@click.option("--at-type", type=click.Choice(AT_TYPES),
              help="fan: self attention, or self + relation attention [relation].")
@click.option("--stage", type=click.IntRange(1, 2),
              help="fmpn: 1 = the mask generator alone, 2 = joint [2].")
@click.option("--lambda-mask", type=click.FloatRange(0), help="fmpn: weight of the mask MSE [0.1].")
@click.option("--landmark-weight", type=click.FloatRange(0),
              help="landmark-aux: weight of the landmark L1 [10].")
@click.option("--beta", type=click.FloatRange(0, 1),
              help="manet, dfr --base manet: weight of the local branch's scores and loss "
                   "against the global branch's [0.6].")
@click.option("--grid", type=click.IntRange(1),
              help="manet, dfr --base manet: patches per side of the local branch (P = grid²) "
                   "[2].")
@click.option("--branches", type=click.IntRange(1),
              help="esr, dfr: convolutional branches in the ensemble [9].")
@click.option("--grow", is_flag=True, default=None,
              help="esr, dfr: ESR's training branch by branch: --branches 1 trains run "
                   "<model>-1; --branches N adds branch N to run <model>-(N-1)'s ensemble of "
                   "the same fold (run <model>-N), the base and the trained branches at "
                   "--grow-lr-scale of the learning rate [off: all branches in one run].")
@click.option("--grow-lr-scale", type=click.FloatRange(0),
              help="esr, dfr --grow: learning-rate factor of the shared base and the branches "
                   "already trained [0.1].")
@click.option("--ensemble", type=click.Choice(["vote", "mean"]),
              help="esr, dfr: the ensemble's decision: the branches' majority vote (ESR's) or "
                   "the mean of their softmaxes [vote].")
@click.option("--base", type=click.Choice(["esr", "manet"]),
              help="dfr: the model the diversity loss trains [esr].")
@click.option("--diversity-weight", type=click.FloatRange(0),
              help="dfr: weight of the diversity loss [1].")
@click.option("--gamma", type=click.FloatRange(0, min_open=True),
              help="dfr: γ of the similarity kernel exp(−γ‖a−b‖²) [10].")
@click.option("--stem", type=click.Choice(["imagenet", "small"]),
              help="resnet18: the trunk's stem; small = a 3×3 stride-1 conv, no max-pool, for "
                   "48-px faces [imagenet].")
@click.option("--width", type=click.FloatRange(0, 4, min_open=True),
              help="resnet18: the trunk's channels × W (0.5: a quarter of the compute, for "
                   "FER2013 on a CPU) [1].")
@click.option("--standardize", is_flag=True, default=None,
              help="resnet18: each face to zero mean and unit variance first (lighting, skin "
                   "tone) [off].")
@click.option("--expression", is_flag=True, default=None,
              help="resnet18: also classify each face's MediaPipe blendshape scores and head "
                   "pose (align with the mediapipe backend) beside the image [off].")
@click.option("--step", type=click.IntRange(1, 2),
              help="mafer: 1 = the base on faces at random resolutions (expression labels here, "
                   "VGGFace2 identities in the seed), 2 = expressions from step 1's base [2].")
@click.option("--lr-ft-ratio", type=click.FloatRange(0, min_open=True),
              help="mafer: the base's learning rate as a fraction of --lr [0.01].")
@click.option("--downsample-prob", type=click.FloatRange(0, 1),
              help="mafer step 1: chance a face is degraded, at the start (curriculum) or "
                   "throughout [0.1].")
@click.option("--curriculum-images", type=click.IntRange(0),
              help="mafer step 1: images per +0.1 of that chance; 0 = fixed [35000].")
@click.option("--feature-weight", type=click.FloatRange(0),
              help="mafer step 1: weight of the feature MSE to the frozen starting base; 0 = no "
                   "teacher [0.1].")
@click.option("--test-resolution", type=click.IntRange(0),
              help="mafer: test every face downscaled to N px and back; 0 = as it is [0].")
@click.option("--protocol", type=click.Choice(PROTOCOLS.names()),
              help="How the dataset's papers train and report [the dataset's: fer2013, ferplus, "
                   "rafdb, affectnet, afew; kfold otherwise].")
@click.option("--select", type=click.Choice(SELECT),
              help="The epoch reported: auto (the validation split where the protocol has one, "
                   "else the last), last, validation, or test (chosen on the test part, as "
                   "several seeds do: labelled so) [auto].")
@click.option("--loss", type=click.Choice(["majority", "soft"]),
              help="ferplus: cross-entropy on the label, or on the vote distribution (soft "
                   "labels) [majority].")
@click.option("--rotate", type=click.FloatRange(0, 45), metavar="DEG",
              help="Training augmentation: also turn each face by up to ±DEG degrees (beside "
                   "the crop and the mirror) [0].")
@click.option("--test-blur", type=BlurParam(),
              help="Blur every face tested (validation and test) by a Gaussian of σ px; auto: "
                   "the σ that makes the validation faces as sharp as the training faces, 0 "
                   "where they are not sharper (a copy whose training faces are blurred: the "
                   "shared Kaggle FER2013) [0].")
@click.option("--balanced", is_flag=True, default=None,
              help="Class-balanced training epochs (AffectNet's imbalanced training set).")
@click.option("--quiet", is_flag=True, help="No progress bars (epoch lines only).")
def main(preset: str | None, root: Path | None, work: Path, device: str, precision: str,
         workers: int | None,
         cache_gb: float, resume: bool, quiet: bool, **given: Any) -> None:
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
        from fer_models.presets import train_options, train_runs

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
