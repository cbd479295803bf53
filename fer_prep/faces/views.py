"""Which part of a frame holds the face: the per-clip view fix of recordings such as MMI's.

Some MMI sessions are dual view (a mirror puts the profile beside the frontal face: each half of
the frame is one view) and some were recorded with the camera turned by 90°. A clip's view is
one of `VIEWS`, applied to every frame before the face is looked for; the landmarks and boxes of
its rows are in that view's pixels. `auto` and `rotate` are decided once per clip, on its first
readable frame, from the faces the backend finds there:

- `auto`: a face upright across the middle of the frame → `full`; a face on either side of the
  middle, each clear of it → the two views of a dual-view frame: the more frontal one (`left` or
  `right`); a face lying on its side → the rotation that stands it up; otherwise `full`.
- `rotate`: whichever of the two quarter turns gives the most upright face.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from fer_prep.faces import Face, FaceBackend

VIEWS = ("full", "left", "right", "rotate-cw", "rotate-ccw")
VIEW_CHOICES = ("auto", "rotate")  # decided per clip, from its first frame
_CLEAR = 0.02  # a half's face box must stay this far (of the frame width) from the middle
_LYING = 45.0  # degrees of roll beyond which a face lies on its side


def in_view(image: np.ndarray, view: str | None) -> np.ndarray:
    """The part of `image` the view shows (the frame itself for `full` or None)."""
    import cv2

    half = image.shape[1] // 2
    if view == "left":
        return image[:, :half]
    if view == "right":
        return image[:, half:]
    if view == "rotate-cw":
        return cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE)
    if view == "rotate-ccw":
        return cv2.rotate(image, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return image


def roll(face: Face) -> float:
    """The face's in-plane angle in degrees: 0 upright, +90 when the eyes line points down."""
    points = face.landmarks68
    left, right = points[36:42].mean(0), points[42:48].mean(0)
    return math.degrees(math.atan2(right[1] - left[1], right[0] - left[0]))


def frontal(face: Face) -> float:
    """Larger for a face looking at the camera, smaller as it turns away: the balance of the
    nose tip's distances to the outer eye corners times the eyes' span against the face's
    height (both shrink with the turn: the span by its cosine)."""
    points = face.landmarks68
    a, b = abs(points[30][0] - points[36][0]), abs(points[45][0] - points[30][0])
    span = math.dist(points[36], points[45]) / max(math.dist(points[27], points[8]), 1e-6)
    return min(a, b) / max(a, b, 1e-6) * span


def _largest(backend: FaceBackend, image: np.ndarray) -> Face | None:
    found = backend.faces(image)
    return found[0] if found else None


def _upright(backend: FaceBackend, image: np.ndarray) -> str | None:
    """The quarter turn that leaves the frame's face most upright; None: no face either way."""
    best, chosen = math.inf, None
    for view in ("rotate-cw", "rotate-ccw"):
        face = _largest(backend, in_view(image, view))
        if face is not None and abs(roll(face)) < best:
            best, chosen = abs(roll(face)), view
    return chosen


def choose_view(image: np.ndarray, backend: FaceBackend, requested: str) -> str:
    """The view of a clip whose first readable frame is `image` (see the module docstring)."""
    if requested == "rotate":
        return _upright(backend, image) or "rotate-cw"
    width = image.shape[1]
    full = _largest(backend, image)
    if full is not None and abs(roll(full)) > _LYING:
        return "rotate-ccw" if roll(full) > 0 else "rotate-cw"
    if full is not None:
        x0, _, w, _ = full.box
        if x0 < width / 2 < x0 + w:
            return "full"
    halves = {}
    for view, x_offset in (("left", 0), ("right", width // 2)):
        face = _largest(backend, in_view(image, view))
        if face is None:
            continue
        x0, _, w, _ = face.box
        x0 += x_offset
        if x0 + w < width * (0.5 - _CLEAR) or x0 > width * (0.5 + _CLEAR):
            halves[view] = face
    if len(halves) == 2:
        return max(halves, key=lambda v: frontal(halves[v]))
    if full is None and not halves:  # no upright face: one turned by a quarter?
        return _upright(backend, image) or "full"
    return "full"
