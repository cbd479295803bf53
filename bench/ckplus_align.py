"""Faces per second of `ckplus align`, per backend, beside Emotion-FAN's per-frame method.

All on the same frames of ../shared/data/ckplus (`--frames`, default neutral + last three), in
one run, on one core each (--jobs 1), plus the default backend on every core. Each fer-prep run
is `fer_prep.runner.run("ckplus", "align", ..., force=True)` with the default preset and that
backend. Times include loading the models and writing the chips. Prints faces/s and the ratio
to the seed.

    python bench/ckplus_align.py [--shared ../shared] [--frames all] [--backends mediapipe,...]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from emotion_fan_seed import EmotionFanSeed

from fer_prep.datasets.ckplus import read_ckplus
from fer_prep.faces import list_backends
from fer_prep.runner import run
from fer_prep.runner.workers import resolve_jobs
from fer_prep.stages.align import worker_backend


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path,
                        default=Path(os.environ.get("FER_PREP_SHARED", "../shared")))
    parser.add_argument("--backends", default=",".join(list_backends()))
    parser.add_argument("--frames", default="neutral-peak", choices=["neutral-peak", "peak", "all"])
    args = parser.parse_args()

    root = args.shared / "data/ckplus"
    samples = read_ckplus(root, frames=args.frames)
    frames = [Path(s["source_path"]) for s in samples if s["status"] == "ok"]
    print(f"{len(frames)} CK+ frames (640×490) from {root}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        faces = EmotionFanSeed().run(frames, Path(tmp) / "seed")
        rows.append(("Emotion-FAN seed (per frame)", 1, faces, time.perf_counter() - start))

        runs = [(b, 1) for b in args.backends.split(",")] + [("mediapipe", resolve_jobs(0))]
        for backend, jobs in runs:
            worker_backend.cache_clear()  # every run loads its own models
            start = time.perf_counter()
            result = run("ckplus", "align", Path(tmp) / f"{backend}-{jobs}", root=root,
                         jobs=jobs, force=True, frames=args.frames, backend=backend)
            seconds = time.perf_counter() - start
            rows.append((f"fer-prep {backend}", jobs, result.counts.get("ok", 0), seconds))

    seed_rate = rows[0][2] / rows[0][3]
    print(f"\n{'method':34s} {'cores':>5s} {'faces':>5s} {'s':>7s} {'faces/s':>8s} "
          f"{'per core':>8s} {'× seed/core':>11s}")
    for name, jobs, faces, seconds in rows:
        rate = faces / seconds
        print(f"{name:34s} {jobs:5d} {faces:5d} {seconds:7.2f} {rate:8.1f} {rate / jobs:8.1f} "
              f"{rate / jobs / seed_rate:11.2f}")


if __name__ == "__main__":
    main()
