"""Agreement of `fer-prep masks` with FMPN-FER's own CK+ masks, for --warp similarity and dense.

On the CK+ sequences of ../shared/data/ckplus: align with the `fmpn` preset, FMPN's published folds
(`folds --split ckplus-fmpn-10fold-v1`), then masks with each warp (`--folds fmpn` checks them),
each through `fer_prep.runner.run`. Per class present, the Pearson r between each of our
fold masks (area-resized to 70 × 70) and FMPN's `imgs_res/<fold>/<class>.png` of the same fold,
averaged over the folds; then the mean over the classes. Also how much `dense` changes the masks
(mean absolute difference in grey levels and r between the two warps) and the time of each.

    python bench/fmpn_masks.py [--shared PATH] [--padding 0.12] [--blur SIGMA] [--no-equalize]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from fer_prep.datasets import get_dataset
from fer_prep.runner import run
from fer_prep.stages.align import AlignParams

WARPS = ("similarity", "dense")
SIDE = 70  # FMPN's CK+ masks
SPLIT = "ckplus-fmpn-10fold-v1"  # FMPN's published CK+ folds


def default_shared() -> Path:
    return Path(os.environ.get("FER_PREP_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def fold_masks(folder: Path) -> dict[tuple[int, int], np.ndarray]:
    """(fold, class) → our mask at FMPN's 70 × 70, as float."""
    out = {}
    for path in folder.glob("[0-9]*/[0-9]*.png"):
        mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        small = cv2.resize(mask, (SIDE, SIDE), interpolation=cv2.INTER_AREA)
        out[int(path.parent.name), int(path.stem)] = small.astype(np.float64)
    return out


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=default_shared())
    parser.add_argument("--padding", type=float, help="align padding [the fmpn preset's]")
    parser.add_argument("--blur", type=float, help="mask blur σ in mask pixels [FMPN's]")
    parser.add_argument("--no-equalize", action="store_true", help="skip histogram equalisation")
    parser.add_argument("--jobs", type=int, default=0, help="worker processes (0 = all cores)")
    args = parser.parse_args()

    reference = args.shared / "reference/fmpn/CKPlus/imgs_res"
    params = AlignParams.resolve("fmpn", padding=args.padding)
    print(f"align: {params}")
    ours: dict[str, dict[tuple[int, int], np.ndarray]] = {}
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        run("ckplus", "align", work, root=args.shared / "data/ckplus", preset="fmpn",
            jobs=args.jobs, padding=args.padding)
        run("ckplus", "folds", work, split=SPLIT)
        for warp in WARPS:
            start = time.perf_counter()
            result = run("ckplus", "masks", work, jobs=args.jobs, folds="fmpn", warp=warp,
                         blur=args.blur, equalize=not args.no_equalize)
            seconds[warp] = time.perf_counter() - start
            ours[warp] = fold_masks(result.folder)

    classes = get_dataset("ckplus").class_orders["fmpn"]
    print(f"\nPearson r with FMPN's imgs_res (ours resized to {SIDE}×{SIDE}), mean over folds")
    print(f"{'class':12s} {'folds':>5s} {'similarity':>10s} {'dense':>7s} "
          f"{'|sim−dense|':>11s} {'r(sim,dense)':>12s}")
    means = {warp: [] for warp in WARPS}
    for c, name in enumerate(classes):
        keys = sorted(k for k in ours["similarity"] if k[1] == c)
        if not keys:
            print(f"{name:12s} {0:5d} {'—':>10s} {'—':>7s}   (no training sample in any fold)")
            continue
        refs = {k: cv2.imread(str(reference / f"{k[0]}/{k[1]}.png"), cv2.IMREAD_GRAYSCALE)
                for k in keys}
        r = {w: np.mean([pearson(ours[w][k], refs[k].astype(float)) for k in keys]) for w in WARPS}
        change = np.mean([np.abs(ours["similarity"][k] - ours["dense"][k]).mean() for k in keys])
        r_between = np.mean([pearson(ours["similarity"][k], ours["dense"][k]) for k in keys])
        for w in WARPS:
            means[w].append(r[w])
        print(f"{name:12s} {len(keys):5d} {r['similarity']:10.3f} {r['dense']:7.3f} "
              f"{change:11.1f} {r_between:12.3f}")
    print(f"{'mean':12s} {'':5s} {np.mean(means['similarity']):10.3f} "
          f"{np.mean(means['dense']):7.3f}   over {len(means['dense'])} classes present")
    print("seconds (diff maps + masks, after align): "
          + ", ".join(f"{w} {s:.1f}" for w, s in seconds.items()))


if __name__ == "__main__":
    main()
