"""Emotion-FAN's `data/` folder (Open-Debin/Emotion-FAN), as its loaders read it.

    face/ck_face/S005/001/S005_001_00000001.png        CK+: the aligned frames of a sequence
    face/train_afew/Happy/000123/0000001.png           AFEW train list (face/val_afew/…: eval)
    txt/CK+_10-fold_sample_IDascendorder_step10.txt    `1-fold 33 Angry 2 Sad 4 …`, then
                                                       `S130/007 Angry` lines
    txt/afew_train.txt, txt/afew_eval.txt              `Happy/000123 Happy` lines

Source: `basic_code/data_generator.py` (`load_imgs_tenfold_totalframe`: a header line holds
`K-fold` and, as its second word, the number of lines that follow; every later line is split on
white space into folder and class; each folder's files are listed, sorted, and all used; the AFEW
loaders read `<root>/<folder>` with the class of the line's second word), `basic_code/load.py`
(`cate2label`: the class words Angry Disgust Fear Happy Sad Surprise, plus Contempt for CK+ and
Neutral for AFEW) and `fan_*_traintest.py` (`data/face/ck_face`, `data/face/train_afew`,
`data/face/val_afew`, `data/txt/…`). The header's class order and the line order (class word,
then folder) are those of the shipped CK+ list; lines end in `\\n`, the last one too.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fer_prep.errors import InputError
from fer_prep.exports import Source, Staging

#: canonical label → Emotion-FAN's class word
WORDS = {
    "anger": "Angry", "contempt": "Contempt", "disgust": "Disgust", "fear": "Fear",
    "happiness": "Happy", "neutral": "Neutral", "sadness": "Sad", "surprise": "Surprise",
}
CKPLUS_WORDS = ("Angry", "Contempt", "Disgust", "Fear", "Happy", "Sad", "Surprise")
#: the class order of the shipped list's headers (a Python 2 dict's order); empty classes omitted
HEADER_ORDER = ("Angry", "Sad", "Disgust", "Surprise", "Fear", "Contempt", "Happy")
CKPLUS_LIST = "txt/CK+_10-fold_sample_IDascendorder_step10.txt"
AFEW_PARTS = (("train", "train_afew", "afew_train.txt"), ("test", "val_afew", "afew_eval.txt"))


def write(source: Source, out: Staging) -> None:
    """Write Emotion-FAN's faces and lists for the folds of `source` into `out`."""
    writers = {"ckplus": _ckplus, "afew": _afew}
    if source.dataset not in writers:
        raise InputError(f"emotion-fan export knows {', '.join(writers)}, not {source.dataset}")
    writers[source.dataset](source, out)


def sequence_folder(subject: str, sequence: str) -> str:
    """CK+ `S130` + `S130_007` → `S130/007`, the sequence's folder under ck_face/."""
    return f"{subject}/{sequence.removeprefix(f'{subject}_')}"


def fold_list(sequences: pd.DataFrame, folds: list[int]) -> str:
    """The CK+ fold list of `sequences` (`folder`, `word`, `fold`), in the shipped file's form."""
    lines = []
    for fold in folds:
        part = sequences[sequences["fold"] == fold].sort_values(["word", "folder"])
        counts = part["word"].value_counts()
        header = [f"{fold + 1}-fold", str(len(part))]
        for word in HEADER_ORDER:
            if counts.get(word, 0):
                header += [word, str(counts[word])]
        lines.append(" ".join(header))
        lines += [f"{r.folder} {r.word}" for r in part.itertuples()]
    return "".join(f"{line}\n" for line in lines)


def _ckplus(source: Source, out: Staging) -> None:
    usable = source.usable()
    words = usable["sequence_label"].map(WORDS)
    unlisted = ~words.isin(CKPLUS_WORDS)
    train_only = ~unlisted & (usable["fold"] < 0)
    kept = usable[~unlisted & ~train_only]
    for what, n in (("unlabelled or neutral-sequence", int(unlisted.sum())),
                    ("train-only (fold −1)", int(train_only.sum()))):
        if n:
            out.notes.append(f"{n} {what} rows left out: Emotion-FAN's CK+ list has its 7 "
                             "classes in 10 folds only")
    sequences = (kept.assign(word=words[kept.index])
                 .drop_duplicates("sequence")
                 .assign(folder=lambda t: [sequence_folder(s, q) for s, q in
                                           zip(t["subject"], t["sequence"], strict=True)]))
    if len(source.folds) != 10:
        out.notes.append(f"{len(source.folds)} folds: Emotion-FAN's CK+ scripts assume 10 "
                         "(`--fold 1…10`)")
    out.text(CKPLUS_LIST, fold_list(sequences, source.folds))
    out.counts["sequences listed"] = len(sequences)
    out.loader_check("emotion-fan", [
        f"fold {fold} has no test sequence (a `{fold + 1}-fold 0` header; Emotion-FAN's "
        f"--fold {fold + 1} fails on it)" for fold in source.folds
        if not (sequences["fold"] == fold).any()])
    if not source.has_faces:
        out.notes.append("no faces in the folds (computed from labels alone): face/ not written")
        return
    folders = dict(zip(sequences["sequence"], sequences["folder"], strict=True))
    for row in kept.itertuples():
        out.place(row.face, f"face/ck_face/{folders[row.sequence]}/{Path(row.face).name}")
        out.counts["faces"] += 1


def _afew(source: Source, out: Staging) -> None:
    source.need_faces("emotion-fan")
    if len(source.folds) != 1:
        raise InputError(f"Emotion-FAN's AFEW lists are one train/eval pair, but the afew folds "
                         f"have {len(source.folds)} test parts; use the official split")
    fold = source.folds[0]
    for which, root, name in AFEW_PARTS:
        lines = []
        for sequence, frames in source.part(fold, which).groupby("sequence", sort=True):
            first = frames.iloc[0]
            word = WORDS.get(first["label"])
            clip = str(sequence).removeprefix(f"{first['split']}_")
            if word is None:
                out.skip(f"{sequence}: label {first['label']!r} has no Emotion-FAN class; "
                         "left out")
                continue
            if not clip or any(ch.isspace() for ch in clip):
                out.skip(f"{sequence}: the clip name {clip!r} holds white space, which "
                         "Emotion-FAN's lists split on; left out")
                continue
            for row in frames.itertuples():
                out.place(row.face, f"face/{root}/{word}/{clip}/{Path(row.face).name}")
                out.counts["faces"] += 1
            lines.append(f"{word}/{clip} {word}")
        if len(set(lines)) != len(lines):
            raise InputError(f"txt/{name}: two clips of the same name and class (from "
                             "different splits) would share one folder")
        out.text(f"txt/{name}", "".join(f"{line}\n" for line in sorted(lines)))
        out.counts[f"clips in {name}"] = len(lines)
        out.loader_check("emotion-fan", [f"txt/{name} lists no clip"] if not lines else [])
