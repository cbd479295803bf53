"""Alignment templates: the registry's contract, and dlib's own face chip reproduced."""

from __future__ import annotations

from pathlib import Path

import dlib
import numpy as np
import pytest

from fer_prep.align import TEMPLATES, align_face, fit_similarity, transform_points
from fer_prep.faces import create_backend, to_rgb
from fer_prep.images import read_image

FRAMES = ["S052/001/S052_001_00000015.png", "S106/002/S106_002_00000001.png",
          "S074/005/S074_005_00000043.png"]


@pytest.fixture(scope="module")
def faces(shared: Path):
    backend = create_backend("emotion-fan")
    out = []
    for rel in FRAMES:
        image = read_image(shared / "data/ckplus/cohn-kanade-images" / rel)
        out.append((to_rgb(image), backend.faces(image)[0]))
    return out


def _dlib_shape(points: np.ndarray) -> dlib.full_object_detection:
    parts = [dlib.point(int(x), int(y)) for x, y in points]
    return dlib.full_object_detection(dlib.rectangle(0, 0, 1, 1), parts)


@pytest.mark.parametrize("template", ["dlib-chip5", "dlib-chip"])
def test_dlib_chip_reproduced(faces, template: str) -> None:
    """Emotion-FAN's crop: mean absolute difference to dlib.get_face_chip ≤ 1 grey level."""
    for rgb, face in faces:
        points = face.dlib5 if template == "dlib-chip5" else face.landmarks68
        reference = dlib.get_face_chip(rgb, _dlib_shape(points), size=224, padding=0.25)
        chip, _ = align_face(rgb, face, template, 224, 0.25)
        assert np.abs(chip.astype(float) - reference).mean() <= 1.0


@pytest.mark.parametrize("name", [n for n in TEMPLATES.names() if TEMPLATES.get(n).eyes])
def test_template_places_the_eyes(faces, name: str) -> None:
    """Every template that places the eyes maps them close to where it says they go (`whole`
    places none: its box test is in test_contracts)."""
    tpl = TEMPLATES.get(name)
    for rgb, face in faces:
        chip, matrix = align_face(rgb, face, name)
        assert chip.shape == (tpl.size, tpl.size, 3)
        eyes = transform_points(face.landmarks5[:2], matrix)
        tolerance = 0.05 * tpl.size  # least-squares templates fit more than the eyes
        assert np.abs(eyes - tpl.eye_centres(tpl.size, tpl.padding)).max() <= tolerance


def test_the_closed_form_similarity_is_umeyamas() -> None:
    """`fit_similarity` gives skimage's least-squares similarity, turned, scaled, shifted or
    noisy, for 2 points (the eyes) as for many."""
    from skimage.transform import SimilarityTransform

    rng = np.random.default_rng(0)
    for n in (2, 5, 68):
        for _ in range(20):
            src = rng.uniform(0, 300, (n, 2))
            angle, scale = rng.uniform(-np.pi, np.pi), rng.uniform(0.1, 5)
            turn = scale * np.array([[np.cos(angle), -np.sin(angle)],
                                     [np.sin(angle), np.cos(angle)]])
            dst = src @ turn.T + rng.uniform(-100, 100, 2) + rng.normal(0, 3, (n, 2))
            ours = fit_similarity(src, dst)
            theirs = SimilarityTransform.from_estimate(src, dst).params[:2]
            np.testing.assert_allclose(ours, theirs, atol=1e-9)
