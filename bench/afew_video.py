"""Aligned faces per second on real face videos: Emotion-FAN's own method beside fer-prep's.

The face clips of ../shared/data/media (WolfgangLanger_Pexels.mp4: 472 frames, single_face.mp4:
72; a face on every frame) are linked into an AFEW layout, each `--copies` times under other clip
names (AFEW has 1,156 clips: a worker loads its models once for thousands of frames, not for two
clips), and run, in one run, each pinned to the same single core (ffmpeg and every thread
included), through:

1. the Emotion-FAN seed: `ffmpeg -i VIDEO -f image2 OUT/%07d.jpg`, then per frame dlib HOG → CNN
   → CNN on contrast fixes, 5-point `get_face_chip(size=224, padding=0.25)` (emotion_fan_seed.py);
2. fer-prep `video2frame` + `align`, default backend (MediaPipe, video mode): JPEG chips (the
   default for video) and PNG;
3. the same with the `emotion-fan` preset (the seed's cascade and crop);
4. fer-prep `align --from-video` (default backend, no frame files).

Each fer-prep stage runs through `fer_prep.runner.run(..., jobs=1, force=True)`: a fresh run
that loads its models again. Times include loading the models, extracting frames and writing
every chip and manifest; the align stage alone is printed too, and the marginal rate: every
method runs on 1 copy and on `--copies` copies of the clips, and the extra faces over the
extra seconds is what a worker sustains at dataset scale, once it has started and loaded its
models (about 2 s for fer-prep, most of it importing mediapipe). Clips where the face comes and
goes are left out: there the seed (and the preset, which runs its cascade) spend about a minute
per face-less frame in four CPU passes of the MMOD CNN; the tests cover how fer-prep handles
them.

    python bench/afew_video.py [--shared PATH] [--copies N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from emotion_fan_seed import EmotionFanSeed

from fer_prep.runner import run
from fer_prep.stages.align import worker_backend
from fer_prep.video import ffmpeg_exe

CLIPS = ("WolfgangLanger_Pexels.mp4", "single_face.mp4")


def seed(root: Path, out: Path) -> tuple[int, int, float]:
    """Emotion-FAN's method on every video of `root`: frames, faces written, seconds."""
    start = time.perf_counter()
    model = EmotionFanSeed()
    frames = faces = 0
    for video in sorted(root.glob("*/*/*")):
        frame_dir = out / video.stem
        frame_dir.mkdir(parents=True)
        cmd = [ffmpeg_exe(), "-i", str(video), "-f", "image2", str(frame_dir / "%07d.jpg")]
        subprocess.run(cmd, check=True, capture_output=True, stdin=subprocess.DEVNULL)
        files = sorted(frame_dir.glob("*.jpg"))
        frames += len(files)
        faces += model.run(files, out / "faces" / video.stem)
    return frames, faces, time.perf_counter() - start


def fer_prep(root: Path, work: Path, preset: str, options: dict[str, Any]
             ) -> tuple[int, int, float, float]:
    """fer-prep on every video of `root`: frames, faces (ok rows), total and align seconds.

    `options`: align-video options beside the preset's (`format`, `from_video`)."""
    worker_backend.cache_clear()  # every run loads its own models
    start = time.perf_counter()
    if not options.get("from_video"):
        run("afew", "video2frame", work, root=root, jobs=1, force=True)
    aligned = time.perf_counter()
    result = run("afew", "align-video", work, root=root, preset=preset, jobs=1, force=True,
                 **options)
    end = time.perf_counter()
    return sum(result.counts.values()), result.counts.get("ok", 0), end - start, end - aligned


def link_clips(root: Path, media: Path, copies: int) -> Path:
    """An AFEW layout under `root` holding each shared clip `copies` times (symbolic links)."""
    (root / "Train_AFEW/Happy").mkdir(parents=True)
    for clip in CLIPS:
        for k in range(copies):
            link = root / "Train_AFEW/Happy" / f"{Path(clip).stem}_{k}{Path(clip).suffix}"
            link.symlink_to((media / clip).resolve())
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path,
                        default=Path(os.environ.get("FER_PREP_SHARED", "../shared")))
    parser.add_argument("--copies", type=int, default=2, help="links per clip (≥ 2, default 2)")
    args = parser.parse_args()
    if args.copies < 2:
        parser.error("--copies must be at least 2 (the marginal rate compares with 1 copy)")
    media = args.shared / "data/media"
    os.sched_setaffinity(0, {0})
    print(f"one core (pinned to core 0); clips from {media}: {', '.join(CLIPS)}, "
          f"{args.copies} copies each (and 1 copy, for the marginal rate)")
    methods: list[tuple[str, str | None, dict[str, Any]]] = [
        ("1 Emotion-FAN seed", None, {}),
        ("2 fer-prep default (mediapipe), jpg", "default", {}),
        ("2 fer-prep default (mediapipe), png", "default", {"format": "png"}),
        ("3 fer-prep emotion-fan preset", "emotion-fan", {}),
        ("4 fer-prep --from-video, jpg", "default", {"from_video": True}),
        ("4 fer-prep --from-video, png", "default", {"from_video": True, "format": "png"}),
    ]
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        roots = [link_clips(tmp / f"afew{n}", media, n) for n in (1, args.copies)]
        for i, (name, preset, options) in enumerate(methods):
            runs = []
            for root in roots:
                out = tmp / f"out{i}-{root.name}"
                if preset is None:
                    frames, faces, seconds = seed(root, out)
                    runs.append((frames, faces, seconds, None))
                else:
                    runs.append(fer_prep(root, out, preset, options))
            (_, faces1, seconds1, _), (frames, faces, seconds, align_s) = runs
            marginal = (faces - faces1) / (seconds - seconds1)
            rows.append((name, frames, faces, seconds, align_s, marginal))

    seed_rate, seed_marginal = rows[0][2] / rows[0][3], rows[0][5]
    print(f"\n{'method':38s} {'frames':>6s} {'faces':>5s} {'s':>7s} {'faces/s':>8s} "
          f"{'× seed':>7s} {'align only':>11s} {'marginal':>9s} {'× seed':>7s}")
    for name, frames, faces, seconds, align_s, marginal in rows:
        align = "" if align_s is None else f"{faces / align_s:7.1f} /s"
        print(f"{name:38s} {frames:6d} {faces:5d} {seconds:7.2f} {faces / seconds:8.1f} "
              f"{faces / seconds / seed_rate:7.2f} {align:>11s} {marginal:9.1f} "
              f"{marginal / seed_marginal:7.2f}")
    print("faces/s: aligned faces per second on one core, everything included (process start, "
          "model loading, frames, chips, manifests);\nalign only: the align stage alone; "
          "marginal: the extra faces per extra second from 1 copy of the clips to "
          f"{args.copies} — what a worker sustains once its models are loaded")


if __name__ == "__main__":
    main()
