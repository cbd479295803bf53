"""Evaluation protocols by name: how each dataset's papers train, choose the epoch and report.

- `kfold`: the folds (CK+, Oulu-CASIA, MMI by subject; JAFFE one subject out); the last
  epoch; accuracy per fold, mean ± std.
- `fer2013`: train on Training, choose the epoch on PublicTest, report PrivateTest accuracy.
- `ferplus`: FERPlus's train / valid / test (the same Usage parts), the epoch chosen on valid;
  test accuracy; `loss="soft"` is cross-entropy on the vote distribution.
- `rafdb`: the official train / test, the last epoch; overall and mean class accuracy.
- `affectnet`: training / validation as test (7 or 8 classes as prepared), the last epoch;
  accuracy and mean class accuracy.
- `afew`: Train / Val, the last epoch; clip accuracy (a frame model's mean softmax over a clip).

A dataset names its own (`Dataset.protocol`; `kfold` otherwise) and `--protocol` overrides it.
`select="test"` chooses the epoch by test accuracy, as several seeds do: the run says so in
metrics.json and results.md, since that figure is chosen on the test set.

`TrainOptions` declares the options of a run that every model takes (fer-train generates them,
beside each model's own from `fer_models.models.options`); it imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fer_models.models import BACKBONE_NAMES, list_models
from fer_models.models.options import option
from fer_prep.registry import Registry

if TYPE_CHECKING:
    import numpy as np

SELECT = ("auto", "last", "validation", "test")
LOSSES = ("majority", "soft")


@dataclass(frozen=True)
class Protocol:
    """What a protocol trains on and reports."""

    doc: str
    validation: bool = False  # chooses the epoch on the dataset's validation split
    metrics: tuple[str, ...] = ("accuracy",)  # in the order results.md shows them
    clips: bool = False  # scores a clip (its frames' mean softmax), not each frame
    soft: bool = False  # offers the soft-label loss (FER+'s vote distribution)
    folds: bool = True  # reports mean ± std over folds (else one split)


PROTOCOLS: Registry[Protocol] = Registry("protocol")
PROTOCOLS.add("kfold", Protocol("k folds (by subject where the folds are), mean ± std"))
PROTOCOLS.add("fer2013", Protocol("train Training, choose the epoch on PublicTest, report "
                                  "PrivateTest", validation=True, folds=False))
PROTOCOLS.add("ferplus", Protocol("FERPlus's train / valid / test; majority or soft-label loss",
                                  validation=True, soft=True, folds=False))
PROTOCOLS.add("rafdb", Protocol("official train / test: overall and mean class accuracy",
                                metrics=("accuracy", "mean_class_accuracy"), folds=False))
PROTOCOLS.add("affectnet", Protocol("training / validation as test: accuracy and mean class "
                                    "accuracy", metrics=("accuracy", "mean_class_accuracy"),
                                    folds=False))
PROTOCOLS.add("afew", Protocol("Train / Val, clip accuracy", metrics=("clip_accuracy",),
                               clips=True, folds=False))


@dataclass(frozen=True)
class TrainOptions:
    """The options of a run beside the model's own (`fer_models.train.train`'s arguments, and
    `backbone`, which most models take), as fer-train and a recipe's [train] give them. None:
    the model's or the dataset's default, which the help names in brackets."""

    dataset: str | None = option(None, "Dataset whose WORK/<dataset>/ to train on")
    model: str | None = option(None, "Model to train", choices=list_models)
    fold: int | str = option("all", "The fold to train and test, or all of them in turn",
                             word="all", what="a fold number", metavar="K")
    epochs: int | None = option(None, "Epochs [model's default: 30]", low=1)
    batch_size: int | None = option(None, "Batch size [32] (clips, for fan)", low=1)
    lr: float | None = option(None, "AdamW learning rate [1e-3; fmpn 1e-4], cosine-annealed over "
                              "the epochs", low=0, open_low=True)
    size: int | None = option(None, "Input side in pixels [224]", low=16, high=1024)
    seed: int = option(0, "Seed of everything")
    pretrained: str | None = option(None, "Backbone weights: a local file, or torchvision's "
                                    "ImageNet weights if already in its local cache. Never "
                                    "downloaded", metavar="PATH|imagenet")
    backbone: str | None = option(None, "Trunk [resnet18; mafer: seresnet50, timm's in "
                                  "VGGFace2's layout]", choices=(*BACKBONE_NAMES, "seresnet50"))
    protocol: str | None = option(None, "How the dataset's papers train and report [the "
                                  "dataset's: fer2013, ferplus, rafdb, affectnet, afew; kfold "
                                  "otherwise]", choices=PROTOCOLS.names)
    select: str = option("auto", "The epoch reported: auto (the validation split where the "
                         "protocol has one, else the last), last, validation, or test (chosen "
                         "on the test part, as several seeds do: labelled so)", choices=SELECT)
    loss: str = option("majority", "ferplus: cross-entropy on the label, or on the vote "
                       "distribution (soft labels)", choices=LOSSES)
    rotate: float = option(0.0, "Training augmentation: also turn each face by up to ±DEG "
                           "degrees (beside the crop and the mirror)", low=0, high=45,
                           metavar="DEG")
    test_blur: float | str = option(0.0, "Blur every face tested (validation and test) by a "
                                    "Gaussian of σ px; auto: the σ that makes the validation "
                                    "faces as sharp as the training faces, 0 where they are not "
                                    "sharper (a copy whose training faces are blurred: the "
                                    "shared Kaggle FER2013)", low=0, high=20, word="auto",
                                    what="a σ in pixels", metavar="SIGMA")
    balanced: bool = option(False, "Class-balanced training epochs (AffectNet's imbalanced "
                            "training set)")


#: what results.md calls each metric
TITLES = {"accuracy": "accuracy %", "mean_class_accuracy": "mean class accuracy %",
          "clip_accuracy": "clip accuracy %"}


def selection(protocol: Protocol, select: str, has_validation: bool) -> str:
    """The epoch rule a run uses: `auto` is the validation split where the protocol has one
    (and the data holds it), else the last epoch."""
    if select == "auto":
        return "validation" if protocol.validation and has_validation else "last"
    return select


def mean_class_accuracy(confusion: np.ndarray) -> float | None:
    """The mean over the classes tested of each one's recall (RAF-DB's "average accuracy")."""
    import numpy as np

    confusion = np.asarray(confusion)
    tested = confusion.sum(1) > 0
    if not tested.any():
        return None
    return float((np.diag(confusion)[tested] / confusion.sum(1)[tested]).mean())


def clip_confusion(probs: np.ndarray, targets: np.ndarray, clips: np.ndarray, n: int
                   ) -> np.ndarray:
    """The confusion matrix of clips: each clip's label against the argmax of its frames'
    mean probabilities."""
    import numpy as np

    confusion = np.zeros((n, n), np.int64)
    for clip in np.unique(clips):
        frames = clips == clip
        confusion[targets[frames][0], probs[frames].mean(0).argmax()] += 1
    return confusion
