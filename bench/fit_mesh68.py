"""Refit `fer_prep.faces.mesh68.MESH_TO_68` against dlib's 68-point predictor on real faces.

Both backends run on the same boxes: the boxes of `training_with_face_landmarks.xml`, and dlib-hog
detections in every `--ck-step`-th CK+ frame and in the media photos (the testing XML is kept out
for `bench/mesh68_error.py`). Errors are point-to-point distances over the inter-ocular distance
(outer eye corners 36, 45) of dlib's points; each of the three sources weighs the same.

For each dlib point the mesh vertex with the least mean error is kept, unless a fixed blend of 2-3
of its 10 nearest vertices (weights 1/4, 1/2, 3/4 for pairs, 1/3 each for triples) lowers that
error by at least 10%. Iris vertices (468+) follow the gaze, not the lids, and are never used.
Prints old and new errors and the new table; writes nothing.

    python bench/fit_mesh68.py [--shared PATH] [--ck-step 3]
"""

from __future__ import annotations

import argparse
import itertools
import os
from pathlib import Path

import cv2
import numpy as np

from fer_prep.faces import NoLandmarks, create_backend
from fer_prep.faces.imglab import read_imglab
from fer_prep.faces.mesh68 import mesh_to_68

REGIONS = {"jaw": range(0, 17), "brows": range(17, 27), "nose": range(27, 36),
           "eyes": range(36, 48), "mouth": range(48, 68)}
NEAREST, GAIN = 10, 0.10
PAIRS = (0.25, 0.5, 0.75)
FRACTION = {0.25: "0.25", 0.5: "0.5", 0.75: "0.75", 1 / 3: "1/3", 1.0: "1"}


def default_shared() -> Path:
    return Path(os.environ.get("FER_PREP_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def fitting_images(shared: Path, ck_step: int):
    """(source, image, boxes or None for 'detect with dlib-hog') over the fitting set."""
    data = shared / "data"
    for path, faces in read_imglab(data / "faces_dlib" / "training_with_face_landmarks.xml"):
        yield "pascal-train", cv2.imread(str(path)), [box for box, _ in faces]
    for path in sorted((data / "media").iterdir()):
        image = cv2.imread(str(path)) if path.suffix.lower() in (".jpg", ".png") else None
        if image is not None:
            yield "media", image, None
    for seq in sorted((data / "ckplus" / "cohn-kanade-images").glob("S*/*")):
        for path in sorted(seq.glob("*.png"))[::ck_step]:
            yield "ck+", cv2.imread(str(path), cv2.IMREAD_GRAYSCALE), None


def collect(shared: Path, ck_step: int):
    """Per face: source, dlib's 68 points and the mesh's 468 x/y, both divided by dlib's IOD."""
    mesh_backend, dlib_backend = create_backend("mediapipe"), create_backend("dlib-hog")
    sources, dlib68, mesh, failed = [], [], [], 0
    for source, image, boxes in fitting_images(shared, ck_step):
        for box in boxes if boxes is not None else [b for b, _, _ in dlib_backend.detect(image)]:
            try:
                m = mesh_backend.landmarks(image, box).landmarks478[:468, :2]
            except NoLandmarks:
                failed += 1
                continue
            d = dlib_backend.landmarks(image, box).landmarks68
            iod = np.linalg.norm(d[36] - d[45])
            sources.append(source)
            dlib68.append(d / iod)
            mesh.append(m / iod)
    return np.array(sources), np.array(dlib68, float), np.array(mesh, float), failed


def fit_point(target: np.ndarray, mesh: np.ndarray, weight: np.ndarray):
    """Best {vertex: weight} for one dlib point: (faces, 2) target, (faces, 468, 2) mesh."""

    def cost(blend: dict[int, float]) -> float:
        pts = sum(t * mesh[:, v] for v, t in blend.items())
        return float(weight @ np.linalg.norm(pts - target, axis=1))

    single = weight @ np.linalg.norm(mesh - target[:, None], axis=2)
    near = [int(v) for v in np.argsort(single)[:NEAREST]]
    best = {near[0]: 1.0}
    blends = [{a: t, b: 1 - t} for a, b in itertools.combinations(near, 2) for t in PAIRS]
    blends += [dict.fromkeys(abc, 1 / 3) for abc in itertools.combinations(near, 3)]
    blend = min(blends, key=cost)
    return blend if cost(blend) <= (1 - GAIN) * cost(best) else best


def table_source(table: list[dict[int, float]]) -> str:
    """The table as Python source for mesh68.py, one line (or more) per region."""
    lines = ["MESH_TO_68: tuple[dict[int, float], ...] = ("]
    for region, idx in REGIONS.items():
        lines.append(f"    # {region} {idx.start}-{idx.stop - 1}")
        line = "   "
        for i in idx:
            item = " {" + ", ".join(f"{v}: {FRACTION[t]}" for v, t in table[i].items()) + "},"
            if len(line) + len(item) > 100:
                lines.append(line)
                line = "   "
            line += item
        lines.append(line)
    return "\n".join([*lines, ")"])


def errors(pred: np.ndarray, dlib68: np.ndarray) -> np.ndarray:
    return np.linalg.norm(pred - dlib68, axis=2)  # (faces, 68), in IODs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=default_shared())
    ap.add_argument("--ck-step", type=int, default=3, help="keep every n-th frame of a sequence")
    args = ap.parse_args()

    sources, dlib68, mesh, failed = collect(args.shared, args.ck_step)
    names, counts = np.unique(sources, return_counts=True)
    weight = np.zeros(len(sources))
    for name, count in zip(names, counts, strict=True):
        weight[sources == name] = 1 / (count * len(names))
    print(f"fitting faces: {dict(zip(names.tolist(), counts.tolist(), strict=True))}, "
          f"mesh failed on {failed}")

    table = [fit_point(dlib68[:, i], mesh, weight) for i in range(68)]
    old = errors(np.stack([mesh_to_68(m) for m in mesh]), dlib68)
    w_new = np.zeros((68, 468))
    for i, blend in enumerate(table):
        w_new[i, list(blend)] = list(blend.values())
    new = errors(np.einsum("pv,fvc->fpc", w_new, mesh), dlib68)

    print("normalised mean error      current    refit")
    print(f"  all (sources weighed)     {weight @ old.mean(1):.4f}   {weight @ new.mean(1):.4f}")
    for name in names:
        k = sources == name
        print(f"  {name:<24}  {old[k].mean():.4f}   {new[k].mean():.4f}")
    for region, idx in REGIONS.items():
        print(f"  {region:<24}  {weight @ old[:, idx].mean(1):.4f}   "
              f"{weight @ new[:, idx].mean(1):.4f}")
    print(f"blends: {sum(len(b) > 1 for b in table)} of 68 points\n")
    print(table_source(table))


if __name__ == "__main__":
    main()
