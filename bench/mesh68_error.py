"""68-point error of the MediaPipe backend (mesh mapped by `mesh_to_68`) and of dlib's predictor.

On dlib's `testing_with_face_landmarks.xml` (held out of `bench/fit_mesh68.py`), on its own boxes,
against its landmarks (dlib's 68-point predictor's output). MediaPipe's error is the mean
point-to-point distance over the reference's inter-ocular distance (outer eye corners 36, 45);
dlib's is in pixels.

    python bench/mesh68_error.py [--shared PATH]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import cv2
import numpy as np

from fer_prep.faces import NoLandmarks, create_backend
from fer_prep.faces.imglab import read_imglab

REGIONS = {"jaw": range(0, 17), "brows": range(17, 27), "nose": range(27, 36),
           "eyes": range(36, 48), "mouth": range(48, 68)}


def default_shared() -> Path:
    return Path(os.environ.get("FER_PREP_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def point_errors(backend_name: str, xml: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """(faces, 68) pixel errors, (faces,) reference IODs, and how many faces had no landmarks."""
    backend = create_backend(backend_name)
    errs, iods, failed = [], [], 0
    for path, faces in read_imglab(xml):
        image = cv2.imread(str(path))
        for box, ref in faces:
            try:
                pred = backend.landmarks(image, box).landmarks68
            except NoLandmarks:
                failed += 1
                continue
            errs.append(np.linalg.norm(pred - ref, axis=1))
            iods.append(np.linalg.norm(ref[36] - ref[45]))
    return np.array(errs), np.array(iods), failed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=default_shared())
    xml = ap.parse_args().shared / "data" / "faces_dlib" / "testing_with_face_landmarks.xml"

    errs, iods, failed = point_errors("mediapipe", xml)
    norm = errs / iods[:, None]
    print(f"mediapipe: {len(errs) + failed} faces, mesh failed on {failed}")
    print(f"  normalised mean error  {norm.mean():.4f}  (worst face {norm.mean(1).max():.4f})")
    for region, idx in REGIONS.items():
        print(f"  {region:<21}  {norm[:, idx].mean():.4f}")

    errs, _, failed = point_errors("dlib-hog", xml)
    print(f"dlib-hog: {len(errs)} faces, mean error {errs.mean():.3f} px "
          f"(worst face {errs.mean(1).max():.3f} px, worst point {errs.max():.2f} px)")


if __name__ == "__main__":
    main()
