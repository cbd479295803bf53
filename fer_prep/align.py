"""Face alignment: a similarity transform from landmarks to a named template, then one warp.

Like insightface's `estimate_norm` / `norm_crop`: `estimate_norm` gives the 2×3 matrix (frame →
chip), which the manifest stores per face so landmarks, masks and boxes map between frame and crop
exactly; `norm_crop` applies it. Template points live in the unit square and are padded as dlib
pads its face chips, `(p + padding) / (1 + 2 * padding)`, so one `padding` means the same for
every template. The warp follows dlib's `extract_image_chip` pixel convention, so the `dlib-chip`
templates reproduce `dlib.get_face_chip` (within a grey level where the chip downscales by < 2).
OpenCV and scikit-image are imported by the two functions that warp, so listing the templates
costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fer_prep.faces import Face
from fer_prep.registry import Registry

if TYPE_CHECKING:
    import numpy as np

# dlib's mean face shape for points 17…67 of the 68-point scheme (dlib/image_transforms/
# interpolation.h, used by get_face_chip_details), in the unit square.
_DLIB_MEAN_X = (
    0.000213256, 0.0752622, 0.18113, 0.29077, 0.393397, 0.586856, 0.689483, 0.799124, 0.904991,
    0.98004, 0.490127, 0.490127, 0.490127, 0.490127, 0.36688, 0.426036, 0.490127, 0.554217,
    0.613373, 0.121737, 0.187122, 0.265825, 0.334606, 0.260918, 0.182743, 0.645647, 0.714428,
    0.793132, 0.858516, 0.79751, 0.719335, 0.254149, 0.340985, 0.428858, 0.490127, 0.551395,
    0.639268, 0.726104, 0.642159, 0.556721, 0.490127, 0.423532, 0.338094, 0.290379, 0.428096,
    0.490127, 0.552157, 0.689874, 0.553364, 0.490127, 0.42689,
)
_DLIB_MEAN_Y = (
    0.106454, 0.038915, 0.0187482, 0.0344891, 0.0773906, 0.0773906, 0.0344891, 0.0187482,
    0.038915, 0.106454, 0.203352, 0.307009, 0.409805, 0.515625, 0.587326, 0.609345, 0.628106,
    0.609345, 0.587326, 0.216423, 0.178758, 0.179852, 0.231733, 0.245099, 0.244077, 0.231733,
    0.179852, 0.178758, 0.216423, 0.244077, 0.245099, 0.780233, 0.745405, 0.727388, 0.742578,
    0.727388, 0.745405, 0.780233, 0.864805, 0.902192, 0.909281, 0.902192, 0.864805, 0.784792,
    0.778746, 0.785343, 0.778746, 0.784792, 0.824182, 0.831803, 0.824182,
)


def dlib_mean_face() -> np.ndarray:
    """(68, 2): dlib's mean face in the unit square, NaN for the jaw (points 0…16)."""
    import numpy as np

    face = np.full((68, 2), np.nan)
    face[17:] = np.column_stack([_DLIB_MEAN_X, _DLIB_MEAN_Y])
    return face


Points = tuple[tuple[float, float], ...]


def _mean_face(indices: list[int]) -> Points:
    """dlib's mean-face points `indices` (68-point numbering) as (x, y) pairs."""
    return tuple((_DLIB_MEAN_X[i - 17], _DLIB_MEAN_Y[i - 17]) for i in indices)


def _corners(box: tuple[float, float, float, float]) -> list[tuple[float, float]]:
    x, y, w, h = box
    return [(x, y), (x + w, y), (x, y + h), (x + w, y + h)]


def _centre(points: Points) -> tuple[float, float]:
    return (sum(p[0] for p in points) / len(points), sum(p[1] for p in points) / len(points))


# get_face_chip_details' 68-point branch fits the nose, eyes and upper lip (no brows, no jaw).
_DLIB_CHIP_IDX = [*range(27, 55), *range(60, 65)]
# dlib's shape_predictor_5 points: eye corners (image-right eye outer, inner; left outer, inner)
# and the base of the nose; and the 68-point indices that stand for them.
_DLIB5: Points = (
    (0.8595674595992, 0.2134981538014),
    (0.6460604764104, 0.2289674387677),
    (0.1205750620789, 0.2137274526848),
    (0.3340850613712, 0.2290642403242),
    (0.4901123135679, 0.6277975316475),
)
_DLIB5_FROM_68 = [45, 42, 36, 39, 33]
# insightface's ArcFace 112×112 template (eye centres, nose tip, mouth corners), in the unit square.
_ARCFACE: Points = tuple((x / 112.0, y / 112.0) for x, y in (
    (38.2946, 51.6963), (73.5318, 51.5014), (56.0252, 71.7366), (41.5493, 92.3655),
    (70.7299, 92.2041)))
_DLIB_EYES = (_centre(_mean_face(list(range(36, 42)))), _centre(_mean_face(list(range(42, 48)))))


@dataclass(frozen=True)
class Template:
    """Where chosen landmarks go in the unit square, and the chip size and padding by default.
    Points are plain (x, y) pairs, so the registry costs nothing to import or list."""

    points: Points  # N points in the unit square, before padding
    source: Callable[[Face], np.ndarray]  # the face's N matching points in the frame
    eyes: Points | None  # where the template puts the two eye centres (None: it does not)
    size: int = 224
    padding: float = 0.25
    doc: str = ""
    edges: bool = False  # points are pixel edges (a box), not landmark positions

    def eye_centres(self, size: int, padding: float) -> np.ndarray | None:
        """(2, 2): where the eye centres land in a chip of this size and padding."""
        import numpy as np

        if self.eyes is None:
            return None
        return (np.asarray(self.eyes) + padding) / (1 + 2 * padding) * size


