"""microsoft/FERPlus's data folder (`train.py -d <base_folder>`), as its reader reads it.

    FER2013Train/fer0000000.png     Usage Training: the 48×48 grey face, named by FER+'s
    FER2013Valid/fer0028638.png       `Image name`; PublicTest → FER2013Valid, PrivateTest →
    FER2013Test/fer0032220.png        FER2013Test
    FER2013Train/label.csv          no header, one row per image, in FER2013's row order:
                                    `fer0000000.png,"(0, 0, 48, 48)",4,0,0,1,3,2,0,0,0,0`
                                    (the face box, then fer2013new.csv's 10 vote counts:
                                    neutral … contempt, unknown, NF), `\\n` line ends

Source: microsoft/FERPlus `src/generate_training_data.py` (`folder_names = {'Training' :
'FER2013Train', 'PublicTest' : 'FER2013Valid', 'PrivateTest': 'FER2013Test'}`, the image saved
as `os.path.join(base_folder, folder_names[row[2]], file_name)` with `file_name =
ferplus_row[1].strip()`, a 48×48 uint8 array), `src/ferplus.py` `FERPlusReader.load_folders`
(`csv.reader` over `<folder>/label.csv`; `image_path = os.path.join(folder_path, row[0])`; `box
= list(map(int, row[1][1:-1].split(',')))`, a `Rect` of left, top, right, bottom; `emotion_raw
= list(map(float, row[2:len(row)]))`), `src/train.py` (`train_folders = ['FER2013Train']` …,
label file `"label.csv"`) and the shipped `data/FER2013Train/label.csv` (every box `"(0, 0, 48,
48)"`, rows in name order, `\\n` ends). FERPlus applies its `--training_mode` itself, from the
votes. FER+ numbers only the rows it names (fer2013new.csv's 60th row has no name, the 61st is
fer0000059.png): the names are fer2013new.csv's, not the row's index.

The rows are the folds' usable rows, placed by their Usage (FERPlus's split, whatever the fold
scheme). FER2013's official scheme is a train/test split that leaves PublicTest out; its
PublicTest rows that have a face are FERPlus's validation part, so they go to FER2013Valid. A row
FER+'s label mode dropped has no face and is not listed (FERPlus drops it too in that mode; its
shipped label.csv lists it). train.py divides by the size of each part, so an empty part is
refused unless `--allow-empty`. Faces go as they are when they are 48×48 grey PNGs (`fer-prep
ferplus align` with its defaults: FER2013's pixels unchanged); faces aligned otherwise (another
size, template or colour) are made grey and resized to 48 px, with a note, since FERPlus's box
and the models' input assume FER2013's 48-px images.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import pandas as pd

from fer_prep.cache import read_record
from fer_prep.datasets.ferplus import FERPlus
from fer_prep.errors import InputError
from fer_prep.exports import Source, Staging
from fer_prep.images import UnreadableImage, read_image

#: FER2013's Usage → FERPlus's folder (generate_training_data.py folder_names)
FOLDERS = {"Training": "FER2013Train", "PublicTest": "FER2013Valid", "PrivateTest": "FER2013Test"}
SIDE = 48
BOX = f'"(0, 0, {SIDE}, {SIDE})"'  # the shipped label.csv's box, quoted as csv writes it
LABELS = "label.csv"
#: what `fer-prep <fer2013|ferplus> align` does by default: the 48-px images as they are
DEFAULT_ALIGN = {"template": "whole", "size": SIDE, "padding": 0.0, "grey": True,
                 "format": "png"}


def write(source: Source, out: Staging) -> None:
    """Write FERPlus's three folders of `source` into `out`."""
    if not isinstance(source.info, FERPlus):
        raise InputError(f"ferplus export needs FER+'s votes: {source.dataset} has none (run "
                         "`fer-prep ferplus align` on a folder with fer2013.csv and "
                         "fer2013new.csv)")
    source.need_faces("ferplus")
    rows = split_rows(source, out)
    rows = source.with_alignment(rows, ("ferplus_name", "votes"))
    mode = ((read_record(source.work / source.dataset / "align") or {}).get("options", {})
            .get("label_mode", "majority"))
    if mode != "majority":
        out.notes.append(f"Training rows are those FER+'s {mode} mode keeps: run FERPlus's "
                         f"train.py with --training_mode {mode}")
    lines: dict[str, list[str]] = {folder: [] for folder in FOLDERS.values()}
    for row in rows.sort_values("ferplus_name").itertuples():
        name = str(row.ferplus_name)
        folder = FOLDERS[row.split]
        if place_face(source, out, row.face, f"{folder}/{name}"):
            votes = ",".join(str(int(v)) for v in row.votes)
            lines[folder].append(f"{name},{BOX},{votes}\n")
    for folder, part in lines.items():
        out.text(f"{folder}/{LABELS}", "".join(part))
        out.counts[f"{folder} images"] = len(part)
    out.loader_check("ferplus", [f"{folder}/{LABELS} lists no image (train.py divides by its "
                                 "size)" for folder, part in lines.items() if not part])


