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

AffectNet (`main.py --data_root datasets/AffectNet`: data/data_loader.py picks its
`AffectNetDataset` when the root's folder name holds 'Affect'):

    imgs/0001_2d5ce2ea….jpg             every listed face, flat, `<sample_id>` + the chip's suffix
    emotion_labels.pkl                  {'0001_2d5ce2ea….jpg': 2, …}: per image, class + 1
    train_ids.csv, test_ids.csv         the one split, no fold number (options.py's defaults)

Source: `data/affectnet.py` (`cls_label = self.cls_dict[img_name] - 1` with `img_name =
os.path.basename(img_path)`, the list lines read as for CK+; no masks: it gives neither
`img_res_tensor` nor `img_tensor_gray`) and the shipped `datasets/AffectNet/{train,test}_ids.csv`
(`<subdir>_<file>.jpg`, sorted, no final newline; no pickle is shipped). FMPN's `--cls_nc` is 7
and it reports 7-class AffectNet accuracy: its classes are AffectNet's codes 0–6 (neutral …
anger, no contempt), the pickle holds code + 1. The names are the chips' own: with `fer-prep
affectnet align --format jpg` they are FMPN's names byte for byte (a note says so otherwise;
chips are not re-encoded). Whenever the folds are one train/test split (one test part), the
lists are `train_ids.csv` / `test_ids.csv`, and a CK+-style loader reads its masks from
`imgs_res/ids/` (base_dataset.py's fold is the name's last `_` part: `ids`).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from fer_prep.cache import ready_record
from fer_prep.datasets import Dataset
from fer_prep.errors import InputError
from fer_prep.exports import Source, Staging

UNLABELLED = -1
PEAK = "peak"  # FMPN trains and tests on the last three frames of each sequence


def face_name(row: Any, suffix: str = ".png") -> str:
    """The file name FMPN lists: `<sample_id>` with the chip's suffix (`suffix` without faces);
    a video's chips are named by frame number, FMPN's by sample (MMI: S001_100_040.png)."""
    return f"{row.sample_id}{Path(row.face).suffix if row.face else suffix}"


def per_image(dataset: Dataset) -> bool:
    """Whether FMPN keys the labels by image file name (its AffectNet loader, for stills) rather
    than by sequence (its CK+ and MMI loaders)."""
    return dataset.kind == "stills"


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

    images = per_image(source.info)
    suffix = ".jpg" if images else ".png"  # FMPN's names without faces: AffectNet's are JPEGs
    single = len(source.folds) == 1
    problems = []
    for fold in source.folds:
        for which in ("train", "test"):
            names = sorted(face_name(r, suffix)
                           for r in source.part(fold, which, listed).itertuples())
            csv = f"{which}_ids.csv" if single else f"{which}_ids_{fold}.csv"
            if not names:
                problems.append(f"fold {fold} has no {which} faces (an empty {csv})")
            out.text(csv, "\n".join(names))
            out.counts["lists"] += 1
    if source.has_faces:
        for row in listed.itertuples():
            out.place(row.face, f"imgs/{face_name(row)}")
            out.counts["faces"] += 1
    else:
        out.notes.append("no faces in the folds (computed from labels alone): imgs/ not written")

    if images:
        table: dict[str, float | int] = {face_name(r, suffix): codes[r.label]
                                         for r in listed.sort_values("sample_id").itertuples()}
        out.counts["images in emotion_labels.pkl"] = len(table)
        _affectnet_notes(out, listed)
    else:
        table = sequence_codes(source, codes)
        out.counts["sequences in emotion_labels.pkl"] = len(table)
        if tag := BY_INDEX.get(source.info.name):
            out.notes.append(f"FMPN-FER reads this with its {tag} loader only from a "
                             f"--data_root whose folder name holds '{tag}' (data/data_loader.py),"
                             f" e.g. datasets/{tag}")
    out.data("emotion_labels.pkl", pickle.dumps(table, protocol=2))  # protocol 2: Python 2 too
    if not images:
        problems += _masks(source, out, listed, codes, "ids" if single else None)
    out.loader_check("fmpn", problems)


def _affectnet_notes(out: Staging, listed: Any) -> None:
    """What FMPN-FER's AffectNet loader needs beyond the files: its root's name, .jpg names."""
    out.notes.append("FMPN-FER reads this as AffectNet only from a --data_root whose folder "
                     "name holds 'Affect' (data/data_loader.py), e.g. datasets/AffectNet; its "
                     "AffectNet loader reads no masks (imgs_res/ not written)")
    faces = listed["face"][listed["face"].ne("")]
    other = faces[~faces.str.lower().str.endswith(".jpg")]
    if len(other):
        out.notes.append(f"{len(other)} faces are not .jpg (e.g. {Path(other.iloc[0]).name}): "
                         "FMPN's AffectNet lists name <sample_id>.jpg; `fer-prep affectnet "
                         "align --format jpg` gives its names")


#: datasets FMPN-FER's own loader for them reads by class index (mmi_res.py: the pickle's value
#: is the class), not by CK+'s float code − 1 (ckplus_res.py); data/data_loader.py picks the
#: loader by a name in the --data_root folder's name
BY_INDEX = {"mmi": "MMI"}


def sequence_codes(source: Source, codes: dict[str, int]) -> dict[str, float | int]:
    """Sequence → what FMPN's pickle holds for it: CK+'s code as a float (−1 for an unlabelled
    one), MMI's class index as an int (its shipped pickle: 'S001_100' → 0…5).

    Every sequence of the manifest with frames is included, listed or not (FMPN's own pickle
    holds all 593 CK+ sequences); a sequence-level problem row (no frame) is not.
    """
    by_index = source.info.name in BY_INDEX
    labels: dict[str, float | int] = {}
    for sequence, rows in source.rows.groupby("sequence", sort=True):
        known = rows["sequence_label"].dropna()
        if len(known):
            code = codes[known.iloc[0]]
            labels[str(sequence)] = code - 1 if by_index else float(code)
        elif rows["frame"].notna().any():
            labels[str(sequence)] = UNLABELLED
    return labels


def _masks(source: Source, out: Staging, listed: Any, codes: dict[str, int],
           folder: str | None = None) -> list[str]:
    """Copy `WORK/<dataset>/masks/<fold>/<class>.png` into `imgs_res/<fold>/` (or `folder`:
    `ids` for one split), when they exist; the test classes of a fold without their mask, which
    FMPN-FER's loader cannot read. Masks that are stale (made on other folds), damaged or
    incomplete are refused (StageNotReady)."""
    masks = source.work / source.dataset / "masks"
    if not masks.is_dir():
        out.notes.append(f"imgs_res/ not written: no masks in {masks} (the masks stage makes "
                         "them); FMPN-FER needs imgs_res/<fold>/<class>.png to train")
        return []
    ready_record(masks, f"run `fer-prep masks --dataset {source.dataset}`")
    missing = []
    for fold in source.folds:
        for mask in sorted((masks / str(fold)).glob("*.png")):
            out.place(mask, f"imgs_res/{folder or fold}/{mask.name}")
            out.counts["masks"] += 1
        for label in sorted(set(source.part(fold, "test", listed)["label"])):
            if not (masks / str(fold) / f"{codes[label] - 1}.png").is_file():
                missing.append(f"fold {fold}: no mask for its test class {label} "
                               f"(masks/{fold}/{codes[label] - 1}.png)")
    return missing
