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
from fer_prep.faces import FaceBackend, backend_class, create_backend
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

    def resolved(self) -> AlignParams:
        """Fill the template's defaults in, so the stage record says what was used."""
        tpl = TEMPLATES.get(self.template)
        return AlignParams(
            backend=self.backend,
            template=self.template,
            size=tpl.size if self.size is None else int(self.size),
            padding=tpl.padding if self.padding is None else float(self.padding),
            grey=self.grey,
        )


@cache
def _backend(name: str) -> FaceBackend:
    """One backend per worker process, built on first use and kept for every later batch."""
    return create_backend(name)


def face_path(sample_id: str, subdir: str) -> str:
    """Where a sample's chip goes, relative to the stage folder: faces/<subdir>/<sample_id>.png."""
    return f"{FACES}/{subdir}/{sample_id}.png" if subdir else f"{FACES}/{sample_id}.png"


def align_batch(items: list[dict[str, Any]], ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """Worker: align each item's frame; every item yields a row, whatever happens."""
    backend = _backend(ctx["backend"])
    return [_align_one(item, backend, ctx) for item in items]


def _align_one(item: dict[str, Any], backend: FaceBackend, ctx: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {**item, "backend": ctx["backend"]}
    try:
        image = read_image(item["source_path"])
    except UnreadableImage as exc:
        return {**row, "status": "unreadable", "message": str(exc)}
    try:
        return _align_image(item, image, backend, ctx, row)
    except Exception as exc:  # a model choking on one odd frame must not end the run
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
        return {**row, "status": "failed",
                "message": f"{item['source_path']}: {ctx['backend']} failed on this "
                           f"{image.shape[1]}x{image.shape[0]} image: {reason}"}


def _align_image(
    item: dict[str, Any], image: np.ndarray, backend: FaceBackend, ctx: dict[str, Any],
    row: dict[str, Any],
) -> dict[str, Any]:
    faces = backend.faces(image)
    row.update(height=image.shape[0], width=image.shape[1], n_faces=len(faces))
    if not faces:
        return {
            **row, "status": "no_face",
            "message": f"{item['source_path']}: no face found by {ctx['backend']}",
        }
    face = faces[0]  # largest
    if ctx["grey"] and image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    elif not ctx["grey"] and image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    chip, matrix = align_face(image, face, ctx["template"], ctx["size"], ctx["padding"])
    rel = face_path(item["sample_id"], item.get("face_dir", ""))
    write_image(Path(ctx["folder"]) / rel, chip)
    return {
        **row,
        "status": "ok",
        "message": "",
        "face_path": rel,
        "box": np.asarray(face.box),
        "detector_box": np.asarray(face.detector_box),
        "score": face.score,
        "detector": face.detector,
        "landmarks68": face.landmarks68,
        "landmarks5": face.landmarks5,
        "landmarks478": face.landmarks478,
        "dlib5": face.dlib5,
        "matrix": matrix,
    }


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
    )
    return run_stage(spec, items, align_batch, work, jobs=jobs, force=force)
