"""CK+ (Extended Cohn-Kanade) in its original layout.

    cohn-kanade-images/S005/001/S005_001_00000001.png   every frame, neutral first, peak last
    Emotion/S005/001/S005_001_00000011_emotion.txt     one float code, named after the last frame

Zips often extract nested (`Emotion_labels/Emotion`, `CK+/cohn-kanade-images`); both folders are
found up to three levels below the root. `Landmarks/` and `FACS/` are not needed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from fer_prep.labels import label_of

DATASET = "ckplus"
FRAME_SELECTIONS = ("neutral-peak", "peak", "all")
PEAK_FRAMES = 3  # FMPN / CK+ protocol: the last three frames are the apex
_FRAME = re.compile(r"^(S\d+)_(\d+)_(\d+)\.png$", re.IGNORECASE)
_EMOTION = re.compile(r"^(S\d+)_(\d+)_(\d+)_emotion\.txt$", re.IGNORECASE)


def find_folder(root: Path, name: str, depth: int = 3) -> Path | None:
    """`root/…/name` at most `depth` levels down (nested zip extractions), shallowest first."""
    for level in range(depth + 1):
        hits = sorted(p for p in root.glob("/".join(["*"] * level + [name])) if p.is_dir())
        if hits:
            return hits[0]
    return None


def read_label(path: Path) -> tuple[int | None, str]:
    """The CK+ code in an `_emotion.txt` file, or None and a message naming the file."""
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
        value = float(text)
    except (OSError, ValueError):
        return None, f"{path}: not a CK+ emotion file (expected one number, found {text[:40]!r})"
    if not value.is_integer():
        return None, f"{path}: emotion code {value} is not a whole number"
    try:
        label_of(DATASET, int(value))
    except ValueError as exc:
        return None, f"{path}: {exc}"
    return int(value), ""


def _role(index: int, count: int) -> str:
    if index == 0:
        return "neutral"
    return "peak" if index >= count - PEAK_FRAMES else "onset"


def _select(frames: list[Path], how: str) -> list[tuple[int, Path]]:
    """(position, file) of the frames a selection keeps; the first frame is never a peak."""
    indexed = list(enumerate(frames))
    peaks = indexed[max(1, len(frames) - PEAK_FRAMES) :]
    if how == "all":
        return indexed
    if how == "peak":
        return peaks
    return indexed[:1] + peaks


def read_ckplus(
    root: str | Path, frames: str = "neutral-peak", include_unlabelled: bool = False
) -> pd.DataFrame:
    """One row per selected frame of every labelled (and optionally unlabelled) sequence.

    `frames`: `neutral-peak` (first + last three, FMPN's protocol), `peak` (last three) or `all`.
    Frame rows carry the canonical `label` (the first frame of a labelled sequence is `neutral`,
    code 0) and the sequence's own label as `sequence_label`.
    """
    if frames not in FRAME_SELECTIONS:
        raise ValueError(f"frames must be one of {FRAME_SELECTIONS}, not {frames!r}")
    root = Path(root)
    images = find_folder(root, "cohn-kanade-images")
    if images is None:
        raise FileNotFoundError(f"{root}: no cohn-kanade-images/ folder (is this the CK+ root?)")
    emotions = find_folder(root, "Emotion")
    rows: list[dict] = []
    seq_dirs = sorted(d for d in images.glob("S*/*") if d.is_dir())
    for seq_dir in seq_dirs:
        subject, take = seq_dir.parent.name, seq_dir.name
        sequence = f"{subject}_{take}"
        label_files = sorted((emotions / subject / take).glob("*_emotion.txt")) if emotions else []
        code, problem = (None, "")
        if len(label_files) > 1:
            problem = f"{emotions / subject / take}: {len(label_files)} emotion files, expected one"
        elif label_files:
            code, problem = read_label(label_files[0])
        base = {"dataset": DATASET, "subject": subject, "sequence": sequence}
        if problem:
            rows.append(_problem(base, sequence, "bad_label", problem, seq_dir))
            continue
        if code is None and not include_unlabelled:
            continue
        files = sorted(p for p in seq_dir.iterdir() if _FRAME.match(p.name))
        if not files:
            rows.append(_problem(base, sequence, "empty_sequence",
                                 f"{seq_dir}: sequence folder holds no frames", seq_dir))
            continue
        seq_label = label_of(DATASET, code) if code is not None else None
        for pos, path in _select(files, frames):
            role = _role(pos, len(files))
            neutral = role == "neutral" and code is not None
            rows.append({
                "sample_id": path.stem,
                **base,
                "frame": int(_FRAME.match(path.name).group(3)),
                "role": role,
                "label": "neutral" if neutral else seq_label,
                "label_code": 0 if neutral else code,
                "sequence_label": seq_label,
                "source_path": str(path.absolute()),
                "face_dir": f"{subject}/{take}",
                "status": "ok",
                "message": "",
            })
    if emotions is not None:
        known = {(d.parent.name, d.name) for d in seq_dirs}
        for label_dir in sorted(d for d in emotions.glob("S*/*") if d.is_dir()):
            if (label_dir.parent.name, label_dir.name) not in known and any(label_dir.iterdir()):
                sequence = f"{label_dir.parent.name}_{label_dir.name}"
                base = {"dataset": DATASET, "subject": label_dir.parent.name, "sequence": sequence}
                missing = images / label_dir.parent.name / label_dir.name
                message = f"{label_dir}: labelled, but {missing} does not exist"
                rows.append(_problem(base, sequence, "missing_images", message, label_dir))
    table = pd.DataFrame(rows, columns=list(_COLUMNS))
    table["frame"] = table["frame"].astype("Int64")
    table["label_code"] = table["label_code"].astype("Int64")
    return table


def read_ckplus_labels(root: str | Path) -> pd.DataFrame:
    """The rows `read_ckplus(root, frames="neutral-peak")` gives, from the Emotion/ tree alone.

    CK+ numbers frames from 1 without gaps and names the Emotion file after the last frame, so the
    labels alone say which frames FMPN's protocol uses (frame 1 neutral, the last three peak):
    enough to compute folds without the images. `source_path` is empty.
    """
    root = Path(root)
    emotions = root if root.name == "Emotion" else find_folder(root, "Emotion")
    if emotions is None:
        raise FileNotFoundError(f"{root}: no Emotion/ folder (is this the CK+ root?)")
    rows: list[dict] = []
    for label_dir in sorted(d for d in emotions.glob("S*/*") if d.is_dir()):
        subject, take = label_dir.parent.name, label_dir.name
        sequence = f"{subject}_{take}"
        base = {"dataset": DATASET, "subject": subject, "sequence": sequence}
        files = sorted(label_dir.glob("*_emotion.txt"))
        if not files:
            continue  # CK+ ships empty Emotion folders for its unlabelled sequences
        name = _EMOTION.match(files[0].name)
        code, problem = read_label(files[0])
        if len(files) > 1:
            problem = f"{label_dir}: {len(files)} emotion files, expected one"
        elif name is None or f"{name.group(1)}_{name.group(2)}" != sequence:
            problem = f"{files[0]}: not named {sequence}_<last frame>_emotion.txt"
        if problem:
            rows.append(_problem(base, sequence, "bad_label", problem, label_dir))
            continue
        last = int(name.group(3))
        for frame in [1, *range(max(2, last - PEAK_FRAMES + 1), last + 1)]:
            neutral = frame == 1
            rows.append({
                "sample_id": f"{sequence}_{frame:08d}", **base, "frame": frame,
                "role": "neutral" if neutral else "peak",
                "label": "neutral" if neutral else label_of(DATASET, code),
                "label_code": 0 if neutral else code,
                "sequence_label": label_of(DATASET, code), "source_path": "",
                "face_dir": f"{subject}/{take}", "status": "ok", "message": "",
            })
    table = pd.DataFrame(rows, columns=list(_COLUMNS))
    table["frame"] = table["frame"].astype("Int64")
    table["label_code"] = table["label_code"].astype("Int64")
    return table


_COLUMNS = (
    "sample_id", "dataset", "subject", "sequence", "frame", "role", "label", "label_code",
    "sequence_label", "source_path", "face_dir", "status", "message",
)


def _problem(base: dict, sequence: str, status: str, message: str, where: Path) -> dict:
    """A row standing for a whole sequence the adapter could not use."""
    return {"sample_id": sequence, **base, "frame": None, "role": None, "label": None,
            "label_code": None, "sequence_label": None, "source_path": str(where),
            "face_dir": None, "status": status, "message": message}
