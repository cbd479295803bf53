"""Embedded sample datasets: tiny CK+ and AFEW look-alikes built from a photograph in scikit-image.

The real CK+ and AFEW cannot be redistributed, so demos and CI run the pipeline on these instead.
The CK+ sample uses
CK+'s original published layout (``cohn-kanade-images/`` and ``Emotion/``), 640x490 grey PNG
frames running from a neutral first frame to a peak last frame, and CK+'s emotion files, so code
written for CK+ reads it unchanged. The faces are ``skimage.data.astronaut()`` under a few fixed
geometric and photometric variants ("subjects"); the expressions are synthetic piecewise-affine
warps driven by the face's 68 landmarks. The AFEW sample reuses those warps for a few short
colour video clips in AFEW's layout (``Train_AFEW/<Class>/<id>.avi``), with the face drifting,
zooming and, in one clip, leaving the frame for a while. Output is deterministic: every run writes
the same bytes (for the videos, given the same ffmpeg build).
"""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import ffmpeg
import numpy as np
from scipy.spatial import Delaunay
from skimage import data

from fer_prep.errors import WorkError
from fer_prep.video import ffmpeg_exe

WIDTH, HEIGHT = 640, 490

# The 68 iBUG landmarks (x, y) of skimage.data.astronaut(), computed once with dlib 20 and
# embedded so generation needs no dlib and always starts from the same points:
#   detector = dlib.get_frontal_face_detector()
#   predictor = dlib.shape_predictor(str(dlib_model("shape_predictor_68_face_landmarks.dat")))
#   shape = predictor(img, detector(img, 1)[0])   # img = astronaut() as RGB uint8
# dlib reports whole pixels, so these are exact to 0.1 px.
ASTRONAUT_LANDMARKS = np.array(
    [
        # jaw 0-16
        (179, 104), (180, 116), (181, 127), (182, 139), (185, 150), (191, 160), (200, 168),
        (209, 176), (220, 178), (232, 177), (243, 171), (253, 163), (260, 154), (265, 143),
        (268, 131), (270, 120), (272, 108),
        # brows 17-21 (image left), 22-26 (image right)
        (186, 94), (192, 88), (200, 87), (208, 89), (216, 92),
        (236, 93), (244, 91), (252, 91), (260, 92), (265, 99),
        # nose 27-35
        (226, 102), (225, 111), (225, 119), (225, 127), (214, 131), (219, 133), (224, 134),
        (229, 133), (234, 132),
        # eyes 36-41, 42-47
        (195, 101), (200, 98), (207, 98), (212, 104), (206, 104), (199, 104),
        (237, 106), (243, 100), (250, 100), (255, 105), (250, 107), (244, 107),
        # outer lips 48-59, inner lips 60-67
        (201, 139), (209, 139), (218, 139), (224, 141), (230, 140), (238, 140), (246, 141),
        (238, 151), (229, 155), (222, 156), (216, 155), (208, 150),
        (204, 141), (218, 143), (223, 144), (230, 143), (243, 142), (229, 150), (223, 151),
        (217, 150),
    ],
    dtype=np.float64,
)  # fmt: skip

