"""The embedded CK+ sample: layout, labels, visible synthetic motion, real dlib detections."""

from __future__ import annotations

import itertools
import re
from importlib.resources import files
from pathlib import Path

import cv2
import dlib
import numpy as np
import pytest
from PIL import Image

from fer_prep.sample import write_ckplus_sample

# (subject, sequence) -> CK+ emotion code; None means unlabelled.
EXPECTED = {
    ("S901", "001"): 5, ("S901", "002"): 7, ("S901", "003"): 6, ("S901", "004"): None,
    ("S902", "001"): 5, ("S902", "002"): 7, ("S902", "003"): 6,
    ("S903", "001"): 5, ("S903", "002"): 7, ("S903", "003"): 6,
}  # fmt: skip
PREDICTOR = files("face_recognition_models") / "models" / "shape_predictor_68_face_landmarks.dat"


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
