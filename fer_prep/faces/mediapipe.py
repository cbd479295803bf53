"""MediaPipe backend (default): MediaPipe's Face Landmarker (the Tasks API, mediapipe ≥ 0.10.30).

One model bundle, `face_landmarker.task` (shipped in `fer_prep/faces/models/`, or `--model`),
holds BlazeFace short-range, the 478-point mesh and the 52-blendshape model. The backend uses:

- **detection**: the bundle's detector (`FaceDetector`) on the whole image; where it finds
  nothing, or only faces under a third of the image's shorter side (a group photo, a film
  frame), it looks again in overlapping square windows of that side and of half of it (on
  dlib's VOC photos the whole image and the first windows find 31 of its 43 annotated 30–50 px
  faces, the half-side windows the rest, as the legacy full-range detector found 41), and on
  the image framed in a margin of
  its own size (a pre-cropped face that fills the frame, e.g. FER2013's 48 px, which it misses
  unframed). The passes' boxes are merged by non-maximum suppression (over the smaller box's
  area, so a loose and a tight box of one face are one); a box scored under 0.7 is
  kept only if the detector confirms it on the face's crop (lettering in a film title passes
  the first look, not the second); `detector` says which pass found each face (`blazeface`,
  `blazeface-window`, `blazeface-framed`).
- **landmarks**: the Face Landmarker (IMAGE mode) on a square crop twice the face box around
  it, resized to 256 px, so small faces get the mesh's full resolution; of the faces it finds
  there, the one nearest the crop's centre. Its 478 points are kept and mapped to the 68-point
  scheme (`mesh68`); the same call gives the 52 blendshape scores and the facial transformation
  matrix, from which the head pose (`head_pose`).
- **video**: a Face Landmarker in VIDEO mode per clip (a fresh one, so a clip's result does not
  depend on the clip before it), fed the frames' times; it follows the face from the last
  frame's landmarks and redetects itself when it loses it; where it finds none, the detection
  above runs on that frame.

MediaPipe's native code logs on stderr (absl, TFLite, LiteRT) when a task is built and on its
first frames, so every native call runs inside `native_quiet`, and each task is built and warmed
up inside one window.
"""

from __future__ import annotations

import importlib
import math
import sys
import threading
import types
import weakref
import zipfile
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from fer_prep.faces import (
    FPS,
    Box,
    Face,
    FaceBackend,
    NoLandmarks,
    face_landmarker_model,
    to_rgb,
)
from fer_prep.faces.mesh68 import mesh_to_68
from fer_prep.quiet import native_quiet


class _Deferred(types.ModuleType):
    """Stands in for a module until one of its attributes is used, then imports the real one."""

    def __getattr__(self, attr: str):
        if attr.startswith("__"):  # the import system's own probes
            raise AttributeError(attr)
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), attr)


def _import_tasks() -> tuple[types.ModuleType, types.ModuleType]:
    """(mediapipe, mediapipe.tasks.python.vision), without the matplotlib.pyplot that
    mediapipe's drawing utilities import and we never call (0.3 of mediapipe 1.2.3's 0.55 s
    import, measured; every worker pays it). The drawing utilities keep a stand-in that imports
    pyplot if they are ever used; `import matplotlib.pyplot` elsewhere gets the real module."""
    if "matplotlib.pyplot" in sys.modules:
        import mediapipe
        from mediapipe.tasks.python import vision

        return mediapipe, vision
    stand_in = sys.modules["matplotlib.pyplot"] = _Deferred("matplotlib.pyplot")
    try:
        import mediapipe
        from mediapipe.tasks.python import vision
    finally:
        if sys.modules.get("matplotlib.pyplot") is stand_in:
            del sys.modules["matplotlib.pyplot"]
    return mediapipe, vision


mp, vision = _import_tasks()