# Peak-frame landmark displacements (dx, dy) in astronaut pixels, loosely following the FACS
# action units of each prototype. Landmarks not listed (eyes, nose, upper jaw) stay put.
EXPRESSIONS: dict[str, dict[int, tuple[float, float]]] = {
    # AU12 lip corner puller + AU25 lips part.
    "happy": {
        48: (-5, -4), 54: (5, -4), 60: (-4, -3), 64: (4, -3),
        49: (-2, -2), 53: (2, -2), 50: (-1, -1), 52: (1, -1), 51: (0, -1),
        61: (0, -1), 62: (0, -1), 63: (0, -1),
        59: (-2, 1), 58: (0, 2), 57: (0, 2.5), 56: (0, 2), 55: (2, 1),
        67: (0, 2), 66: (0, 2.5), 65: (0, 2),
    },
    # AU1+2 brows raised + AU26 jaw drop.
    "surprise": {
        17: (0, -3), 18: (0, -5), 19: (0, -6), 20: (0, -6), 21: (0, -5),
        22: (0, -5), 23: (0, -6), 24: (0, -6), 25: (0, -5), 26: (0, -3),
        5: (0, 1.5), 6: (0, 3), 7: (0, 5), 8: (0, 6), 9: (0, 5), 10: (0, 3), 11: (0, 1.5),
        48: (2, 2), 54: (-2, 2), 60: (2, 2), 64: (-2, 2),
        50: (0, -1), 51: (0, -1), 52: (0, -1), 61: (0, -1), 62: (0, -1), 63: (0, -1),
        55: (-1, 4), 56: (0, 6), 57: (0, 6), 58: (0, 6), 59: (1, 4),
        65: (0, 5), 66: (0, 5), 67: (0, 5),
    },
    # AU1+4 inner brows raised and drawn together + AU15 lip corners down + AU17 chin raised.
    "sadness": {
        17: (0, 1), 20: (0, -2), 21: (1, -4), 22: (-1, -4), 23: (0, -2), 26: (0, 1),
        48: (1, 5), 54: (-1, 5), 60: (1, 4), 64: (-1, 4),
        49: (0, 2), 53: (0, 2), 59: (0, 2), 55: (0, 2), 57: (0, -2), 66: (0, -2),
    },
    # AU4 brows lowered and drawn together + AU23/24 lips pressed.
    "anger": {
        17: (0, 2), 18: (1, 3), 19: (2, 4), 20: (3, 5), 21: (4, 5),
        22: (-4, 5), 23: (-3, 5), 24: (-2, 4), 25: (-1, 3), 26: (0, 2),
        48: (2, 0), 54: (-2, 0), 50: (0, 1), 51: (0, 1), 52: (0, 1),
        61: (0, 1), 62: (0, 1), 63: (0, 1),
        56: (0, -2), 57: (0, -2), 58: (0, -2), 65: (0, -2.5), 66: (0, -2.5), 67: (0, -2.5),
    },
}  # fmt: skip

CK_CODES = {"neutral": 0, "anger": 1, "contempt": 2, "disgust": 3, "fear": 4, "happy": 5,
            "sadness": 6, "surprise": 7}  # fmt: skip


@dataclass(frozen=True)
class Sequence:
    """One CK+ sequence: expression shown, frame count, and whether it gets an Emotion file."""

    number: int
    expression: str
    frames: int
    labelled: bool = True


@dataclass(frozen=True)
class Subject:
    """A 'subject': the astronaut under a fixed similarity transform and brightness change."""

    name: str
    scale: float  # output pixels per astronaut pixel
    angle: float  # in-plane rotation, degrees, counter-clockwise
    flip: bool  # mirror horizontally
    shift: tuple[float, float]  # face centre offset from the frame centre, output pixels
    gain: float
    bias: float
    sequences: tuple[Sequence, ...]


SUBJECTS = (
    Subject("S901", scale=2.0, angle=0.0, flip=False, shift=(0, 10), gain=1.0, bias=0.0,
            sequences=(Sequence(1, "happy", 8), Sequence(2, "surprise", 9),
                       Sequence(3, "sadness", 8), Sequence(4, "anger", 7, labelled=False))),
    Subject("S902", scale=1.8, angle=5.0, flip=True, shift=(-30, 0), gain=0.85, bias=-5.0,
            sequences=(Sequence(1, "happy", 9), Sequence(2, "surprise", 8),
                       Sequence(3, "sadness", 7))),
    Subject("S903", scale=2.2, angle=-4.0, flip=False, shift=(25, 20), gain=1.1, bias=10.0,
            sequences=(Sequence(1, "happy", 7), Sequence(2, "surprise", 8),
                       Sequence(3, "sadness", 9))),
)  # fmt: skip

FACE_CENTRE = np.array([225.0, 128.0])  # astronaut pixels, between the eyes and the chin


def _ring(n: int = 16, radii: tuple[float, float] = (72.0, 85.0)) -> np.ndarray:
    """Fixed anchors on an ellipse around the face (astronaut pixels) that confine the motion."""
    t = np.arange(n) * (2 * np.pi / n)
    return FACE_CENTRE + np.stack([radii[0] * np.cos(t), radii[1] * np.sin(t)], axis=1)


def _similarity(
    scale: float, angle: float, flip: bool, shift: tuple[float, float], size: tuple[int, int]
) -> np.ndarray:
    """3x3 matrix mapping astronaut pixels to a ``size`` (w, h) frame: the face centre lands at
    the frame centre plus ``shift``, scaled, rotated ``angle`` degrees counter-clockwise and
    optionally mirrored."""
    t = np.deg2rad(angle)
    c, n = np.cos(t) * scale, np.sin(t) * scale
    rotate = np.array([[c, n, 0.0], [-n, c, 0.0], [0.0, 0.0, 1.0]])
    mirror = np.diag([-1.0 if flip else 1.0, 1.0, 1.0])
    to_origin = np.array([[1.0, 0.0, -FACE_CENTRE[0]], [0.0, 1.0, -FACE_CENTRE[1]], [0, 0, 1]])
    to_frame = np.array([[1.0, 0.0, size[0] / 2 + shift[0]], [0.0, 1.0, size[1] / 2 + shift[1]],
                         [0, 0, 1]])  # fmt: skip
    return to_frame @ rotate @ mirror @ to_origin


