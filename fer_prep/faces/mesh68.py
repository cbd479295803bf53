"""MediaPipe's 478-point face mesh mapped onto the iBUG 68-point scheme.

`MESH_TO_68[i]` is the mesh vertex that stands for dlib's point i. Provisional table (widely used
correspondence); to be refitted against dlib's predictor on real faces by `bench/fit_mesh68.py`.
"""

from __future__ import annotations

import numpy as np

MESH_TO_68 = np.array(
    [
        # jaw 0-16
        127, 234, 93, 132, 58, 136, 150, 176, 152, 400, 379, 365, 288, 361, 323, 454, 356,
        # brows 17-21, 22-26
        70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
        # nose bridge 27-30, lower nose 31-35
        168, 197, 5, 4, 75, 97, 2, 326, 305,
        # eyes 36-41, 42-47
        33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,
        # outer lips 48-59
        61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181,
        # inner lips 60-67
        78, 82, 13, 312, 308, 317, 14, 87,
    ],
    dtype=np.int64,
)


def mesh_to_68(mesh: np.ndarray) -> np.ndarray:
    """(68, 2) points from a (478, ≥2) mesh."""
    return np.asarray(mesh, dtype=np.float32)[MESH_TO_68, :2]
