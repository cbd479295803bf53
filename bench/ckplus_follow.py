"""Faces per second of `ckplus align --frames all`, detecting every frame vs following the face
through each sequence (`--follow`: MediaPipe's video mode), and how far their landmarks differ.

On every frame of the labelled sequences of ../shared/data/ckplus, in one run, on one core
(--jobs 1), each way in a fresh work folder with `force=True`, `--repeat` times alternating (the
best time of each counts). Each is `fer_prep.runner.run("ckplus", "align", ..., frames="all",
follow=...)` with the default preset; times include loading the models and writing the chips.
Prints faces/s of both and their ratio, the status counts of both, and the landmark difference
per frame: the mean over the 68 points of the distance between the two ways' points, divided by
the inter-ocular distance (IOD: outer eye corners, points 36 and 45, of the per-frame landmarks),
its mean and worst over the frames, and the worst single point — in % of IOD. Then, to tell
which way is nearer the truth where they differ, each way against an independent 68-point model
(`--reference`, default dlib-hog, detecting every frame; `none` skips it).

    python bench/ckplus_follow.py [--shared ../shared] [--repeat 3] [--reference dlib-hog]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from fer_prep.runner import run
from fer_prep.stages.align import worker_backend

WAYS = {"per-frame detection": False, "following (--follow)": True}


def timed_run(work: Path, root: Path, follow: bool, backend: str = "mediapipe"
              ) -> tuple[pd.DataFrame, float]:
    """The manifest of one fresh one-core run, and its seconds (models loaded inside)."""
    worker_backend.cache_clear()  # every run loads its own models
    start = time.perf_counter()
    result = run("ckplus", "align", work, root=root, jobs=1, force=True, frames="all",
                 follow=follow, backend=backend)
    return result.manifest, time.perf_counter() - start


def landmark_difference(reference: pd.DataFrame, other: pd.DataFrame
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame ok both ways: the mean point distance / IOD, the worst point / IOD, the IOD
    (outer eye corners of `reference`)."""
    both = reference.merge(other, on="sample_id", suffixes=("_r", "_o"))
    both = both[(both["status_r"] == "ok") & (both["status_o"] == "ok")]
    a = np.stack([np.asarray(v).reshape(68, 2) for v in both["landmarks68_r"]])
    b = np.stack([np.asarray(v).reshape(68, 2) for v in both["landmarks68_o"]])
    iod = np.linalg.norm(a[:, 45] - a[:, 36], axis=1)
    dist = np.linalg.norm(a - b, axis=2) / iod[:, None]
    return dist.mean(1), dist.max(1), iod


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path,
                        default=Path(os.environ.get("FER_PREP_SHARED", "../shared")))
    parser.add_argument("--repeat", type=int, default=1, help="runs of each way (best counts)")
    parser.add_argument("--reference", default="dlib-hog",
                        help="independent backend to hold both ways against, or none")
    args = parser.parse_args()

    root = args.shared / "data/ckplus"
    best: dict[str, float] = {}
    manifests: dict[str, pd.DataFrame] = {}
    same = True  # each way gives the same landmarks on every repeat
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            for name, follow in WAYS.items():
                manifest, seconds = timed_run(Path(tmp) / f"{follow}-{i}", root, follow)
                best[name] = min(seconds, best.get(name, float("inf")))
                if name in manifests:
                    same &= manifests[name]["landmarks68"].equals(manifest["landmarks68"])
                manifests[name] = manifest
        if args.reference != "none":
            reference, _ = timed_run(Path(tmp) / "reference", root, False, args.reference)

    detected, followed = manifests.values()
    print(f"{len(detected)} CK+ frames (640×490, --frames all, "
          f"{detected['sequence'].nunique()} sequences) from {root}; one core, "
          f"best of {args.repeat}")
    print(f"\n{'way':24s} {'faces':>5s} {'s':>7s} {'faces/s':>8s} {'× per-frame':>11s}  statuses")
    base = None
    for name, manifest in manifests.items():
        faces = int((manifest["status"] == "ok").sum())
        rate = faces / best[name]
        base = base or rate
        counts = ", ".join(f"{k} {v}" for k, v in manifest["status"].value_counts().items())
        print(f"{name:24s} {faces:5d} {best[name]:7.2f} {rate:8.1f} {rate / base:11.2f}  {counts}")

    rows_same = (detected["sample_id"].tolist() == followed["sample_id"].tolist()
                 and detected["status"].tolist() == followed["status"].tolist())
    tracked = int((followed["detector"] == "mesh-tracking").sum())
    mean, worst, iod = landmark_difference(detected, followed)
    print(f"\nsame rows and statuses both ways: {'yes' if rows_same else 'NO'}; "
          f"{tracked} of {len(followed)} frames followed (detector mesh-tracking); "
          f"landmarks the same on every repeat: {'yes' if same else 'NO'}")
    print(f"landmark difference over {len(mean)} frames, % of IOD (outer eye corners 36–45, "
          f"{iod.mean():.0f} px on average):")
    print(f"  per frame, mean over the 68 points: mean {100 * mean.mean():.2f}, "
          f"median {100 * np.median(mean):.2f}, worst {100 * mean.max():.2f}")
    print(f"  worst single point: {100 * worst.max():.2f} "
          f"({worst.max() * iod[worst.argmax()]:.1f} px)")
    if args.reference == "none":
        return
    print(f"\neach way against {args.reference}'s 68 points (per frame, % of its IOD):")
    for name, manifest in manifests.items():
        mean, worst, _ = landmark_difference(reference, manifest)
        print(f"  {name:24s} mean {100 * mean.mean():5.2f}, worst frame {100 * mean.max():5.2f}"
              f", worst point {100 * worst.max():5.2f}")


if __name__ == "__main__":
    main()
