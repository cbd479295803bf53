"""Emotion-FAN's own per-frame face method, re-stated for side-by-side benchmarks.

What `data/face_alignment_code/lib/face_align_cuda.py` of Open-Debin/Emotion-FAN does to each frame:
read with OpenCV, convert to RGB, dlib HOG (upsample 1); if nothing, the MMOD CNN (upsample 1),
then the CNN again on a contrast-stretched, a CLAHE'd and an equalised copy; the 5-point predictor
on the first face; `dlib.get_face_chip(img, shape, size=224, padding=0.25)`; write the chip. A frame
with no face gives None. Models are loaded once here (the seed reloads them per folder).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import dlib
import numpy as np

from fer_prep.faces.dlib import clahe, dlib_model, equalise, stretch_contrast


class EmotionFanSeed:
    def __init__(self) -> None:
        self.hog = dlib.get_frontal_face_detector()
        self.cnn = dlib.cnn_face_detection_model_v1(str(dlib_model("mmod_human_face_detector.dat")))
        self.sp5 = dlib.shape_predictor(str(dlib_model("shape_predictor_5_face_landmarks.dat")))

    def _cnn(self, rgb: np.ndarray) -> dlib.rectangles:
        rects = dlib.rectangles()
        rects.extend([d.rect for d in self.cnn(rgb, 1)])
        return rects

    def chip(self, frame: Path) -> np.ndarray | None:
        """The 224-px RGB chip of the first face, or None (the seed drops such frames)."""
        rgb = cv2.cvtColor(cv2.imread(str(frame)), cv2.COLOR_BGR2RGB)
        dets = self.hog(rgb, 1)
        if len(dets) == 0:
            dets = self._cnn(rgb)
        for enhance in (stretch_contrast, clahe, equalise):
            if len(dets):
                break
            rgb = enhance(rgb)
            dets = self._cnn(rgb)
        if len(dets) == 0:
            return None
        return dlib.get_face_chip(rgb, self.sp5(rgb, dets[0]), size=224, padding=0.25)

    def run(self, frames: list[Path], out: Path) -> int:
        """Align and write every frame as the seed does; return how many faces were written."""
        written = 0
        for frame in frames:
            chip = self.chip(frame)
            if chip is not None:
                out.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(out / frame.name), cv2.cvtColor(chip, cv2.COLOR_RGB2BGR))
                written += 1
        return written
