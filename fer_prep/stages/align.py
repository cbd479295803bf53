"""The align stage for stills and sequences: each frame → its largest face, the face's landmarks,
and an aligned chip.

    WORK/<dataset>/align/
      stage.json, manifest.parquet, manifest.csv   (manifests/faces.schema.csv)
      sources.json                                 content hashes of the source frames
      faces/<item path>.<png|jpg>                  e.g. faces/S052/001/S052_001_00000001.png

Every item gets a row, whatever happens to it: `ok`, `no_face`, `unreadable` (the file) or
`failed` (a model raised on that frame, with its words).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fer_prep.align import TEMPLATES
from fer_prep.errors import WorkError
from fer_prep.faces import list_backends, model_files
from fer_prep.manifest import FACE_COLUMNS
from fer_prep.params import Params, option
from fer_prep.stages import STAGES, Stage

if TYPE_CHECKING:
    import numpy as np

    from fer_prep.faces import Face, FaceBackend

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
    format: str = option("png", "Chip files: png (lossless) or jpg (q95, faster).",
                         choices=FORMATS)

    def resolved(self) -> AlignParams:
        """Fill the template's defaults in, so the stage record says what was used."""
        from dataclasses import replace

        tpl = TEMPLATES.get(self.template)
        return replace(self, size=tpl.size if self.size is None else int(self.size),
                       padding=tpl.padding if self.padding is None else float(self.padding))


@cache
def worker_backend(name: str) -> FaceBackend:
    """One backend per worker process, built on first use and kept for every later batch.

    The worker processes are the parallelism: OpenCV's own thread pool would only compete with
    them (and with MediaPipe's threads) for the same cores, so each worker keeps one thread.
    """
    import cv2

    from fer_prep.faces import create_backend

    cv2.setNumThreads(1)
    return create_backend(name)


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
    }


def failure(exc: Exception, where: str, what: str, image: np.ndarray) -> dict[str, Any]:
    """The status and message of a model (or the chip cutter) that raised on one image."""
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
    shape = f"{image.shape[1]}x{image.shape[0]}"
    return {"status": "failed", "message": f"{where}: {what} failed on this {shape} image: "
                                           f"{reason}"}


def align_batch(items: list[dict[str, Any]], params: AlignParams, folder: Path
                ) -> list[dict[str, Any]]:
    """Worker: align each item's frame; every item yields a row, whatever happens."""
    backend = worker_backend(params.backend)
    return [_align_one(item, backend, params, folder) for item in items]


def _align_one(item: dict[str, Any], backend: FaceBackend, params: AlignParams, folder: Path
               ) -> dict[str, Any]:
    from fer_prep.images import UnreadableImage, read_image

    row: dict[str, Any] = {**item, "backend": params.backend}
    try:
        image = read_image(item["source_path"])
    except UnreadableImage as exc:
        return {**row, "status": "unreadable", "message": str(exc)}
    try:
        faces = backend.faces(image)
    except Exception as exc:  # a model choking on one odd frame must not end the run
        return {**row, **failure(exc, item["source_path"], params.backend, image)}
    row.update(height=image.shape[0], width=image.shape[1], n_faces=len(faces))
    if not faces:
        return {**row, "status": "no_face",
                "message": f"{item['source_path']}: no face found by {params.backend}"}
    try:
        chip = chip_fields(image, faces[0], face_path(item["item_path"], params.format), params,
                           folder)
    except WorkError:
        raise
    except Exception as exc:  # the chip of this frame cannot be cut or encoded
        return {**row, **failure(exc, item["source_path"], "cutting the chip", image)}
    return {**row, "status": "ok", "message": "", **chip}


@STAGES.register("align")
class Align(Stage):
    """Detect, landmark and align the faces into WORK/<dataset>/align/faces/."""

    name = "align"
    command = "align"
    folder = "align"
    version = 1
    Params = AlignParams
    kinds = frozenset({"stills", "sequences"})
    schema = "faces"
    outputs = ("face_path",)
    columns = FACE_COLUMNS
    quiet = frozenset({"ok", "no_face"})
    integers = ("n_faces", "width", "height")
    map = staticmethod(align_batch)
    shows = {"faces": FACES}

    def models(self, params: AlignParams) -> list[Path]:
        return model_files(params.backend)
