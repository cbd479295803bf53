"""MAFER's Oulu-CASIA data folder (fvmassoli/mafer-multires-facial-expression-recognition,
`main_oulu.py -df DIR -dn oulucasia`), as its `datasets/oulucasia.py` reads it.

    Surprise/P001_Surprise_004.jpeg …   every usable face, in MAFER's six class folders
    oulucasia_database.csv              `,image_path,expression`: the database MAFER loads
    mean.npy                            the faces' mean per channel, BGR, 0–255

Source: `datasets/oulucasia.py` (`expression_to_idx` Surprise 0, Happiness 1, Sadness 2, Anger 3,
Fear 4, Disgust 5; `__create_database` joins `listdir(dataset_folder)` and `listdir(<expr>)` into
`image_path` and saves it with pandas' index, and the file, when it exists, is loaded instead),
`datasets/base.py` (`cv2.imread`: BGR), `utils.py` `get_transforms` (the 0–255 image minus
`data_mean` per channel) and `main_oulu.py` (`np.load(join(dataset_folder, 'mean.npy'))` for its
`finetune` configuration; `KFold(n_splits=10, shuffle=True, random_state=17)` over the
database's rows). MAFER makes its own folds: the export takes every usable face of the folds
manifest, whatever its scheme, in MAFER's six classes. The database lists them sorted (class
folder, then name), the order `fer-prep folds --scheme mafer` uses, so MAFER's KFold over it
gives exactly those folds. Its paths are relative, `./<Expression>/<image>`, as MAFER's builder
writes them for `-df .`: MAFER opens them with `cv2.imread` from where it runs, so run it in the
export (`cd OUT && python …/main_oulu.py -df . -dn oulucasia`); the export can be moved. The
database is always written: MAFER's builder takes every entry of the folder for a class folder,
and `mean.npy` (which its `finetune` runs load from that folder) is one.
"""

from __future__ import annotations

import io
from pathlib import Path

from fer_prep.errors import InputError
from fer_prep.exports import Source, Staging
from fer_prep.folds import MAFER_FOLDERS

DATABASE = "oulucasia_database.csv"
#: MAFER's class index of each class folder (datasets/oulucasia.py)
INDEX = {folder: i for i, folder in enumerate(MAFER_FOLDERS.values())}


def write(source: Source, out: Staging) -> None:
    """Write MAFER's `<Expression>/` folders, database and channel mean for `source` into `out`."""
    import cv2
    import numpy as np
    import pandas as pd

    source.need_faces("mafer")
    usable = source.usable()
    rows = usable[usable["label"].isin(MAFER_FOLDERS) & usable["face"].ne("")]
    for label, n in usable.loc[~usable.index.isin(rows.index), "label"].fillna(
            "unlabelled").value_counts().sort_index().items():
        out.notes.append(f"{n} {label} rows left out: not one of MAFER's six classes")
    if rows.empty:
        raise InputError(f"mafer export: no {source.dataset} face of MAFER's six classes "
                         f"({', '.join(MAFER_FOLDERS)}) in the folds")
    placed = sorted((MAFER_FOLDERS[r.label], f"{r.sample_id}{Path(r.face).suffix}", r.face)
                    for r in rows.itertuples())
    total, pixels = np.zeros(3), 0
    for folder, name, face in placed:
        out.place(face, f"{folder}/{name}")
        image = cv2.imread(face)  # as MAFER reads it: BGR, grey faces as three equal channels
        total += image.reshape(-1, 3).sum(0)
        pixels += image.shape[0] * image.shape[1]
        out.counts[f"{folder} faces"] += 1
    database = pd.DataFrame({"image_path": [f"./{f}/{n}" for f, n, _ in placed],
                             "expression": [INDEX[f] for f, _, _ in placed]})
    out.text(DATABASE, database.to_csv())
    buffer = io.BytesIO()
    np.save(buffer, total / pixels)
    out.data("mean.npy", buffer.getvalue())
    out.notes.append(f"{DATABASE} names the faces relative to {out.final}: run MAFER there "
                     "(`-df .`); its KFold(10, seed 17) over it gives `folds --scheme mafer` (k "
                     "10, seed 17)")
