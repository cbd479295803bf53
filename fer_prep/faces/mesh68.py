"""MediaPipe's 478-point face mesh mapped onto the iBUG 68-point scheme.

`MESH_TO_68[i]` is dlib's point i as a fixed blend {mesh vertex: weight} (weights sum to 1), fitted
by `bench/fit_mesh68.py` against dlib's `shape_predictor_68_face_landmarks` run on the same boxes:
the 18 faces of dlib's `training_with_face_landmarks.xml`, every third frame of the CK+ sample
(117) and the 10 faces of the media photos, the three sources weighed equally; least mean error
over the inter-ocular distance (IOD), a blend only where it beats the best single vertex by 10%.
Iris vertices are never used, so a 468-point mesh works too. On the held-out
`testing_with_face_landmarks.xml` (`bench/mesh68_error.py`) the error fell from 0.055 to 0.041 IOD,
the jaw's from 0.103 to 0.063 (dlib's jaw is the visible outline, which no fixed vertex follows as
the head turns).
"""

from __future__ import annotations

import numpy as np

MESH_TO_68: tuple[dict[int, float], ...] = (
    # jaw 0-16
    {34: 1}, {227: 0.75, 137: 0.25}, {177: 0.5, 137: 0.5}, {215: 0.75, 177: 0.25}, {138: 1},
    {136: 1}, {149: 0.75, 150: 0.25}, {148: 0.5, 176: 0.5}, {152: 1}, {377: 0.5, 400: 0.5},
    {378: 1}, {365: 1}, {397: 1}, {435: 1}, {361: 0.5, 366: 0.5}, {454: 0.75, 366: 0.25}, {356: 1},
    # brows 17-26
    {70: 0.5, 156: 0.5}, {63: 1}, {105: 0.75, 66: 0.25}, {66: 0.75, 107: 0.25},
    {107: 0.75, 193: 0.25}, {336: 0.75, 8: 0.25}, {296: 0.75, 336: 0.25},
    {282: 1/3, 295: 1/3, 333: 1/3}, {293: 1}, {300: 0.75, 383: 0.25},
    # nose 27-35
    {193: 1/3, 8: 1/3, 351: 1/3}, {122: 1/3, 351: 1/3, 195: 1/3}, {248: 1/3, 281: 1/3, 236: 1/3},
    {4: 1}, {75: 1}, {97: 1}, {2: 1}, {326: 0.75, 462: 0.25}, {290: 0.5, 327: 0.5},
    # eyes 36-47
    {7: 1/3, 110: 1/3, 247: 1/3}, {160: 0.75, 159: 0.25}, {158: 1}, {155: 1}, {153: 1}, {144: 1},
    {382: 1}, {385: 0.75, 384: 0.25}, {386: 0.75, 466: 0.25}, {388: 1/3, 339: 1/3, 359: 1/3},
    {373: 1}, {380: 1},
    # mouth 48-67
    {61: 0.75, 57: 0.25}, {40: 0.5, 39: 0.5}, {37: 1}, {0: 1}, {0: 1/3, 393: 1/3, 311: 1/3},
    {269: 1/3, 303: 1/3, 270: 1/3}, {291: 1}, {405: 0.5, 321: 0.5}, {314: 0.75, 17: 0.25}, {17: 1},
    {84: 1}, {91: 0.5, 181: 0.5}, {78: 1}, {82: 0.75, 41: 0.25}, {13: 1}, {312: 1},
    {415: 1/3, 325: 1/3, 306: 1/3}, {317: 1}, {14: 1}, {87: 1/3, 14: 1/3, 89: 1/3},
)

_WEIGHTS = np.zeros((68, 468), dtype=np.float32)
for _i, _blend in enumerate(MESH_TO_68):
    _WEIGHTS[_i, list(_blend)] = list(_blend.values())


def mesh_to_68(mesh: np.ndarray) -> np.ndarray:
    """(68, 2) points from a (468 or 478, ≥2) mesh."""
    return _WEIGHTS @ np.asarray(mesh, dtype=np.float32)[:468, :2]
