"""The align stage for videos: one clip at a time, following the face from frame to frame.

Input is the frames manifest of `video2frame`, or (`from_video`) the videos themselves, decoded
through ffmpeg without writing frames. Every frame gets a row, whatever happens to it:

- `ok`: the backend found the face (in video mode where it has one, e.g. MediaPipe);
- `borrowed`: no face found on this frame, so the chip is cut from this frame with the landmarks
  of the nearest frame that had one (`borrowed_from`, `borrow_distance` in frames);
- `no_face`: no face anywhere in the clip; `unreadable` / `failed`: the frame or video is broken.

`smooth` filters the landmarks over time (Savitzky–Golay, 5 frames, quadratic) within each run
of consecutive detections before cutting the chips.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.signal import savgol_filter

from fer_prep.cache import digest, file_hash
from fer_prep.faces import Face, FaceBackend, backend_class
from fer_prep.images import UnreadableImage, read_image
from fer_prep.manifest import FACE_COLUMNS
from fer_prep.runner import StageResult, StageSpec, run_stage
from fer_prep.stages.align import AlignParams, chip_fields, face_path, failure, worker_backend
from fer_prep.video import VideoError, decode, frame_name

VERSION = 1
SMOOTH_WINDOW = 5
COLUMNS = (*FACE_COLUMNS, "split", "timestamp", "frame_path", "borrowed_from", "borrow_distance")
_INTERNAL = ("frame_numbers", "frame_files", "frame_paths", "timestamps")
_PER_FRAME = ("frame", "timestamp", "frame_path")


@dataclass(frozen=True)
class ClipParams:
    """How clips are read and followed; `fps` / `max_side` apply when decoding videos directly."""

    smooth: bool = False
    from_video: bool = False
    fps: float | None = None
    max_side: int | None = None


def clips_from_frames(frames: pd.DataFrame, frames_folder: Path) -> pd.DataFrame:
    """One item per video of a frames manifest (its frames as lists); failed videos as they are."""
    items = []
    for _, group in frames.groupby("source_path", sort=False):
        first = group.iloc[0].to_dict()
        if first["status"] != "ok":
            items.append(first)
            continue
        clip = {k: v for k, v in first.items() if k not in _PER_FRAME}
        clip.update(
            sample_id=first["sequence"],
            frame_numbers=group["frame"].astype(int).tolist(),
            frame_paths=group["frame_path"].tolist(),
            frame_files=[str(frames_folder / p) for p in group["frame_path"]],
            timestamps=group["timestamp"].astype(float).tolist(),
        )
        clip["fingerprint"] = digest([first["fingerprint"], clip])
        items.append(clip)
    return pd.DataFrame(items)


def _frames_of(item: dict[str, Any], clip: ClipParams) -> Callable[[], Iterator]:
    """A function giving a fresh pass over the clip's (number, image or UnreadableImage)."""
    if clip.from_video:

        def from_video() -> Iterator:
            frames, times = decode(Path(item["source_path"]), clip.fps, clip.max_side)
            item["timestamps"] = times  # filled in once the pass is over
            yield from frames

        return from_video

    def from_files() -> Iterator:
        for number, path in zip(item["frame_numbers"], item["frame_files"], strict=True):
            try:
                yield number, read_image(path)
            except UnreadableImage as exc:
                yield number, exc

    return from_files


def _smoothed(faces: dict[int, Face]) -> dict[int, Face]:
    """Landmarks filtered over time within runs of consecutive frames (short runs unchanged)."""
    numbers = sorted(faces)
    runs, run = [], [numbers[0]] if numbers else []
    for a, b in itertools.pairwise(numbers):
        if b == a + 1:
            run.append(b)
        else:
            runs.append(run)
            run = [b]
    runs.append(run)
    out = dict(faces)
    for run in runs:
        if len(run) < SMOOTH_WINDOW:
            continue
        stack = np.stack([faces[n].landmarks68 for n in run])
        smooth = savgol_filter(stack, SMOOTH_WINDOW, 2, axis=0).astype(np.float32)
        for n, lm in zip(run, smooth, strict=True):
            out[n] = dataclasses.replace(faces[n], landmarks68=lm)
    return out


