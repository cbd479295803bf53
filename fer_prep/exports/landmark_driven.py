"""Landmark-Driven FER's inputs (RainbowRui/Landmark-Driven-Facial-Expression-Recognition).

    images/angry/S055_004_00000026.png    grey, SIZE × SIZE (the seed's --image_width: 48)
    images/angry/S055_004_00000026.txt    136 lines `%.4f`: x0 y0 x1 y1 … of the 68 points, in
                                          that image's pixels
    fold_0/train_images.txt               `./images/angry/S055_004_00000026.png`, one a line
    fold_0/train_labels.txt               the FER2013 code of each, in the same order
    fold_0/validation_images.txt          the fold's test part (+ validation_labels.txt)

Source: `datagen.py` (TrainSet: image paths one a line, labels by `np.loadtxt`, the landmark file
is the image path with its last three letters replaced by `txt`, read by `np.loadtxt` into
(68, 2); images read grey by OpenCV and required `image_width` wide; ValidationSet stacks a PIL
image three times along a new last axis, so images must be single-channel), `train_options.py`
(`./train_images.txt`, `./train_labels.txt`, `./validation_images.txt`, image width 48),
`models/resnet.py` (an average pool of 4 after three stride-2 stages: sides 32…63 only) and the
shipped `train/angry/train_00608.txt` and `train_labels.txt` (FER2013's codes). List paths are
relative to OUT: run the seed there, e.g. `--train_image_path fold_0/train_images.txt`.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from fer_prep.align import transform_points
from fer_prep.exports import Source, Staging
from fer_prep.images import UnreadableImage, read_image

#: canonical label → (FER2013's code, the seed's class folder); the seed has no contempt
CLASSES = {
    "anger": (0, "angry"), "disgust": (1, "disgust"), "fear": (2, "fear"),
    "happiness": (3, "happy"), "sadness": (4, "sad"), "surprise": (5, "surprise"),
    "neutral": (6, "neutral"),
}
SIZE = 48
SEED_SIDES = range(32, 64)  # what the seed's ResNet18 can take
PARTS = (("train", "train"), ("test", "validation"))


def write(source: Source, out: Staging, size: int = SIZE) -> None:
    """Write grey `size`-pixel faces, their landmarks, and per-fold lists into `out`."""
    source.need_faces("landmark-driven")
    if size not in SEED_SIDES:
        out.notes.append(f"size {size}: the seed's ResNet18 takes {SEED_SIDES.start}…"
                         f"{SEED_SIDES.stop - 1} pixel images only")
    usable = source.usable()
    known = usable["label"].isin(CLASSES)
    for label, n in usable.loc[~known, "label"].fillna("unlabelled").value_counts().items():
        out.notes.append(f"{n} {label} rows left out: not one of the seed's 7 FER2013 classes")
    rows = source.with_alignment(usable[known], ("landmarks68", "matrix"))
    images = {}
    for row in rows.itertuples():
        rel = _face(row, out, size)
        if rel:
            images[row.sample_id] = rel
    rows = rows[rows["sample_id"].isin(images)]
    out.counts["images"] = len(images)
    out.loader_check("landmark-driven", [
        f"fold_{fold}/validation_images.txt lists no image (the seed's validation() divides "
        "by its length)" for fold in source.folds if source.part(fold, "test", rows).empty])
    for fold in source.folds:
        for which, name in PARTS:
            part = source.part(fold, which, rows)
            order = sorted(zip(part["sample_id"].map(images), part["label"], strict=True))
            out.text(f"fold_{fold}/{name}_images.txt", "".join(f"./{p}\n" for p, _ in order))
            out.text(f"fold_{fold}/{name}_labels.txt",
                     "".join(f"{CLASSES[label][0]}\n" for _, label in order))
            out.counts["lists"] += 2


def chip_points(landmarks68: Any, matrix: Any, chip_side: int, size: int) -> np.ndarray:
    """(68, 2) frame landmarks → pixels of the chip shrunk from `chip_side` to `size`.

    The chip matrix maps frame pixels to chip pixels (pixel centres at whole numbers, as
    warpAffine has them); cv2.resize keeps the image's edges, so x ↦ (x + ½)·s − ½.
    """
    points = transform_points(np.reshape(landmarks68, (68, 2)), np.reshape(matrix, (2, 3)))
    return (points + 0.5) * (size / chip_side) - 0.5


def _face(row: Any, out: Staging, size: int) -> str | None:
    """Write one grey image and its landmark file; its path, or None (and why) if it cannot."""
    if not _has(row.landmarks68) or not _has(row.matrix):
        out.skip(f"{row.sample_id}: no landmarks or chip matrix in the faces manifest; left out")
        return None
    try:
        chip = read_image(row.face)
    except UnreadableImage as exc:
        out.skip(f"{row.sample_id}: {exc}; left out")
        return None
    grey = cv2.cvtColor(chip, cv2.COLOR_BGR2GRAY) if chip.ndim == 3 else chip
    side = grey.shape[1]
    shrink = cv2.INTER_AREA if size < side else cv2.INTER_LINEAR
    small = cv2.resize(grey, (size, size), interpolation=shrink)
    rel = f"images/{CLASSES[row.label][1]}/{row.sample_id}.png"
    out.data(rel, cv2.imencode(".png", small)[1].tobytes())
    points = chip_points(row.landmarks68, row.matrix, side, size)
    out.text(rel[:-3] + "txt", "".join(f"{v:.4f}\n" for v in points.ravel()))
    return rel


def _has(value: Any) -> bool:
    return isinstance(value, list | tuple | np.ndarray) and len(value) > 0
