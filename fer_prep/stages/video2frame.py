"""The video2frame stage: videos → every frame (or N per second) as JPEG, one manifest row each.

    WORK/<dataset>/frames/
      stage.json, manifest.parquet, manifest.csv   (manifests/frames.schema.csv)
      sources.json                                 content hashes of the videos
      <item path>/0000001.jpg …                    e.g. train/Happy/000123/0000001.jpg

Frames are named as Emotion-FAN names them. A video is extracted into a temporary folder that is
renamed into place when ffmpeg has finished, so a killed run never leaves a half-extracted video
that a later run would trust. A video ffmpeg cannot read becomes one row with `status = failed`
and ffmpeg's reason; one it decodes only partway (a truncated file) gives its frames with
`status = partial` and ffmpeg's words as the message.
"""

from __future__ import annotations

import errno
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fer_prep.cache import TMP_MARK
from fer_prep.datasets import TOO_SHORT, ClipTooShort
from fer_prep.errors import ENVIRONMENT_ERRNOS, WorkError, output_error
from fer_prep.params import Params, option
from fer_prep.stages import STAGES, Job, Stage

#: what ffmpeg says when the place its frames go cannot take them (not the video's fault)
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
COLUMNS = (
    "sample_id", "dataset", "subject", "sequence", "split", "frame", "timestamp", "role",
    "label", "label_code", "source_path", "frame_path", "status", "message",
)


@dataclass(frozen=True)
class FrameParams(Params):
    """Which frames come out of a video, and how."""

    fps: float | None = option(None, "Frames per second to keep [every frame].", low=0.001)
    quality: int = option(2, "JPEG quality as ffmpeg's -q:v (2 best, 31 worst).", low=2,
                          high=31)
    max_side: int | None = option(None, "Shrink frames to fit PX × PX (never enlarged).",
                                  low=16)


def frame_rows(item: dict[str, Any], times: list[float | None], numbers: list[int],
               files: list[str], problem: str, roles: dict[int, str] | None, job: Job
               ) -> list[dict[str, Any]]:
    """One manifest row per kept frame of `item`'s clip (its number, time and file)."""
    status = "partial" if problem else "ok"
    return [
        {**item, "sample_id": job.dataset.frame_id(item["sample_id"], n), "frame": n,
         "timestamp": t, "role": roles.get(n) if roles else None, "frame_path": f,
         "status": status, "message": problem,
         **(job.dataset.frame_label(item, roles.get(n)) if roles else {})}
        for n, t, f in zip(numbers, times, files, strict=True)
    ]


def _keep_selected(tmp: Path, count: int, roles: dict[int, str] | None) -> list[int]:
    """The frame numbers the dataset keeps; the others' files are removed from `tmp`."""
    from fer_prep.video import frame_name

    if roles is None:
        return list(range(1, count + 1))
    for n in range(1, count + 1):
        if n not in roles:
            (tmp / frame_name(n)).unlink(missing_ok=True)
    return sorted(n for n in roles if 1 <= n <= count)


def _copy_frames(item: dict[str, Any], tmp: Path) -> list[str]:
    """Place a clip the dataset ships as frame files (MMI as FMPN extracted it) into `tmp`:
    linked where the file system allows, else copied, named by frame number as `frame_name`
    names them (their own suffix)."""
    from fer_prep.video import VideoError

    tmp.mkdir(parents=True)
    names = []
    for number, source in zip(item["frame_numbers"], item["frame_files"], strict=True):
        if not Path(source).is_file():
            raise VideoError(f"{source}: frame file missing (was it moved since the read?)")
        name = f"{number:07d}{Path(source).suffix.lower()}"
        try:
            os.link(source, tmp / name)
        except OSError:
            shutil.copyfile(source, tmp / name)
        names.append(name)
    return names


def extract_batch(items: list[dict[str, Any]], job: Job) -> list[dict[str, Any]]:
    """Worker: extract each video into place; every video yields rows, whatever happens."""
    from fer_prep.video import VideoError, extract_frames, frame_name

    params, folder = job.params, job.folder
    rows = []
    for item in items:
        out = folder / item["item_path"]
        tmp = out.with_name(f".{out.name}{TMP_MARK}{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        meta = {k: v for k, v in item.items() if k not in job.dataset.internal}
        try:
            if item.get("frame_files"):
                names = _copy_frames(item, tmp)
                numbers, times, problem = list(item["frame_numbers"]), [None] * len(names), ""
                roles = dict(zip(numbers, item["frame_roles"], strict=True))
            else:
                decoded = extract_frames(Path(item["source_path"]), tmp, params.fps,
                                         params.quality, params.max_side)
                select = job.dataset.frame_selection(item)
                roles = select(len(decoded.times)) if select else None
                numbers = _keep_selected(tmp, len(decoded.times), roles)
                times = [decoded.times[n - 1] for n in numbers]
                names, problem = [frame_name(n) for n in numbers], decoded.problem
        except ClipTooShort as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            rows.append({**meta, "status": TOO_SHORT, "message": f"{item['source_path']}: {exc}"})
            continue
        except VideoError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if any(os.strerror(e) in str(exc) for e in WRITE_ERRNOS):
                raise WorkError(f"{tmp}: cannot write the frames ({exc}); fix that and run the "
                                "same command again: what is finished is kept") from None
            rows.append({**meta, "status": "failed", "message": str(exc)})
            continue
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if exc.errno in ENVIRONMENT_ERRNOS:
                raise output_error(tmp, exc) from exc
            raise
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)
        files = [f"{item['item_path']}/{name}" for name in names]
        rows.extend(frame_rows(meta, times, numbers, files, problem, roles, job))
    return rows


@STAGES.register("video2frame")
class Video2Frame(Stage):
    """Extract every frame of every clip into WORK/<dataset>/frames/<item path>/."""

    name = "video2frame"
    command = "video2frame"
    folder = "frames"
    version = 1
    Params = FrameParams
    kinds = frozenset({"videos"})
    schema = "frames"
    key = "sequence"
    outputs = ("frame_path",)
    columns = COLUMNS
    integers = ("frame",)
    batch_size = 1
    map = staticmethod(extract_batch)
    shows = {"frames": "."}