def _align_clip(
    item: dict[str, Any], backend: FaceBackend, ctx: dict[str, Any], clip: ClipParams
) -> list[dict[str, Any]]:
    meta = {k: v for k, v in item.items() if k not in _INTERNAL}
    frames = _frames_of(item, clip)
    base: dict[int, dict[str, Any]] = {}
    done: dict[int, dict[str, Any]] = {}
    faces: dict[int, Face] = {}
    track = backend.tracker()

    def rel(n: int) -> str:
        return face_path(frame_name(n).rsplit(".", 1)[0], item["face_dir"], ctx["format"])

    try:
        for n, image in frames():
            base[n] = {**meta, "sample_id": f"{item['sample_id']}_{n:07d}", "frame": n,
                       "backend": ctx["backend"]}
            if isinstance(image, UnreadableImage):
                done[n] = {"status": "unreadable", "message": str(image)}
                continue
            base[n].update(height=image.shape[0], width=image.shape[1])
            try:
                face = track(image)
            except Exception as exc:  # one odd frame must not end the clip
                done[n] = failure(exc, f"{item['source_path']} frame {n}", ctx["backend"], image)
                continue
            if face is None:
                continue
            faces[n] = face
            if not clip.smooth:
                done[n] = {"status": "ok", "message": "", **chip_fields(image, face, rel(n), ctx)}
    except VideoError as exc:
        return [{**meta, "status": "failed", "message": str(exc)}]

    if clip.smooth and faces:
        faces = _smoothed(faces)
    detected = np.array(sorted(faces))
    todo: dict[int, tuple[Face, dict[str, Any]]] = {}
    for n in base:
        if n in done:
            continue
        if n in faces:
            todo[n] = (faces[n], {"status": "ok", "message": ""})
        elif len(detected):
            src = int(detected[np.argmin(np.abs(detected - n))])  # nearest; the earlier on a tie
            todo[n] = (faces[src], {"status": "borrowed", "message": "",
                                    "borrowed_from": src, "borrow_distance": abs(src - n)})
        else:
            done[n] = {"status": "no_face",
                       "message": f"{item['source_path']}: no face in any frame"}
    if todo:  # a second pass for the frames whose landmarks needed the whole clip
        for n, image in frames():
            if n in todo:
                face, fields = todo[n]
                done[n] = {**fields, **chip_fields(image, face, rel(n), ctx)}

    times = item["timestamps"]
    paths = item.get("frame_paths")
    rows = []
    for i, n in enumerate(sorted(base)):
        extra = {"timestamp": times[i], "frame_path": paths[i] if paths else None}
        rows.append({**base[n], **extra, **done[n]})
    return rows


def align_clip_batch(items: list[dict[str, Any]], ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """Worker: align every frame of each clip of the batch."""
    backend = worker_backend(ctx["backend"])
    clip = ClipParams(ctx["smooth"], ctx["from_video"], ctx["fps"], ctx["max_side"])
    return [row for item in items for row in _align_clip(item, backend, ctx, clip)]


def align_clips(
    clips: pd.DataFrame,
    work: Path,
    params: AlignParams = AlignParams(),
    clip: ClipParams = ClipParams(),
    jobs: int | None = None,
    force: bool = False,
) -> StageResult:
    """Align every frame of every clip into `work/<dataset>/align/`.

    `clips`: `clips_from_frames(frames manifest, frames folder)`, or with `clip.from_video` a
    videos table from an adapter (`sample_id`, `dataset`, `source_path`, `face_dir`, `status`).
    """
    params = params.resolved()
    items = clips.copy()
    if clip.from_video:
        items["fingerprint"] = [
            digest([file_hash(row["source_path"]), row]) if row["status"] == "ok" else ""
            for row in clips.astype(str).to_dict("records")
        ]
    spec = StageSpec(
        dataset=str(clips["dataset"].iloc[0]),
        name="align",
        version=VERSION,
        params={**asdict(params), **asdict(clip)},
        models=backend_class(params.backend).model_files(),
        inputs=[] if clip.from_video else ["frames"],
        outputs=("face_path",),
        columns=COLUMNS,
        quiet=frozenset({"ok", "borrowed", "no_face"}),
        internal=_INTERNAL,
        integers=("frame", "width", "height", "borrowed_from", "borrow_distance"),
    )
    return run_stage(spec, items, align_clip_batch, work, jobs=jobs, force=force, batch_size=1)
