"""Folds as torchvision ImageFolder trees: MA-Net's `--data` layout, once per fold.

    fold_0/train/1/S052_004_00000031.png    a link to the chip (or a copy)
    fold_0/test/6/S111_006_00000012.png
    classes.txt                             `0 neutral` … : what each class folder holds

Source: zengqunzhao/MA-Net `main.py` (`datasets.ImageFolder(os.path.join(args.data, 'train'))`
and `'test'`, heads `Linear(512, 7)`) and its README (class folders 0 Neutral, 1 Happiness,
2 Sadness, 3 Surprise, 4 Fear, 5 Disgust, 6 Anger: AffectNet's order); contempt, which RAF-DB
lacks, is 7 as in AffectNet. ImageFolder numbers the folders present in sorted order, so with
every class present its indices are MA-Net's. A file is named `<sample_id><suffix>`: unique
across sequences and clips (AFEW's frame names repeat from clip to clip).
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
        for which in ("train", "test"):
            for row in source.part(fold, which, rows).itertuples():
                name = f"{row.sample_id}{Path(row.face).suffix}"
                out.place(row.face, f"fold_{fold}/{which}/{CLASS_DIRS[row.label]}/{name}")
                out.counts["files"] += 1
    out.text("classes.txt", "".join(f"{d} {label}\n" for label, d in
                                    sorted(CLASS_DIRS.items(), key=lambda kv: kv[1])))
