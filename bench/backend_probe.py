"""What the installed fer-prep's `mediapipe` backend finds, how well and how fast: one JSON
object on stdout. `bench/backends.py` runs it in this checkout's venv and in a venv of the
previous version (mediapipe 0.10.21's legacy API), on the same data, and prints both side by
side; it reads only APIs both versions have.

    python bench/backend_probe.py --shared ../shared
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from fer_prep.faces import NoLandmarks, create_backend
from fer_prep.faces.imglab import read_imglab
from fer_prep.sample import write_afew_sample
from fer_prep.video import decode

VIDEOS = ("WolfgangLanger_Pexels.mp4", "single_face.mp4", "face_noface.mov", "noface_face.mov")
PHOTOS = ("multi_face.jpg", "BWPictureHuman.jpg", "single_face.jpg", "0-f1-su-ph.jpg",
          "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg", "45-m7-di-ph.jpg", "no-face.jpg",
          "free-mountain-vector-01.jpg", "Image_with_alpha.png")


def overlap(a, b) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def iod_error(pred: np.ndarray, ref: np.ndarray) -> float:
    """Mean point distance over the inter-ocular distance (outer eye corners of `ref`)."""
    return float(np.linalg.norm(pred - ref, axis=1).mean() / np.linalg.norm(ref[36] - ref[45]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", type=Path, required=True)
    shared = parser.parse_args().shared
    data = shared / "data"
    out: dict = {"python": sys.version.split()[0]}
    import mediapipe

    out["mediapipe"] = mediapipe.__version__
    start = time.perf_counter()
    backend = create_backend("mediapipe")
    out["load_s"] = time.perf_counter() - start
    timed = "time" in inspect.signature(backend.tracker()).parameters

    def follow(frames) -> list:
        track = backend.tracker()
        return [track(image, i / 30) if timed else track(image) for i, image in enumerate(frames)]

    # CK+: every frame, detected one by one and followed through each sequence
    sequences = sorted(p for p in (data / "ckplus/cohn-kanade-images").glob("*/*") if p.is_dir())
    frames = {s: [cv2.imread(str(p)) for p in sorted(s.glob("*.png"))] for s in sequences}
    n = sum(len(f) for f in frames.values())
    start = time.perf_counter()
    detected = {s: [(backend.faces(im) or [None])[0] for im in f] for s, f in frames.items()}
    out["ckplus_ms_per_frame_detect"] = 1000 * (time.perf_counter() - start) / n
    start = time.perf_counter()
    followed = {s: follow(f) for s, f in frames.items()}
    out["ckplus_ms_per_frame_follow"] = 1000 * (time.perf_counter() - start) / n
    out["ckplus_frames"] = n
    out["ckplus_found"] = sum(f is not None for s in detected for f in detected[s])
    out["ckplus_followed"] = sum(f is not None for s in followed for f in followed[s])
    diffs = [iod_error(a.landmarks68, b.landmarks68) for s in frames
             for a, b in zip(followed[s], detected[s], strict=True) if a and b]
    out["follow_vs_detect_iod_pct"] = 100 * float(np.mean(diffs))

    # videos: frames with a face, followed
    for name in VIDEOS:
        images = [im for _, im in decode(data / "media" / name)[0]]
        start = time.perf_counter()
        faces = follow(images)
        out[f"video {name}"] = [sum(f is not None for f in faces), len(images),
                                1000 * (time.perf_counter() - start) / len(images)]
    with tempfile.TemporaryDirectory() as tmp:
        clips = sorted(p for p in write_afew_sample(Path(tmp)).rglob("*") if p.is_file()
                       and p.suffix in (".avi", ".mp4", ".mkv"))
        found = total = 0
        for clip in clips:
            faces = follow([im for _, im in decode(clip)[0]])
            found, total = found + sum(f is not None for f in faces), total + len(faces)
        out["afew_sample_clips"] = [found, total, len(clips)]

    # photos: faces per photo; PASCAL VOC small faces against dlib's annotated boxes
    for name in PHOTOS:
        image = cv2.imread(str(data / "media" / name))
        out[f"photo {name}"] = None if image is None else len(backend.faces(image))
    found = total = extra = 0
    start = time.perf_counter()
    for xml in ("testing.xml", "training.xml"):
        for path, marked in read_imglab(data / "faces_dlib" / xml):
            boxes = [box for box, _ in marked]
            got = [f.box for f in backend.faces(cv2.imread(str(path)))]
            total += len(boxes)
            found += sum(any(overlap(b, g) > 0.3 for g in got) for b in boxes)
            extra += sum(not any(overlap(b, g) > 0.3 for b in boxes) for g in got)
    out["voc_boxes"] = [found, total, extra, time.perf_counter() - start]

    # FER2013: the 400 shared rows, 48 px as they are and enlarged to 192 px
    rows = (data / "fer2013/fer2013.csv").read_text().splitlines()[1:]
    faces48 = [np.array(r.split(",")[1].split(), np.uint8).reshape(48, 48) for r in rows]
    out["fer2013_48"] = [sum(bool(backend.faces(im)) for im in faces48), len(faces48)]
    out["fer2013_192"] = [sum(bool(backend.faces(cv2.resize(im, (192, 192),
                                                            interpolation=cv2.INTER_CUBIC)))
                              for im in faces48), len(faces48)]

    # 68 points against dlib's on its held-out faces, on its own boxes
    errors, failed = [], 0
    for path, marked in read_imglab(data / "faces_dlib/testing_with_face_landmarks.xml"):
        image = cv2.imread(str(path))
        for box, ref in marked:
            try:
                errors.append(iod_error(backend.landmarks(image, box).landmarks68, ref))
            except NoLandmarks:
                failed += 1
    out["mesh68_iod"] = [float(np.mean(errors)), len(errors), failed]
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