TEMPLATES: Registry[Template] = Registry("alignment template")
TEMPLATES.add(
    "eyes",
    Template(
        points=_DLIB_EYES,
        source=lambda f: f.landmarks5[:2],
        eyes=_DLIB_EYES,
        doc="eye centres placed exactly where dlib's chip puts them on average: rotation, scale "
        "and position from the eyes alone, the classic FER normalisation",
    ),
)
TEMPLATES.add(
    "dlib-chip",
    Template(
        points=_mean_face(_DLIB_CHIP_IDX),
        source=lambda f: f.landmarks68[_DLIB_CHIP_IDX],
        eyes=_DLIB_EYES,
        doc="dlib.get_face_chip on a 68-point shape (least squares over nose, eyes, upper lip)",
    ),
)
TEMPLATES.add(
    "dlib-chip5",
    Template(
        points=_DLIB5,
        source=lambda f: f.dlib5 if f.dlib5 is not None else f.landmarks68[_DLIB5_FROM_68],
        eyes=(_centre(_DLIB5[2:4]), _centre(_DLIB5[0:2])),
        doc="dlib.get_face_chip on dlib's 5-point shape (Emotion-FAN's crop with size 224, "
        "padding 0.25); from the 5-point predictor when the backend ran it, else from the 68",
    ),
)
TEMPLATES.add(
    "whole",
    Template(
        points=((0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0)),
        source=lambda f: _corners(f.detector_box or f.box),
        eyes=None,
        size=48,
        padding=0.0,
        edges=True,
        doc="the face's box as it is, scaled to the chip: for pre-cropped sets (FER2013's 48-px "
        "faces come out unchanged); no rotation, the landmarks only go along",
    ),
)
TEMPLATES.add(
    "arcface",
    Template(
        points=_ARCFACE,
        source=lambda f: f.landmarks5,
        eyes=_ARCFACE[:2],
        size=112,
        padding=0.0,
        doc="insightface's ArcFace 5-point template (eye centres, nose tip, mouth corners)",
    ),
)


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The least-squares similarity (rotation, one scale, shift) taking (N, 2) `src` onto `dst`,
    as a 2×3 matrix: Umeyama's estimate (skimage's `SimilarityTransform.from_estimate`) in closed
    form, with points as complex numbers, dst ≈ a·src + b; microseconds instead of skimage's
    ~0.7 ms, which a video's every frame pays."""
    import numpy as np

    s = np.asarray(src, float) @ (1, 1j)
    d = np.asarray(dst, float) @ (1, 1j)
    s0, d0 = s - s.mean(), d - d.mean()
    a = (d0 * s0.conj()).sum() / (s0.real**2 + s0.imag**2).sum()
    b = d.mean() - a * s.mean()
    return np.array([[a.real, -a.imag, b.real], [a.imag, a.real, b.imag]])


def estimate_norm(src: np.ndarray, points: np.ndarray, size: int, padding: float,
                  edges: bool = False) -> np.ndarray:
    """2×3 matrix taking frame coordinates to chip coordinates (least-squares similarity).

    As dlib does: fit chip → frame, read off its rotation, scale and centre, and map the chip's
    corner pixels (0 and size − 1) onto the frame rectangle of that scale. `edges`: the points
    are pixel edges instead (a box), mapped onto the chip's edges, so a box the chip's size
    comes out pixel for pixel.
    """
    import cv2
    import numpy as np

    dst = (np.asarray(points, float) + padding) / (1 + 2 * padding) * size
    if edges:  # pixel i's centre is at i + ½ in edge coordinates, in the frame as in the chip
        fit = fit_similarity(src, dst)
        return np.column_stack([fit[:, :2], fit[:, :2] @ (0.5, 0.5) + fit[:, 2] - 0.5])
    fit = fit_similarity(dst, src)  # chip → frame
    scale = np.hypot(fit[0, 0], fit[1, 0])
    rot = fit[:2, :2] / scale
    centre = fit[:2, :2] @ np.full(2, size / 2) + fit[:2, 2]
    span = size * scale - 1  # dlib's rectangle spans (width − 1) between corner pixel centres
    to_frame = np.empty((2, 3))
    to_frame[:, :2] = rot * (span / (size - 1))
    to_frame[:, 2] = centre - rot @ np.full(2, span / 2)
    return cv2.invertAffineTransform(to_frame)


def norm_crop(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Warp `image` into a size × size chip with `matrix` (frame → chip), bilinear.

    Where the chip shrinks the face by 2× or more, the frame is first halved with a Gaussian
    pyramid (as dlib does) so the chip does not alias.
    """
    import cv2
    import numpy as np

    matrix = np.asarray(matrix, float).copy()
    scale = np.hypot(matrix[0, 0], matrix[1, 0])  # chip pixels per frame pixel
    while scale <= 0.5:
        image = cv2.pyrDown(image)
        matrix[:, :2] *= 2  # cv2.pyrDown keeps the even pixels: frame pixel p is p / 2 there
        scale *= 2
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR)


def align_face(
    image: np.ndarray, face: Face, template: str = "eyes", size: int | None = None,
    padding: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The aligned chip of `face` and its 2×3 frame → chip matrix; the template's defaults apply."""
    tpl = TEMPLATES.get(template)
    size = tpl.size if size is None else size
    padding = tpl.padding if padding is None else padding
    matrix = estimate_norm(tpl.source(face), tpl.points, size, padding, tpl.edges)
    return norm_crop(image, matrix, size), matrix


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2×3 affine matrix to (N, 2) points."""
    import numpy as np

    pts = np.asarray(points, float)[:, :2]
    return pts @ np.asarray(matrix)[:, :2].T + np.asarray(matrix)[:, 2]
