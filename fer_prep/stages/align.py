"""The align stage for stills and sequences: each frame → its largest face, the face's landmarks,
and an aligned chip.

    WORK/<dataset>/align/
      stage.json, manifest.parquet, manifest.csv   (manifests/faces.schema.csv)
      sources.json                                 content hashes of the source frames
      faces/<item path>.<png|jpg>                  e.g. faces/S052/001/S052_001_00000001.png

Every item gets a row, whatever happens to it: `ok`, `no_face`, `unreadable` (the file) or
`failed` (a model raised on that frame, with its words).

`follow` (default on): the frames of a sequence with consecutive `frame` numbers are one run,
followed in frame order with the backend's tracker (MediaPipe's video mode, which redetects
when it loses the face; a backend without one detects every frame). A gap, an unreadable or
failed frame, a dataset's own box or landmarks, or `upscale` start afresh; a run of one frame is
detected as without `follow`. Frames the tracker followed say `mesh-tracking` in `detector`
and have no `detector_box`; `n_faces` is empty on every frame of a run (the tracker follows one
face, it does not count them). A frame's result then depends on the frames before it, so each
frame's fingerprint holds its sequence's: a changed frame or another frame selection redoes the
sequence, and batches keep a sequence whole (`group`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fer_prep.align import TEMPLATES
from fer_prep.errors import WorkError
from fer_prep.faces import (
    FPS,
    LANDMARKER_ENV,
    FaceBackend,
    Hint,
    NoLandmarks,
    has_video_mode,
    list_backends,
    model_files,
)
from fer_prep.manifest import FACE_COLUMNS
from fer_prep.params import Params, option
from fer_prep.stages import STAGES, Job, Stage

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np
    import pandas as pd

    from fer_prep.faces import Face
    from fer_prep.stages.base import Context

    #: image → (its faces, largest first; whether they are all the faces in the image)
    Locate = Callable[[np.ndarray], tuple[list[Face], bool]]

FACES = "faces"
FORMATS = ("png", "jpg")


@dataclass(frozen=True)
class AlignParams(Params):
    """What the chips depend on. `size` / `padding` of None take the template's defaults."""

    preset_tables = ("align",)

    backend: str = option("mediapipe", "Face detector + landmarks.", choices=list_backends)
    template: str = option("eyes", "Alignment template.", choices=TEMPLATES.names)
    size: int | None = option(None, "Chip side in pixels [the template's].", low=16, high=2048)
    padding: float | None = option(None, "Margin around the template, dlib's convention "
                                   "[the template's].", low=0, high=2)
    grey: bool = option(False, "Grey chips (else colour).")
    upscale: int | None = option(None, "Enlarge an image shorter than PX for the backend "
                                 "(tiny pre-cropped faces, e.g. 192 for MediaPipe on 48 px).",
                                 low=16, high=4096)
    format: str = option("png", "Chip files: png (lossless) or jpg (q95, faster).",
                         choices=FORMATS)
    model: str | None = option(None, "The mediapipe backend's Face Landmarker (.task) to use "
                               f"[${LANDMARKER_ENV}, else the one shipped].")

    def resolved(self) -> AlignParams:
        """Fill the template's defaults in, so the stage record says what was used."""
        from dataclasses import replace

        tpl = TEMPLATES.get(self.template)
        return replace(self, size=tpl.size if self.size is None else int(self.size),
                       padding=tpl.padding if self.padding is None else float(self.padding))


@dataclass(frozen=True)
class FrameAlignParams(AlignParams):
    """AlignParams, plus how the frames of a sequence are read (the align stage's; clips are
    always followed, see `align_video`)."""

    follow: bool = option(True, "Follow the face through consecutive frames of a sequence (the "
                          "backend's video mode, redetecting when it loses the face) instead of "
                          "detecting it in every frame.")


@cache
def worker_backend(name: str, model: str | None = None) -> FaceBackend:
    """One backend per worker process, built on first use and kept for every later batch.

    The worker processes are the parallelism: OpenCV's own thread pool would only compete with
    them (and with MediaPipe's threads) for the same cores, so each worker keeps one thread.
    """
    import cv2

    from fer_prep.faces import create_backend

    cv2.setNumThreads(1)
    return create_backend(name, model)


def face_path(item_path: str, fmt: str) -> str:
    """Where a chip goes, relative to the stage folder: faces/<item path>.<fmt>."""
    return f"{FACES}/{item_path}.{fmt}"


