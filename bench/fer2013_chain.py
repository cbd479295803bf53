"""FER2013 at full size, end to end: each step's wall time and peak memory, and its no-op re-run.

Builds Kaggle's image layout at its published size (35,887 files: the shared copy's 28,709
Training and 3,589 PublicTest images, and 3,589 PrivateTest images cycled from PublicTest, since
the shared copy keeps that part back), then runs the chain as a user types it, each command in
its own process:

    fer-prep fer2013 align --root R     fer-prep folds --dataset fer2013
    fer-prep export imagefolder …       fer-prep export hf …
    fer-train --preset fer2013-resnet --epochs N (N = --epochs, 1 by default: one epoch's cost)
    fer-prep status                     fer-prep report

and every stage and export once more (nothing to do: the no-op). Each figure is printed beside
the issue's goal for it, as a ratio (align ≤ 120 s, a no-op ≤ 1 s, the report ≤ 30 s, every
step ≤ 2,048 MB; above 1: over the goal). Peak memory is the largest
resident set of the command or any process it started (`wait4`); wall time the command's. The
previous way of preparing FER2013 for a training script, FERPlus's `generate_training_data.py`
(the CSV to PNGs), is no part of this chain; its rate beside `fer2013 align` is in
bench/fer2013.py.

    python bench/fer2013_chain.py [--shared PATH] [--work DIR] [--epochs 1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
SIZES = {"Training": 28709, "PublicTest": 3589, "PrivateTest": 3589}
GOALS = {"fer2013 align": 120.0, "report": 30.0}  # seconds
NOOP_GOAL, PEAK_GOAL = 1.0, 2048.0  # seconds, MB


def kaggle_copy(shared: Path, root: Path) -> int:
    """Kaggle's layout at full size: the shared parts linked, PrivateTest cycled from
    PublicTest (renamed PrivateTest_<n>, in its class folder)."""
    source = shared / "data/fer2013_kaggle"
    public = sorted(source.glob("test/*/PublicTest_*.jpg"))
    n = 0
    for path in sorted(source.glob("*/*/*.jpg")):
        target = root / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(path, target) if _same_device(path, root) else shutil.copyfile(path, target)
        n += 1
    for i in range(SIZES["PrivateTest"]):
        path = public[i % len(public)]
        target = root / "test" / path.parent.name / f"PrivateTest_{90000000 + i}.jpg"
        shutil.copyfile(path, target)
        n += 1
    return n


def _same_device(a: Path, b: Path) -> bool:
    return os.stat(a).st_dev == os.stat(b).st_dev


def timed(command: list[str]) -> tuple[float, float]:
    """(seconds, peak MB of the command and of any process it started)."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if status:
        raise SystemExit(f"{' '.join(command)} failed:\n{out}")
    return seconds, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path,
                        default=Path(os.environ.get("FER_PREP_SHARED", "../shared")))
    parser.add_argument("--work", type=Path, help="Keep the copy and work folder here.")
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = args.work or Path(tmp)
        root, work, out = base / "fer2013", base / "work", base / "exports"
        if not root.exists():
            n = kaggle_copy(args.shared, root)
            print(f"Kaggle's FER2013 layout, {n} files (PrivateTest cycled from PublicTest)")
        w = ["--work", str(work)]
        fer_prep, fer_train = str(BIN / "fer-prep"), str(BIN / "fer-train")
        steps = [
            ("fer2013 align", [fer_prep, "fer2013", "align", "--root", str(root), *w], True),
            ("folds", [fer_prep, "folds", "--dataset", "fer2013", *w], True),
            ("export imagefolder", [fer_prep, "export", "imagefolder", "--dataset", "fer2013",
                                    *w, "--out", str(out / "imagefolder")], True),
            ("export hf", [fer_prep, "export", "hf", "--dataset", "fer2013", *w, "--out",
                           str(out / "hf")], True),
            (f"fer-train ({args.epochs} epoch)", [
                fer_train, "--preset", "fer2013-resnet", "--epochs", str(args.epochs),
                "--quiet", *w], False),
            ("status", [fer_prep, "status", "--dataset", "fer2013", *w], False),
            ("report", [fer_prep, "report", "--dataset", "fer2013", *w, "--out",
                        str(base / "report.html")], False),
        ]
        print(f"{'step':26s} {'s':>8s} {'×goal':>6s} {'peak MB':>8s} {'×goal':>6s} "
              f"{'no-op s':>8s} {'×goal':>6s} {'no-op MB':>9s}")
        for name, command, again in steps:
            seconds, peak = timed(command)
            goal = f"{seconds / GOALS[name]:6.2f}" if name in GOALS else f"{'':6s}"
            cells = f"{name:26s} {seconds:8.1f} {goal} {peak:8.0f} {peak / PEAK_GOAL:6.2f}"
            if again:
                noop, noop_peak = timed(command)
                cells += f" {noop:8.2f} {noop / NOOP_GOAL:6.2f} {noop_peak:9.0f}"
            print(cells, flush=True)


if __name__ == "__main__":
    main()
