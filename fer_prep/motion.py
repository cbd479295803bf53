"""Pseudo facial-motion masks (FMPN-FER): what moved between a sequence's neutral and peak face.

FMPN trains its mask generator against, per class, the mean of |peak − neutral| over the aligned
grey faces of the training sequences, min-max scaled to 0…255; it shipped the PNGs, never the code.
Its CK+ masks are also histogram-equalised and smoothed: on the shared CK+ sequences, equalising
then blurring (σ 1.5 px on its 70 px masks) raises the Pearson r with its masks from 0.64 to 0.75
(bench/fmpn_masks.py). Pure array functions here; `fer_prep.stages.masks` reads and writes.

- `difference`: |peak − neutral| of two grey chips of one crop (8-bit in, 8-bit out).
- `warp_onto`: a piecewise-affine warp of the neutral chip onto the peak chip over the 68 chip-space
  landmarks (`--warp dense`), so residual head motion is not read as facial motion.
- `finish`: a mean difference map → the 8-bit mask (resize, min-max, equalise, blur, min-max).
- `panel`: one picture of all masks, a row per fold and a column per class, for a person to see.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from scipy.spatial import Delaunay

#: FMPN's mask blur: σ 1.5 px on its 70 × 70 CK+ masks (scaled with the mask side)
FMPN_BLUR = 1.5
FMPN_SIDE = 70


def grey(chip: np.ndarray) -> np.ndarray:
    """An 8-bit grey chip; colour goes through ITU-R 601 luma, as PIL's `convert('L')` in FMPN."""
    return cv2.cvtColor(chip, cv2.COLOR_BGR2GRAY) if chip.ndim == 3 else chip


def difference(peak: np.ndarray, neutral: np.ndarray) -> np.ndarray:
    """|peak − neutral| of two grey chips of the same shape, in grey levels (uint8)."""
    if peak.shape != neutral.shape:
        raise ValueError(f"chips differ in shape: peak {peak.shape}, neutral {neutral.shape}")
    return cv2.absdiff(peak, neutral)


def anchors(side: int) -> np.ndarray:
    """Fixed points well outside a chip of `side` pixels, added to both landmark sets so every
    pixel lies in a triangle and the warp fades to the identity away from the face."""
    lo, mid, hi = -0.5 * side, 0.5 * side, 1.5 * side
    return np.array([(lo, lo), (mid, lo), (hi, lo), (lo, mid), (hi, mid), (lo, hi), (mid, hi),
                     (hi, hi)], dtype=float)


