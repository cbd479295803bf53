"""FMPN-FER's data root (`main.py --data_root datasets/CKPlus`), as its loader reads it.

    imgs/S005_001_00000009.png          every listed face, flat
    imgs_res/<fold>/<class>.png         the fold's pseudo motion masks, class = CK+ code − 1
    emotion_labels.pkl                  {'S005_001': 3.0, …}; −1 for an unlabelled sequence
    train_ids_<fold>.csv, test_ids_<fold>.csv   face file names, sorted, no header

Source: donydchen/FMPN-FER `data/base_dataset.py` (the fold is the CSV name's last `_` part,
images are `imgs/<line>`, the pickle is read with `encoding='latin1'`) and `data/ckplus_res.py`
(the class is `pickle['S005_001'] − 1`, the mask `imgs_res/<fold>/<class>.png`). The shipped
CSVs are sorted, `\\n`-separated, with no newline after the last name; the shipped pickle holds
float codes for the labelled sequences and −1 for the unlabelled ones.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from fer_prep.datasets import Dataset
from fer_prep.errors import InputError
from fer_prep.exports import Source, Staging

UNLABELLED = -1
PEAK = "peak"  # FMPN trains and tests on the last three frames of each sequence


def face_name(row: Any) -> str:
    """The file name FMPN lists: the chip's own name, or `<sample_id>.png` without faces."""
    return Path(row.face).name if row.face else f"{row.sample_id}.png"


def seed_codes(dataset: Dataset) -> dict[str, int]:
    """Canonical label → the code FMPN-FER's pickle holds: its class index (the mask's file
    name) + 1, in the dataset's FMPN class order; for CK+ these are CK+'s own codes."""
    if "fmpn" not in dataset.class_orders:
        raise InputError(f"fmpn export: {dataset.name} has no FMPN class order (FMPN-FER used "
                         "CK+, MMI and AffectNet)")
    return {label: i + 1 for i, label in enumerate(dataset.class_orders["fmpn"])}


def write(source: Source, out: Staging) -> None:
    """Write FMPN-FER's data root for the folds of `source` into `out`."""
    codes = seed_codes(source.info)
    classes = set(codes)  # the seed's classes, no neutral
    usable = source.usable()
    in_class = usable["label"].isin(classes)
    others = usable.loc[~in_class, "label"].fillna("unlabelled")
    for label, n in others.value_counts().sort_index().items():
        out.notes.append(f"{n} {label} rows left out: not one of FMPN-FER's {len(codes)} "
                         "classes")
    listed = usable[in_class]
    if "role" in listed and listed["role"].notna().any():
        if n := int(listed["role"].ne(PEAK).sum()):
            out.notes.append(f"{n} non-peak rows left out: FMPN-FER uses the last three frames "
                             "of a sequence")
        listed = listed[listed["role"].eq(PEAK)]

    problems = []
    for fold in source.folds:
        for which in ("train", "test"):
            names = sorted(face_name(r) for r in source.part(fold, which, listed).itertuples())
            if not names:
                problems.append(f"fold {fold} has no {which} faces (an empty "
                                f"{which}_ids_{fold}.csv)")
            out.text(f"{which}_ids_{fold}.csv", "\n".join(names))
            out.counts["lists"] += 1
    if source.has_faces:
        for row in listed.itertuples():
            out.place(row.face, f"imgs/{face_name(row)}")
            out.counts["faces"] += 1
    else:
        out.notes.append("no faces in the folds (computed from labels alone): imgs/ not written")

    table = sequence_codes(source, codes)
    out.data("emotion_labels.pkl", pickle.dumps(table, protocol=2))  # protocol 2: Python 2 too
    out.counts["sequences in emotion_labels.pkl"] = len(table)
    problems += _masks(source, out, listed, codes)
    out.loader_check("fmpn", problems)


def sequence_codes(source: Source, codes: dict[str, int]) -> dict[str, float | int]:
    """Sequence → its code as a float, as FMPN's pickle holds it; −1 for an unlabelled one.

    Every sequence of the manifest with frames is included, listed or not (FMPN's own pickle
    holds all 593 CK+ sequences); a sequence-level problem row (no frame) is not.
    """
    labels: dict[str, float | int] = {}
    for sequence, rows in source.rows.groupby("sequence", sort=True):
        known = rows["sequence_label"].dropna()
        if len(known):
            labels[str(sequence)] = float(codes[known.iloc[0]])
        elif rows["frame"].notna().any():
            labels[str(sequence)] = UNLABELLED
    return labels


def _masks(source: Source, out: Staging, listed: Any, codes: dict[str, int]) -> list[str]:
    """Copy `WORK/<dataset>/masks/<fold>/<class>.png` into `imgs_res/`, when they exist; the
    test classes of a fold without their mask, which FMPN-FER's loader cannot read."""
    masks = source.work / source.dataset / "masks"
    if not masks.is_dir():
        out.notes.append(f"imgs_res/ not written: no masks in {masks} (the masks stage makes "
                         "them); FMPN-FER needs imgs_res/<fold>/<class>.png to train")
        return []
    missing = []
    for fold in source.folds:
        for mask in sorted((masks / str(fold)).glob("*.png")):
            out.place(mask, f"imgs_res/{fold}/{mask.name}")
            out.counts["masks"] += 1
        for label in sorted(set(source.part(fold, "test", listed)["label"])):
            if not (masks / str(fold) / f"{codes[label] - 1}.png").is_file():
                missing.append(f"fold {fold}: no mask for its test class {label} "
                               f"(masks/{fold}/{codes[label] - 1}.png)")
    return missing
