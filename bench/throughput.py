"""Throughput in one run: per core against the seed and the I/O floor, per machine, on Dask.

Real data of ../shared: the two face clips of data/media in an AFEW layout (472 + 72 frames, a
face on every frame) and the 18 CK+ sequences of data/ckplus, each also linked `--copies` times
under other names, so that every method runs on 1 copy and on `--copies` copies: the marginal
rate (extra faces over extra seconds) is what a worker sustains at dataset scale, once started
and with its models loaded; the whole-run rate includes loading the models (in sections 2 and 3,
fresh processes, the imports too).

1. Per core (this process and every child pinned to core 0; fer-prep with `jobs=1`, models
   loaded afresh for every run):
   - video: Emotion-FAN's method (ffmpeg to JPEG, then per frame dlib's cascade and 5-point
     chip, `emotion_fan_seed.py`); fer-prep `video2frame` + `align` and `align --from-video`
     (default backend, JPEG chips); and the I/O floor: the same ffmpeg decode fer-prep reads
     (`fer_prep.video.decode`), the similarity warp of a 224-px chip and its JPEG encode and
     atomic write (`fer_prep.images.write_image`), with no model at all;
   - CK+ stills (neutral + last three frames): the seed's per-frame method and `ckplus align`.
   Printed: faces/s whole-run and marginal, × seed, % of the I/O floor.
2. Per machine: `--jobs 1` against `--jobs 2`, each a fresh `fer-prep` process (what a user
   runs), on `ckplus align --frames all` (333 frames ×copies) and the video path.
3. Dask: `--jobs 2` against `--cluster local:2` (a LocalCluster of 2 workers), same commands.

    python bench/throughput.py [--shared ../shared] [--copies 2] [--no-seed]
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent / "tests"))  # copies, slurm_cluster

from afew_video import fer_prep, link_clips, seed
from copies import link_ckplus
from emotion_fan_seed import EmotionFanSeed

from fer_prep.align import norm_crop
from fer_prep.datasets.ckplus import read_ckplus
from fer_prep.images import write_image
from fer_prep.runner import run
from fer_prep.stages.align import worker_backend
from fer_prep.video import decode

CHIP = 224
FER_PREP = Path(sys.executable).parent / "fer-prep"


def io_floor(root: Path, out: Path) -> tuple[int, float]:
    """Decode every clip as fer-prep does, warp a 224-px chip, encode and write it: (faces, s)."""
    start = time.perf_counter()
    faces = 0
    for video in sorted(root.glob("*/*/*")):
        frames, _ = decode(video)
        for n, image in frames:
            h, w = image.shape[:2]
            scale = CHIP / (0.6 * min(h, w))
            angle = np.radians(3.0)
            m = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
            matrix = np.column_stack([m, np.array([CHIP / 2, CHIP / 2]) - m @ (w / 2, h / 2)])
            write_image(out / video.stem / f"{n:07d}.jpg", norm_crop(image, matrix, CHIP))
            faces += 1
    return faces, time.perf_counter() - start


def ckplus_seed(root: Path, out: Path) -> tuple[int, float]:
    start = time.perf_counter()
    frames = [Path(s["source_path"]) for s in read_ckplus(root) if s["status"] == "ok"]
    return EmotionFanSeed().run(frames, out), time.perf_counter() - start


def ckplus_prep(root: Path, work: Path) -> tuple[int, float]:
    worker_backend.cache_clear()
    start = time.perf_counter()
    result = run("ckplus", "align", work, root=root, jobs=1, force=True)
    return result.counts.get("ok", 0), time.perf_counter() - start


def cli(args: list[str]) -> tuple[int, float]:
    """A fresh `fer-prep` process: (ok rows, seconds)."""
    start = time.perf_counter()
    done = subprocess.run([str(FER_PREP), *args, "--force"], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"fer-prep {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    line = next(x for x in done.stdout.splitlines() if " rows (" in x)
    return int(line.split("ok: ")[1].split(")")[0].split(",")[0]), seconds


def marginal(one: tuple[int, float], many: tuple[int, float]) -> float:
    return (many[0] - one[0]) / (many[1] - one[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path,
                        default=Path(os.environ.get("FER_PREP_SHARED", "../shared")))
    parser.add_argument("--copies", type=int, default=2, help="copies of the data (≥ 2)")
    parser.add_argument("--no-seed", action="store_true", help="skip the seeds' methods")
    args = parser.parse_args()
    if args.copies < 2:
        parser.error("--copies must be at least 2 (the marginal rate compares with 1 copy)")
    shared = args.shared.resolve()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        afew = {n: link_clips(tmp / f"afew{n}", shared / "data/media", n) for n in (1, args.copies)}
        ck = {n: link_ckplus(tmp / f"ck{n}", shared / "data/ckplus", n) for n in (1, args.copies)}
        big = args.copies

        # 2 and 3 first, on every core
        print(f"{os.cpu_count()} cores; the data ×1 and ×{big}", flush=True)
        machine = []
        commands = {
            f"ckplus align --frames all (×{big})": ["ckplus", "align", "--root", str(ck[big]),
                                                   "--frames", "all"],
            f"afew align --from-video (×{big})": ["afew", "align", "--from-video", "--root",
                                                  str(afew[big]), "--format", "jpg"],
        }
        for what, command in commands.items():
            rates = {}
            for how in (["--jobs", "1"], ["--jobs", "2"], ["--cluster", "local:2"]):
                faces, seconds = cli([*command, "--work", str(tmp / "m"), *how])
                rates[" ".join(how)] = (faces, seconds)
            machine.append((what, rates))

        os.sched_setaffinity(0, {0})
        importlib.import_module("fer_prep.faces.mediapipe")  # imports out of every timing
        video = {}
        for label, fn in [
            ("I/O floor (decode + warp + JPEG, no model)",
             lambda r, o: io_floor(r, o)),
            ("fer-prep video2frame + align (jpg)",
             lambda r, o: fer_prep(r, o, "default", {"format": "jpg"})[1:3]),
            ("fer-prep align --from-video (jpg)",
             lambda r, o: fer_prep(r, o, "default", {"from_video": True, "format": "jpg"})[1:3]),
            *([] if args.no_seed else [("Emotion-FAN seed", lambda r, o: seed(r, o)[1:])]),
        ]:
            video[label] = [fn(afew[n], tmp / f"v-{len(video)}-{n}") for n in (1, big)]
            print(f"  {label}: done", flush=True)
        stills = {"fer-prep ckplus align": [ckplus_prep(ck[n], tmp / f"c-{n}") for n in (1, big)]}
        if not args.no_seed:
            stills["Emotion-FAN seed"] = [ckplus_seed(ck[n], tmp / f"cs-{n}") for n in (1, big)]

    print("\nper core (pinned to core 0): faces/s")
    floor = marginal(*video["I/O floor (decode + warp + JPEG, no model)"])
    for title, table in (("video: the 2 face clips, 544 frames a copy", video),
                         ("CK+ stills: neutral + last three frames, 72 a copy", stills)):
        seed_rates = table.get("Emotion-FAN seed")
        print(f"\n{title}\n{'method':44s} {'whole run':>10s} {'marginal':>9s} {'× seed':>7s} "
              f"{'× seed (whole)':>15s} {'% of floor':>11s}")
        for label, (one, many) in table.items():
            whole, rate = many[0] / many[1], marginal(one, many)
            vs = f"{rate / marginal(*seed_rates):7.2f}" if seed_rates else f"{'—':>7s}"
            vs_whole = (f"{whole / (seed_rates[1][0] / seed_rates[1][1]):15.2f}" if seed_rates
                        else f"{'—':>15s}")
            pct = f"{100 * rate / floor:10.0f}%" if table is video else f"{'—':>11s}"
            print(f"{label:44s} {whole:10.1f} {rate:9.1f} {vs} {vs_whole} {pct}")

    print("\nper machine and on Dask: fresh fer-prep processes, every core; faces/s (×jobs 1)")
    print(f"{'command':38s} {'--jobs 1':>14s} {'--jobs 2':>14s} {'--cluster local:2':>18s}")
    for what, rates in machine:
        base = rates["--jobs 1"][0] / rates["--jobs 1"][1]
        cells = [f"{f / s:7.1f} ({f / s / base:4.2f}×)" for f, s in rates.values()]
        print(f"{what:38s} {cells[0]:>14s} {cells[1]:>14s} {cells[2]:>18s}")
    print("\nwhole run: faces over the whole run (start and model loading included); marginal: "
          f"the extra faces per extra second from ×1 to ×{big}; % of floor: marginal against "
          "the I/O floor's")


if __name__ == "__main__":
    main()
