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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fer_prep.registry import Registry

if TYPE_CHECKING:
    import numpy as np

SELECT = ("auto", "last", "validation", "test")


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
