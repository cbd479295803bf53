"""Each registered model's options as fer-train offers them, importable without torch.

One frozen dataclass per model (the registry names it beside the model class, see
`fer_models.models.MODELS`); a field made with `option(...)` carries its help, choices and
range, and its default is the model's own (the constructor's: a test checks that they agree), so
`fer-train` generates its command line from these classes and `--help` loads no model. The help
leaves out the model's name and the default: the CLI adds both. An option several models take
is one field they share (dfr's options are esr's and manet's, and its own).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from fer_models.models import AT_TYPES

#: the choices of some options, checked by the models too
STEMS = ("imagenet", "small")
ENSEMBLES = ("vote", "mean")
BASES = ("esr", "manet")


def option(default: Any, help: str, choices: Sequence[str] | Callable[[], Sequence[str]] | None
           = None, low: float | None = None, high: float | None = None, *,
           open_low: bool = False, word: str | None = None, what: str | None = None,
           metavar: str | None = None) -> Any:
    """A dataclass field with its CLI help, choices and range, as `fer_prep.params.option`
    makes one, and what some of fer-train's options need beside: a range open at its low end
    (`open_low`: a rate above 0), a `word` taken beside the number (`--fold all`, `what`: the
    number's name in an error), a `metavar`."""
    return dataclasses.field(default=default, metadata={
        "help": help, "choices": choices, "low": low, "high": high, "open_low": open_low,
        "word": word, "what": what, "metavar": metavar})


@dataclasses.dataclass(frozen=True)
class ResNetOptions:
    """`resnet18`'s options."""

    stem: str = option("imagenet", "the trunk's stem; small = a 3×3 stride-1 conv, no max-pool, "
                       "for 48-px faces", choices=STEMS)
    width: float = option(1.0, "the trunk's channels × W (0.5: a quarter of the compute, for "
                          "FER2013 on a CPU)", low=0, high=4, open_low=True)
    standardize: bool = option(False, "each face to zero mean and unit variance first "
                               "(lighting, skin tone)")
    expression: bool = option(False, "also classify each face's MediaPipe blendshape scores and "
                              "head pose (align with the mediapipe backend) beside the image")


@dataclasses.dataclass(frozen=True)
class FANOptions:
    """`fan`'s options."""

    at_type: str = option("relation", "self attention, or self + relation attention",
                          choices=AT_TYPES)


@dataclasses.dataclass(frozen=True)
class FMPNOptions:
    """`fmpn`'s options."""

    stage: int = option(2, "1 = the mask generator alone, 2 = joint", low=1, high=2)
    lambda_mask: float = option(0.1, "weight of the mask MSE", low=0)


@dataclasses.dataclass(frozen=True)
class LandmarkAuxOptions:
    """`landmark-aux`'s options."""

    landmark_weight: float = option(10.0, "weight of the landmark L1", low=0)


@dataclasses.dataclass(frozen=True)
class ESROptions:
    """`esr`'s options (and dfr's with --base esr)."""

    branches: int = option(9, "convolutional branches in the ensemble", low=1)
    grow: bool = option(False, "ESR's training branch by branch: --branches 1 trains run "
                        "<model>-1; --branches N adds branch N to run <model>-(N-1)'s ensemble "
                        "of the same fold (run <model>-N), the base and the trained branches at "
                        "--grow-lr-scale of the learning rate; else all branches train in one run")
    grow_lr_scale: float = option(0.1, "with --grow: learning-rate factor of the shared base and "
                                  "the branches already trained", low=0)
    ensemble: str = option("vote", "the ensemble's decision: the branches' majority vote (ESR's) "
                           "or the mean of their softmaxes", choices=ENSEMBLES)


@dataclasses.dataclass(frozen=True)
class MANetOptions:
    """`manet`'s options (and dfr's with --base manet)."""

    beta: float = option(0.6, "weight of the local branch's scores and loss against the global "
                         "branch's", low=0, high=1)
    grid: int = option(2, "patches per side of the local branch (P = grid²)", low=1)


@dataclasses.dataclass(frozen=True)
class DFROptions(MANetOptions, ESROptions):
    """`dfr`'s options: its own, and those of the base it trains (the other base's stay at
    their defaults)."""

    base: str = option("esr", "the model the diversity loss trains (esr's or manet's options "
                       "apply)", choices=BASES)
    diversity_weight: float = option(1.0, "weight of the diversity loss", low=0)
    gamma: float = option(10.0, "γ of the similarity kernel exp(−γ‖a−b‖²)", low=0,
                          open_low=True)


@dataclasses.dataclass(frozen=True)
class MAFEROptions:
    """`mafer`'s options."""

    step: int = option(2, "1 = the base on faces at random resolutions (expression labels here, "
                       "VGGFace2 identities in the seed), 2 = expressions from step 1's base",
                       low=1, high=2)
    lr_ft_ratio: float = option(0.01, "the base's learning rate as a fraction of --lr", low=0,
                                open_low=True)
    downsample_prob: float = option(0.1, "step 1: chance a face is degraded, at the start "
                                    "(curriculum) or throughout", low=0, high=1)
    curriculum_images: int = option(35_000, "step 1: images per +0.1 of that chance; 0 = fixed",
                                    low=0)
    feature_weight: float = option(0.1, "step 1: weight of the feature MSE to the frozen "
                                   "starting base; 0 = no teacher", low=0)
    test_resolution: int = option(0, "test every face downscaled to N px and back; 0 = as it "
                                  "is", low=0)
