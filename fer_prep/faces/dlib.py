"""dlib backends: HOG, MMOD CNN and Emotion-FAN's detection cascade; dlib's 68-point predictor.

The model files come from the `face-recognition-models` package, located with importlib.resources
(its own accessors need `pkg_resources`, which recent setuptools no longer ships).
"""

from __future__ import annotations

import cv2
import dlib
import numpy as np

from fer_prep.faces import Box, Face, FaceBackend, Hint, dlib_model, to_rgb

__all__ = ["DlibCnnBackend", "DlibHogBackend", "EmotionFanBackend", "dlib_model"]


def _shape(points: dlib.full_object_detection) -> np.ndarray:
    return np.array([(p.x, p.y) for p in points.parts()], dtype=np.float32)


def _rect(box: Box) -> dlib.rectangle:
    x, y, w, h = box
    return dlib.rectangle(round(x), round(y), round(x + w) - 1, round(y + h) - 1)


def _box(rect: dlib.rectangle) -> Box:
    return (float(rect.left()), float(rect.top()), float(rect.width()), float(rect.height()))


class DlibBackend(FaceBackend):
    """The part the dlib backends share: the 68-point predictor on a box."""

    def __init__(self) -> None:
        path = dlib_model("shape_predictor_68_face_landmarks.dat")
        self.predictor = dlib.shape_predictor(str(path))


    @staticmethod
    def _input(image: np.ndarray) -> np.ndarray:
        # Grey stays grey (HOG is faster on one channel); colour goes to RGB as dlib expects.
        return image if image.ndim == 2 else to_rgb(image)

    def landmarks(self, image: np.ndarray, box: Box) -> Face:
        shape = self.predictor(self._input(image), _rect(box))
        return Face(box=box, score=1.0, landmarks68=_shape(shape))


class DlibHogBackend(DlibBackend):
    """dlib's HOG + linear SVM frontal detector, upsampled once (finds faces down to ~40 px)."""

    name = "dlib-hog"
    upsample = 1

    def __init__(self) -> None:
        super().__init__()
        self.detector = dlib.get_frontal_face_detector()

    def detect(self, image: np.ndarray) -> list[tuple[Box, float, str]]:
        rects, scores, _ = self.detector.run(self._input(image), self.upsample, 0.0)
        return [(_box(r), float(s), "hog") for r, s in zip(rects, scores, strict=True)]


class DlibCnnBackend(DlibBackend):
    """dlib's MMOD CNN detector (slow on a CPU, robust to pose)."""

    name = "dlib-cnn"
    upsample = 0

    def __init__(self) -> None:
        super().__init__()
        self.cnn = dlib.cnn_face_detection_model_v1(str(dlib_model("mmod_human_face_detector.dat")))


    def _cnn(self, rgb: np.ndarray, upsample: int, tag: str) -> list[tuple[Box, float, str]]:
        return [(_box(d.rect), float(d.confidence), tag) for d in self.cnn(rgb, upsample)]

    def detect(self, image: np.ndarray) -> list[tuple[Box, float, str]]:
        return self._cnn(to_rgb(image), self.upsample, "cnn")


def stretch_contrast(rgb: np.ndarray) -> np.ndarray:
    """Linear stretch of the first channel's occupied range to 0…255, applied to all channels."""
    hist = np.bincount(rgb[..., 0].ravel(), minlength=256)
    lo, hi = np.flatnonzero(hist)[[0, -1]]
    if hi <= lo:
        return rgb
    ramp = 255.0 * (np.arange(256) - lo) / (hi - lo) + 0.5
    lut = np.clip(ramp, 0, 255).astype(np.uint8)
    return cv2.LUT(rgb, lut)


def _equalise_luma(rgb: np.ndarray, equalise) -> np.ndarray:
    ycrcb = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)
    ycrcb[..., 0] = equalise(np.ascontiguousarray(ycrcb[..., 0]))
    return cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2RGB)


def clahe(rgb: np.ndarray) -> np.ndarray:
    """CLAHE on the luma channel (clip 2.5, 8×8 tiles), back to RGB without swapping channels."""
    op = cv2.createCLAHE(clipLimit=2.5, tileGridSize=(8, 8))
    return _equalise_luma(rgb, op.apply)


def equalise(rgb: np.ndarray) -> np.ndarray:
    """Global histogram equalisation of the luma channel."""
    return _equalise_luma(rgb, cv2.equalizeHist)


class EmotionFanBackend(DlibCnnBackend):
    """Emotion-FAN's cascade: HOG (upsample 1) → MMOD CNN → contrast stretch → CLAHE → equalisation.

    Each fallback runs the CNN (upsample 1) on a further-enhanced copy, as the seed does, but the
    seed's CLAHE red/blue swap is not reproduced. Landmarks are predicted on the copy the face was
    found in; alignment later crops the original frame. dlib's 5-point predictor runs too, because
    Emotion-FAN's chip (`get_face_chip(img, shape5, 224, 0.25)`) is defined on those 5 points.
    """

    name = "emotion-fan"
    upsample = 1
    fallbacks = (
        ("cnn+stretch", stretch_contrast), ("cnn+clahe", clahe), ("cnn+equalise", equalise)
    )

    def __init__(self) -> None:
        super().__init__()
        self.hog = dlib.get_frontal_face_detector()
        path5 = dlib_model("shape_predictor_5_face_landmarks.dat")
        self.predictor5 = dlib.shape_predictor(str(path5))
        self._found_in: np.ndarray | None = None


    def detect(self, image: np.ndarray) -> list[tuple[Box, float, str]]:
        # HOG on a grey frame equals HOG on its RGB copy (same gradients), at a third of the cost
        rgb = to_rgb(image)
        rects, scores, _ = self.hog.run(image if image.ndim == 2 else rgb, 1, 0.0)
        found = [(_box(r), float(s), "hog") for r, s in zip(rects, scores, strict=True)]
        if not found:
            found = self._cnn(rgb, self.upsample, "cnn")
        for tag, enhance in self.fallbacks:
            if found:
                break
            rgb = enhance(rgb)
            found = self._cnn(rgb, self.upsample, tag)
        self._found_in = rgb
        return found

    def landmarks(self, image: np.ndarray, box: Box) -> Face:
        rgb = self._found_in if self._found_in is not None else to_rgb(image)
        rect = _rect(box)
        return Face(
            box=box,
            score=1.0,
            landmarks68=_shape(self.predictor(rgb, rect)),
            dlib5=_shape(self.predictor5(rgb, rect)),
        )

    def faces(self, image: np.ndarray, hint: Hint | None = None) -> list[Face]:
        try:
            return super().faces(image, hint)
        finally:
            self._found_in = None