def warp_onto(neutral: np.ndarray, neutral_points: np.ndarray, peak_points: np.ndarray
              ) -> np.ndarray:
    """The neutral chip warped so its landmarks land on the peak's: piecewise affine over a
    Delaunay triangulation of the peak's 68 points (plus fixed anchors outside the chip).

    Each peak-chip pixel takes the affine map of its triangle to find where to sample the neutral
    chip (bilinear, edges replicated), all in one `cv2.remap`. Triangles are rasterised to find
    each pixel's; the few pixels rounding puts in a neighbour are re-found exactly. Same result
    as skimage's PiecewiseAffineTransform + warp (≤ 1.5 grey levels), many times faster.
    """
    h, w = neutral.shape[:2]
    src = np.vstack([np.asarray(neutral_points, float).reshape(-1, 2), anchors(max(h, w))])
    dst = np.vstack([np.asarray(peak_points, float).reshape(-1, 2), anchors(max(h, w))])
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise ValueError("landmarks are not finite")
    mesh = Delaunay(dst)
    # per triangle: B (3×3) gives a point's barycentric coordinates from (x, y, 1), and
    # A = corners_in_neutral · B (2×3) the point's place in the neutral chip
    inv, origin = mesh.transform[:, :2], mesh.transform[:, 2]
    bary = np.zeros((len(mesh.simplices), 3, 3))
    bary[:, :2, :2] = inv
    bary[:, :2, 2] = -np.einsum("kji,ki->kj", inv, origin)
    bary[:, 2] = np.array([0.0, 0.0, 1.0]) - bary[:, 0] - bary[:, 1]
    affine = np.einsum("kcd,kcj->kdj", src[mesh.simplices], bary)
    tri = np.zeros((h, w), np.int32)
    for i, corners in enumerate(mesh.simplices):
        cv2.fillConvexPoly(tri, np.round(dst[corners] * 16).astype(np.int32), i, shift=4)
    ys, xs = np.mgrid[0:h, 0:w].astype(float)
    wrong = (_apply(bary, tri, xs, ys) < -1e-9).any(axis=-1)  # rasterised into a neighbour
    tri[wrong] = mesh.find_simplex(np.column_stack([xs[wrong], ys[wrong]]))
    where = _apply(affine, tri, xs, ys).astype(np.float32)
    return cv2.remap(neutral, where[..., 0], where[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def _apply(matrices: np.ndarray, index: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """(h, w, rows): each pixel's (x, y, 1) through the matrix its `index` picks."""
    m = matrices[index]
    return m[..., 0] * xs[..., None] + m[..., 1] * ys[..., None] + m[..., 2]


def default_blur(side: int) -> float:
    """FMPN's blur for a mask of `side` pixels: σ 1.5 px per 70 px."""
    return round(FMPN_BLUR * side / FMPN_SIDE, 3)


def _min_max(values: np.ndarray) -> np.ndarray:
    """Scaled linearly to 0…255 (all zeros when the map is flat)."""
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return np.zeros(values.shape, np.float32)
    return (values.astype(np.float32) - lo) * (255.0 / (hi - lo))


def finish(mean: np.ndarray, size: int, equalize: bool = True, blur: float = 0.0) -> np.ndarray:
    """A mean difference map → an 8-bit mask of `size` × `size`: area-resized, min-max scaled,
    histogram-equalised (optional), Gaussian-blurred (σ `blur` px; 0 = none), min-max scaled again.
    """
    values = np.asarray(mean, np.float32)
    if values.shape != (size, size):
        values = cv2.resize(values, (size, size), interpolation=cv2.INTER_AREA)
    mask = np.round(_min_max(values)).astype(np.uint8)
    if equalize:
        mask = cv2.equalizeHist(mask)
    if blur > 0:
        mask = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), blur)
    return np.round(_min_max(mask)).astype(np.uint8)


def panel(masks: dict[tuple[int, int], np.ndarray], folds: Sequence[int], classes: Sequence[str],
          cell: int = 96) -> np.ndarray:
    """A grey picture: a column per class (named on top), a row per fold (numbered at the left);
    a class with no mask in a fold is a dark cell marked 'none'."""
    font, head, left = cv2.FONT_HERSHEY_SIMPLEX, 24, 40
    image = np.full((head + cell * len(folds), left + cell * len(classes)), 255, np.uint8)
    for j, name in enumerate(classes):
        cv2.putText(image, name[:11], (left + j * cell + 4, head - 8), font, 0.4, 0, 1,
                    cv2.LINE_AA)
    for i, fold in enumerate(folds):
        y = head + i * cell
        cv2.putText(image, str(fold), (8, y + cell // 2 + 5), font, 0.5, 0, 1, cv2.LINE_AA)
        for j in range(len(classes)):
            x = left + j * cell
            mask = masks.get((fold, j))
            if mask is None:
                image[y : y + cell, x : x + cell] = 40
                cv2.putText(image, "none", (x + cell // 2 - 16, y + cell // 2 + 4), font, 0.4,
                            200, 1, cv2.LINE_AA)
            else:
                image[y : y + cell, x : x + cell] = cv2.resize(mask, (cell, cell),
                                                               interpolation=cv2.INTER_AREA)
        image[y, left:] = 255  # a white line between rows
    return image
