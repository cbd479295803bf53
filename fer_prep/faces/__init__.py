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


#: MediaPipe's Face Landmarker as shipped in this package: float16 version 1 (Apache-2.0, see
#: models/NOTICE), the file Google publishes; no mediapipe wheel carries a model
LANDMARKER = Path(__file__).resolve().parent / "models" / "face_landmarker.task"
LANDMARKER_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
LANDMARKER_ENV = "FER_PREP_FACE_LANDMARKER"
#: what a Face Landmarker bundle holds (a zip): the detector, the mesh and the blendshapes
LANDMARKER_PARTS = ("face_detector.tflite", "face_landmarks_detector.tflite",
                    "face_blendshapes.tflite")


def face_landmarker_model(path: str | Path | None = None) -> Path:
    """The Face Landmarker bundle to load, checked: `path`, else $FER_PREP_FACE_LANDMARKER, else
    the shipped one. The shipped file must have its SHA-256 (a changed or truncated copy is
    an `InputError` naming it); another file must be a whole bundle of the three models.
    About 3 ms (the digest of 3.7 MB)."""
    import hashlib
    import os
    import zipfile

    from fer_prep.errors import InputError

    given = path or os.environ.get(LANDMARKER_ENV) or None
    model = Path(given).expanduser() if given else LANDMARKER
    try:
        data = model.read_bytes()
    except OSError as exc:
        where = "--model" if path else (LANDMARKER_ENV if given else "the shipped model")
        raise InputError(f"{model}: cannot read the Face Landmarker model ({where}): "
                         f"{exc.strerror or exc}") from None
    if model == LANDMARKER:
        if hashlib.sha256(data).hexdigest() != LANDMARKER_SHA256:
            raise InputError(f"{model}: the shipped Face Landmarker model is damaged ({len(data)} "
                             f"bytes, not its SHA-256 {LANDMARKER_SHA256[:12]}…); reinstall "
                             "fer-prep")
        return model
    import io

    try:
        names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
    except zipfile.BadZipFile:
        names = set()
    if not {LANDMARKER_PARTS[0], LANDMARKER_PARTS[1]} <= names:
        raise InputError(f"{model}: not a whole MediaPipe Face Landmarker bundle (.task: a zip "
                         f"of {', '.join(LANDMARKER_PARTS)}); truncated or another file?")
    return model


@dataclass(frozen=True)
class BackendEntry:
    """A registered backend: its class as "module:Class" (imported when built) and the model
    files it reads (located without importing it, so a no-op re-run loads no detector).

    `model`: where the backend's replaceable model comes from (`--model PATH` or None for its
    own), for a backend that takes one."""

    target: str
    models: tuple[Callable[[], Path], ...] = ()
    video_mode: bool = False  # its `tracker` follows faces itself (else it detects each frame)
    model: Callable[[str | Path | None], Path] | None = None

    def model_files(self, model: str | Path | None = None) -> list[Path]:
        return [locate() for locate in self.models] + ([self.model(model)] if self.model else [])


_DLIB68 = partial(dlib_model, "shape_predictor_68_face_landmarks.dat")
_DLIB5 = partial(dlib_model, "shape_predictor_5_face_landmarks.dat")
_MMOD = partial(dlib_model, "mmod_human_face_detector.dat")

BACKENDS: Registry[BackendEntry] = Registry("face backend")
BACKENDS.add("mediapipe", BackendEntry("fer_prep.faces.mediapipe:MediaPipeBackend",
                                       video_mode=True, model=face_landmarker_model))
BACKENDS.add("dlib-hog", BackendEntry("fer_prep.faces.dlib:DlibHogBackend", (_DLIB68,)))
BACKENDS.add("dlib-cnn", BackendEntry("fer_prep.faces.dlib:DlibCnnBackend", (_DLIB68, _MMOD)))
BACKENDS.add("emotion-fan", BackendEntry("fer_prep.faces.dlib:EmotionFanBackend",
                                         (_DLIB68, _MMOD, _DLIB5)))
BACKENDS.add("given", BackendEntry("fer_prep.faces.given:GivenBackend", (_DLIB68,)))

#: MediaPipe's 52 blendshape names (ARKit's, with `_neutral` first and without `tongueOut`), in
#: the order of the model's scores and of the manifest's `blendshapes` column
BLENDSHAPES = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft",
    "browOuterUpRight", "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft",
    "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight",
    "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft",
    "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen",
    "jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthPressLeft", "mouthPressRight", "mouthPucker", "mouthRight", "mouthRollLower",
    "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight",
    "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight",
)


#: the frame rate a tracker assumes for frames whose time it is not given
FPS = 30.0

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
    blendshapes: np.ndarray | None = None  # (52,) scores 0…1 in `BLENDSHAPES` order (mediapipe)
    pose: np.ndarray | None = None  # (3,) yaw, pitch, roll in degrees (mediapipe; see `head_pose`)

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

    def tracker(self) -> Callable[[np.ndarray, float | None], Face | None]:
        """A function from the next frame of one clip (and its time in seconds, where known) to
        its face (the largest), or None.

        Call once per clip. Backends with a video mode override this to follow the face from
        frame to frame instead of detecting it afresh.
        """

        def largest(image: np.ndarray, time: float | None = None) -> Face | None:
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


def model_files(name: str, model: str | Path | None = None) -> list[Path]:
    """The model files of backend `name` (hashed into every stage record), without importing
    the backend; `model` replaces its replaceable one (OptionError where it has none)."""
    from fer_prep.errors import OptionError

    entry = BACKENDS.get(name)
    if model is not None and entry.model is None:
        takes = ", ".join(n for n in BACKENDS.names() if BACKENDS.get(n).model)
        raise OptionError(f"--model: the {name} backend reads its own models; --model is for "
                          f"{takes}")
    return entry.model_files(model)


def has_video_mode(name: str) -> bool:
    """Whether backend `name` follows faces from frame to frame itself, without importing it."""
    return BACKENDS.get(name).video_mode


def create_backend(name: str, model: str | Path | None = None) -> FaceBackend:
    """Build the backend registered as `name` (its models loaded once, here); `model` replaces
    the one model file it lets a user replace (the mediapipe backend's Face Landmarker)."""
    cls = backend_class(name)
    if BACKENDS.get(name).model:
        return cls(model=model)  # which checks its model file
    model_files(name, model)  # OptionError for a --model it cannot take
    return cls()


def list_backends() -> list[str]:
    return BACKENDS.names()


def to_rgb(image: np.ndarray) -> np.ndarray:
    """An RGB copy of a grey or BGR image, contiguous, for dlib and MediaPipe."""
    import cv2

    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
