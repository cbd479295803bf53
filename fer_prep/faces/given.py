"""The `given` backend: the face as the dataset gives it, for pre-cropped and annotated sets.

Detectors miss many pre-cropped faces (dlib misses about 30 % of FER2013's 48-px faces, and its
author advises against running a detector on pre-cropped ones), and several datasets ship their
own annotation. So: the dataset's own box, or the whole image where it gives none (FER2013,
FER+, class-folder crops); the dataset's own 68 landmarks (AffectNet), or dlib's 68-point
predictor run inside that box. `detector` says which: `given`, `given-box+dlib68`,
`whole-image+dlib68`.
"""

from __future__ import annotations

import numpy as np

from fer_prep.faces import MIN_SIDE, Box, Face, Hint, NoLandmarks, enclosing_box
from fer_prep.faces.dlib import DlibBackend


class GivenBackend(DlibBackend):
    name = "given"

    def detect(self, image: np.ndarray) -> list[tuple[Box, float, str]]:
        h, w = image.shape[:2]
        return [((0.0, 0.0, float(w), float(h)), 1.0, "whole-image")]

    def faces(self, image: np.ndarray, hint: Hint | None = None) -> list[Face]:
        """The one face the dataset gives; NoLandmarks (the row says why) for a box outside the
        image or landmarks of the wrong length."""
        h, w = image.shape[:2]
        if min(h, w) < MIN_SIDE:
            return []
        hint = hint or Hint()
        if hint.box is None:
            box, where = self.detect(image)[0][0], "whole-image"
        else:
            box, where = tuple(float(v) for v in hint.box), "given-box"
            x, y, bw, bh = box
            if bw <= 0 or bh <= 0 or x >= w or y >= h or x + bw <= 0 or y + bh <= 0:
                raise NoLandmarks(f"the given box {tuple(round(v) for v in box)} lies outside "
                                  f"the {w}x{h} image")
        if hint.landmarks68 is not None:
            if len(hint.landmarks68) != 136:
                raise NoLandmarks(f"{len(hint.landmarks68)} landmark values given, not 136 "
                                  "(68 x, y pairs)")
            points = np.asarray(hint.landmarks68, np.float32).reshape(68, 2)
            face, detector = Face(box=box, score=1.0, landmarks68=points), "given"
        else:
            face, detector = self.landmarks(image, box), f"{where}+dlib68"
        face.detector, face.detector_box = detector, box
        face.box = enclosing_box(box, face.landmarks68)
        return [face]
