"""AffectNet (Mollahosseini et al. 2017) in the two layouts it is distributed in.

    Manually_Annotated_Images/<subdir>/<hash>.jpg      the web images, faces anywhere in them
    Manually_Annotated_file_lists/training.csv         with a header row:
        subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,
        expression,valence,arousal
    Manually_Annotated_file_lists/validation.csv       the same columns, without a header

    train_set/images/<id>.jpg  val_set/images/<id>.jpg            the newer release (face crops)
    train_set/annotations/<id>_exp.npy _val.npy _aro.npy _lnd.npy  one .npy file per annotation

The box is x, y, width, height in image pixels (ESR's `img[x:x + w, y:y + h]` swaps the axes;
this module never does), the landmarks 68 x;y pairs interleaved (136 values; the newer
release's `_lnd.npy` as (136,) or (68, 2)). Codes: 0 Neutral, 1 Happy, 2 Sad, 3 Surprise,
4 Fear, 5 Disgust, 6 Anger, 7 Contempt, 8 None, 9 Uncertain, 10 Non-Face; valence and arousal
in [−1, 1], −2 where they do not apply (kept as empty). Codes 8–10 are rows with status
`left_out`, and with `--classes 7` contempt rows are `not_in_classes`: the protocol leaves them
out, so they are counted, not warned about one by one. `--classes 8` (codes 0–7) is the
default, as ESR and MA-Net train on AffectNet. The validation set (500 per class) is the test
split: both layouts' splits are named `training` and `validation`. AffectNet has no subject
ids. An image's id is `<subdir>_<file stem>` with a numeric sub-folder as four digits (FMPN-FER's
key, so its shipped split applies); the newer release's `train_set_<id>`, `val_set_<id>`. By
default the `given` backend aligns on AffectNet's own box and 68 points (no detector).
"""

from __future__ import annotations

import csv
import logging
import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from fer_prep.datasets import DATASETS, Dataset, find_folder
from fer_prep.errors import InputError
from fer_prep.params import option

log = logging.getLogger("fer_prep")

CODES = {0: "neutral", 1: "happiness", 2: "sadness", 3: "surprise", 4: "fear", 5: "disgust",
         6: "anger", 7: "contempt"}
NAMES = ("Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger", "Contempt", "None",
         "Uncertain", "Non-Face")  # AffectNet's own names of codes 0…10
LEFT_OUT = range(8, 11)  # None, Uncertain, Non-Face: no expression class
NOT_APPLICABLE = -2.0  # AffectNet's valence / arousal where they do not apply
COLUMNS = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
           "facial_landmarks", "expression", "valence", "arousal")
IMAGES, LISTS = "Manually_Annotated_Images", "Manually_Annotated_file_lists"
LIST_FILES = {"training": "training.csv", "validation": "validation.csv"}
SETS = {"train_set": "training", "val_set": "validation"}  # the newer release's folders
ANNOTATIONS = ("exp", "val", "aro", "lnd")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class AffectNetOptions:
    """Which expression classes the protocol keeps."""

    classes: int = option(8, "8 classes (codes 0–7, as ESR and MA-Net) or 7 (0–6: contempt "
                          "rows are left out).", low=7, high=8)


@DATASETS.register("affectnet")
class AffectNet(Dataset):
    name = "affectnet"
    title = "AffectNet: manually annotated images with their box, 68 points, valence, arousal."
    kind = "stills"
    root_help = ("AffectNet root holding Manually_Annotated_Images/ and "
                 "Manually_Annotated_file_lists/ (or the newer train_set/ and val_set/).")
    codes = CODES
    #: ESR's and MA-Net's class index is AffectNet's code
    class_orders = {"affectnet-8": tuple(CODES[c] for c in range(8)),
                    "affectnet-7": tuple(CODES[c] for c in range(7)),
                    "fmpn": tuple(CODES[c] for c in range(7))}  # FMPN: code + 1, cls_nc 7
    official_test = "validation"
    official_train = ("training",)
    protocol = "affectnet"
    default_scheme = "official"
    defaults = {"align": {"backend": "given"}}
    Options = AffectNetOptions
    quiet = frozenset({"left_out", "not_in_classes"})
    extra_columns = {
        "source_line": "the row's line in training.csv / validation.csv (training.csv's header "
                       "is line 1; empty for the newer release's .npy annotations)",
        "valence": "AffectNet's valence in [-1, 1] (empty where AffectNet gives -2: not "
                   "applicable)",
        "arousal": "AffectNet's arousal in [-1, 1] (empty where AffectNet gives -2: not "
                   "applicable)",
    }
    integers = ("label_code", "source_line")

    def read(self, root: Path, options: AffectNetOptions) -> list[dict[str, Any]]:
        return read_affectnet(root, options.classes)

    def read_labels(self, root: Path) -> list[dict[str, Any]]:
        return read_affectnet(root, AffectNetOptions().classes, images=False)

    def item_path(self, item: dict[str, Any]) -> str:
        return f"{item['split']}/{item['sample_id']}"

    def write_sample(self, out: Path) -> Path:
        return write_affectnet_sample(out)