def chip_fields(image: np.ndarray, face: Face, rel: str, params: AlignParams, folder: Path
                ) -> dict[str, Any]:
    """Cut, write (atomically) and describe the chip of `face`: the manifest fields of a face.

    A chip that cannot be cut or encoded is this frame's failure (ValueError, cv2.error); a
    write the work folder refuses (disk full, read-only) is `WorkError` and stops the run.
    """
    import cv2
    import numpy as np

    from fer_prep.align import align_face
    from fer_prep.images import write_image

    if params.grey and image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    elif not params.grey and image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    chip, matrix = align_face(image, face, params.template, params.size, params.padding)
    write_image(folder / rel, chip)
    return {
        "face_path": rel,
        "box": np.asarray(face.box),
        "detector_box": None if face.detector_box is None else np.asarray(face.detector_box),
        "score": face.score,
        "detector": face.detector,
        "landmarks68": face.landmarks68,
        "landmarks5": face.landmarks5,
        "landmarks478": face.landmarks478,
        "dlib5": face.dlib5,
        "matrix": matrix,
        "blendshapes": face.blendshapes,
        **dict(zip(("yaw", "pitch", "roll"),
                   [None] * 3 if face.pose is None else face.pose.tolist(), strict=True)),
    }


def failure(exc: Exception, where: str, what: str, image: np.ndarray) -> dict[str, Any]:
    """The status and message of a model (or the chip cutter) that raised on one image."""
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
    shape = f"{image.shape[1]}x{image.shape[0]}"
    return {"status": "failed", "message": f"{where}: {what} failed on this {shape} image: "
                                           f"{reason}"}


def align_batch(items: list[dict[str, Any]], job: Job) -> list[dict[str, Any]]:
    """Worker: align each item's image, following each run of frames; every item yields a row,
    whatever happens."""
    params: FrameAlignParams = job.params
    backend = worker_backend(params.backend, params.model)
    rows = []
    for run in frame_runs(items, params.follow and not params.upscale
                          and has_video_mode(params.backend)):
        if len(run) == 1:
            item = run[0]
            rows.append(_align_one(item, job, lambda image, item=item: (
                find_faces(backend, image, hint_of(item), params.upscale), True)))
        else:
            rows.extend(_follow(run, backend, job))
    return rows


def frame_runs(items: list[dict[str, Any]], follow: bool) -> list[list[dict[str, Any]]]:
    """The items as runs to follow: each sequence's items by frame, cut at every gap and around
    every item with a hint; without `follow`, or without a sequence or frame, one item a run."""
    if not follow:
        return [[item] for item in items]
    runs: list[list[dict[str, Any]]] = []
    sequences: dict[Any, list[dict[str, Any]]] = {}
    for item in items:
        if _missing(item.get("sequence")) or _missing(item.get("frame")):
            runs.append([item])
        else:
            sequences.setdefault(item["sequence"], []).append(item)
    for frames in sequences.values():
        frames.sort(key=lambda i: int(i["frame"]))
        run: list[dict[str, Any]] = []
        for item in frames:
            hinted = hint_of(item) is not None
            if run and (hinted or hint_of(run[-1]) is not None
                        or int(item["frame"]) != int(run[-1]["frame"]) + 1):
                runs.append(run)
                run = []
            run.append(item)
        runs.append(run)
    return runs


def _missing(value: Any) -> bool:
    """None, or a table's NaN / NA; plain values are judged without pandas, which a worker
    would otherwise import for this alone."""
    if value is None or isinstance(value, str | int):
        return value is None
    if isinstance(value, float):
        return math.isnan(value)
    import pandas as pd

    return bool(pd.isna(value))


def _follow(run: list[dict[str, Any]], backend: FaceBackend, job: Job) -> list[dict[str, Any]]:
    """The rows of one run of consecutive frames, followed with the backend's tracker; a frame
    that cannot be read or that a model fails on starts a new tracker (as a gap does)."""
    track = backend.tracker()

    rows = []
    for item in run:
        # a sequence's frames have numbers, not times: FPS frames a second
        row = _align_one(item, job, partial(_tracked, track, int(item["frame"]) / FPS))
        rows.append(row)
        if row["status"] in ("unreadable", "failed"):
            track = backend.tracker()
    return rows


def _tracked(track: Callable[[np.ndarray, float | None], Face | None], time: float,
             image: np.ndarray) -> tuple[list[Face], bool]:
    face = track(image, time)
    return ([] if face is None else [face]), False


