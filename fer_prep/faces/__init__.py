"""Face backends behind one small contract: image → faces with box, score and 68 landmarks.

Each backend lives in its own module and is imported only when chosen by name, so an optional
dependency costs nothing until used (face-alignment's `detection/*` layout). A backend is built
once per worker (`create_backend`) and then called for many images.

Images are 8-bit numpy arrays, grey (H, W) or BGR (H, W, 3), as OpenCV reads them.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING

from fer_prep.registry import Registry

if TYPE_CHECKING:
    import numpy as np


def dlib_model(name: str) -> Path:
    """Path of a model file of `face-recognition-models`, e.g. `mmod_human_face_detector.dat`.

    Found with `find_spec`, which does not run the package: its `__init__` imports
    `pkg_resources`, which setuptools ≥ 81 no longer ships.
    """
    spec = find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("dlib models missing: pip install face-recognition-models")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: dlib model missing; reinstall face-recognition-models")
    return path


def mediapipe_model(*parts: str) -> Path:
    """Path of a model file inside the mediapipe wheel, found without importing mediapipe."""
    spec = find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("mediapipe missing: pip install mediapipe==0.10.21")
    return Path(next(iter(spec.submodule_search_locations)), "modules", *parts)


@dataclass(frozen=True)
class BackendEntry:
    """A registered backend: its class as "module:Class" (imported when built) and the model
    files it reads (located without importing it, so a no-op re-run loads no detector)."""

    target: str
    models: tuple[Callable[[], Path], ...]
    video_mode: bool = False  # its `tracker` follows faces itself (else it detects each frame)

    def model_files(self) -> list[Path]:
        return [locate() for locate in self.models]


_DLIB68 = partial(dlib_model, "shape_predictor_68_face_landmarks.dat")
_DLIB5 = partial(dlib_model, "shape_predictor_5_face_landmarks.dat")
_MMOD = partial(dlib_model, "mmod_human_face_detector.dat")

BACKENDS: Registry[BackendEntry] = Registry("face backend")
BACKENDS.add("mediapipe", BackendEntry("fer_prep.faces.mediapipe:MediaPipeBackend", (
    partial(mediapipe_model, "face_detection", "face_detection_full_range_sparse.tflite"),
    partial(mediapipe_model, "face_detection", "face_detection_short_range.tflite"),
    partial(mediapipe_model, "face_landmark", "face_landmark_with_attention.tflite")),
    video_mode=True))
BACKENDS.add("dlib-hog", BackendEntry("fer_prep.faces.dlib:DlibHogBackend", (_DLIB68,)))
BACKENDS.add("dlib-cnn", BackendEntry("fer_prep.faces.dlib:DlibCnnBackend", (_DLIB68, _MMOD)))
BACKENDS.add("emotion-fan", BackendEntry("fer_prep.faces.dlib:EmotionFanBackend",
                                         (_DLIB68, _MMOD, _DLIB5)))
BACKENDS.add("given", BackendEntry("fer_prep.faces.given:GivenBackend", (_DLIB68,)))

#: frames smaller than this hold no usable face, and dlib's CNN corrupts memory on a 5×3 frame
MIN_SIDE = 16

Box = tuple[float, float, float, float]
"""x, y, width, height in pixels of the frame."""


@dataclass(frozen=True)
class Hint:
    """A face as the dataset gives it: its box and (flat x0 y0 x1 …) 68 landmarks, either may be
    None (AffectNet: both; RAF-DB: the box; FER2013: neither, the whole image is the face)."""

    box: Box | None = None
    landmarks68: tuple[float, ...] | None = None


@dataclass
class Face:
    """One detected face in frame coordinates."""

    box: Box  # the detector's box grown to hold every landmark (dlib's HOG box cuts the chin)
    score: float
    landmarks68: np.ndarray  # (68, 2) iBUG 300-W scheme
    landmarks478: np.ndarray | None = None  # (478, 3) MediaPipe mesh, x/y in pixels
    dlib5: np.ndarray | None = None  # (5, 2) dlib's 5-point predictor, when a backend runs it
    detector: str = ""  # which detector (or cascade pass) found the face
    detector_box: Box | None = None  # the box exactly as the detector gave it

    @property
    def area(self) -> float:
        return self.box[2] * self.box[3]

    @property
    def landmarks5(self) -> np.ndarray:
        """Eye centres, nose tip and mouth corners (insightface / MTCNN order), from the 68."""
        return five_points(self.landmarks68)


def five_points(lm68: np.ndarray) -> np.ndarray:
    """(5, 2): image-left and image-right eye centres, nose tip, left and right mouth corners."""
    import numpy as np

    lm68 = np.asarray(lm68, dtype=np.float64)
    # one mean over both eyes' six points, one gather: a video pays this twice a frame
    return np.concatenate([lm68[36:48].reshape(2, 6, 2).mean(1), lm68[[30, 48, 54]]])


class NoLandmarks(RuntimeError):
    """The landmark model found no face inside a detected or given box."""


class FaceBackend(ABC):
    """Find faces and their landmarks. Subclasses load their models in `__init__`, once."""

    name: str = ""

    @abstractmethod
    def detect(self, image: np.ndarray) -> list[tuple[Box, float, str]]:
        """Face boxes with a score and the name of the detector that found each."""

    @abstractmethod
    def landmarks(self, image: np.ndarray, box: Box) -> Face:
        """The face inside `box`, with its landmarks (for boxes given by a dataset, too)."""

    def tracker(self) -> Callable[[np.ndarray], Face | None]:
        """A function from the next frame of one clip to its face (the largest), or None.

        Call once per clip. Backends with a video mode override this to follow the face from
        frame to frame instead of detecting it afresh.
        """

        def largest(image: np.ndarray) -> Face | None:
            found = self.faces(image)
            return found[0] if found else None

        return largest

    def faces(self, image: np.ndarray, hint: Hint | None = None) -> list[Face]:
        """Every face in the image, largest first (a box the landmarker rejects is dropped).

        `hint`: what the dataset says of the face (its box, its landmarks); detectors ignore it,
        the `given` backend uses it."""
        if min(image.shape[:2]) < MIN_SIDE:
            return []
        found = []
        for box, score, detector in self.detect(image):
            try:
                face = self.landmarks(image, box)
            except NoLandmarks:
                continue
            face.score, face.detector, face.detector_box = score, detector, box
            face.box = enclosing_box(box, face.landmarks68)
            found.append(face)
        return sorted(found, key=lambda f: -f.area)


def enclosing_box(box: Box, points: np.ndarray) -> Box:
    """The smallest box holding both `box` and `points`."""
    import numpy as np

    x0, y0 = np.minimum([box[0], box[1]], points[:, :2].min(0))
    x1, y1 = np.maximum([box[0] + box[2], box[1] + box[3]], points[:, :2].max(0))
    return (float(x0), float(y0), float(x1 - x0), float(y1 - y0))


def backend_class(name: str) -> type[FaceBackend]:
    """The class registered as `name`, imported now (and only now)."""
    module, cls = BACKENDS.get(name).target.split(":")
    return getattr(importlib.import_module(module), cls)


def model_files(name: str) -> list[Path]:
    """The model files of backend `name` (hashed into every stage record), without importing
    the backend."""
    return BACKENDS.get(name).model_files()


def has_video_mode(name: str) -> bool:
    """Whether backend `name` follows faces from frame to frame itself, without importing it."""
    return BACKENDS.get(name).video_mode


def create_backend(name: str) -> FaceBackend:
    """Build the backend registered as `name` (its models loaded once, here)."""
    return backend_class(name)()


def list_backends() -> list[str]:
    return BACKENDS.names()


def to_rgb(image: np.ndarray) -> np.ndarray:
    """An RGB copy of a grey or BGR image, contiguous, for dlib and MediaPipe."""
    import cv2

    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
