"""AffectNet as ESR reads it (siqueira-hc/Efficient-Facial-Feature-Learning-with-Wide-Ensemble-
based-Convolutional-Neural-Networks, `main_affectnet_discrete.py` / `_continuous.py`
`base_path_to_dataset = "[...]/AffectNet/"`; negarhdr/Diversified-Facial-Expression-Recognition
`esr_affectnet.py`, `manet_affectnet.py --data`).

    Training_Labeled/0/0000000s1s785s412.jpg    the train part: `%07ds%ds%ds%d.jpg` of the
    Training_Labeled/0/0000001s0s0s0.jpg          image's number in its part, its AffectNet code
    …                                             (0 Neutral … 7 Contempt), valence × 1000,
    Training_Labeled/1/0000500s3s206s849.jpg      arousal × 1000 (−2000: not applicable);
    Validation/0/0000000s2s-634s-253.jpg          500 images a numbered folder; 96×96 JPEGs
    esr_ids.csv                                   `file,sample_id`: which row each file is
                                                  (not read by ESR; beside, not inside, its sets)

Source: `model/utils/udata.py` (Diversified FER: `utils/udata.py`, the same code).
`pre_process_affect_net` writes the layout: `destination_set_folders = ['AffectNet/Training_
Unlabeled/', 'AffectNet/Training_Labeled/', 'AffectNet/Validation/']`, `num_images_per_folder =
500`, `folder = str(image_id // num_images_per_folder)`, `file_name = _generate_single_file_name(
image_id, exp, val, aro)` with `return '%07ds%ds%ds%d.jpg' % (img_id, expression, valence,
arousal)` after `valence = int(valence * 1000)`, the face `img = uimage.resize(img, img_size)` with
`img_size = (96, 96)` (Diversified FER: `image_size` 96 for ESR, 224 for MA-Net). The READMEs say
"[id]_[emotion_idx]_[valence times 1000]_[arousal times 1000].jpg", but the separator is `s`:
`AffectNetCategorical._parse_to_label` does `label_info = idx.split('s')`, `discrete_label =
np.int(label_info[1])` (−1, left out, when ≥ 8), and `AffectNetDimensional._parse_to_label`
`valence = np.float32(label_info[2]) / 1000.0`, `arousal = np.float32(label_info[-1].split('.')
[0]) / 1000.0` (quadrant −1, left out, when either is ≤ −2). `_load` reads `path.join(base,
'Training_Labeled/')` (idx_set 0) or `'Validation/'` (idx_set 2), `sort_numeric_directories(
listdir(...))` (`int(re.sub("\\D", "", x))`: every entry of a set folder must be a folder with
a number in its name), then every file of each folder by `uimage.read` (`cv2.imread(…,
cv2.IMREAD_COLOR)`), uncropped, stacked by `np.array(data_affect_net)`: one size for every image.

ESR crops the face itself only in `pre_process_affect_net`, as `img[x:x + w, y:y + h, :]` (rows
by face_x, columns by face_y: the axes swapped); its loader takes the files as they are. So this
export writes our aligned chips (AffectNet's box read as x, y, width, height, and its 68 points),
resized to `size` (96 px, ESR's; 224 for MA-Net) and JPEG-encoded as `cv2.imwrite` does (quality
95); a chip that is already a `size`-pixel JPEG is placed as it is. Valence and arousal × 1000 are
truncated toward zero as ESR's `int()` does, on the decimal value (0.57 gives 570, where ESR's
binary 569.999… gives 569). The train part of the folds is `Training_Labeled/`, the test part
`Validation/` (one train/test split: `fer-prep folds --dataset affectnet`, AffectNet's training /
validation, or `--split affectnet-fmpn-v1`); within a part the rows go in AffectNet's list order
(training.csv, then validation.csv, by line; the newer release by id), as ESR numbers them.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import pandas as pd

from fer_prep.datasets.affectnet import AffectNet
from fer_prep.errors import InputError
from fer_prep.exports import Source, Staging
from fer_prep.images import UnreadableImage, read_image

SETS = {"train": "Training_Labeled", "test": "Validation"}  # udata.py affectnet_sets
PER_FOLDER = 500  # pre_process_affect_net num_images_per_folder
SIZE = 96  # ESR's img_size; Diversified FER's MA-Net takes 224
SEED_SIZES = (96, 224)
NOT_APPLICABLE = -2.0  # AffectNet's valence / arousal where they do not apply
IDS = "esr_ids.csv"
SPLIT_ORDER = {"training": 0, "validation": 1}  # pre_process_affect_net's set order


def file_name(number: int, code: int, valence: float | None, arousal: float | None) -> str:
    """ESR's `_generate_single_file_name`: `%07ds%ds%ds%d.jpg`."""
    return f"{number:07d}s{code}s{thousandths(valence)}s{thousandths(arousal)}.jpg"


