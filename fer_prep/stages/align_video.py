"""The align stage for videos: one clip at a time, following the face from frame to frame.

    WORK/<dataset>/align/
      stage.json, manifest.parquet, manifest.csv   (manifests/faces.schema.csv)
      faces/<item path>/0000001.<jpg|png> …        e.g. faces/train/Happy/000123/0000001.jpg

Input is the frames manifest of `video2frame`, or (`from_video`) the videos themselves, decoded
through ffmpeg without writing frames. Every frame gets a row, whatever happens to it:

- `ok`: the backend found the face (in video mode where it has one, e.g. MediaPipe);
- `borrowed`: no face found on this frame, so the chip is cut from this frame with the landmarks
  of the nearest frame that had one (`borrowed_from`, `borrow_distance` in frames);
- `no_face`: no face anywhere in the clip; `unreadable` / `failed`: the frame, its chip, or the
  video is broken (a chip that cannot be cut fails its frame alone).

A video ffmpeg decoded only partway keeps ffmpeg's words in its rows' `message`. `smooth` filters
the landmarks over time (Savitzky–Golay, 5 frames, quadratic) within each run of consecutive
detections before cutting the chips.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fer_prep.datasets import TOO_SHORT, ClipTooShort
from fer_prep.errors import WorkError
from fer_prep.faces import FPS, model_files
from fer_prep.faces.views import VIEW_CHOICES
from fer_prep.manifest import FACE_COLUMNS
from fer_prep.params import option
from fer_prep.stages import STAGES, Job, Stage
from fer_prep.stages.align import (
    FACES,
    AlignParams,
    chip_fields,
    face_path,
    failure,
    worker_backend,
)

if TYPE_CHECKING:
    import pandas as pd

    from fer_prep.datasets import Dataset
    from fer_prep.faces import Face, FaceBackend
    from fer_prep.stages.base import Context

SMOOTH_WINDOW = 5
COLUMNS = (*FACE_COLUMNS, "split", "timestamp", "frame_path", "borrowed_from", "borrow_distance",
           "view")
_INTERNAL = ("frame_numbers", "frame_files", "frame_paths", "frame_roles", "timestamps",
             "video_problem")
_PER_FRAME = ("sample_id", "frame", "timestamp", "role", "frame_path", "status", "message",
              "fingerprint")
#: frames-manifest statuses whose frames are usable (partial: a truncated video's frames)
FRAMES_USABLE = ("ok", "partial")


@dataclass(frozen=True)
class VideoAlignParams(AlignParams):
    """AlignParams, plus how clips are read and followed; `fps` / `max_side` apply when
    decoding the videos directly."""

    preset_tables = ("align", "video-align")

    smooth: bool = option(False, "Smooth landmarks over time before cutting chips.")
    from_video: bool = option(False, "Decode the videos directly (needs --root); no frame "
                              "files are written.")
    fps: float | None = option(None, "--from-video: frames per second to keep [every frame].",
                               low=0.001)
    max_side: int | None = option(None, "--from-video: shrink frames to fit PX × PX.", low=16)


def clips_from_frames(frames: pd.DataFrame, frames_folder: Path, made_by: str) -> pd.DataFrame:
    """One item per video of a frames manifest (its frames as lists); failed videos as they are.

    An item's fingerprint is its video's, the fingerprint `made_by` of the frames stage that
    extracted it (its parameters) and its frames' relative paths and times: a copied work folder
    aligns nothing again, and frames extracted otherwise are aligned again.
    """
    import pandas as pd

    from fer_prep.cache import digest

    items = []
    for sequence, group in frames.groupby("sequence", sort=False):
        expression = group[group["role"] != "neutral"] if "role" in group else group
        first = (expression if len(expression) else group).iloc[0].to_dict()
        clip = {k: v for k, v in first.items() if k not in _PER_FRAME}
        clip["sample_id"] = sequence
        if first["status"] not in FRAMES_USABLE:
            items.append({**clip, "status": first["status"], "message": first["message"],
                          "fingerprint": ""})
            continue
        clip.update(
            status="ok", message="",
            video_problem=first["message"] if first["status"] == "partial" else "",
            frame_numbers=group["frame"].astype(int).tolist(),
            frame_paths=group["frame_path"].tolist(),
            frame_files=[str(frames_folder / p) for p in group["frame_path"]],
            frame_roles=(group["role"].tolist() if "role" in group
                         else [None] * len(group)),
            timestamps=group["timestamp"].astype(float).tolist(),
        )
        clip["fingerprint"] = digest([made_by, group["fingerprint"].tolist(),
                                      clip["frame_paths"], clip["timestamps"],
                                      clip["video_problem"]])
        items.append(clip)
    return pd.DataFrame(items)


def _frames_of(item: dict[str, Any], params: VideoAlignParams, dataset: Dataset
               ) -> Callable[[], Iterator]:
    """A function giving a fresh pass over the clip's (number, image or UnreadableImage): the
    frame files (of `video2frame`, or of a dataset that ships frames), or the video decoded,
    keeping the frames the dataset's protocol selects (their roles go to `frame_roles`)."""
    from fer_prep.images import UnreadableImage, read_image
    from fer_prep.video import count_frames, decode

    if params.from_video and not item.get("frame_files"):
        path = Path(item["source_path"])
        select = dataset.frame_selection(item)
        if select is not None:  # the protocol picks by place in the clip: count it first
            counted = count_frames(path, params.fps, params.max_side)
            roles = select(len(counted.times))
            item["frame_roles"] = [roles[n] for n in sorted(roles)]

        def from_video() -> Iterator:
            frames, decoding = decode(path, params.fps, params.max_side)
            keep = None if select is None else roles
            yield from ((n, image) for n, image in frames if keep is None or n in keep)
            times = decoding.result.times  # filled in once the pass is over
            item["timestamps"] = times if keep is None else [times[n - 1] for n in sorted(keep)]
            item["video_problem"] = decoding.result.problem

        return from_video
    if not item.get("timestamps"):
        item["timestamps"] = [None] * len(item["frame_files"])  # frames a dataset ships

    def from_files() -> Iterator:
        for number, path in zip(item["frame_numbers"], item["frame_files"], strict=True):
            try:
                yield number, read_image(path)
            except UnreadableImage as exc:
                yield number, exc

    return from_files