def read_affectnet(root: Path, classes: int = 8, images: bool = True) -> list[dict[str, Any]]:
    """One item per row of the file lists (or per image of the newer release's sets).

    `images=False` reads the labels alone (folds from the lists): no image is looked for, and
    each item's `source_path` is its list (or `_exp.npy`) file. InputError when `root` holds
    neither layout.
    """
    root = Path(root)
    lists = find_folder(root, LISTS)
    if lists is not None:
        return _read_lists(root, lists, classes, images)
    sets = {split: found for name, split in SETS.items()
            if (found := find_folder(root, name)) is not None}
    if sets:
        return _read_sets(sets, classes, images)
    raise InputError(f"{root}: no {LISTS}/ (training.csv, validation.csv) and no train_set/ or "
                     "val_set/ folder (is this the AffectNet root?)")


# --- the file lists ----------------------------------------------------------------------------

def _read_lists(root: Path, lists: Path, classes: int, images: bool) -> list[dict[str, Any]]:
    files = {split: hits[0] for split, name in LIST_FILES.items()
             if (hits := sorted(p for p in lists.iterdir()
                                if p.name.lower() == name and p.is_file()))}
    if not files:
        raise InputError(f"{lists}: neither training.csv nor validation.csv")
    for split, name in LIST_FILES.items():
        if split not in files:
            log.warning(f"{lists}: no {name}, so no {split} rows (a partial copy?)")
    folder = find_folder(root, IMAGES) if images else None
    if images and folder is None:
        raise InputError(f"{root}: no {IMAGES}/ folder beside {lists} (the images the lists "
                         "name)")
    items: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    base = str(folder.absolute()) if folder is not None else None
    for split, path in files.items():
        listed = str(path.absolute())
        for line, fields, names in _rows(path):
            item = _row_item(fields, names, split, listed, line, base, classes)
            _unique(item, f"{path}:{line}", seen)
            items.append(item)
    return items


