"""The video2frame stage: videos → every frame (or N per second) as JPEG, one manifest row each.

Frames of a video land in `frames/<face_dir>/0000001.jpg` (Emotion-FAN's naming). A video is
extracted into a temporary folder that is renamed into place when ffmpeg has finished, so a killed
run never leaves a half-extracted video that a later run would trust. A video ffmpeg cannot read
becomes one row with `status = failed` and ffmpeg's reason.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from fer_prep.cache import TMP_MARK, digest, file_hash
from fer_prep.runner import StageResult, StageSpec, run_stage
from fer_prep.video import VideoError, extract_frames, frame_name

VERSION = 1
COLUMNS = (
    "sample_id", "dataset", "subject", "sequence", "split", "frame", "timestamp", "label",
    "label_code", "source_path", "frame_path", "status", "message",
)


@dataclass(frozen=True)
class FrameParams:
    """`fps` None = every frame; `quality` = ffmpeg's JPEG -q:v (2 best); `max_side` shrinks."""

    fps: float | None = None
    quality: int = 2
    max_side: int | None = None


def frame_rows(item: dict[str, Any], times: list[float], frame_dir: str | None) -> list[dict]:
    """One manifest row per decoded frame of `item`'s video."""
    return [
        {**item, "sample_id": f"{item['sample_id']}_{i:07d}", "frame": i, "timestamp": t,
         "frame_path": f"{frame_dir}/{frame_name(i)}" if frame_dir else None,
         "status": "ok", "message": ""}
        for i, t in enumerate(times, start=1)
    ]


def extract_batch(items: list[dict[str, Any]], ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """Worker: extract each video into place; every video yields rows, whatever happens."""
    rows = []
    for item in items:
        out = Path(ctx["folder"]) / item["face_dir"]
        tmp = out.with_name(f".{out.name}{TMP_MARK}{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            times = extract_frames(Path(item["source_path"]), tmp, ctx["fps"], ctx["quality"],
                                   ctx["max_side"])
        except VideoError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            rows.append({**item, "status": "failed", "message": str(exc)})
            continue
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)
        rows.extend(frame_rows(item, times, item["face_dir"]))
    return rows


def video2frame(
    videos: pd.DataFrame, work: Path, params: FrameParams = FrameParams(),
    jobs: int | None = None, force: bool = False,
) -> StageResult:
    """Extract the frames of every `ok` video of a samples table into `work/<dataset>/frames/`.

    `videos` needs `sample_id`, `dataset`, `source_path`, `face_dir` (the video's folder under
    `frames/`) and `status`; other columns are carried to every frame row.
    """
    items = videos.copy()
    items["fingerprint"] = [
        digest([file_hash(row["source_path"]), row]) if row["status"] == "ok" else ""
        for row in videos.astype(str).to_dict("records")
    ]
    spec = StageSpec(
        dataset=str(videos["dataset"].iloc[0]), name="frames", version=VERSION,
        params=asdict(params), outputs=("frame_path",), columns=COLUMNS, integers=("frame",),
    )
    return run_stage(spec, items, extract_batch, work, jobs=jobs, force=force, batch_size=1)