def _smoothed(faces: dict[int, Face]) -> dict[int, Face]:
    """Landmarks filtered over time within runs of consecutive frames (short runs unchanged)."""
    import numpy as np
    from scipy.signal import savgol_filter

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
        for points in ("landmarks68", "dlib5"):  # dlib5: what the dlib-chip5 template aligns on
            if any(getattr(faces[n], points) is None for n in run):
                continue
            stack = np.stack([getattr(faces[n], points) for n in run])
            smooth = savgol_filter(stack, SMOOTH_WINDOW, 2, axis=0).astype(np.float32)
            for n, lm in zip(run, smooth, strict=True):
                out[n] = dataclasses.replace(out[n], **{points: lm})
    return out


def _chip(image: Any, face: Face, rel: str, params: VideoAlignParams, folder: Path,
          where: str) -> dict[str, Any]:
    """The chip fields of one frame, or that frame's failure (a full disk stops the run)."""
    try:
        return chip_fields(image, face, rel, params, folder)
    except WorkError:
        raise
    except Exception as exc:  # this frame's chip cannot be cut or encoded: this frame fails
        return failure(exc, where, "cutting the chip", image)


def _align_clip(item: dict[str, Any], backend: FaceBackend, job: Job) -> list[dict[str, Any]]:
    import numpy as np

    from fer_prep.faces.views import choose_view, in_view
    from fer_prep.images import UnreadableImage
    from fer_prep.video import VideoError

    params: VideoAlignParams = job.params
    meta = {k: v for k, v in item.items() if k not in _INTERNAL and k != "item_path"}
    base: dict[int, dict[str, Any]] = {}
    done: dict[int, dict[str, Any]] = {}
    faces: dict[int, Face] = {}
    track = backend.tracker()
    view = item.get("view")  # a dataset whose clips may hold the face in a part of the frame

    def rel(n: int) -> str:
        return face_path(f"{item['item_path']}/{n:07d}", params.format)

    def where(n: int) -> str:
        return f"{item['source_path']} frame {n}"

    try:
        frames = _frames_of(item, params, job.dataset)
        # the tracker's clock: the frames' own times where known (video2frame's), else the
        # frame numbers at --fps (or FPS) frames a second
        known = dict(zip(item.get("frame_numbers") or (), item.get("timestamps") or (),
                         strict=False))
        step = 1 / (params.fps or FPS)
        for n, image in frames():
            base[n] = {**meta, "sample_id": job.dataset.frame_id(item["sample_id"], n),
                       "frame": n, "backend": params.backend}
            if isinstance(image, UnreadableImage):
                done[n] = {"status": "unreadable", "message": str(image)}
                continue
            if view in VIEW_CHOICES:  # decided once per clip, on its first readable frame
                view = choose_view(image, backend, view)
            image = in_view(image, view)
            base[n].update(height=image.shape[0], width=image.shape[1], view=view)
            try:
                time = known.get(n)  # None, or NaN in a table, where unknown
                time = (n - 1) * step if time is None or time != time else float(time)
                face = track(image, time)
            except Exception as exc:  # one odd frame must not end the clip
                done[n] = failure(exc, where(n), params.backend, image)
                continue
            if face is None:
                continue
            faces[n] = face
            if not params.smooth:
                done[n] = {"status": "ok", "message": "",
                           **_chip(image, face, rel(n), params, job.folder, where(n))}
    except VideoError as exc:
        return [{**meta, "status": "failed", "message": str(exc)}]
    except ClipTooShort as exc:
        return [{**meta, "status": TOO_SHORT, "message": f"{item['source_path']}: {exc}"}]

    if params.smooth and faces:
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
                done[n] = {**fields, **_chip(in_view(image, view), face, rel(n), params,
                                             job.folder, where(n))}

    times, paths = item["timestamps"], item.get("frame_paths")
    roles = item.get("frame_roles")
    problem = item.get("video_problem") or ""
    rows = []
    for i, n in enumerate(sorted(base)):
        role = roles[i] if roles else None
        row = {**base[n], "timestamp": times[i], "frame_path": paths[i] if paths else None,
               "role": role, **job.dataset.frame_label(meta, role), **done[n]}
        if problem and not row["message"]:
            row["message"] = problem  # a partly decoded video says so on every row
        rows.append(row)
    return rows