def split_rows(source: Source, out: Staging) -> pd.DataFrame:
    """The rows to write: usable ones and, under the official scheme, the PublicTest rows with a
    face (FERPlus's validation part, which a train/test split leaves out); only FER2013's three
    Usage values, others named in a note."""
    rows = source.usable()
    if (source.record.get("params") or {}).get("scheme") == "official":
        valid = source.rows[(source.rows["status"] != "ok") & (source.rows["split"] ==
                                                               "PublicTest")]
        valid = valid[valid["face"].ne("") & valid["face"].map(os.path.isfile).astype(bool)]
        if len(valid):
            out.notes.append(f"{len(valid)} PublicTest rows, which FER2013's official scheme "
                             "(train/test) leaves out, written as FERPlus's validation part "
                             "(FER2013Valid)")
            rows = pd.concat([rows, valid])
    left = source.rows["status"].ne("ok").sum() - (len(rows) - len(source.usable()))
    if left:
        out.notes.append(f"{left} rows the folds exclude are not listed (no face, e.g. FER+'s "
                         "label mode dropped them, or left out by the fold scheme)")
    known = rows["split"].isin(FOLDERS)
    for split, n in rows.loc[~known, "split"].fillna("none").value_counts().items():
        out.notes.append(f"{n} rows of split {split!r} left out: FER2013's splits are "
                         f"{', '.join(FOLDERS)}")
    if source.record.get("n_folds", 1) != 1 or \
            (source.record.get("params") or {}).get("scheme") not in (None, "official"):
        out.notes.append("the folders follow FER2013's Usage (FERPlus's one train/valid/test "
                         "split), not the folds")
    _alignment_note(source, out)
    return rows[known]


def place_face(source: Source, out: Staging, face: str, rel: str) -> bool:
    """The face at `rel`: placed as it is when it is a 48×48 grey PNG, else made one (counted
    for a note); False (and why) when it cannot be read."""
    try:
        image = read_image(face)
    except UnreadableImage as exc:
        out.skip(f"{rel}: {exc}; left out")
        return False
    if Path(face).suffix.lower() == ".png" and image.shape == (SIDE, SIDE):
        out.place(face, rel)
        return True
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    shrink = cv2.INTER_AREA if grey.shape[1] > SIDE else cv2.INTER_LINEAR
    small = cv2.resize(grey, (SIDE, SIDE), interpolation=shrink)
    out.data(rel, cv2.imencode(".png", small)[1].tobytes())
    if not out.counts["faces made 48-px grey"]:
        out.notes.append(f"faces that are not 48×48 grey PNGs (e.g. {Path(face).name}, "
                         f"{image.shape[1]}×{image.shape[0]}) were made grey and resized to "
                         f"{SIDE} px: the box is (0, 0, {SIDE}, {SIDE}) and the seeds take "
                         "FER2013's 48-px images")
    out.counts["faces made 48-px grey"] += 1
    return True


def _alignment_note(source: Source, out: Staging) -> None:
    params = (read_record(source.work / source.dataset / "align") or {}).get("params") or {}
    differ = {k: params[k] for k, v in DEFAULT_ALIGN.items() if k in params and params[k] != v}
    if differ:
        shown = ", ".join(f"{k} {v}" for k, v in differ.items())
        out.notes.append(f"the faces were aligned with {shown} (not the defaults): they are "
                         "not FER2013's own pixels, on which the FER+ votes were cast")
