"""AFEW (Acted Facial Expressions in the Wild, EmotiW) in its original layout.

    Train_AFEW/<Class>/<clip>.avi     Val_AFEW/<Class>/<clip>.avi
    (Emotion-FAN's copies: train_afew/, val_afew/; .mp4, .webm, .mov and .mkv too)

Classes: Angry Disgust Fear Happy Neutral Sad Surprise. The same clip name can occur in Train and
Val as different segments, so a clip is keyed by split and name. AFEW has no subject ids.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fer_prep.labels import FOLDERS, label_of

DATASET = "afew"
SPLITS = {"train_afew": "train", "val_afew": "val", "test_afew": "test"}
VIDEO_SUFFIXES = {".avi", ".mp4", ".webm", ".mov", ".mkv"}
_CLASSES = {name.lower(): (name, code) for name, code in FOLDERS[DATASET].items()}


def read_afew(root: str | Path) -> pd.DataFrame:
    """One row per video: split from its folder, label from its class folder."""
    root = Path(root)
    split_dirs = sorted({p for name in SPLITS for p in _find_any_case(root, name)})
    if not split_dirs:
        raise FileNotFoundError(f"{root}: no Train_AFEW/ or Val_AFEW/ folder (is this AFEW?)")
    rows = []
    for split_dir in split_dirs:
        split = SPLITS[split_dir.name.lower()]
        for class_dir in sorted(d for d in split_dir.iterdir() if d.is_dir()):
            known = _CLASSES.get(class_dir.name.lower())
            for video in sorted(p for p in class_dir.iterdir() if p.suffix.lower() in
                                VIDEO_SUFFIXES):
                clip = video.stem
                row = {
                    "sample_id": f"{split}_{clip}", "dataset": DATASET, "subject": None,
                    "sequence": f"{split}_{clip}", "split": split, "clip": clip,
                    "label": None, "label_code": None, "source_path": str(video.absolute()),
                    "face_dir": None, "status": "ok", "message": "",
                }
                if known is None:
                    row.update(status="bad_label", message=f"{class_dir}: not an AFEW class "
                               f"folder (expected one of {', '.join(FOLDERS[DATASET])})")
                else:
                    name, code = known
                    row.update(label=label_of(DATASET, code), label_code=code,
                               face_dir=f"{split}/{name}/{clip}")
                rows.append(row)
    table = pd.DataFrame(rows, columns=list(_COLUMNS))
    table["label_code"] = table["label_code"].astype("Int64")
    return table


_COLUMNS = (
    "sample_id", "dataset", "subject", "sequence", "split", "clip", "label", "label_code",
    "source_path", "face_dir", "status", "message",
)


def _find_any_case(root: Path, name: str) -> list[Path]:
    """Folders called `name` in any letter case, at the root or up to two levels below."""
    hits = []
    for level in range(3):
        for p in root.glob("/".join(["*"] * level + ["*"])):
            if p.is_dir() and p.name.lower() == name:
                hits.append(p)
        if hits:
            return hits
    return hits
