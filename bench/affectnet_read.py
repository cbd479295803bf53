"""AffectNet's full training.csv read: fer-prep's reader beside pandas.read_csv (what the seeds'
loaders do with the list, no checks), in one run, with each one's peak memory.

Writes a synthetic `Manually_Annotated_file_lists/training.csv` of `--rows` rows (287,651 by
default, the published list's length) in the published columns: a sub-folder and hash name, a
box, 68 landmark pairs with two decimals, expression codes 0–10 in the published proportions,
valence and arousal. Every listed image exists (hard links to one real face), so the reader
does all it does on the real list: each row parsed and checked, each image looked for. Each
method runs in its own process; its peak resident memory is that process's (`wait4`).

    python bench/affectnet_read.py [--rows 287651] [--shared PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

#: share of each expression code 0…10 in the published training.csv (AffectNet paper, table 2)
SHARES = np.array([74874, 134415, 25459, 14090, 6378, 3803, 24882, 3750, 33088, 11645, 82414],
                  dtype=float)

MEASURE = """
import json, sys, time
start = time.perf_counter()
if sys.argv[1] == "fer-prep":
    from fer_prep.datasets import get_dataset
    ds = get_dataset("affectnet")
    items = ds.read(sys.argv[2], ds.options())
    ok = sum(i["status"] == "ok" for i in items)
else:
    import pandas as pd
    items = pd.read_csv(sys.argv[2] + "/Manually_Annotated_file_lists/training.csv")
    ok = len(items)
print(json.dumps({"rows": len(items), "ok": ok, "seconds": time.perf_counter() - start}))
"""


def write_list(root: Path, rows: int, face: Path) -> None:
    """The synthetic list and, per row, its image (a hard link to a copy of `face`)."""
    rng = np.random.default_rng(0)
    lists, images = root / "Manually_Annotated_file_lists", root / "Manually_Annotated_Images"
    lists.mkdir(parents=True)
    codes = rng.choice(len(SHARES), size=rows, p=SHARES / SHARES.sum())
    lines = ["subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,"
             "expression,valence,arousal"]
    for i, code in enumerate(codes):
        rel = f"{i % 1000 + 1}/{i:08x}{'ab' * 12}.jpg"
        folder = images / rel.split("/")[0]
        if i < 1000:  # a copy of the face per sub-folder: a file takes 65,000 links at most
            folder.mkdir(parents=True)
            shutil.copyfile(face, folder / "face.jpg")
        os.link(folder / "face.jpg", images / rel)
        x, y, side = rng.integers(0, 200), rng.integers(0, 200), rng.integers(120, 600)
        points = ";".join(f"{v:.2f}" for v in rng.uniform(x, x + side, 136))
        va = ("-2", "-2") if code >= 8 else tuple(f"{v:.6f}" for v in rng.uniform(-1, 1, 2))
        lines.append(f"{rel},{x},{y},{side},{side},{points},{code},{va[0]},{va[1]}")
    (lists / "training.csv").write_text("\n".join(lines) + "\n")


def measure(method: str, root: Path) -> dict:
    """One method in its own process: its result, and its peak resident memory."""
    proc = subprocess.Popen([sys.executable, "-c", MEASURE, method, str(root)],
                            stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status:
        raise SystemExit(f"{method} failed")
    return {**json.loads(out), "peak_mb": usage.ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=287651)
    parser.add_argument("--shared", type=Path,
                        default=Path(os.environ.get("FER_PREP_SHARED", "../shared")))
    args = parser.parse_args()
    face = next((args.shared / "data/fer2013_kaggle/train/happy").glob("*.jpg"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "AffectNet"
        start = time.perf_counter()
        write_list(root, args.rows, face)
        print(f"{args.rows} rows of a synthetic training.csv ({time.perf_counter() - start:.0f} s "
              "to write, every image present)")
        pandas, ours = measure("pandas", root), measure("fer-prep", root)
        print(f"{'method':26s} {'rows':>7s} {'ok':>7s} {'s':>7s} {'peak MB':>8s}")
        for name, row in (("pandas.read_csv (seeds)", pandas), ("fer-prep reader", ours)):
            print(f"{name:26s} {row['rows']:7d} {row['ok']:7d} {row['seconds']:7.1f} "
                  f"{row['peak_mb']:8.0f}")
        print(f"fer-prep / pandas: {ours['seconds'] / pandas['seconds']:.1f}x the time, "
              f"{ours['peak_mb'] / pandas['peak_mb']:.1f}x the memory")


if __name__ == "__main__":
    main()
