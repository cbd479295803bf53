"""The default backend on MediaPipe's Tasks API, on real faces: the shipped model and its checks,
blendshapes and head pose in the align manifest, small and frame-filling faces, and a clip's
faces that do not depend on the clip before it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from fer_prep.errors import InputError, OptionError
from fer_prep.faces import (
    LANDMARKER,
    LANDMARKER_ENV,
    LANDMARKER_SHA256,
    create_backend,
    face_landmarker_model,
    model_files,
)
from fer_prep.manifest import read_manifest
from fer_prep.runner import run

pytestmark = pytest.mark.shared
SMILE = ("mouthSmileLeft", "mouthSmileRight")


@pytest.fixture(scope="module")
def backend():
    return create_backend("mediapipe")


@pytest.fixture(scope="module")
def aligned(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    work = tmp_path_factory.mktemp("mp")
    result = run("ckplus", "align", work, root=shared / "data/ckplus")
    assert result.record["models"]["face_landmarker.task"]["hash"]
    manifest = read_manifest(result.folder)
    manifest.attrs["folder"] = result.folder
    return manifest


def test_the_shipped_model_is_googles_float16_v1() -> None:
    import hashlib

    assert LANDMARKER.stat().st_size == 3_758_596
    assert hashlib.sha256(LANDMARKER.read_bytes()).hexdigest() == LANDMARKER_SHA256
    assert (LANDMARKER.parent / "LICENSE").read_text().lstrip().startswith("Apache License")
    assert LANDMARKER_SHA256 in (LANDMARKER.parent / "NOTICE").read_text()


def test_blendshapes_and_pose_in_the_align_manifest(aligned: pd.DataFrame) -> None:
    from fer_prep.faces import BLENDSHAPES

    ok = aligned[aligned["status"] == "ok"]
    assert len(ok) == 72
    scores = np.stack(ok["blendshapes"].to_numpy())
    assert scores.shape == (72, 52) and len(BLENDSHAPES) == 52
    assert ((scores >= 0) & (scores <= 1)).all()
    pose = ok[["yaw", "pitch", "roll"]].to_numpy(dtype=float)
    assert np.isfinite(pose).all() and (np.abs(pose) < 20).all()  # CK+ faces look ahead
    readable = pd.read_csv(aligned.attrs["folder"] / "manifest.csv")
    assert readable["blendshapes"].str.count(",").eq(51).all()  # JSON arrays of 52 scores


def test_a_smile_scores_above_its_neutral_frame(aligned: pd.DataFrame) -> None:
    """Every happiness sequence's peak frames score mouthSmile* above its neutral first frame."""
    from fer_prep.faces import BLENDSHAPES

    cols = [BLENDSHAPES.index(name) for name in SMILE]
    aligned = aligned.assign(smile=[np.mean(np.asarray(b)[cols]) for b in aligned["blendshapes"]])
    happy = aligned[aligned["sequence_label"] == "happiness"]
    assert happy["sequence"].nunique() == 4
    for sequence, frames in happy.groupby("sequence"):
        neutral = frames.loc[frames["role"] == "neutral", "smile"].max()
        peak = frames.loc[frames["role"] == "peak", "smile"].min()
        assert peak > neutral + 0.3, (sequence, neutral, peak)
    others = aligned[(aligned["role"] == "peak") & (aligned["sequence_label"] != "happiness")]
    assert happy.loc[happy["role"] == "peak", "smile"].mean() > others["smile"].mean() + 0.3


def test_the_names_are_the_models_own(backend, shared: Path) -> None:
    from fer_prep.faces import BLENDSHAPES
    from fer_prep.faces.mediapipe import _image

    image = cv2.imread(str(shared / "data/media/single_face.jpg"))
    result = backend.mesh.detect(_image(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)))
    assert tuple(c.category_name for c in result.face_blendshapes[0]) == BLENDSHAPES


def test_head_pose_signs_on_a_turned_face(backend, shared: Path) -> None:
    """The media face turned towards the image's left: yaw < 0; mirrored, yaw > 0 by as much;
    turned 20° clockwise, roll falls by about 20°."""
    image = cv2.imread(str(shared / "data/media/45-m7-di-ph.jpg"))
    yaw, _, roll = backend.faces(image)[0].pose
    assert yaw < -20
    flipped = backend.faces(cv2.flip(image, 1))[0].pose
    assert flipped[0] > 20 and abs(flipped[0] + yaw) < 5
    h, w = image.shape[:2]
    turned = cv2.warpAffine(image, cv2.getRotationMatrix2D((w / 2, h / 2), -20, 1.0), (w, h))
    assert abs(backend.faces(turned)[0].pose[2] - (roll - 20)) < 4