def _align_one(item: dict[str, Any], job: Job, locate: Locate) -> dict[str, Any]:
    from fer_prep.images import UnreadableImage

    params: AlignParams = job.params
    row: dict[str, Any] = {**item, "backend": params.backend}
    try:
        image = job.dataset.load_image(item)
    except UnreadableImage as exc:
        return {**row, "status": "unreadable", "message": str(exc)}
    try:
        faces, counted = locate(image)
    except NoLandmarks as exc:  # the dataset's own box or landmarks do not fit the image
        return {**row, "status": "no_landmarks", "message": f"{item['source_path']}: {exc}"}
    except Exception as exc:  # a model choking on one odd frame must not end the run
        return {**row, **failure(exc, item["source_path"], params.backend, image)}
    row.update(height=image.shape[0], width=image.shape[1],
               n_faces=len(faces) if counted else None)
    if not faces:
        return {**row, "status": "no_face",
                "message": f"{item['source_path']}: no face found by {params.backend}"}
    try:
        chip = chip_fields(image, faces[0], face_path(item["item_path"], params.format), params,
                           job.folder)
    except WorkError:
        raise
    except Exception as exc:  # the chip of this frame cannot be cut or encoded
        return {**row, **failure(exc, item["source_path"], "cutting the chip", image)}
    return {**row, "status": "ok", "message": "", **chip}


def hint_of(item: dict[str, Any]) -> Hint | None:
    """The face as the dataset gives it (`given_box`, `given_landmarks68`), if it does."""
    box, points = item.get("given_box"), item.get("given_landmarks68")
    if box is None and points is None:
        return None
    return Hint(box=None if box is None else tuple(box),
                landmarks68=None if points is None else tuple(points))


def find_faces(backend: FaceBackend, image: np.ndarray, hint: Hint | None,
               upscale: int | None) -> list[Face]:
    """The backend's faces; an image shorter than `upscale` px is enlarged for the backend first
    (detectors miss tiny faces) and its faces are mapped back (`detector` says so)."""
    import cv2

    side = min(image.shape[:2])
    if not upscale or side >= upscale:
        return backend.faces(image, hint)
    factor = -(-upscale // side)
    big = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
    if hint is not None:
        hint = Hint(box=None if hint.box is None else tuple(v * factor for v in hint.box),
                    landmarks68=None if hint.landmarks68 is None
                    else tuple(v * factor for v in hint.landmarks68))
    return [_shrunk(face, factor) for face in backend.faces(big, hint)]


def _shrunk(face: Face, factor: int) -> Face:
    """`face` found on an image enlarged `factor` times, in the original image's pixels."""
    import dataclasses

    def box(b: Any) -> Any:
        return None if b is None else tuple(v / factor for v in b)

    return dataclasses.replace(
        face, box=box(face.box), detector_box=box(face.detector_box),
        landmarks68=face.landmarks68 / factor,
        landmarks478=None if face.landmarks478 is None else face.landmarks478 / factor,
        dlib5=None if face.dlib5 is None else face.dlib5 / factor,
        detector=f"{face.detector}+upscale×{factor}")


@STAGES.register("align")
class Align(Stage):
    """Detect, landmark and align the faces into WORK/<dataset>/align/faces/."""

    name = "align"
    command = "align"
    folder = "align"
    version = 1
    Params = FrameAlignParams
    kinds = frozenset({"stills", "sequences"})
    schema = "faces"
    outputs = ("face_path",)
    columns = FACE_COLUMNS
    quiet = frozenset({"ok", "no_face"})
    integers = ("n_faces", "width", "height")
    group = "sequence"
    map = staticmethod(align_batch)
    shows = {"faces": FACES}

    def models(self, params: FrameAlignParams) -> list[Path]:
        return model_files(params.backend, params.model)

    def items(self, ctx: Context, params: FrameAlignParams) -> pd.DataFrame:
        items = ctx.source_items()
        if params.follow and not params.upscale and has_video_mode(params.backend):
            items = with_sequence_fingerprints(items)
        return items


def with_sequence_fingerprints(items: pd.DataFrame) -> pd.DataFrame:
    """`items` with each usable frame's fingerprint holding its sequence's (every usable frame's
    id and fingerprint): a followed frame's result depends on the frames before it."""
    from fer_prep.cache import digest

    if "sequence" not in items:
        return items
    items = items.copy()
    usable = items[(items["status"] == "ok") & items["sequence"].notna()]
    for _, frames in usable.groupby("sequence", sort=False):
        if len(frames) > 1:
            whole = digest(frames[["sample_id", "fingerprint"]].values.tolist())
            items.loc[frames.index, "fingerprint"] = [digest([fp, whole])
                                                      for fp in frames["fingerprint"]]
    return items
