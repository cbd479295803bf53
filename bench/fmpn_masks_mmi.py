"""Agreement of `fer-prep masks` on MMI with FMPN-FER's own MMI masks (81 × 81, 6 classes).

With `--mmi ROOT` (a real MMI: Sessions/<id>/<name>.avi + .xml): the video path with the `fmpn`
preset (video2frame, align), FMPN's published folds (`folds --split mmi-fmpn-10fold-v1`), masks;
per class, the Pearson r of each fold's mask with FMPN's `imgs_res/<fold>/<class>.png`, averaged
over the folds. Without it (no MMI here): the shared CK+ sequences of MMI's six classes written
as MMI sessions (`fer_prep.datasets.mmi.ckplus_as_mmi`, played neutral → apex → neutral), folds
by subject, and each class's mask averaged over our folds against FMPN's averaged over its ten:
how alike the motion of each expression is across the two datasets, not a reproduction.

    python bench/fmpn_masks_mmi.py [--shared PATH] [--mmi ROOT] [--jobs N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from fmpn_masks import default_shared, pearson

from fer_prep.datasets import get_dataset
from fer_prep.datasets.ckplus import read_ckplus
from fer_prep.datasets.mmi import MMI_VALUES, ckplus_as_mmi
from fer_prep.runner import run

SIDE = 81  # FMPN's MMI masks
SPLIT = "mmi-fmpn-10fold-v1"


def masks(folder: Path) -> dict[tuple[int, int], np.ndarray]:
    """(fold, class) → a mask at FMPN's 81 × 81, as float."""
    out = {}
    for path in folder.glob("[0-9]*/[0-9]*.png"):
        mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        out[int(path.parent.name), int(path.stem)] = cv2.resize(
            mask, (SIDE, SIDE), interpolation=cv2.INTER_AREA).astype(np.float64)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=default_shared())
    parser.add_argument("--mmi", type=Path, help="a real MMI root [CK+ sequences as sessions]")
    parser.add_argument("--jobs", type=int, default=0, help="worker processes (0 = all cores)")
    args = parser.parse_args()
    reference = masks(args.shared / "reference/fmpn/MMI/imgs_res")
    with tempfile.TemporaryDirectory() as tmp:
        work, root = Path(tmp) / "work", args.mmi
        if root is None:
            ck = args.shared / "data/ckplus"
            labels = {i["sequence"]: i["sequence_label"] for i in read_ckplus(ck, "peak")
                      if i["sequence_label"] in MMI_VALUES}
            root = ckplus_as_mmi(ck / "cohn-kanade-images", labels, Path(tmp) / "mmi")
            print(f"no --mmi: {len(labels)} shared CK+ sequences written as MMI sessions")
        start = time.perf_counter()
        run("mmi", "video2frame", work, root=root, jobs=args.jobs)
        run("mmi", "align-video", work, preset="fmpn", jobs=args.jobs)
        if args.mmi:
            run("mmi", "folds", work, split=SPLIT)
        else:
            run("mmi", "folds", work, scheme="subject-kfold", k=5)
        ours = masks(run("mmi", "masks", work, jobs=args.jobs).folder)
        seconds = time.perf_counter() - start
    classes = get_dataset("mmi").class_orders["fmpn"]
    print(f"\nPearson r with FMPN's MMI imgs_res (ours resized to {SIDE}×{SIDE})")
    print(f"{'class':12s} {'folds':>5s} {'r':>6s}")
    rs = []
    for c, name in enumerate(classes):
        keys = sorted(k for k in ours if k[1] == c)
        if not keys:
            print(f"{name:12s} {0:5d} {'—':>6s}   (no sample of this class)")
            continue
        if args.mmi:  # the same fold's masks
            r = float(np.mean([pearson(ours[k], reference[k]) for k in keys]))
        else:  # each class over all folds, both sides
            mine = np.mean([ours[k] for k in keys], axis=0)
            theirs = np.mean([m for (f, cl), m in reference.items() if cl == c], axis=0)
            r = pearson(mine, theirs)
        rs.append(r)
        print(f"{name:12s} {len(keys):5d} {r:6.3f}")
    print(f"{'mean':12s} {'':5s} {np.mean(rs):6.3f}   over {len(rs)} classes present")
    print(f"seconds (video2frame + align + folds + masks): {seconds:.1f}")


if __name__ == "__main__":
    main()