CROP = 256  # side of the square crop handed to the landmarker (its mesh model reads 256)
CONTEXT = 2.0  # crop side relative to the face box's longer side
SMALL = 1 / 3  # faces under this part of the shorter side: look again in windows
MIN_WINDOW = 64  # no window smaller than this (px)
SAME_FACE = 0.5  # boxes overlapping by more than this part of the smaller one: one face
#: a detection scored under CONFIRM_BELOW is kept only if the detector, shown the face's crop
#: (twice its size, as the landmarker sees it), scores it at least CONFIRMED there: on the
#: shared media, lettering in a title scored 0.51–0.66 on the frame and 0.53–0.59 on its crop,
#: dlib's annotated VOC faces 0.59–0.97 and 0.79 or more
CONFIRM_BELOW = 0.7
CONFIRMED = 0.6

def head_pose(matrix: np.ndarray) -> np.ndarray:
    """(yaw, pitch, roll) in degrees: the Euler angles of a 4×4 facial transformation matrix
    (canonical face → camera, column vectors), R = Rz(roll) · Ry(yaw) · Rx(pitch); 0, 0, 0 for a
    face looking straight into the camera. Measured on real faces (tests/test_mediapipe.py): yaw
    < 0 when the face turns towards the image's left, pitch > 0 when it looks down, roll < 0
    when it is turned clockwise in the image."""
    r = np.asarray(matrix, dtype=np.float64)[:3, :3]
    r = r / np.cbrt(np.linalg.det(r))  # the transform may carry a scale
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, -r[2, 0]))))
    pitch = math.degrees(math.atan2(r[2, 1], r[2, 2]))
    roll = math.degrees(math.atan2(r[1, 0], r[0, 0]))
    return np.array([yaw, pitch, roll], dtype=np.float32)


def _image(rgb: np.ndarray):
    return mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))