def test_several_and_small_faces(backend, shared: Path) -> None:
    """The five faces of the group photo (the short-range detector alone finds three), and the
    small faces of the PASCAL VOC photos that dlib's examples annotate (30–50 px)."""
    from fer_prep.faces.imglab import read_imglab

    faces = backend.faces(cv2.imread(str(shared / "data/media/multi_face.jpg")))
    assert len(faces) == 5
    assert all(f.blendshapes is not None and f.pose is not None for f in faces)
    found = total = others = 0
    pitch, drop = [], []  # pitch > 0 looks down: the nose tip nears the mouth in the image
    for name in ("testing.xml", "training.xml"):
        for path, marked in read_imglab(shared / "data/faces_dlib" / name):
            boxes = [box for box, _ in marked]
            faces = backend.faces(cv2.imread(str(path)))
            got = [f.box for f in faces]
            pitch += [f.pose[1] for f in faces]
            lm = np.stack([f.landmarks68 for f in faces])
            eyes, mouth = lm[:, 36:48, 1].mean(1), lm[:, [48, 54], 1].mean(1)
            drop += list((lm[:, 30, 1] - eyes) / (mouth - eyes))
            total += len(boxes)
            found += sum(any(_overlap(b, g) > 0.3 for g in got) for b in boxes)
            others += sum(not any(_overlap(b, g) > 0.3 for b in boxes) for g in got)
    assert total == 43 and found >= 40, found
    assert others <= 3, others  # 2 measured: round objects on a wall; a face twice would be more
    assert np.corrcoef(pitch, drop)[0, 1] > 0.5


def _overlap(a, b) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def test_fer2013_faces_that_fill_the_frame(backend, shared: Path) -> None:
    """48-px FER2013 faces: the detector misses some unframed; framed, nearly all are found."""
    rows = pd.read_csv(shared / "data/fer2013/fer2013.csv", nrows=100)
    detectors = []
    for pixels in rows["pixels"]:
        image = np.array(pixels.split(), np.uint8).reshape(48, 48)
        found = backend.faces(image)
        detectors.append(found[0].detector if found else None)
    assert sum(d is not None for d in detectors) >= 95
    assert "blazeface-framed" in detectors


def test_a_clip_does_not_depend_on_the_clip_before(backend, shared: Path) -> None:
    """Each clip gets a fresh video-mode landmarker: S055_001 followed after S052_001 gives the
    same landmarks as followed first; the frames' times matter (VIDEO mode smooths over them)."""
    frames = shared / "data/ckplus/cohn-kanade-images"

    def follow(sequence: str, step: float = 1 / 30) -> np.ndarray:
        track = backend.tracker()
        return np.stack([track(cv2.imread(str(p)), i * step).landmarks478 for i, p in
                         enumerate(sorted((frames / sequence).glob("*.png")))])

    first = follow("S055/001")
    follow("S052/001")
    assert np.array_equal(follow("S055/001"), first)
    assert not np.array_equal(follow("S055/001", step=1.0), first)


def test_a_damaged_or_wrong_model_is_one_line(tmp_path: Path, monkeypatch) -> None:
    bad = tmp_path / "face_landmarker.task"
    bad.write_bytes(LANDMARKER.read_bytes()[:100_000])  # truncated
    with pytest.raises(InputError, match="not a whole MediaPipe Face Landmarker") as err:
        face_landmarker_model(bad)
    assert str(bad) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(InputError, match="cannot read"):
        face_landmarker_model(tmp_path / "nowhere.task")
    monkeypatch.setenv(LANDMARKER_ENV, str(bad))
    with pytest.raises(InputError, match=str(bad)):
        create_backend("mediapipe")
    with pytest.raises(OptionError, match="--model"):
        model_files("dlib-hog", str(bad))


def test_a_changed_shipped_model_is_refused(tmp_path: Path) -> None:
    """The shipped file's digest is checked: a copy of the package with one byte changed."""
    code = ("import sys, fer_prep.faces as f\nfrom pathlib import Path\n"
            "f.LANDMARKER = Path(sys.argv[1])\n"
            "try:\n    f.face_landmarker_model()\nexcept f.__dict__.get('InputError', "
            "Exception) as e:\n    print(e)\n")
    changed = tmp_path / "face_landmarker.task"
    data = bytearray(LANDMARKER.read_bytes())
    data[1000] ^= 1
    changed.write_bytes(bytes(data))
    out = subprocess.run([sys.executable, "-c", code, str(changed)], capture_output=True,
                         text=True, check=True).stdout
    assert "damaged" in out and str(changed) in out


def test_another_model_by_option_and_environment(shared: Path, tmp_path: Path,
                                                 monkeypatch) -> None:
    """`--model PATH` (here a copy of the bundle under another name) is what the record hashes;
    the environment variable does the same."""
    other = tmp_path / "landmarker-copy.task"
    shutil.copy(LANDMARKER, other)
    one = tmp_path / "one"
    (one / "cohn-kanade-images/S052/004").mkdir(parents=True)
    (one / "Emotion/S052/004").mkdir(parents=True)
    src = shared / "data/ckplus"
    for p in sorted((src / "cohn-kanade-images/S052/004").glob("*.png"))[-3:]:
        shutil.copy(p, one / "cohn-kanade-images/S052/004")
    for p in (src / "Emotion/S052/004").glob("*.txt"):
        shutil.copy(p, one / "Emotion/S052/004")
    result = run("ckplus", "align", tmp_path / "w1", root=one, model=str(other))
    assert "landmarker-copy.task" in result.record["models"]
    assert result.record["params"]["model"] == str(other)
    monkeypatch.setenv(LANDMARKER_ENV, str(other))
    again = run("ckplus", "align", tmp_path / "w2", root=one)
    assert "landmarker-copy.task" in again.record["models"]