def _subject_matrix(s: Subject) -> np.ndarray:
    """3x3 matrix mapping astronaut pixels to CK+ output pixels for subject ``s``."""
    return _similarity(s.scale, s.angle, s.flip, s.shift, (WIDTH, HEIGHT))


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a 3x3 affine matrix to (N, 2) points."""
    return pts @ m[:2, :2].T + m[:2, 2]


def _smoothstep(x: float) -> float:
    """Ease-in/ease-out ramp from 0 to 1, so onset and apex look natural."""
    return x * x * (3 - 2 * x)


def _render(
    image: np.ndarray, m: np.ndarray, offsets: np.ndarray,
    size: tuple[int, int] = (WIDTH, HEIGHT), background: np.ndarray | None = None,
) -> np.ndarray:
    """One ``size`` (w, h) frame: the astronaut mapped by ``m`` with its landmarks moved by
    ``offsets``.

    A piecewise-affine mesh over the landmarks, a fixed ring around the face and the frame's
    corners says, for every output pixel, where to sample the astronaut (a single resampling).
    Only triangles touching a moved landmark deform; the rest of the frame is exactly ``m``.
    Where the photo does not reach, pixels come from ``background`` if given, else from the
    photo mirrored at its edges.
    """
    w, h = size
    corners = np.array([(0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1)], float)
    ring = _ring()
    src = np.vstack([ASTRONAUT_LANDMARKS, ring, _apply(np.linalg.inv(m), corners)])
    dst = np.vstack([_apply(m, ASTRONAUT_LANDMARKS + offsets), _apply(m, ring), corners])
    triangles = Delaunay(_apply(m, src)).simplices  # topology of the neutral face
    # Per triangle, the affine taking output (x, y, 1) to astronaut (x, y); then which triangle
    # covers each output pixel.
    homogeneous = np.concatenate([dst[triangles], np.ones((len(triangles), 3, 1))], axis=2)
    affines = np.linalg.solve(homogeneous, src[triangles])
    index = np.zeros((h, w), np.int32)
    for i, tri in enumerate(triangles):
        cv2.fillConvexPoly(index, dst[tri].round().astype(np.int32), i)
    a = affines[index]
    ys, xs = np.mgrid[0:h, 0:w]
    map_x = (xs * a[..., 0, 0] + ys * a[..., 1, 0] + a[..., 2, 0]).astype(np.float32)
    map_y = (xs * a[..., 0, 1] + ys * a[..., 1, 1] + a[..., 2, 1]).astype(np.float32)
    if background is None:
        return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REFLECT_101)  # fmt: skip
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, dst=background.copy(),
                     borderMode=cv2.BORDER_TRANSPARENT)  # fmt: skip


def _peak(expression: str | None) -> np.ndarray:
    """(68, 2) landmark displacements at the apex of ``expression``; all zero for None."""
    peak = np.zeros_like(ASTRONAUT_LANDMARKS)
    for i, d in (EXPRESSIONS[expression] if expression else {}).items():
        peak[i] = d
    return peak


def _frames(grey: np.ndarray, subject: Subject, seq: Sequence) -> list[np.ndarray]:
    """The frames of one sequence, neutral first and peak last."""
    m = _subject_matrix(subject)
    peak = _peak(seq.expression)
    out = []
    for k in range(seq.frames):
        w = _smoothstep(k / (seq.frames - 1))
        img = _render(grey, m, w * peak)
        out.append(np.clip(img * subject.gain + subject.bias, 0, 255).round().astype(np.uint8))
    return out


def write_ckplus_sample(out: Path) -> Path:
    """Write the sample in CK+'s original layout under ``out/ckplus`` and return that root.

    Layout: ``cohn-kanade-images/Sxxx/nnn/Sxxx_nnn_%08d.png`` and, for labelled sequences,
    ``Emotion/Sxxx/nnn/Sxxx_nnn_%08d_emotion.txt`` named after the last frame. Re-running
    overwrites the same files with identical bytes.
    """
    root = Path(out) / "ckplus"
    grey = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY).astype(np.float32)
    for subject in SUBJECTS:
        for seq in subject.sequences:
            stem = f"{subject.name}_{seq.number:03d}"
            images = root / "cohn-kanade-images" / subject.name / f"{seq.number:03d}"
            images.mkdir(parents=True, exist_ok=True)
            frames = _frames(grey, subject, seq)
            for k, frame in enumerate(frames, start=1):
                png = cv2.imencode(".png", frame)[1].tobytes()
                (images / f"{stem}_{k:08d}.png").write_bytes(png)
            if seq.labelled:
                emotion = root / "Emotion" / subject.name / f"{seq.number:03d}"
                emotion.mkdir(parents=True, exist_ok=True)
                label = f"   {CK_CODES[seq.expression]:.7e}\n"
                (emotion / f"{stem}_{len(frames):08d}_emotion.txt").write_text(label, newline="\n")
    return root


# --- AFEW ------------------------------------------------------------------------------------

AFEW_SIZE = (480, 360)  # (w, h); AFEW itself is 720x576, smaller keeps CI fast
AFEW_FPS = 25
AFEW_BACKGROUND = (70, 60, 50)  # BGR backdrop where the photo does not reach


@dataclass(frozen=True)
class Clip:
    """One AFEW clip: where it goes, the expression it ramps to (None: stays neutral), its length,
    and the face's path as keyframes (0-based frame, scale, dx, dy): output pixels per astronaut
    pixel and face-centre offset from the frame centre, eased with smoothstep between keys."""

    split: str
    label: str
    clip_id: str
    expression: str | None
    frames: int
    path: tuple[tuple[int, float, float, float], ...]

    @property
    def relpath(self) -> str:
        """Path of the clip under the AFEW root, e.g. ``Train_AFEW/Happy/000000101.avi``."""
        return f"{self.split}/{self.label}/{self.clip_id}.avi"


AFEW_CLIPS = (
    # Drifts left to right and zooms in while smiling.
    Clip("Train_AFEW", "Happy", "000000101", "happy", 60,
         ((0, 1.3, -60, 10), (59, 1.7, 40, 0))),
    # Zooms out while the brows rise and the jaw drops.
    Clip("Train_AFEW", "Surprise", "000000102", "surprise", 50,
         ((0, 1.7, 10, 10), (49, 1.2, 0, 0))),
    # Nearly still; slow drift down.
    Clip("Val_AFEW", "Sad", "000000201", "sadness", 50,
         ((0, 1.5, 0, -5), (49, 1.55, -15, 10))),
    # Slides out to the left, stays out, comes back.
    Clip("Val_AFEW", "Neutral", "000000202", None, 75,
         ((0, 1.4, 0, 0), (15, 1.4, 0, 0), (27, 1.4, -480, 0), (45, 1.4, -480, 0),
          (57, 1.4, 0, 0))),
)  # fmt: skip

# Frames (1-based, as fer_prep.video.decode numbers them) with no face at all: every landmark is at
# least 50 px left of the picture. (dlib also misses the half-out frames 22-23 and 51-52.)
AFEW_NO_FACE = {"Val_AFEW/Neutral/000000202.avi": range(24, 51)}


class SampleError(WorkError):
    """ffmpeg could not write a sample video; the message carries its reason."""


def _pose(clip: Clip, k: int) -> tuple[float, float, float]:
    """(scale, dx, dy) of ``clip`` at 0-based frame ``k``; held outside the first and last keys."""
    for (k0, *a), (k1, *b) in itertools.pairwise(clip.path):
        if k <= k1:
            w = _smoothstep(min(max((k - k0) / (k1 - k0), 0.0), 1.0))
            s, dx, dy = (x + w * (y - x) for x, y in zip(a, b, strict=True))
            return s, dx, dy
    _, s, dx, dy = clip.path[-1]
    return s, dx, dy


def _clip_frames(image: np.ndarray, background: np.ndarray, clip: Clip) -> Iterator[np.ndarray]:
    """The BGR frames of ``clip``: the face follows its path, the expression ramps to its peak."""
    peak = _peak(clip.expression)
    for k in range(clip.frames):
        scale, dx, dy = _pose(clip, k)
        m = _similarity(scale, 0.0, False, (dx, dy), AFEW_SIZE)
        yield _render(image, m, _smoothstep(k / (clip.frames - 1)) * peak, AFEW_SIZE, background)


def encode_avi(frames: Iterator[np.ndarray], path: Path, size: tuple[int, int] = AFEW_SIZE,
               fps: int = AFEW_FPS) -> None:
    """Pipe raw BGR frames of `size` (w, h) through ffmpeg into an MPEG-4 part 2 AVI (the codec
    family of AFEW's XviD clips). One thread and bitexact flags with no metadata make the bytes
    repeatable."""
    w, h = size
    output = ffmpeg.input(
        "pipe:", format="rawvideo", pix_fmt="bgr24", s=f"{w}x{h}", framerate=fps
    ).output(str(path.absolute()), vcodec="mpeg4", pix_fmt="yuv420p", threads=1,
             fflags="+bitexact", map_metadata=-1, **{"q:v": 3, "flags:v": "+bitexact"})  # fmt: skip
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *output.get_args()]
    raw = b"".join(frame.tobytes() for frame in frames)
    proc = subprocess.run(cmd, input=raw, capture_output=True)
    if proc.returncode != 0:
        log = proc.stderr.decode("utf-8", errors="replace").strip().splitlines()
        reason = log[-1] if log else f"exit status {proc.returncode}"
        raise SampleError(f"{path}: ffmpeg could not encode the sample clip: {reason}")


def write_afew_sample(out: Path) -> Path:
    """Write the sample in AFEW's original layout under ``out/afew`` and return that root.

    Layout: ``Train_AFEW/<Class>/<id>.avi`` and ``Val_AFEW/<Class>/<id>.avi`` with AFEW's class
    folder names and 9-digit clip ids; 480x360 colour, 25 fps, 2-3 s each (see ``AFEW_CLIPS``;
    ``AFEW_NO_FACE`` lists the frames without a face). Re-running overwrites the same files with
    identical bytes. Raises ``SampleError`` if ffmpeg fails.
    """
    root = Path(out) / "afew"
    image = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    background = np.full((AFEW_SIZE[1], AFEW_SIZE[0], 3), AFEW_BACKGROUND, np.uint8)
    for clip in AFEW_CLIPS:
        path = root / clip.relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        encode_avi(_clip_frames(image, background, clip), path)
    return root


# --- FER2013 ---------------------------------------------------------------------------------

#: the sample's expressions as FER2013 codes (its 0 Angry … 6 Neutral); the first frame of each
#: sequence is the neutral face, the last its peak
FER2013_CODES = {"anger": 0, "happy": 3, "sadness": 4, "surprise": 5, "neutral": 6}
FER2013_USAGES = ("Training", "Training", "PublicTest", "PrivateTest")


def face_square(subject: Subject, margin: float) -> tuple[float, float, float]:
    """(centre x, centre y, half side) of a square crop around `subject`'s face in its CK+
    frames: `margin` times the landmarks' extent, centred a little above their middle, as the
    pre-cropped datasets (FER2013, CK+48) frame their faces."""
    points = _apply(_subject_matrix(subject), ASTRONAUT_LANDMARKS)
    (x0, y0), (x1, y1) = points.min(0), points.max(0)
    return (x0 + x1) / 2, (y0 + y1) / 2 - 0.1 * (y1 - y0), margin * max(x1 - x0, y1 - y0)


def write_fer2013_sample(out: Path, name: str = "fer2013") -> Path:
    """Write the sample as FER2013's `fer2013.csv` under ``out/<name>`` and return that root.

    The faces of the CK+ sample (neutral first frames and peak last frames of every sequence),
    cropped square around the face's landmarks as FER2013's faces are, shrunk to 48×48 grey and
    written as 2,304 space-separated values with FER2013's codes and a Usage that cycles through
    Training, Training, PublicTest, PrivateTest. Re-running writes the same bytes.
    """
    root = Path(out) / name
    root.mkdir(parents=True, exist_ok=True)
    grey = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY).astype(np.float32)
    lines = ["emotion,pixels,Usage"]
    for subject in SUBJECTS:
        cx, cy, half = face_square(subject, 0.62)
        for seq in subject.sequences:
            frames = _frames(grey, subject, seq)
            for frame, expression in ((frames[0], "neutral"), (frames[-1], seq.expression)):
                crop = frame[int(cy - half):int(cy + half), int(cx - half):int(cx + half)]
                face = cv2.resize(crop, (48, 48), interpolation=cv2.INTER_AREA)
                usage = FER2013_USAGES[(len(lines) - 1) % len(FER2013_USAGES)]
                pixels = " ".join(str(int(v)) for v in face.ravel())
                lines.append(f"{FER2013_CODES[expression]},{pixels},{usage}")
    (root / "fer2013.csv").write_text("\n".join(lines) + "\n", encoding="ascii", newline="\n")
    return root
