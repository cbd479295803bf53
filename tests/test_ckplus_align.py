"""`ckplus align` on the real CK+ sequences in ../shared/data/ckplus, with real models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fer_prep.align import TEMPLATES, transform_points
from fer_prep.faces import create_backend, five_points
from fer_prep.images import read_image
from fer_prep.manifest import schema
from fer_prep.runner import run

BACKENDS = ["mediapipe", "dlib-hog"]


@pytest.fixture(scope="module", params=BACKENDS)
def aligned(request, shared: Path, tmp_path_factory) -> tuple[str, pd.DataFrame, Path]:
    work = tmp_path_factory.mktemp(f"work-{request.param}")
    result = run("ckplus", "align", work, root=shared / "data/ckplus", backend=request.param,
                 jobs=2)
    assert result.folder == work / "ckplus/align"
    return request.param, result.manifest, result.folder


def test_every_selected_frame_has_a_face(aligned, shared: Path) -> None:
    _, manifest, folder = aligned
    assert len(manifest) == 18 * 4  # 18 labelled sequences × (neutral + 3 peak)
    assert (manifest["status"] == "ok").all(), manifest.loc[manifest.status != "ok", "message"]
    assert all((folder / p).is_file() for p in manifest["face_path"])
    # chips at faces/<subject>/<take>/<frame stem>.png, e.g. faces/S052/001/S052_001_00000001.png
    expected = ("faces/" + manifest["subject"] + "/" + manifest["sequence"].str.split("_").str[1]
                + "/" + manifest["sample_id"] + ".png")
    assert (manifest["face_path"] == expected).all()
    chip = read_image(folder / manifest["face_path"].iloc[0])
    assert chip.shape == (224, 224, 3)


def test_eye_centres_land_on_the_template(aligned) -> None:
    """Mapped by the stored matrix, and re-found by an independent detector in the chip."""
    backend, manifest, folder = aligned
    target = TEMPLATES.get("eyes").eye_centres(224, 0.25)
    checker = create_backend("dlib-hog" if backend == "mediapipe" else "mediapipe")
    redetected = []
    for row in manifest.itertuples():
        lm68 = np.asarray(row.landmarks68).reshape(68, 2)
        mapped = transform_points(five_points(lm68)[:2], np.asarray(row.matrix).reshape(2, 3))
        assert np.abs(mapped - target).max() <= 2.0, row.sample_id
        faces = checker.faces(read_image(folder / row.face_path))
        assert faces, f"{checker.name} finds no face in the chip of {row.sample_id}"
        redetected.append(np.linalg.norm(faces[0].landmarks5[:2] - target, axis=1).mean())
    assert np.mean(redetected) <= 2.0, np.round(redetected, 2)


def test_landmarks_are_inside_the_box(aligned) -> None:
    """The 68 points lie in the face box, and that box is the detector's face, not a far one.

    MediaPipe follows the three consecutive peak frames (video mode: no detector box); the
    neutral frame, a run of one, is detected."""
    backend, manifest, _ = aligned
    followed = manifest["detector"] == "mesh-tracking"
    assert followed.sum() == (18 * 3 if backend == "mediapipe" else 0)
    assert manifest.loc[followed, "detector_box"].isna().all()
    for row in manifest.itertuples():
        x, y, w, h = row.box
        lm = np.asarray(row.landmarks68).reshape(68, 2)
        inside = (lm >= np.subtract([x, y], 0.01)) & (lm <= np.add([x + w, y + h], 0.01))
        assert inside.all(), row.sample_id  # 0.01 px: the tracker's box, w = x1 - x0, in float32
        extent = lm.max(0) - lm.min(0)
        assert (np.array([w, h]) <= 1.6 * extent).all(), row.sample_id
        assert len(row.landmarks5) == 10 and row.backend
        if row.detector == "mesh-tracking":
            continue
        dx, dy, dw, dh = row.detector_box  # the detector's own box overlaps the landmarks' extent
        inside = (lm >= [dx, dy]) & (lm <= [dx + dw, dy + dh])
        assert inside.all(1).mean() >= 0.6, row.sample_id


def test_labels_equal_the_emotion_files(aligned, shared: Path) -> None:
    _, manifest, _ = aligned
    codes = {}
    for path in (shared / "data/ckplus/Emotion").glob("S*/*/*_emotion.txt"):
        codes[f"{path.parts[-3]}_{path.parts[-2]}"] = int(float(path.read_text()))
    peaks = manifest[manifest["role"] == "peak"]
    assert set(peaks["sequence"]) == set(codes)
    for row in peaks.itertuples():
        assert row.label_code == codes[row.sequence]
    neutral = manifest[manifest["role"] == "neutral"]
    assert (neutral["label"] == "neutral").all() and (neutral["label_code"] == 0).all()
    assert len(neutral) == len(codes)


def test_manifest_follows_the_shipped_schema(aligned) -> None:
    _, manifest, _ = aligned
    table = schema("faces")
    missing = {c["column"] for c in table if c["required"] == "yes"} - set(manifest.columns)
    assert not missing
    checked = 0
    for entry in table:
        column, kind = entry["column"], entry["type"]
        if kind.startswith("float[") and column in manifest and column != "landmarks478":
            n = int(kind[6:-1])
            values = manifest.loc[manifest.status == "ok", column].dropna()
            assert values.map(len).eq(n).all(), column
            checked += 1
    assert checked >= 5  # box, landmarks68, detector_box, landmarks5, matrix at least
    assert set(manifest.columns) <= {c["column"] for c in table}  # every column is documented



def test_a_worker_aligns_real_frames_without_the_runners_modules(shared: Path, tmp_path: Path
                                                                 ) -> None:
    """The workers of a --jobs 2 run import neither pandas nor the runner's content step (their
    start-up is paid per worker: they import `fer_prep.runner.workers`, beside the runner's
    light `__init__`); loky keeps them for the probe that follows, a builtin's call (a function
    of this module would import it, and pandas with it, into the worker)."""
    from joblib import Parallel, delayed

    result = run("ckplus", "align", tmp_path, root=shared / "data/ckplus", jobs=2)
    assert result.counts == {"ok": 72}
    probe = ("sorted(m for m in ('pandas', 'pyarrow', 'sklearn', 'fer_prep.runner.execute', "
             "'fer_prep.faces.mediapipe') if m in __import__('sys').modules)")
    assert Parallel(n_jobs=2)(delayed(eval)(probe) for _ in range(4)) == [
        ["fer_prep.faces.mediapipe"]] * 4