def align_clip_batch(items: list[dict[str, Any]], job: Job) -> list[dict[str, Any]]:
    """Worker: align every frame of each clip of the batch."""
    backend = worker_backend(job.params.backend, job.params.model)
    return [row for item in items for row in _align_clip(item, backend, job)]


@STAGES.register("align-video")
class AlignVideo(Stage):
    """Align every frame of every clip into WORK/<dataset>/align/, following faces through clips.

    Reads the frames of `video2frame` (or, with --from-video, the videos). A frame with no face
    borrows the nearest detected frame's landmarks (status `borrowed`); a clip without any face
    gives `no_face` rows. --fps / --max-side apply with --from-video.
    """

    name = "align-video"
    command = "align"
    folder = "align"
    version = 2  # 2: smoothing also filters dlib's 5 points
    Params = VideoAlignParams
    kinds = frozenset({"videos"})
    schema = "faces"
    inputs = ("frames",)
    root = "optional"
    key = "sequence"
    outputs = ("face_path",)
    columns = COLUMNS
    quiet = frozenset({"ok", "borrowed", "no_face"})
    internal = _INTERNAL
    integers = ("frame", "width", "height", "borrowed_from", "borrow_distance")
    batch_size = 1
    map = staticmethod(align_clip_batch)
    shows = {"faces": FACES}

    def reads_dataset(self, params: VideoAlignParams, ctx: Context) -> bool:
        return params.from_video

    def models(self, params: VideoAlignParams) -> list[Path]:
        return model_files(params.backend, params.model)

    def items(self, ctx: Context, params: VideoAlignParams) -> pd.DataFrame:
        if params.from_video:
            return ctx.source_items()
        frames = ctx.upstream_manifest("frames")
        clips = clips_from_frames(frames, ctx.upstream_folder("frames"),
                                  ctx.upstream_record("frames")["fingerprint"])
        ok = clips["status"] == "ok"
        clips.loc[ok, "item_path"] = [ctx.dataset.item_path(r) for r in
                                      clips[ok].to_dict("records")]
        return clips
