"""Build `manifests/splits/*.csv` from the seeds' own split files (in ../shared/reference).

    python manifests/build.py [REFERENCE]     # default: $FER_PREP_SHARED/reference or ../shared

A development tool: it is not installed with the package.

Each seed file is converted as shipped, with checks that it is what it claims (train lists are
the complements of the test lists, headers agree with the lines); nothing is recomputed here.
The output format is described in `manifests/__init__.py`.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path

import pandas as pd

from fer_prep.cache import write_text_atomic
from fer_prep.datasets.afew import CODES as AFEW_CODES
from fer_prep.datasets.afew import FOLDERS
from fer_prep.datasets.ckplus import CODES as CKPLUS_CODES
from fer_prep.datasets.mmi import CODES as MMI_CODES

OUT = Path(__file__).parent / "splits"
#: the class words of Emotion-FAN's lists (AFEW's folder names, plus CK+'s contempt)
WORDS = {name: AFEW_CODES[code] for name, code in FOLDERS.items()} | {"Contempt": "contempt"}


def fmpn_folds(folder: Path) -> pd.DataFrame:
    """FMPN-FER's `test_ids_K.csv` (one image name a line) → sample_id, fold."""
    rows = []
    tests = {int(p.stem.rsplit("_", 1)[1]): p for p in folder.glob("test_ids_*.csv")}
    listed = {k: set(p.read_text().split()) for k, p in tests.items()}
    everything = set().union(*listed.values())
    for k in sorted(listed):
        train = set((folder / f"train_ids_{k}.csv").read_text().split())
        if train != everything - listed[k]:
            raise ValueError(f"{folder}: train_ids_{k} is not the complement of test_ids_{k}")
        rows += [{"sample_id": name.removesuffix(".png"), "fold": k} for name in listed[k]]
    return pd.DataFrame(rows)


def ckplus_fmpn(ref: Path) -> pd.DataFrame:
    table = fmpn_folds(ref / "fmpn/CKPlus")
    codes = pd.read_csv(ref / "fmpn/CKPlus/emotion_labels.csv", dtype={"sequence": str})
    code = dict(zip(codes["sequence"], codes["label"].astype(int), strict=True))
    table["label"] = [CKPLUS_CODES[code[s[:8]]] for s in table["sample_id"]]
    return table


def mmi_fmpn(ref: Path) -> pd.DataFrame:
    """FMPN's MMI lists, by session: they name three frames of each, numbered by FMPN's own
    extraction, which a reader of the videos need not repeat frame for frame; the session's fold
    is the same whatever frames are picked. Labels: the pickle's 0…5 is MMI's Emotion − 1
    (data/mmi_res.py takes it as the class; the masks are imgs_res/<fold>/0…5.png)."""
    frames = fmpn_folds(ref / "fmpn/MMI")
    table = frames.assign(sequence=frames["sample_id"].str.rsplit("_", n=1).str[0])
    spread = table.groupby("sequence")["fold"].nunique()
    if (spread > 1).any():
        raise ValueError(f"fmpn/MMI: session {spread[spread > 1].index[0]} in two folds")
    table = table.drop_duplicates("sequence")[["sequence", "fold"]]
    codes = pd.read_csv(ref / "fmpn/MMI/emotion_labels.csv", dtype={"sequence": str})
    code = dict(zip(codes["sequence"], codes["label"].astype(int), strict=True))
    table["label"] = [MMI_CODES[code[s] + 1] for s in table["sequence"]]
    return table


def ckplus_emotion_fan(ref: Path) -> pd.DataFrame:
    """`1-fold 33 Angry 2 …` headers, then `S130/007 Angry` lines."""
    path = ref / "emotion_fan/CK+_10-fold_sample_IDascendorder_step10.txt"
    rows, headers = [], {}
    for line in path.read_text().splitlines():
        first, *rest = line.split()
        if first.endswith("-fold"):
            fold = int(first.removesuffix("-fold")) - 1
            headers[fold] = Counter(dict(zip(rest[1::2], map(int, rest[2::2]), strict=True)))
        else:
            rows.append({"sequence": first.replace("/", "_"), "fold": fold,
                         "label": WORDS[rest[0]], "word": rest[0]})
    table = pd.DataFrame(rows)
    for fold, counts in headers.items():
        if Counter(table.loc[table.fold == fold, "word"]) != counts:
            raise ValueError(f"{path}: fold {fold + 1}'s header disagrees with its lines")
    return table.drop(columns="word")


