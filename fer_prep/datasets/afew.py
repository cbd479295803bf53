"""AFEW (Acted Facial Expressions in the Wild, EmotiW) in its original layout.

    Train_AFEW/<Class>/<clip>.avi     Val_AFEW/<Class>/<clip>.avi
    (Emotion-FAN's copies: train_afew/, val_afew/; .mp4, .webm, .mov and .mkv too)

Classes: Angry Disgust Fear Happy Neutral Sad Surprise. The same clip name can occur in Train and
Val as different segments, so a clip is keyed by split and name. AFEW has no subject ids.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fer_prep.datasets import DATASETS, Dataset
from fer_prep.errors import InputError

SPLITS = {"train_afew": "train", "val_afew": "val", "test_afew": "test"}
VIDEO_SUFFIXES = {".avi", ".mp4", ".webm", ".mov", ".mkv"}
#: class folder → AFEW's code: the alphabetical index Emotion-FAN trains with
FOLDERS = {"Angry": 0, "Disgust": 1, "Fear": 2, "Happy": 3, "Neutral": 4, "Sad": 5, "Surprise": 6}
CODES = {0: "anger", 1: "disgust", 2: "fear", 3: "happiness", 4: "neutral", 5: "sadness",
         6: "surprise"}
_CLASSES = {name.lower(): (name, code) for name, code in FOLDERS.items()}


@DATASETS.register("afew")
class AFEW(Dataset):
    name = "afew"
    title = "AFEW (EmotiW) video clips in their original layout."
    kind = "videos"
    root_help = "AFEW root holding Train_AFEW/ and Val_AFEW/."
    codes = CODES
    official_test = "val"
    protocol = "afew"
    default_scheme = "official"  # AFEW has no subject ids: papers train on Train, report Val
    extra_columns = {"clip": "the clip's file name without suffix (AFEW)"}
    integers = ("label_code",)

    def read(self, root: Path, options: Any) -> list[dict[str, Any]]:
        return read_afew(root)

    def item_path(self, item: dict[str, Any]) -> str:
        folder = next(name for name, code in FOLDERS.items() if code == item["label_code"])
        return f"{item['split']}/{folder}/{item['clip']}"

    def write_sample(self, out: Path) -> Path:
        from fer_prep.sample import write_afew_sample

        return write_afew_sample(out)


def read_afew(root: Path) -> list[dict[str, Any]]:
    """One item per video: split from its folder, label from its class folder."""
    root = Path(root)
    split_dirs = sorted({p for name in SPLITS for p in _find_any_case(root, name)})
    if not split_dirs:
        raise InputError(f"{root}: no Train_AFEW/ or Val_AFEW/ folder (is this AFEW?)")
    items = []
    for split_dir in split_dirs:
        split = SPLITS[split_dir.name.lower()]
        videos = [(class_dir, video) for class_dir in sorted(d for d in split_dir.iterdir()
                                                             if d.is_dir())
                  for video in sorted(class_dir.iterdir())
                  if video.suffix.lower() in VIDEO_SUFFIXES]
        if not videos:
            raise InputError(f"{split_dir}: holds no video (<Class>/<clip>.avi, with the classes "
                             f"{', '.join(FOLDERS)}); is the split fully extracted?")
        for class_dir, video in videos:
            clip = video.stem
            item = {
                "sample_id": f"{split}_{clip}", "dataset": "afew", "subject": None,
                "sequence": f"{split}_{clip}", "split": split, "clip": clip, "label": None,
                "label_code": None, "source_path": str(video.absolute()), "status": "ok",
                "message": "",
            }
            known = _CLASSES.get(class_dir.name.lower())
            if known is None:
                item.update(status="bad_label", message=f"{class_dir}: not an AFEW class folder "
                            f"(expected one of {', '.join(FOLDERS)})")
            else:
                item.update(label=CODES[known[1]], label_code=known[1])
            items.append(item)
    return items


def _find_any_case(root: Path, name: str) -> list[Path]:
    """Folders called `name` in any letter case, at the root or up to two levels below."""
    for level in range(3):
        hits = [p for p in root.glob("/".join(["*"] * level + ["*"]))
                if p.is_dir() and p.name.lower() == name]
        if hits:
            return hits
    return []