def _rows(path: Path) -> Iterator[tuple[int, list[str], dict[str, int]]]:
    """(line, fields, column → index) of each data row, read as it goes; a header is used where
    there is one (training.csv), else the published column order (validation.csv)."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        names = {name: i for i, name in enumerate(COLUMNS)}
        first = True
        for row in reader:
            if not row:
                continue
            if first and row[0].strip().lower() == COLUMNS[0].lower():
                header = [c.strip().lower() for c in row]
                missing = [c for c in COLUMNS if c.lower() not in header]
                if missing:
                    raise InputError(f"{path}:{reader.line_num}: header lacks {missing}: not "
                                     "an AffectNet file list")
                names = {name: header.index(name.lower()) for name in COLUMNS}
                first = False
                continue
            first = False
            yield reader.line_num, row, names


def image_id(rel: str) -> str:
    """`<subdir>_<file stem>`, a numeric sub-folder as four digits: FMPN-FER's key for an
    AffectNet image (its lists, and the shipped split affectnet-fmpn-v1, say 0001_<hash>).
    `rel` is a normal relative POSIX path (`_relative`); strings, not a Path per row."""
    parts = rel.split("/")
    dot = parts[-1].rfind(".")
    if dot > 0:  # pathlib's stem: the last suffix off, a leading dot kept
        parts[-1] = parts[-1][:dot]
    if len(parts) > 1 and parts[0].isdigit():
        parts[0] = f"{int(parts[0]):04d}"
    return "_".join(parts)


def _relative(text: str) -> str | None:
    """A list's `subDirectory_filePath` as a normal relative POSIX path, or None when it is no
    path inside the images folder (absolute, empty, or climbing out with ..)."""
    text = text.replace("\\", "/")
    parts = text.split("/")
    if all(parts) and "." not in parts and ".." not in parts:  # already normal: most rows
        return text
    rel = PurePosixPath(text)
    if not rel.name or rel.is_absolute() or ".." in rel.parts:
        return None
    return str(rel)


def _row_item(fields: list[str], names: dict[str, int], split: str, path: str, line: int,
              folder: str | None, classes: int) -> dict[str, Any]:
    """One list row as an item; `path` the list and `folder` the images' folder, absolute
    (strings: 287,651 rows are read in seconds only without a Path per row)."""
    where = f"{path}:{line}"
    item = _item(f"{split}_line{line:07d}", split, path, line)
    if len(fields) < len(COLUMNS):
        return _bad(item, "bad_row", f"{where}: {len(fields)} fields, expected {len(COLUMNS)} "
                    f"({','.join(COLUMNS)})")
    value = {name: fields[i].strip() for name, i in names.items()}
    rel = _relative(value["subDirectory_filePath"])
    if rel is None:
        return _bad(item, "bad_row", f"{where}: subDirectory_filePath "
                    f"{value['subDirectory_filePath']!r} is not a path inside {IMAGES}/")
    item["sample_id"] = item["sequence"] = image_id(rel)
    if folder is not None:
        item["source_path"] = f"{folder}/{rel}"
    problem = _labels(item, value["expression"], value["valence"], value["arousal"], where,
                      classes)
    if problem or item["status"] != "ok":
        return item
    if folder is not None and not os.path.isfile(item["source_path"]):
        return _bad(item, "missing_image", f"{where}: names {rel}, which is not in {folder}")
    box = _numbers([value[c] for c in COLUMNS[1:5]])
    if box is None:
        return _bad(item, "bad_box", f"{where}: face box {[value[c] for c in COLUMNS[1:5]]} is "
                    "not four numbers (face_x, face_y, face_width, face_height)")
    if box[2] <= 0 or box[3] <= 0:
        return _bad(item, "bad_box", f"{where}: face box x={box[0]:g} y={box[1]:g} "
                    f"width={box[2]:g} height={box[3]:g} is empty")
    item["given_box"] = box
    text = value["facial_landmarks"]
    if text:  # an empty field: the box alone (dlib's 68 points inside it)
        points = _landmarks(text)
        if points is None:
            tokens = [t for t in text.split(";") if t.strip()]
            what = f"{len(tokens)} values" if _numbers(tokens) is not None \
                else "values that are not numbers"
            return _bad(item, "bad_landmarks", f"{where}: facial_landmarks holds {what}, "
                        "expected 136 (68 x;y pairs)")
        item["given_landmarks68"] = points
    return item


def _landmarks(text: str) -> Any:
    """The 136 finite numbers of a `x;y;x;y;…` field as a float64 array (a seventh of a list's
    memory), or None when it holds anything else."""
    import numpy as np

    try:
        with warnings.catch_warnings():  # a token that is no number ends the parse: too few
            warnings.simplefilter("ignore", DeprecationWarning)
            points = np.fromstring(text.strip().strip(";"), sep=";")
    except ValueError:
        return None
    if points.size != 136 or not np.isfinite(points).all():
        return None
    return points


# --- the newer release: train_set/, val_set/ -------------------------------------------------

def _read_sets(sets: dict[str, Path], classes: int, images: bool) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for split, folder in sets.items():
        pictures, notes = folder / "images", folder / "annotations"
        for part in (pictures, notes):
            if not part.is_dir():
                raise InputError(f"{folder}: no {part.name}/ folder (AffectNet's "
                                 f"{folder.name}/ holds images/ and annotations/)")
        files = {p.stem: p for p in pictures.iterdir()
                 if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES}
        labelled = {p.name.removesuffix("_exp.npy") for p in notes.glob("*_exp.npy")}
        for stem in sorted(set(files) | labelled, key=_numeric):
            item = _set_item(stem, files.get(stem), folder, split, classes, images)
            _unique(item, str(folder / "images" / stem), seen)
            items.append(item)
    return items


def _numeric(stem: str) -> tuple[int, str]:
    return (int(stem), stem) if stem.isdigit() else (-1, stem)


def _set_item(stem: str, image: Path | None, folder: Path, split: str, classes: int,
              images: bool) -> dict[str, Any]:
    notes = folder / "annotations"
    paths = {kind: notes / f"{stem}_{kind}.npy" for kind in ANNOTATIONS}
    source = (image or folder / "images" / f"{stem}.jpg") if images else paths["exp"]
    item = _item(f"{folder.name}_{stem}", split, source, None)
    where = str(image or folder / "images" / stem)
    missing = [p.name for p in paths.values() if not p.is_file()]
    if missing:
        return _bad(item, "missing_annotation", f"{where}: no {', '.join(missing)} in {notes}")
    try:
        exp, val, aro, lnd = (_load(paths[kind]) for kind in ANNOTATIONS)
    except ValueError as exc:
        return _bad(item, "bad_annotation", str(exc))
    scalars = []
    for kind, array in (("exp", exp), ("val", val), ("aro", aro)):
        if array.size != 1:
            return _bad(item, "bad_annotation", f"{paths[kind]}: {array.size} values, expected "
                        "one")
        value = array.reshape(()).item()
        scalars.append((value.decode() if isinstance(value, bytes) else str(value)).strip())
    if _labels(item, *scalars, str(paths["exp"]), classes) or item["status"] != "ok":
        return item
    if images and image is None:
        return _bad(item, "missing_image", f"{paths['exp']}: annotated, but {folder / 'images'} "
                    f"holds no {stem}.jpg")
    try:
        points = lnd.astype(float)
    except ValueError:
        points = None
    if points is None or points.size != 136 or points.ndim not in (1, 2) or (
            points.ndim == 2 and points.shape != (68, 2)):
        shape = "values that are not numbers" if points is None else f"shape {lnd.shape}"
        return _bad(item, "bad_landmarks", f"{paths['lnd']}: {shape}, expected 136 values "
                    "(68 x, y pairs: (136,) or (68, 2))")
    flat = [float(v) for v in points.ravel()]  # (68, 2) row by row: x0, y0, x1, y1, …
    if not all(map(math.isfinite, flat)):
        return _bad(item, "bad_landmarks", f"{paths['lnd']}: values that are not finite")
    item["given_landmarks68"] = flat
    return item


def _load(path: Path) -> Any:
    """A .npy array (no pickles); ValueError naming the file when it is not one."""
    import numpy as np

    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(f"{path}: not a NumPy .npy array of numbers or text ({exc})") from None


# --- shared --------------------------------------------------------------------------------

def _item(sample_id: str, split: str, source: str | Path, line: int | None) -> dict[str, Any]:
    """A new item; `source` absolute where it is a string."""
    return {
        "sample_id": sample_id, "dataset": "affectnet", "subject": None, "sequence": sample_id,
        "label": None, "label_code": None, "split": split,
        "source_path": source if isinstance(source, str) else str(Path(source).absolute()),
        "source_line": line, "valence": None,
        "arousal": None, "given_box": None, "given_landmarks68": None, "status": "ok",
        "message": "",
    }


def _bad(item: dict[str, Any], status: str, message: str) -> dict[str, Any]:
    item.update(status=status, message=message)
    return item


def _labels(item: dict[str, Any], code: str, valence: str, arousal: str, where: str,
            classes: int) -> bool:
    """Put the expression, valence and arousal on `item`; True when one is not AffectNet's
    (status bad_label). A code the protocol leaves out sets its quiet status."""
    number = _numbers([code])
    if number is None or not number[0].is_integer() or not 0 <= number[0] <= 10:
        _bad(item, "bad_label", f"{where}: expression {code!r} is not one of AffectNet's codes "
             "0…10")
        return True
    for name, text in (("valence", valence), ("arousal", arousal)):
        value = _numbers([text])
        if value is None or not (-1 - 1e-6 <= value[0] <= 1 + 1e-6
                                 or value[0] == NOT_APPLICABLE):
            _bad(item, "bad_label", f"{where}: {name} {text!r} is neither in [-1, 1] nor -2 "
                 "(not applicable)")
            return True
        item[name] = None if value[0] == NOT_APPLICABLE else value[0]
    value = int(number[0])
    item["label_code"] = value
    if value in LEFT_OUT:
        _bad(item, "left_out", f"{where}: expression {value} ({NAMES[value]}) is no expression "
             "class; left out, as ESR and MA-Net do")
    elif value >= classes:
        item["label"] = CODES[value]
        _bad(item, "not_in_classes", f"{where}: expression {value} ({NAMES[value]}) is not one "
             f"of the {classes} classes (--classes {classes})")
    else:
        item["label"] = CODES[value]
    return False


def _numbers(texts: list[str]) -> list[float] | None:
    """The finite numbers `texts` hold, or None if one is not."""
    try:
        values = [float(t) for t in texts]
    except ValueError:
        return None
    return values if all(map(math.isfinite, values)) else None


def _unique(item: dict[str, Any], where: str, seen: dict[str, str]) -> None:
    """A second row for one image keeps its place with status `duplicate` and an id of its own."""
    sample_id = item["sample_id"]
    if sample_id in seen:
        item["sample_id"] = item["sequence"] = f"{sample_id}_{item['split']}{len(seen)}"
        item.update(status="duplicate", message=f"{where}: names the image of {seen[sample_id]} "
                    "again; the first is used")
    seen.setdefault(sample_id, where)


# --- the embedded sample -------------------------------------------------------------------

#: the sample's expressions → (AffectNet code, valence, arousal)
SAMPLE_LABELS = {"neutral": (0, 0.0, 0.0), "happy": (1, 0.785714, 0.412698),
                 "sadness": (2, -0.634921, -0.253968), "surprise": (3, 0.206349, 0.849206),
                 "anger": (6, -0.571429, 0.714286)}


def write_affectnet_sample(out: Path) -> Path:
    """Write the sample in AffectNet's list layout under ``out/affectnet`` and return that root.

    The CK+ sample's subjects (the astronaut under fixed transforms) in colour, 640×490 JPEG:
    every sequence's neutral first and peak last frame, with the box and 68 points the
    transforms put the astronaut's known landmarks at. S901 and S902 go to training.csv (with
    its header), S903 to validation.csv (without). S901's unlabelled sequence gives a None (8)
    and an Uncertain (9) row, a face-less crop a Non-Face (10) row. Re-running writes the same
    bytes.
    """
    import hashlib

    import cv2
    import numpy as np
    from skimage import data

    from fer_prep.sample import (
        ASTRONAUT_LANDMARKS,
        SUBJECTS,
        _apply,
        _peak,
        _render,
        _smoothstep,
        _subject_matrix,
    )

    root = Path(out) / "affectnet"
    images = root / IMAGES
    colour = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR).astype(np.float32)
    rows: dict[str, list[str]] = {"training": [], "validation": []}

    def write(frame: np.ndarray, subdir: str, key: str) -> str:
        name = hashlib.sha224(key.encode()).hexdigest()
        (images / subdir).mkdir(parents=True, exist_ok=True)
        jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
        (images / subdir / f"{name}.jpg").write_bytes(jpeg)
        return f"{subdir}/{name}.jpg"

    def row(rel: str, points: np.ndarray, code: int, valence: float, arousal: float) -> str:
        (x0, y0), (x1, y1) = points.min(0), points.max(0)
        side = 1.15 * max(x1 - x0, y1 - y0)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - 0.08 * (y1 - y0)
        box = [round(cx - side / 2), round(cy - side / 2), round(side), round(side)]
        marks = ";".join(f"{v:.2f}" for v in points.ravel())
        return ",".join([rel, *map(str, box), marks, str(code), f"{valence:g}", f"{arousal:g}"])

    for number, subject in enumerate(SUBJECTS, start=101):
        split = "validation" if subject.name == "S903" else "training"
        m = _subject_matrix(subject)
        for seq in subject.sequences:
            peak = _peak(seq.expression)
            count = seq.frames
            picks = ((0, "neutral"), (count - 1, seq.expression)) if seq.labelled else (
                (count // 2, None), (count - 2, None))
            for k, expression in picks:
                w = _smoothstep(k / (count - 1))
                frame = _render(colour, m, w * peak)
                frame = np.clip(frame * subject.gain + subject.bias, 0, 255).round()
                rel = write(frame.astype(np.uint8), str(number),
                            f"{subject.name}/{seq.number}/{k}")
                points = _apply(m, ASTRONAUT_LANDMARKS + w * peak)
                if expression is not None:
                    rows[split].append(row(rel, points, *SAMPLE_LABELS[expression]))
                else:  # the unlabelled sequence: None (with its affect), then Uncertain
                    code, affect = (8, (-0.31746, 0.5)) if k == count // 2 else (9, (-2, -2))
                    rows[split].append(row(rel, points, code, *affect))
    ground = cv2.resize(colour[380:512, 0:170], (640, 490), interpolation=cv2.INTER_AREA)
    rel = write(ground.round().astype(np.uint8), "104", "non-face")
    points = _apply(_subject_matrix(SUBJECTS[0]), ASTRONAUT_LANDMARKS)
    rows["training"].append(row(rel, points, 10, -2, -2))
    lists = root / LISTS
    lists.mkdir(parents=True, exist_ok=True)
    (lists / "training.csv").write_text("\n".join([",".join(COLUMNS), *rows["training"]]) + "\n",
                                        encoding="ascii", newline="\n")
    (lists / "validation.csv").write_text("\n".join(rows["validation"]) + "\n", encoding="ascii",
                                          newline="\n")
    return root
