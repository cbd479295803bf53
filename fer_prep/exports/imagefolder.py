"""Folds as torchvision ImageFolder trees: MA-Net's `--data` layout, once per fold.

    fold_0/train/1/S052_004_00000031.png    a link to the chip (or a copy)
    fold_0/test/6/S111_006_00000012.png
    fold_0/classes.txt                      `0 1 happiness` …: the index ImageFolder gives each
                                            folder of this fold, the folder, its label

Source: zengqunzhao/MA-Net `main.py` (`datasets.ImageFolder(os.path.join(args.data, 'train'))`
and `'test'`, heads `Linear(512, 7)`) and its README (class folders 0 Neutral, 1 Happiness,
2 Sadness, 3 Surprise, 4 Fear, 5 Disgust, 6 Anger: AffectNet's order); contempt, which RAF-DB
lacks, is 7 as in AffectNet. ImageFolder numbers the folders it finds, in sorted order: a class
missing from one part of a fold would shift every later label of that part. So each fold holds
the classes its train and its test part share, and the rows of a class only one part has are
left out, said per fold and class; `classes.txt` gives the indices ImageFolder will use (MA-Net's
own when every class is there). A file is named `<sample_id><suffix>`: unique across sequences
and clips (AFEW's frame names repeat from clip to clip).
"""

from __future__ import annotations

from pathlib import Path

from fer_prep.exports import Source, Staging

#: canonical label → MA-Net's class folder
CLASS_DIRS = {
    "neutral": "0", "happiness": "1", "sadness": "2", "surprise": "3", "fear": "4",
    "disgust": "5", "anger": "6", "contempt": "7",
}
MA_NET_CLASSES = 7


def write(source: Source, out: Staging) -> None:
    """Link (or copy) every usable face into `fold_K/{train,test}/<class>/` for every fold."""
    source.need_faces("imagefolder")
    usable = source.usable()
    known = usable["label"].isin(CLASS_DIRS)
    if n := int((~known).sum()):
        out.notes.append(f"{n} unlabelled rows left out")
    rows = usable[known]
    if (n := rows["label"].nunique()) > MA_NET_CLASSES:
        out.notes.append(f"{n} classes: MA-Net's heads have {MA_NET_CLASSES} outputs (leave "
                         "neutral out, or widen them)")
    out.counts["folds"] = len(source.folds)
    for fold in source.folds:
        parts = {which: source.part(fold, which, rows) for which in ("train", "test")}
        shared = set(parts["train"]["label"]) & set(parts["test"]["label"])
        for which, part in parts.items():
            for label, n in part.loc[~part["label"].isin(shared), "label"].value_counts().items():
                other = "test" if which == "train" else "train"
                out.notes.append(f"fold {fold}: {n} {label} {which} rows left out: its {other} "
                                 "part has none, and ImageFolder would number the classes of "
                                 "the two parts differently")
            for row in part[part["label"].isin(shared)].itertuples():
                name = f"{row.sample_id}{Path(row.face).suffix}"
                out.place(row.face, f"fold_{fold}/{which}/{CLASS_DIRS[row.label]}/{name}")
                out.counts["files"] += 1
        folders = sorted(CLASS_DIRS[label] for label in shared)
        label_of = {d: label for label, d in CLASS_DIRS.items()}
        out.text(f"fold_{fold}/classes.txt", "".join(f"{i} {d} {label_of[d]}\n"
                                                     for i, d in enumerate(folders)))
