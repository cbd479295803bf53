"""Start-up cost of the command line, and of a no-op re-run beside the first run.

In one run, each command in a fresh subprocess (wall time, the best of `--repeat`):
`python -c pass`, `fer-prep --help`, `fer-prep list`, `fer-train --help`; then the first run of
`fer-prep ckplus align --root <shared>/data/ckplus --work <tmp>` (once, in an empty work folder,
default backend and jobs) and the no-op re-run of the same command. Prints each time, its ratio
to `python -c pass` and, for the re-run, its share of the first run (the project's goal: a no-op
re-run costs at most 5 % of the first run). Then the heavy modules the no-op re-run imports (a
`sys.modules` probe at exit), and what the re-run's whole-file check costs on the aligned folder
(in-process, best of `--repeat`), beside the check it replaced (the folder's file names alone):
as written (a stat a file), and with every mtime changed, as after a copy (a hash a file).
The entry points are the ones next to `sys.executable`; `--work` reuses a work folder that
already holds the aligned stage (e.g. a full-size one) for the check alone.

    python bench/startup.py [--shared PATH] [--repeat 5] [--work PATH --stage fer2013/align]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from fer_prep.cache import RECORD, WHOLE, check_whole, digest

HEAVY = ("pandas", "pyarrow", "numpy", "cv2", "sklearn", "scipy", "mediapipe", "dlib", "torch")
GOAL = 5.0  # % of the first run a no-op re-run may cost
#: run fer-prep's CLI with argv[2:], writing the top-level modules loaded at exit to argv[1]
PROBE = """\
import atexit, json, sys
out, sys.argv = sys.argv[1], ["fer-prep", *sys.argv[2:]]
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(
    {name.split(".")[0] for name in sys.modules}))))
from fer_prep.cli import main
main()
"""


def wall(cmd: list[str]) -> float:
    """Seconds one run of `cmd` takes; RuntimeError with its stderr if it fails."""
    start = time.perf_counter()
    done = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stderr}")
    return seconds


def best(cmd: list[str], repeat: int) -> float:
    return min(wall(cmd) for _ in range(repeat))


def imported(args: list[str], folder: Path) -> list[str]:
    """The top-level modules `fer-prep ARGS` has imported when it exits."""
    out = folder / "modules.json"
    subprocess.run([sys.executable, "-c", PROBE, str(out), *args], check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def best_call(call: Callable[[], object], repeat: int) -> float:
    """Seconds the fastest of `repeat` calls of `call` takes."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def names_only(folder: Path) -> str:
    """The check before whole.json: a digest of the stage folder's file names."""
    names = []
    for parent, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel = os.path.relpath(parent, folder)
        names += [os.path.join(rel, f) for f in files]
    return digest(sorted(names))


def whole_check(folder: Path, repeat: int) -> None:
    """Print what `check_whole` costs on `folder` beside the names-only check."""
    record = json.loads((folder / RECORD).read_text())
    if "whole" not in record:
        raise SystemExit(f"{folder}: made before whole.json; run its command once first")
    table = json.loads((folder / WHOLE).read_text())
    size = sum(table["size"]) / 1e6
    names = best_call(lambda: names_only(folder), repeat)
    stat = best_call(lambda: check_whole(folder, record), repeat)
    assert check_whole(folder, record).ok, "the stage is damaged"
    for rel in table["path"]:  # as after `cp -r`: every mtime new, each file hashed once
        os.utime(folder / rel, ns=(time.time_ns(), time.time_ns()))
    hashed = best_call(lambda: check_whole(folder, record), repeat)
    tracemalloc.start()
    check_whole(folder, record)
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    print(f"\nwhole-file check of {folder}: {len(table['path']):,} files, {size:,.1f} MB")
    print(f"{'check':48s} {'s':>7s} {'× names':>8s}")
    for name, seconds in (("file names only (before whole.json)", names),
                          ("whole: size per file (mtimes as written)", stat),
                          ("whole: every mtime changed (each file hashed)", hashed)):
        print(f"{name:48s} {seconds:7.3f} {seconds / names:8.1f}")
    print(f"peak Python memory of the hashing check: {peak:.1f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path,
                        default=Path(os.environ.get("FER_PREP_SHARED", "../shared")))
    parser.add_argument("--repeat", type=int, default=5, help="runs per command (best kept)")
    parser.add_argument("--work", type=Path, help="only the whole-file check, of this work "
                        "folder's --stage")
    parser.add_argument("--stage", default="ckplus/align", help="DATASET/STAGE (with --work)")
    args = parser.parse_args()
    if args.work:
        whole_check(args.work / args.stage, args.repeat)
        return
    bin_dir = Path(sys.executable).parent
    fer_prep, fer_train = str(bin_dir / "fer-prep"), str(bin_dir / "fer-train")
    root = (args.shared / "data/ckplus").resolve()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "work"
        align = ["ckplus", "align", "--root", str(root), "--work", str(work)]
        print(f"{sys.executable}, best of {args.repeat}; align: --root {root} --work {work}")
        light = {"python -c pass": [sys.executable, "-c", "pass"],
                 "fer-prep --help": [fer_prep, "--help"],
                 "fer-prep list": [fer_prep, "list"],
                 "fer-train --help": [fer_train, "--help"]}
        rows: list[tuple[str, float, float | None]] = [
            (name, best(cmd, args.repeat), None) for name, cmd in light.items()]
        first = wall([fer_prep, *align])
        noop = best([fer_prep, *align], args.repeat)
        share = 100 * noop / first
        rows += [("fer-prep ckplus align (first run, once)", first, None),
                 ("fer-prep ckplus align (no-op re-run)", noop, share)]
        heavy = [m for m in HEAVY if m in imported(align, Path(tmp))]
        report_rows(rows, share, heavy)
        whole_check(work / "ckplus/align", args.repeat)


def report_rows(rows: list[tuple[str, float, float | None]], share: float, heavy: list[str]
                ) -> None:
    """The command table, the no-op goal's verdict and the heavy modules imported."""
    python = rows[0][1]
    print(f"\n{'command':40s} {'s':>7s} {'× python':>9s} {'% of first':>10s}")
    for name, seconds, of_first in rows:
        percent = "" if of_first is None else f"{of_first:.1f} %"
        print(f"{name:40s} {seconds:7.3f} {seconds / python:9.1f} {percent:>10s}")
    verdict = "meets" if share <= GOAL else "misses"
    print(f"\nno-op re-run: {share:.1f} % of the first run, {verdict} the goal "
          f"(≤ {GOAL:g} %)")
    print(f"heavy modules the no-op re-run imports: {', '.join(heavy) or 'none'} "
          f"(of {', '.join(HEAVY)})")


if __name__ == "__main__":
    main()