def _windows(h: int, w: int, side: int) -> list[tuple[int, int]]:
    """Top-left corners of squares of `side` covering an h × w image, overlapping by half."""
    def starts(length: int) -> list[int]:
        last = max(length - side, 0)
        return sorted({*range(0, last + 1, max(side // 2, 1)), last})

    return [(x, y) for y in starts(h) for x in starts(w)]


def _close(tasks: list) -> None:
    """Close a backend's MediaPipe tasks (when it goes, or at exit)."""
    with native_quiet():  # LiteRT says goodbye on stderr
        while tasks:
            tasks.pop().close()
    _OPEN[:] = [t for t in _OPEN if t is not tasks]


#: every live backend's open tasks. They are closed before the interpreter stops its threads:
#: a task calls its native library through a thread pool that `concurrent.futures` shuts down
#: then, so at `atexit` (and in `__del__` at teardown, as mediapipe 1.2.3 does) `close` fails
#: with a traceback on stderr. `threading._register_atexit` is the hook concurrent.futures uses;
#: hooks run last registered first, so its own is registered before ours.
_OPEN: list[list] = []
importlib.import_module("concurrent.futures.thread")
threading._register_atexit(lambda: [_close(tasks) for tasks in list(_OPEN)])


class MediaPipeBackend(FaceBackend):
    name = "mediapipe"

    def __init__(self, model: str | Path | None = None, min_confidence: float = 0.5) -> None:
        self.model = face_landmarker_model(model)  # checked; the tasks read it by path, which
        base = mp.tasks.BaseOptions  # builds a task in 24 ms against 37 from a buffer (measured)
        with zipfile.ZipFile(self.model) as bundle:
            detector_bytes = bundle.read("face_detector.tflite")
        self._tasks: list = []  # closed when the backend goes, or at exit
        _OPEN.append(self._tasks)
        self._last_video = None
        weakref.finalize(self, _close, self._tasks)
        blank = _image(np.zeros((64, 64, 3), np.uint8))
        with native_quiet():
            self.detector = vision.FaceDetector.create_from_options(vision.FaceDetectorOptions(
                base_options=base(model_asset_buffer=detector_bytes),
                min_detection_confidence=min_confidence))
            # on a crop around a detected face: a low presence bar keeps the blurry 48-px faces
            # the detector found (388 of FER2013's first 400 rows, against 383 at 0.5)
            self.mesh = vision.FaceLandmarker.create_from_options(vision.FaceLandmarkerOptions(
                base_options=base(model_asset_path=str(self.model)), num_faces=3,
                min_face_detection_confidence=min_confidence, min_face_presence_confidence=0.1,
                output_face_blendshapes=True, output_facial_transformation_matrixes=True))
            self._tasks += [self.detector, self.mesh]
            self.detector.detect(blank)
            self.mesh.detect(blank)

    def _video(self):
        """A fresh VIDEO-mode landmarker (24 ms to build), the previous one closed."""
        with native_quiet():
            if self._last_video is not None:
                self._tasks.remove(self._last_video)
                self._last_video.close()
            video = vision.FaceLandmarker.create_from_options(vision.FaceLandmarkerOptions(
                base_options=mp.tasks.BaseOptions(model_asset_path=str(self.model)),
                running_mode=vision.RunningMode.VIDEO, num_faces=1,
                output_face_blendshapes=True, output_facial_transformation_matrixes=True))
        self._tasks.append(video)
        self._last_video = video
        return video

    def tracker(self) -> Callable[[np.ndarray, float | None], Face | None]:
        video = self._video()
        last = -1  # the last timestamp (ms) given: VIDEO mode wants them strictly increasing
        count = 0

        def track(image: np.ndarray, time: float | None = None) -> Face | None:
            nonlocal last, count
            known = time is not None and math.isfinite(time)
            ms = round(1000 * (time if known else count / FPS))
            last = ms = max(ms, last + 1)
            count += 1
            with native_quiet():
                result = video.detect_for_video(_image(to_rgb(image)), ms)
            if not result.face_landmarks:  # lost (or never found): detect afresh
                found = self.faces(image)
                return found[0] if found else None
            h, w = image.shape[:2]
            mesh = _points(result.face_landmarks[0]) * np.array([w, h, w], np.float32)
            lm68 = mesh_to_68(mesh)
            x0, y0 = lm68.min(0)
            x1, y1 = lm68.max(0)
            box = (float(x0), float(y0), float(x1 - x0), float(y1 - y0))
            return Face(box=box, score=float("nan"), landmarks68=lm68, landmarks478=mesh,
                        detector="mesh-tracking", **_extras(result, 0))

        return track

    def _found(self, rgb: np.ndarray) -> list[tuple[Box, float]]:
        with native_quiet():
            detections = self.detector.detect(_image(rgb)).detections
        return [((float(d.bounding_box.origin_x), float(d.bounding_box.origin_y),
                  float(d.bounding_box.width), float(d.bounding_box.height)),
                 float(d.categories[0].score)) for d in detections]

    def detect(self, image: np.ndarray) -> list[tuple[Box, float, str]]:
        rgb = to_rgb(image)
        h, w = rgb.shape[:2]
        short = min(h, w)
        found = [(box, score, "blazeface") for box, score in self._found(rgb)]
        if not found or min(max(b[2], b[3]) for b, _, _ in found) < SMALL * short:
            for side in (short, short // 2):
                if side < MIN_WINDOW or (side == short and h == w):
                    continue  # too small to hold a face, or the whole image again
                for x, y in _windows(h, w, side):
                    found += [((bx + x, by + y, bw, bh), score, "blazeface-window")
                              for (bx, by, bw, bh), score in
                              self._found(rgb[y:y + side, x:x + side])]
        if not found:  # a face filling the frame: frame it in a margin of its own size
            framed = cv2.copyMakeBorder(rgb, h // 2, h // 2, w // 2, w // 2,
                                        cv2.BORDER_CONSTANT)
            found = [((bx - w // 2, by - h // 2, bw, bh), score, "blazeface-framed")
                     for (bx, by, bw, bh), score in self._found(framed)]
        return [f for f in _distinct(found)
                if f[1] >= CONFIRM_BELOW or self._confirmed(rgb, f[0])]

    def _confirmed(self, rgb: np.ndarray, box: Box) -> bool:
        """Whether the detector finds a face at the centre of `box`'s crop scoring CONFIRMED."""
        crop, _ = _crop(rgb, box)
        return any(score >= CONFIRMED and abs(x + w / 2 - CROP / 2) < CROP / 4
                   and abs(y + h / 2 - CROP / 2) < CROP / 4
                   for (x, y, w, h), score in self._found(crop))

    def landmarks(self, image: np.ndarray, box: Box) -> Face:
        crop, m = _crop(to_rgb(image), box)
        scale = m[0, 0]
        with native_quiet():
            result = self.mesh.detect(_image(crop))
        if not result.face_landmarks:
            raise NoLandmarks(f"no face mesh inside box {tuple(round(v) for v in box)}")
        meshes = [_points(face) * CROP for face in result.face_landmarks]
        i = int(np.argmin([np.hypot(*(p[:, :2].mean(0) - CROP / 2)) for p in meshes]))
        pts = meshes[i].astype(np.float64)
        mesh = np.empty_like(pts, dtype=np.float32)
        mesh[:, 0] = (pts[:, 0] - m[0, 2]) / scale
        mesh[:, 1] = (pts[:, 1] - m[1, 2]) / scale
        mesh[:, 2] = pts[:, 2] / scale
        return Face(box=box, score=1.0, landmarks68=mesh_to_68(mesh), landmarks478=mesh,
                    **_extras(result, i))


def _distinct(found: list[tuple[Box, float, str]]) -> list[tuple[Box, float, str]]:
    """Non-maximum suppression over the passes' boxes, by the overlap over the smaller box: a
    window's tight box and the whole image's loose box around the same face (IoU under 0.3 on
    dlib's VOC photos) are one face; two faces never overlap by half of the smaller one."""
    def same(a: Box, b: Box) -> bool:
        dx = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
        dy = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
        return max(dx, 0.0) * max(dy, 0.0) > SAME_FACE * min(a[2] * a[3], b[2] * b[3])

    kept: list[tuple[Box, float, str]] = []
    for face in sorted(found, key=lambda f: -f[1]):  # the best scored box of a face stays
        if not any(same(face[0], other[0]) for other in kept):
            kept.append(face)
    return kept


def _crop(rgb: np.ndarray, box: Box) -> tuple[np.ndarray, np.ndarray]:
    """The CROP-px square crop CONTEXT times `box`'s longer side about its centre, and the
    frame → crop matrix (a scale about the box centre, which lands in the crop's centre)."""
    x, y, bw, bh = box
    scale = CROP / (CONTEXT * max(bw, bh))
    cx, cy = x + bw / 2, y + bh / 2
    m = np.array([[scale, 0, CROP / 2 - scale * cx], [0, scale, CROP / 2 - scale * cy]])
    return cv2.warpAffine(rgb, m, (CROP, CROP), flags=cv2.INTER_LINEAR), m


def _points(landmarks: list) -> np.ndarray:
    """(N, 3) float32 normalised x, y, z of one face's landmarks."""
    return np.array([(p.x, p.y, p.z) for p in landmarks], dtype=np.float32)


def _extras(result, i: int) -> dict[str, np.ndarray | None]:
    """Face `i`'s blendshape scores and head pose, where the result has them."""
    shapes = result.face_blendshapes[i] if result.face_blendshapes else None
    matrices = result.facial_transformation_matrixes
    return {
        "blendshapes": None if shapes is None else
        np.array([c.score for c in shapes], dtype=np.float32),
        "pose": head_pose(matrices[i]) if matrices else None,
    }
