"""Reading frames strictly and writing chips atomically.

A corrupt file is reported once, as `UnreadableImage`: OpenCV's `[ WARN ]` lines are switched off
for the process, and libpng's own "libpng error: …" (printed straight to fd 2) is muted.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from fer_prep.cache import atomic_path
from fer_prep.quiet import native_quiet, quiet_opencv

quiet_opencv()


class UnreadableImage(ValueError):
    """The file is missing, empty, not an image, or a truncated/corrupt one."""


def read_image(path: str | Path) -> np.ndarray:
    """An 8-bit grey (H, W) or BGR (H, W, 3) array; alpha dropped, 16-bit scaled to 8."""
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise UnreadableImage(f"{path}: cannot read the file ({exc.strerror})") from exc
    if data.size == 0:
        raise UnreadableImage(f"{path}: the file is empty")
    with native_quiet():
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise UnreadableImage(f"{path}: not a decodable image (corrupt, truncated or not an image)")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    elif image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    return image


def write_image(path: Path, image: np.ndarray) -> None:
    """Encode by `path`'s suffix to a temporary name, then rename into place."""
    ok, buf = cv2.imencode(path.suffix, image)
    if not ok:
        raise ValueError(f"{path}: OpenCV could not encode a {image.shape} image")
    with atomic_path(path) as tmp:
        buf.tofile(tmp)


def sharpness(image: np.ndarray) -> float:
    """The variance of the image's Laplacian (grey): low for a blurred face (the shared Kaggle
    FER2013's Training faces, about 6 at 48 px, against about 2,000 for its PublicTest faces)."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())
