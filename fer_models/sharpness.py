"""Test faces as sharp as the training faces: the blur that matches one part to the other.

A model trained on blurred faces reads sharp ones badly (and a copy can hold such parts: the
shared Kaggle FER2013's Training faces are blurred, median variance of the Laplacian 6, its
PublicTest faces are not, 2,157; resnet18 tested on them as they are chose "sadness" for most).
`matching_blur` measures both parts on a sample of their chips and finds the Gaussian σ that
brings the tested faces' sharpness down to the training faces'; `blur` applies it to a batch.
It reads the images only, never a label, and is chosen on the validation part where there is
one, so the test part stays unseen.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

SIGMAS = np.arange(0.25, 6.01, 0.25)  # the σ searched, in pixels of the chip
SHARPER = 2.0  # tested faces this many times sharper than the training faces get blurred
SAMPLE = 400


def blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """(…, C, H, W) images (uint8 or float 0…255) blurred by a Gaussian of σ px, as float."""
    from torchvision.transforms.v2.functional import gaussian_blur

    if sigma <= 0:
        return images
    size = 2 * math.ceil(3 * sigma) + 1
    return gaussian_blur(images.float(), [size, size], [sigma, sigma])


def sharpness(images: np.ndarray) -> float:
    """The median over (N, H, W) grey uint8 faces of the variance of their Laplacian."""
    from fer_prep.images import sharpness as variance

    return float(np.median([variance(image) for image in images]))


def read_sample(paths: Sequence[str | Path], size: int, seed: int = 0) -> np.ndarray:
    """Up to SAMPLE of the chips, grey, at `size` px as the model reads them: (N, S, S) uint8."""
    import cv2

    from fer_prep.images import read_image

    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(paths), size=min(SAMPLE, len(paths)), replace=False)
    images = []
    for i in sorted(chosen):
        image = read_image(paths[i])
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        shrink = cv2.INTER_AREA if size < grey.shape[1] else cv2.INTER_LINEAR
        images.append(cv2.resize(grey, (size, size), interpolation=shrink))
    return np.stack(images)


def matching_blur(trained: np.ndarray, tested: np.ndarray) -> tuple[float, dict[str, float]]:
    """(σ, measures): the σ whose blur gives `tested` the sharpness of `trained` (0 unless the
    tested faces are SHARPER times sharper), and the sharpness of each part before and after."""
    target, before = sharpness(trained), sharpness(tested)
    measures = {"training": target, "tested": before, "tested_blurred": before}
    if before < SHARPER * target:
        return 0.0, measures
    batch = torch.from_numpy(tested)[:, None]
    best, best_gap, after = 0.0, math.inf, before
    for sigma in SIGMAS:
        blurred = blur(batch, float(sigma)).round().clamp(0, 255).to(torch.uint8)[:, 0].numpy()
        value = sharpness(blurred)
        gap = abs(math.log(max(value, 1e-6) / max(target, 1e-6)))
        if gap < best_gap:
            best, best_gap, after = float(sigma), gap, value
    measures["tested_blurred"] = after
    return best, measures
