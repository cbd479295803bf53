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
from fer_prep.errors import ENVIRONMENT_ERRNOS, WorkError, output_error
from fer_prep.params import Params, option
from fer_prep.stages import STAGES, Job, Stage

#: what ffmpeg says when the place its frames go cannot take them (not the video's fault)
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
COLUMNS = (
    "sample_id", "dataset", "subject", "sequence", "split", "frame", "timestamp", "label",
    "label_code", "source_path", "frame_path", "status", "message",
)


@dataclass(frozen=True)
class FrameParams(Params):
    """Which frames come out of a video, and how."""

    fps: float | None = option(None, "Frames per second to keep [every frame].", low=0.001)
    quality: int = option(2, "JPEG quality as ffmpeg's -q:v (2 best, 31 worst).", low=2,
                          high=31)
    max_side: int | None = option(None, "Shrink frames to fit PX × PX (never enlarged).",
                                  low=16)


def frame_rows(item: dict[str, Any], times: list[float], folder: str, problem: str
               ) -> list[dict[str, Any]]:
    """One manifest row per decoded frame of `item`'s video."""
    from fer_prep.video import frame_name

    status = "partial" if problem else "ok"
    return [
        {**item, "sample_id": f"{item['sample_id']}_{i:07d}", "frame": i, "timestamp": t,
         "frame_path": f"{folder}/{frame_name(i)}", "status": status, "message": problem}
        for i, t in enumerate(times, start=1)
    ]


def extract_batch(items: list[dict[str, Any]], job: Job) -> list[dict[str, Any]]:
    """Worker: extract each video into place; every video yields rows, whatever happens."""
    from fer_prep.video import VideoError, extract_frames

    params, folder = job.params, job.folder
    rows = []
    for item in items:
        out = folder / item["item_path"]
        tmp = out.with_name(f".{out.name}{TMP_MARK}{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            decoded = extract_frames(Path(item["source_path"]), tmp, params.fps,
                                     params.quality, params.max_side)
        except VideoError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if any(os.strerror(e) in str(exc) for e in WRITE_ERRNOS):
                raise WorkError(f"{tmp}: cannot write the frames ({exc}); fix that and run the "
                                "same command again: what is finished is kept") from None
            rows.append({**item, "status": "failed", "message": str(exc)})
            continue
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if exc.errno in ENVIRONMENT_ERRNOS:
                raise output_error(tmp, exc) from exc
            raise
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)
        rows.extend(frame_rows(item, decoded.times, item["item_path"], decoded.problem))
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
