"""Rows per second of every registered dataset's reader, on its own embedded sample, in one run.

Each dataset writes its sample (`Dataset.write_sample`) into a temporary folder, and its reader
reads it `--repeat` times (the light key of a no-op re-run reads the dataset this way too, so
this is what a finished stage costs per item). The seeds read their lists with pandas or the csv
module inside their loaders; none reads a dataset's original layout, so there is no seed row.

    python bench/readers.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from fer_prep.datasets import get_dataset, list_datasets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    print(f"{'dataset':10s} {'rows':>6s} {'s per read':>11s} {'rows/s':>10s}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in list_datasets():
            ds = get_dataset(name)
            root = ds.write_sample(Path(tmp))
            options = ds.options()
            ds.read(root, options)  # warm the file-system cache
            start = time.perf_counter()
            for _ in range(args.repeat):
                rows = len(ds.read(root, options))
            seconds = (time.perf_counter() - start) / args.repeat
            print(f"{name:10s} {rows:6d} {seconds:11.4f} {rows / seconds:10.0f}")


if __name__ == "__main__":
    main()
