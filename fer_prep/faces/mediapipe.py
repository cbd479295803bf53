"""MediaPipe backend (default): BlazeFace full-range detection, then the 478-point face mesh.

Uses mediapipe 0.10.21's `solutions` API, whose `.tflite` models ship inside the wheel (nothing is
downloaded). The mesh runs on a square crop around each detected box, so small and several faces
work; its 478 points are kept and mapped to the 68-point scheme.

MediaPipe's graphs log from their own threads (absl, TFLite) when they open their calculators,
which `SolutionBase` starts without waiting, and on their first faces; so every native call runs
inside `native_quiet`, each model is warmed up inside the window that builds it, and the video
mesh is reset inside the window of its clip's first frame.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable

import cv2
import numpy as np

from fer_prep.faces import Box, Face, FaceBackend, NoLandmarks, to_rgb
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


def _import_mediapipe() -> types.ModuleType:
    """mediapipe, without the matplotlib.pyplot its drawing utilities import and we never call:
    0.18 of its 0.46 s import (measured), paid again by every worker process. The drawing
    utilities keep a stand-in that imports pyplot if they are ever used; `import
    matplotlib.pyplot` elsewhere gets the real module."""
    if "matplotlib.pyplot" in sys.modules:
        import mediapipe

        return mediapipe
    stand_in = sys.modules["matplotlib.pyplot"] = _Deferred("matplotlib.pyplot")
    try:
        import mediapipe
    finally:
        if sys.modules.get("matplotlib.pyplot") is stand_in:
            del sys.modules["matplotlib.pyplot"]
    return mediapipe


mp = _import_mediapipe()

CROP = 256  # side of the square crop handed to the mesh model (it works at 192)
CONTEXT = 2.0  # crop side relative to the detected box's longer side


#: a serialized NormalizedLandmark with x, y, z set: a length-delimited field (tag 0x0a, 15 bytes)
#: holding three fixed32 floats (tags 0x0d, 0x15, 0x1d)
_LANDMARK = np.dtype([("tag", "u1"), ("size", "u1"), ("tx", "u1"), ("x", "<f4"), ("ty", "u1"),
                      ("y", "<f4"), ("tz", "u1"), ("z", "<f4")])
_TAGS = {"tag": 0x0A, "size": 15, "tx": 0x0D, "ty": 0x15, "tz": 0x1D}


def mesh_points(landmarks) -> np.ndarray:
    """(N, 3) float32 normalised x, y, z of a NormalizedLandmarkList, read from its serialized
    bytes in one numpy view (a Python loop over 478 messages costs ~0.2 ms a frame); the loop
    where the bytes are laid out otherwise (a field unset, visibility present)."""
    raw = landmarks.SerializeToString()
    n = len(landmarks.landmark)
    if len(raw) == n * _LANDMARK.itemsize:
        rec = np.frombuffer(raw, _LANDMARK)
        if all((rec[field] == value).all() for field, value in _TAGS.items()):
            return np.stack([rec["x"], rec["y"], rec["z"]], 1)
    return np.array([(p.x, p.y, p.z) for p in landmarks.landmark], dtype=np.float32)


class MediaPipeBackend(FaceBackend):
    name = "mediapipe"

    def __init__(self, min_confidence: float = 0.5) -> None:
        with native_quiet():
            # full range (faces down to ~1/10 of the frame) first; short range for faces that
            # fill the frame (pre-cropped datasets), which the full-range model misses
            self.detectors = [
                (tag, mp.solutions.face_detection.FaceDetection(
                    model_selection=selection, min_detection_confidence=min_confidence))
                for tag, selection in (("blazeface-full", 1), ("blazeface-short", 0))
            ]
            self.mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=True, max_num_faces=1, refine_landmarks=True,
                min_detection_confidence=0.3,
            )
            # video mode: MediaPipe follows the face from the last frame's landmarks and runs
            # its (short-range) detector only when it loses it — about 3 ms a frame instead of 12
            self.video_mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=False, max_num_faces=1, refine_landmarks=True,
            )
            # `process` waits until the graph is idle, so its calculators have opened (and
            # logged) before the window closes
            blank = np.zeros((64, 64, 3), np.uint8)
            for solution in (*(d for _, d in self.detectors), self.mesh, self.video_mesh):
                solution.process(blank)

    def tracker(self) -> Callable[[np.ndarray], Face | None]:
        fresh = True  # reset on the first frame: the restarted graph logs until a `process`

        def track(image: np.ndarray) -> Face | None:
            nonlocal fresh
            rgb = to_rgb(image)
            with native_quiet():
                if fresh:
                    self.video_mesh.reset()
                    fresh = False
                result = self.video_mesh.process(rgb)
            if not result.multi_face_landmarks:  # lost (or never found): detect afresh
                found = self.faces(image)
                return found[0] if found else None
            h, w = image.shape[:2]
            mesh = (mesh_points(result.multi_face_landmarks[0]).astype(np.float64)
                    * (w, h, w)).astype(np.float32)
            lm68 = mesh_to_68(mesh)
            x0, y0 = lm68.min(0)
            x1, y1 = lm68.max(0)
            box = (float(x0), float(y0), float(x1 - x0), float(y1 - y0))
            return Face(box=box, score=float("nan"), landmarks68=lm68, landmarks478=mesh,
                        detector="mesh-tracking")

        return track

    def detect(self, image: np.ndarray) -> list[tuple[Box, float, str]]:
        h, w = image.shape[:2]
        rgb = to_rgb(image)
        detections, tag = [], ""
        with native_quiet():
            for tag, detector in self.detectors:  # noqa: B007  (the tag of the one that found)
                detections = detector.process(rgb).detections or []
                if detections:
                    break
        found = []
        for det in detections:
            rb = det.location_data.relative_bounding_box
            box = (rb.xmin * w, rb.ymin * h, rb.width * w, rb.height * h)
            found.append((box, float(det.score[0]), tag))
        return found

    def landmarks(self, image: np.ndarray, box: Box) -> Face:
        x, y, bw, bh = box
        side = CONTEXT * max(bw, bh)
        scale = CROP / side
        # frame → crop: scale about the box centre, which lands in the crop's centre
        cx, cy = x + bw / 2, y + bh / 2
        m = np.array([[scale, 0, CROP / 2 - scale * cx], [0, scale, CROP / 2 - scale * cy]])
        crop = cv2.warpAffine(to_rgb(image), m, (CROP, CROP), flags=cv2.INTER_LINEAR)
        with native_quiet():
            result = self.mesh.process(crop)
        if not result.multi_face_landmarks:
            raise NoLandmarks(f"no face mesh inside box {tuple(round(v) for v in box)}")
        pts = mesh_points(result.multi_face_landmarks[0]).astype(np.float64)
        mesh = np.empty_like(pts, dtype=np.float32)
        mesh[:, 0] = (pts[:, 0] * CROP - m[0, 2]) / scale
        mesh[:, 1] = (pts[:, 1] * CROP - m[1, 2]) / scale
        mesh[:, 2] = pts[:, 2] * CROP / scale
        return Face(box=box, score=1.0, landmarks68=mesh_to_68(mesh), landmarks478=mesh)
