"""CK+ (Extended Cohn-Kanade) in its original layout.

    cohn-kanade-images/S005/001/S005_001_00000001.png   every frame, neutral first, peak last
    Emotion/S005/001/S005_001_00000011_emotion.txt     one float code, named after the last frame

Zips often extract nested (`Emotion_labels/Emotion`, `CK+/cohn-kanade-images`); both folders are
found up to three levels below the root. `Landmarks/` and `FACS/` are not needed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fer_prep.datasets import DATASETS, Dataset, find_folder
from fer_prep.errors import InputError
from fer_prep.params import option

FRAME_SELECTIONS = ("neutral-peak", "peak", "all")
PEAK_FRAMES = 3  # FMPN / CK+ protocol: the last three frames are the apex
_FRAME = re.compile(r"^(S\d+)_(\d+)_(\d+)\.png$", re.IGNORECASE)
_EMOTION = re.compile(r"^(S\d+)_(\d+)_(\d+)_emotion\.txt$", re.IGNORECASE)
CODES = {0: "neutral", 1: "anger", 2: "contempt", 3: "disgust", 4: "fear", 5: "happiness",
         6: "sadness", 7: "surprise"}  # Emotion/*.txt floats (Lucey et al. 2010)


@dataclass(frozen=True)
class CKPlusOptions:
    """Which frames of which sequences to read."""

    frames: str = option("neutral-peak", "First + last three frames (FMPN), last three, or "
                         "every frame.", choices=FRAME_SELECTIONS)
    include_unlabelled: bool = option(False, "Also sequences without an Emotion file.")


@DATASETS.register("ckplus")
class CKPlus(Dataset):
    name = "ckplus"
    title = "CK+ (Extended Cohn-Kanade) image sequences in their original layout."
    kind = "sequences"
    root_help = "CK+ root holding cohn-kanade-images/ and Emotion/."
    codes = CODES
    #: FMPN-FER reads imgs_res/<fold>/<code − 1>.png: CK+ codes 1…7
    class_orders = {"fmpn": tuple(CODES[code] for code in range(1, 8))}
    Options = CKPlusOptions
    integers = ("frame", "label_code")

    def read(self, root: Path, options: CKPlusOptions) -> list[dict[str, Any]]:
        return read_ckplus(root, options.frames, options.include_unlabelled)

    def read_labels(self, root: Path) -> list[dict[str, Any]]:
        return read_ckplus_labels(root)

    def item_path(self, item: dict[str, Any]) -> str:
        take = item["sequence"].removeprefix(f"{item['subject']}_")
        return f"{item['subject']}/{take}/{item['sample_id']}"

    def write_sample(self, out: Path) -> Path:
        from fer_prep.sample import write_ckplus_sample

        return write_ckplus_sample(out)


def read_label(path: Path) -> tuple[int | None, str]:
    """The CK+ code in an `_emotion.txt` file, or None and a message naming the file."""
    text = ""
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
        value = float(text)
    except (OSError, ValueError):
        return None, f"{path}: not a CK+ emotion file (expected one number, found {text[:40]!r})"
    if not value.is_integer() or int(value) not in CODES:
        return None, f"{path}: emotion code {text} is not one of CK+'s codes {sorted(CODES)}"
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


def _images_folder(root: Path) -> Path:
    images = find_folder(root, "cohn-kanade-images")
    if images is None:
        raise InputError(f"{root}: no cohn-kanade-images/ folder (is this the CK+ root?)")
    return images


def read_ckplus(root: Path, frames: str = "neutral-peak", include_unlabelled: bool = False
                ) -> list[dict[str, Any]]:
    """One item per selected frame of every labelled (and optionally unlabelled) sequence.

    `frames`: `neutral-peak` (first + last three, FMPN's protocol), `peak` (last three) or `all`.
    Frame items carry the canonical `label` (the first frame of a labelled sequence is `neutral`,
    code 0) and the sequence's own label as `sequence_label`. A sequence the reader cannot use is
    one item with its reason as `status`.
    """
    root = Path(root)
    images = _images_folder(root)
    emotions = find_folder(root, "Emotion")
    if not include_unlabelled and (emotions is None or not any(emotions.glob("S*/*/*.txt"))):
        where = f"{emotions} holds no _emotion.txt file" if emotions else "no Emotion/ folder"
        raise InputError(f"{root}: {where}, so no sequence is labelled; give the CK+ root with "
                         "its Emotion/ labels, or --include-unlabelled")
    items: list[dict[str, Any]] = []
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
        base = {"dataset": "ckplus", "subject": subject, "sequence": sequence}
        if problem:
            items.append(_problem(base, "bad_label", problem, seq_dir))
            continue
        if code is None and not include_unlabelled:
            continue
        files = sorted(p for p in seq_dir.iterdir() if _FRAME.match(p.name))
        if not files:
            items.append(_problem(base, "empty_sequence",
                                  f"{seq_dir}: sequence folder holds no frames", seq_dir))
            continue
        seq_label = CODES[code] if code is not None else None
        for pos, path in _select(files, frames):
            role = _role(pos, len(files))
            neutral = role == "neutral" and code is not None
            items.append({
                "sample_id": path.stem, **base,
                "frame": int(_FRAME.match(path.name).group(3)), "role": role,
                "label": "neutral" if neutral else seq_label,
                "label_code": 0 if neutral else code, "sequence_label": seq_label,
                "source_path": str(path.absolute()), "status": "ok", "message": "",
            })
    if emotions is not None:
        known = {(d.parent.name, d.name) for d in seq_dirs}
        for label_dir in sorted(d for d in emotions.glob("S*/*") if d.is_dir()):
            if (label_dir.parent.name, label_dir.name) not in known and any(label_dir.iterdir()):
                sequence = f"{label_dir.parent.name}_{label_dir.name}"
                base = {"dataset": "ckplus", "subject": label_dir.parent.name,
                        "sequence": sequence}
                missing = images / label_dir.parent.name / label_dir.name
                items.append(_problem(base, "missing_images",
                                      f"{label_dir}: labelled, but {missing} does not exist",
                                      label_dir))
    return items


def read_ckplus_labels(root: Path) -> list[dict[str, Any]]:
    """The items `read_ckplus(root, "neutral-peak")` gives, from the Emotion/ tree alone.

    CK+ numbers frames from 1 without gaps and names the Emotion file after the last frame, so the
    labels alone say which frames FMPN's protocol uses (frame 1 neutral, the last three peak):
    enough to compute folds without the images. `source_path` is empty.
    """
    root = Path(root)
    emotions = root if root.name == "Emotion" else find_folder(root, "Emotion")
    if emotions is None:
        raise InputError(f"{root}: no Emotion/ folder (is this the CK+ root?)")
    items: list[dict[str, Any]] = []
    for label_dir in sorted(d for d in emotions.glob("S*/*") if d.is_dir()):
        subject, take = label_dir.parent.name, label_dir.name
        sequence = f"{subject}_{take}"
        base = {"dataset": "ckplus", "subject": subject, "sequence": sequence}
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
            items.append(_problem(base, "bad_label", problem, label_dir))
            continue
        last = int(name.group(3))
        for frame in [1, *range(max(2, last - PEAK_FRAMES + 1), last + 1)]:
            neutral = frame == 1
            items.append({
                "sample_id": f"{sequence}_{frame:08d}", **base, "frame": frame,
                "role": "neutral" if neutral else "peak",
                "label": "neutral" if neutral else CODES[code],
                "label_code": 0 if neutral else code, "sequence_label": CODES[code],
                "source_path": "", "status": "ok", "message": "",
            })
    if not items:
        raise InputError(f"{emotions}: no _emotion.txt label file (is this CK+'s Emotion/?)")
    return items


def _problem(base: dict[str, Any], status: str, message: str, where: Path) -> dict[str, Any]:
    """An item standing for a whole sequence the reader could not use."""
    return {"sample_id": base["sequence"], **base, "frame": None, "role": None, "label": None,
            "label_code": None, "sequence_label": None, "source_path": str(where),
            "status": status, "message": message}