def thousandths(value: float | None) -> int:
    """`int(value * 1000)` (toward zero) of the decimal value; −2000 where AffectNet gives −2."""
    value = NOT_APPLICABLE if value is None or pd.isna(value) else float(value)
    return math.trunc(round(value * 1000, 6))


def write(source: Source, out: Staging, size: int = SIZE) -> None:
    """Write ESR's `Training_Labeled/` and `Validation/` for the one split of `source`."""
    if not isinstance(source.info, AffectNet):
        raise InputError(f"esr-affectnet export is AffectNet's layout for ESR (codes, valence "
                         f"and arousal in the file names): {source.dataset} is not AffectNet")
    source.need_faces("esr-affectnet")
    if len(source.folds) != 1:
        raise InputError(f"esr-affectnet export: the {source.dataset} folds have "
                         f"{len(source.folds)} test parts; ESR trains on one train/validation "
                         "split (run `fer-prep folds --dataset affectnet`, AffectNet's own, or "
                         "`--split affectnet-fmpn-v1`)")
    if size not in SEED_SIZES:
        out.notes.append(f"size {size}: ESR takes 96-pixel faces, MA-Net 224")
    order = source.info.class_orders["affectnet-8"]  # ESR's class index: AffectNet's code
    usable = source.usable()
    known = usable["label"].isin(order)
    for label, n in usable.loc[~known, "label"].fillna("unlabelled").value_counts().items():
        out.notes.append(f"{n} {label} rows left out: not one of AffectNet's 8 classes")
    rows = source.with_alignment(usable[known], ("valence", "arousal", "source_line"))
    rows = rows.assign(_split=rows["split"].map(SPLIT_ORDER).fillna(len(SPLIT_ORDER)),
                       _line=pd.to_numeric(rows["source_line"], errors="coerce"))
    rows = rows.sort_values(["_split", "_line", "sample_id"], na_position="last")
    fold = source.folds[0]
    ids = ["file,sample_id\n"]
    problems = []
    for which, folder in SETS.items():
        number = 0
        for row in source.part(fold, which, rows).itertuples():
            name = file_name(number, order.index(row.label), row.valence, row.arousal)
            rel = f"{folder}/{number // PER_FOLDER}/{name}"
            if place_face(out, row.face, rel, size):
                ids.append(f"{rel},{row.sample_id}\n")
                number += 1
        out.counts[f"{folder} images"] = number
        if not number:
            problems.append(f"{folder}/ would hold no image (ESR lists it: a missing folder "
                            "fails, an empty set has nothing to train or validate on)")
    out.text(IDS, "".join(ids))
    out.loader_check("esr-affectnet", problems)


def place_face(out: Staging, face: str, rel: str, size: int) -> bool:
    """The chip at `rel`: as it is when it is a `size`-pixel JPEG, else resized and JPEG-encoded
    (counted for a note); False (and why) when it cannot be read."""
    try:
        image = read_image(face)
    except UnreadableImage as exc:
        out.skip(f"{rel}: {exc}; left out")
        return False
    if Path(face).suffix.lower() in (".jpg", ".jpeg") and image.shape[:2] == (size, size):
        out.place(face, rel)
        return True
    if image.shape[:2] != (size, size):
        shrink = cv2.INTER_AREA if image.shape[1] > size else cv2.INTER_LINEAR
        image = cv2.resize(image, (size, size), interpolation=shrink)
    out.data(rel, cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes())
    if not out.counts["faces made JPEG"]:
        out.notes.append(f"faces that are not {size}-pixel JPEGs (e.g. {Path(face).name}) "
                         f"were resized to {size}×{size} and written as JPEG (quality 95, as "
                         "ESR's cv2.imwrite): ESR stacks every image of a set into one array")
    out.counts["faces made JPEG"] += 1
    return True
