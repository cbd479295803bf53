"""FER2013 rows per second: the dataset reader alone, and aligned 48-px faces per second, beside
the seed's own CSV-to-image step, in one run.

The seed is microsoft/FERPlus `src/generate_training_data.py`: each row's pixels through
`str_to_image` (`np.asarray(blob.split(' '), dtype=np.uint8).reshape(48, 48)`, PIL) and saved as
a PNG (`compress_level=0`), images only. fer-prep's `fer2013 align` also checks every row, finds
the 68 landmarks (dlib's predictor inside the whole-image box, the `given` path) and writes the
manifest; MediaPipe on 48-px faces, plain and upscaled to 192 px, are measured beside it. The
shared 400 rows are repeated to `--rows` in a temporary CSV; every method on one core (`--jobs 1`).

    python bench/fer2013.py [--shared PATH] [--rows 4000]
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from fer_prep.datasets import get_dataset
from fer_prep.runner import run


def seed(csv_path: Path, out: Path) -> int:
    """FERPlus's generate_training_data.py, images only (its FER+ name: the row index here)."""
    out.mkdir(parents=True)
    with open(csv_path, newline="") as fh:
        for index, row in enumerate(csv.DictReader(fh)):
            image = Image.fromarray(np.asarray(row["pixels"].split(" "), dtype=np.uint8)
                                    .reshape(48, 48))
            image.save(out / f"fer{index:07d}.png", compress_level=0)
    return index + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path,
                        default=Path(os.environ.get("FER_PREP_SHARED", "../shared")))
    parser.add_argument("--rows", type=int, default=4000)
    args = parser.parse_args()

    source = (args.shared / "data/fer2013/fer2013.csv").read_text().splitlines()
    header, body = source[0], source[1:]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "fer2013"
        root.mkdir()
        lines = [body[i % len(body)] for i in range(args.rows)]
        (root / "fer2013.csv").write_text("\n".join([header, *lines]) + "\n")
        print(f"{args.rows} FER2013 rows (the shared 400, repeated), one core each")
        rows = []

        start = time.perf_counter()
        n = seed(root / "fer2013.csv", Path(tmp) / "seed")
        seconds = time.perf_counter() - start
        rows.append(("FERPlus generate_training_data (images only)", n, seconds))

        ds = get_dataset("fer2013")
        start = time.perf_counter()
        n = len(ds.read(root, ds.options()))
        rows.append(("fer-prep fer2013 reader alone (rows)", n, time.perf_counter() - start))

        for name, options in (("fer-prep fer2013 align (given box + dlib 68)", {}),
                              ("fer-prep align, MediaPipe", {"backend": "mediapipe",
                                                             "template": "eyes"}),
                              ("fer-prep align, MediaPipe --upscale 192",
                               {"backend": "mediapipe", "template": "eyes", "upscale": 192})):
            start = time.perf_counter()
            result = run("fer2013", "align", Path(tmp) / name.replace(" ", "_"), root=root,
                         jobs=1, **options)
            rows.append((f"{name}: {result.counts.get('ok', 0)} faces", result.counts.get("ok", 0),
                         time.perf_counter() - start))

    seed_rate = rows[0][1] / rows[0][2]
    print(f"\n{'method':58s} {'n':>6s} {'s':>7s} {'per s':>8s} {'× seed':>7s}")
    for name, n, seconds in rows:
        print(f"{name:58s} {n:6d} {seconds:7.2f} {n / seconds:8.1f} {n / seconds / seed_rate:7.2f}")


if __name__ == "__main__":
    main()