def afew_emotion_fan(ref: Path) -> pd.DataFrame:
    """`Fear/013736360 Fear` lines; afew_train → fold −1, afew_eval (AFEW's Val) → fold 0."""
    rows = []
    for name, split, fold in (("afew_train.txt", "train", -1), ("afew_eval.txt", "val", 0)):
        for line in (ref / "emotion_fan" / name).read_text().splitlines():
            clip, word = line.split()
            folder, clip_id = clip.split("/")
            if folder != word:
                raise ValueError(f"{ref / name}: {line!r} has two different classes")
            rows.append({"sequence": f"{split}_{clip_id}", "fold": fold, "label": WORDS[word]})
    return pd.DataFrame(rows)


def affectnet_fmpn(ref: Path) -> pd.DataFrame:
    """FMPN-FER's AffectNet lists (`<subdir>_<file>.jpg` a line): train → fold −1, test → 0."""
    folder = ref / "fmpn/AffectNet"
    rows = []
    for name, fold in (("train_ids.csv", -1), ("test_ids.csv", 0)):
        rows += [{"sample_id": line.removesuffix(".jpg"), "fold": fold}
                 for line in (folder / name).read_text().split()]
    table = pd.DataFrame(rows)
    if table["sample_id"].duplicated().any():
        raise ValueError(f"{folder}: an image is in both lists")
    return table


SPLITS = {
    "ckplus-fmpn-10fold-v1": (ckplus_fmpn, "FMPN-FER's CK+ 10 subject-independent folds: the "
                              "last 3 frames of the 327 labelled sequences",
                              "fmpn/CKPlus/{train,test}_ids_K.csv, labels from emotion_labels"),
    "ckplus-emotion-fan-10fold-v1": (ckplus_emotion_fan, "Emotion-FAN's CK+ 10 folds by "
                                     "sequence (subjects ascending, dealt round robin)",
                                     "emotion_fan/CK+_10-fold_sample_IDascendorder_step10.txt"),
    "mmi-fmpn-10fold-v1": (mmi_fmpn, "FMPN-FER's MMI 10 subject-independent folds, by "
                           "session (its lists name 3 frames of each of 208 sessions)",
                           "fmpn/MMI/{train,test}_ids_K.csv, labels from emotion_labels "
                           "(0-5 = MMI's Emotion - 1)"),
    "affectnet-fmpn-v1": (affectnet_fmpn, "FMPN-FER's AffectNet train (fold -1) and test "
                          "(fold 0) images, keyed <subdirectory>_<file stem>",
                          "fmpn/AffectNet/{train,test}_ids.csv (no labels: FMPN ships none)"),
    "afew-emotion-fan-v1": (afew_emotion_fan, "Emotion-FAN's AFEW lists: Train (fold -1) and "
                            "Val (fold 0) clips, keyed split_clip",
                            "emotion_fan/afew_train.txt, afew_eval.txt"),
}


def build(ref: Path) -> list[Path]:
    """Write every split of `SPLITS` from the reference folder `ref`; return the files."""
    written = []
    for name, (make, what, source) in SPLITS.items():
        table = make(ref)
        key = table.columns[0]
        table = table.sort_values(key).reset_index(drop=True)
        header = f"# {name}: {what}\n# source: {source}; made by manifests/build.py\n"
        write_text_atomic(OUT / f"{name}.csv", header + table.to_csv(index=False))
        written.append(OUT / f"{name}.csv")
    return written


if __name__ == "__main__":
    beside_repo = Path(__file__).resolve().parents[2] / "shared"
    default = Path(os.environ.get("FER_PREP_SHARED", beside_repo))
    reference = Path(sys.argv[1]) if len(sys.argv) > 1 else default / "reference"
    for path in build(reference):
        print(path)
