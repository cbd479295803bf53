"""The embedded CK+ and AFEW samples: layout, labels, decodable video, visible synthetic motion,
real dlib detections, byte-identical output."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import cv2
import dlib
import numpy as np
import pytest
from PIL import Image

from fer_prep.faces.dlib import dlib_model
from fer_prep.sample import AFEW_NO_FACE, SampleError, write_afew_sample, write_ckplus_sample
from fer_prep.video import decode

# (subject, sequence) -> CK+ emotion code; None means unlabelled.
EXPECTED = {
    ("S901", "001"): 5, ("S901", "002"): 7, ("S901", "003"): 6, ("S901", "004"): None,
    ("S902", "001"): 5, ("S902", "002"): 7, ("S902", "003"): 6,
    ("S903", "001"): 5, ("S903", "002"): 7, ("S903", "003"): 6,
}  # fmt: skip
PREDICTOR = dlib_model("shape_predictor_68_face_landmarks.dat")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ckplus_sample(tmp_path_factory.mktemp("sample"))


def frames(root: Path, subject: str, seq: str) -> list[Path]:
    return sorted((root / "cohn-kanade-images" / subject / seq).glob("*.png"))


def grey(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_layout(root: Path) -> None:
    assert root.name == "ckplus"
    images = root / "cohn-kanade-images"
    assert sorted(p.name for p in images.iterdir()) == ["S901", "S902", "S903"]
    found = {(s.name, q.name) for s in images.iterdir() for q in s.iterdir()}
    assert found == set(EXPECTED)
    for subject, seq in EXPECTED:
        paths = frames(root, subject, seq)
        assert 6 <= len(paths) <= 10
        assert [p.name for p in paths] == [
            f"{subject}_{seq}_{k:08d}.png" for k in range(1, len(paths) + 1)
        ]
        for p in paths:
            with Image.open(p) as im:
                assert (im.format, im.mode, im.size) == ("PNG", "L", (640, 490))


def test_emotion_files(root: Path) -> None:
    for (subject, seq), code in EXPECTED.items():
        folder = root / "Emotion" / subject / seq
        if code is None:
            assert not folder.exists()
            continue
        (label,) = folder.iterdir()
        last = frames(root, subject, seq)[-1]
        assert label.name == last.stem + "_emotion.txt"
        text = label.read_bytes().decode()
        assert re.fullmatch(r"   \d\.\d{7}e[+-]\d\d\n", text)
        assert float(text) == code


def test_motion_is_in_the_mouth_and_ramps(root: Path) -> None:
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(PREDICTOR))
    for subject, seq in EXPECTED:
        images = [grey(p).astype(np.float64) for p in frames(root, subject, seq)]
        neutral = images[0].astype(np.uint8)
        (face,) = detector(neutral, 1)
        mouth = np.array([(p.x, p.y) for p in predictor(neutral, face).parts()][48:68])
        (x0, y0), (x1, y1) = mouth.min(0) - 8, mouth.max(0) + 8
        diffs = [np.abs(im - images[0]) for im in images]
        in_mouth = [d[y0:y1, x0:x1].mean() for d in diffs]
        far = diffs[-1][:80, :80].mean()  # frame corner, well away from the face
        assert in_mouth[-1] > 2.0, (subject, seq, in_mouth)
        assert in_mouth[-1] > 3 * far, (subject, seq, in_mouth[-1], far)
        assert far < 0.05
        assert all(a <= b + 0.05 for a, b in itertools.pairwise(in_mouth)), (subject, seq)


def test_dlib_finds_one_face(root: Path) -> None:
    detector = dlib.get_frontal_face_detector()
    for subject, seq in EXPECTED:
        paths = frames(root, subject, seq)
        for p in (paths[0], paths[-1]):
            assert len(detector(grey(p), 1)) == 1, p.name


def test_deterministic_and_idempotent(root: Path, tmp_path: Path) -> None:
    again = write_ckplus_sample(tmp_path)
    assert snapshot(again) == snapshot(root)
    write_ckplus_sample(tmp_path)  # overwrite in place
    assert snapshot(again) == snapshot(root)


# --- AFEW ------------------------------------------------------------------------------------

# Clip path under the AFEW root -> frame count (25 fps, so 2-3 s).
AFEW_EXPECTED = {
    "Train_AFEW/Happy/000000101.avi": 60,
    "Train_AFEW/Surprise/000000102.avi": 50,
    "Val_AFEW/Sad/000000201.avi": 50,
    "Val_AFEW/Neutral/000000202.avi": 75,
}
AFEW_CLASSES = {"Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise"}


@pytest.fixture(scope="module")
def afew(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_afew_sample(tmp_path_factory.mktemp("afew-sample"))


def rgb_frames(path: Path) -> dict[int, np.ndarray]:
    """Every frame of ``path`` by 1-based index, as contiguous RGB (what dlib wants)."""
    frames, _ = decode(path)
    return {i: np.ascontiguousarray(bgr[..., ::-1]) for i, bgr in frames}


def face_box(detector: dlib.fhog_object_detector, rgb: np.ndarray) -> dlib.rectangle:
    (face,) = detector(rgb, 1)
    return face


def test_afew_layout(afew: Path) -> None:
    assert afew.name == "afew"
    assert {p.relative_to(afew).as_posix() for p in afew.rglob("*") if p.is_file()} == set(
        AFEW_EXPECTED
    )
    assert {p.name for p in afew.iterdir()} == {"Train_AFEW", "Val_AFEW"}
    for rel, count in AFEW_EXPECTED.items():
        _, label, name = rel.split("/")
        assert label in AFEW_CLASSES
        assert re.fullmatch(r"\d{9}\.avi", name)
        assert 2 <= count / 25 <= 3


def test_afew_clips_decode(afew: Path) -> None:
    for rel, count in AFEW_EXPECTED.items():
        frames, decoding = decode(afew / rel)
        assert decoding.result is None  # known only once every frame has been read
        shapes = [bgr.shape for _, bgr in frames]
        assert shapes == [(360, 480, 3)] * count, rel
        assert decoding.result is not None and decoding.result.problem == "", rel
        assert decoding.result.times == pytest.approx([k / 25 for k in range(count)],
                                                      abs=1e-3), rel
        cap = cv2.VideoCapture(str(afew / rel))
        try:
            assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(25)
            seen = 0
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                assert frame.shape == (360, 480, 3)
                seen += 1
        finally:
            cap.release()
        assert seen == count, rel


def test_afew_faces_and_motion(afew: Path) -> None:
    detector = dlib.get_frontal_face_detector()
    assert set(AFEW_NO_FACE) <= set(AFEW_EXPECTED)
    boxes = {}
    for rel, count in AFEW_EXPECTED.items():
        frames = rgb_frames(afew / rel)
        boxes[rel] = face_box(detector, frames[1]), face_box(detector, frames[count])
        faceless = AFEW_NO_FACE.get(rel, range(0))
        assert all(i in frames for i in faceless)
        assert [i for i in faceless if detector(frames[i], 1)] == [], rel
    assert sum(len(r) for r in AFEW_NO_FACE.values()) >= 5
    first, last = boxes["Train_AFEW/Happy/000000101.avi"]  # drifts right and zooms in
    assert last.center().x > first.center().x + 50 and last.width() > 1.15 * first.width()
    first, last = boxes["Train_AFEW/Surprise/000000102.avi"]  # zooms out
    assert last.width() < 0.85 * first.width()


def test_afew_deterministic_and_idempotent(afew: Path, tmp_path: Path) -> None:
    again = write_afew_sample(tmp_path)
    assert snapshot(again) == snapshot(afew)
    write_afew_sample(tmp_path)  # overwrite in place
    assert snapshot(again) == snapshot(afew)


def test_afew_ffmpeg_failure_is_reported(tmp_path: Path) -> None:
    blocked = tmp_path / "afew" / "Train_AFEW" / "Happy" / "000000101.avi"
    blocked.mkdir(parents=True)  # a folder where the clip should go: ffmpeg cannot write it
    with pytest.raises(SampleError, match=r"000000101\.avi: ffmpeg could not encode"):
        write_afew_sample(tmp_path)
