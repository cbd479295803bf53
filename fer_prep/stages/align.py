"""The align stage: frames → the largest face, its landmarks, and an aligned chip per frame.

`align(samples, work, params)` is the whole stage; the CLI calls it as a notebook would.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from fer_prep.align import TEMPLATES, align_face
from fer_prep.cache import digest, file_hash
from fer_prep.faces import Face, FaceBackend, backend_class, create_backend
from fer_prep.images import UnreadableImage, read_image, write_image
from fer_prep.manifest import FACE_COLUMNS
from fer_prep.runner import StageResult, StageSpec, run_stage

VERSION = 1
FACES = "faces"


@dataclass(frozen=True)
class AlignParams:
    """What the chips depend on. `size` / `padding` of None take the template's defaults."""

    backend: str = "mediapipe"
    template: str = "eyes"
    size: int | None = None
    padding: float | None = None
    grey: bool = False
    format: str = "png"  # chip files: png (lossless) or jpg (quality 95, smaller and faster)

    def resolved(self) -> AlignParams:
        """Fill the template's defaults in, so the stage record says what was used."""
        tpl = TEMPLATES.get(self.template)
        return AlignParams(
            backend=self.backend,
            template=self.template,
            size=tpl.size if self.size is None else int(self.size),
            padding=tpl.padding if self.padding is None else float(self.padding),
            grey=self.grey,
            format=self.format,
        )


@cache
def worker_backend(name: str) -> FaceBackend:
    """One backend per worker process, built on first use and kept for every later batch.

    The worker processes are the parallelism: OpenCV's own thread pool would only compete with
    them (and with MediaPipe's threads) for the same cores, so each worker keeps one thread.
    """
    cv2.setNumThreads(1)
    return create_backend(name)


def face_path(name: str, subdir: str | None, fmt: str) -> str:
    """Where a chip goes, relative to the stage folder: faces/<subdir>/<name>.<fmt>."""
    return f"{FACES}/{subdir}/{name}.{fmt}" if subdir else f"{FACES}/{name}.{fmt}"


def chip_fields(image: np.ndarray, face: Face, rel: str, ctx: dict[str, Any]) -> dict[str, Any]:
    """Cut, write (atomically) and describe the chip of `face`: the manifest fields of a face."""
    if ctx["grey"] and image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    elif not ctx["grey"] and image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    chip, matrix = align_face(image, face, ctx["template"], ctx["size"], ctx["padding"])
    write_image(Path(ctx["folder"]) / rel, chip)
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


def failure(exc: Exception, where: str, backend: str, image: np.ndarray) -> dict[str, Any]:
    """The status and message of a model that raised on one image."""
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
    shape = f"{image.shape[1]}x{image.shape[0]}"
    return {"status": "failed", "message": f"{where}: {backend} failed on this {shape} image: "
                                           f"{reason}"}


def align_batch(items: list[dict[str, Any]], ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """Worker: align each item's frame; every item yields a row, whatever happens."""
    backend = worker_backend(ctx["backend"])
    return [_align_one(item, backend, ctx) for item in items]


def _align_one(item: dict[str, Any], backend: FaceBackend, ctx: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {**item, "backend": ctx["backend"]}
    try:
        image = read_image(item["source_path"])
    except UnreadableImage as exc:
        return {**row, "status": "unreadable", "message": str(exc)}
    try:
        faces = backend.faces(image)
        row.update(height=image.shape[0], width=image.shape[1], n_faces=len(faces))
        if not faces:
            return {**row, "status": "no_face",
                    "message": f"{item['source_path']}: no face found by {ctx['backend']}"}
        rel = face_path(item["sample_id"], item.get("face_dir"), ctx["format"])
        return {**row, "status": "ok", "message": "", **chip_fields(image, faces[0], rel, ctx)}
    except Exception as exc:  # a model choking on one odd frame must not end the run
        return {**row, **failure(exc, item["source_path"], ctx["backend"], image)}


def align(
    samples: pd.DataFrame,
    work: Path,
    params: AlignParams = AlignParams(),
    jobs: int | None = None,
    force: bool = False,
    inputs: tuple[str, ...] = (),
) -> StageResult:
    """Align every `ok` sample of a samples manifest into `work/<dataset>/align/`.

    `samples` needs `sample_id`, `dataset`, `source_path`, `status` (and may carry `face_dir`,
    the sub-folder of `faces/` a sample's chip goes to, plus any dataset columns, kept as they
    are). Rows that are not `ok` pass through with their status and message.
    """
    params = params.resolved()
    datasets = samples["dataset"].unique()
    if len(datasets) != 1:
        raise ValueError(f"one dataset per align run, got {sorted(datasets)}")
    items = samples.copy()
    items["fingerprint"] = [  # the frame's bytes and everything the adapter said about it
        digest([file_hash(row["source_path"]), row]) if row["status"] == "ok" else ""
        for row in samples.astype(str).to_dict("records")
    ]
    spec = StageSpec(
        dataset=str(datasets[0]),
        name="align",
        version=VERSION,
        params=asdict(params),
        models=backend_class(params.backend).model_files(),
        inputs=list(inputs),
        outputs=("face_path",),
        columns=FACE_COLUMNS,
        quiet=frozenset({"ok", "no_face"}),
        integers=("n_faces", "width", "height"),
    )
    return run_stage(spec, items, align_batch, work, jobs=jobs, force=force)
