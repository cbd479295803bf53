"""FER2013 (ICML 2013 challenge) in the layouts it is distributed in.

    fer2013.csv            emotion,pixels,Usage   (Usage: Training, PublicTest, PrivateTest)
    icml_face_data.csv     emotion, Usage, pixels (the re-release: leading spaces in the names)
    train.csv, test.csv    Kaggle's: emotion,pixels and pixels alone (test is unlabelled)
    train/<class>/Training_<n>.jpg, test/<class>/PublicTest_<n>.jpg, …/PrivateTest_<n>.jpg
                           Kaggle's image download (the copy most people hold): class folders
                           angry disgust fear happy neutral sad surprise, 48×48 grey JPEG

Each row is a 48×48 grey face as 2,304 space-separated values. Codes: 0 Angry, 1 Disgust, 2 Fear,
3 Happy, 4 Sad, 5 Surprise, 6 Neutral. A row is an item: its id is its place in the file
(`fer0000000`, 0-based; Kaggle's files: `train0000000`, `test0000000`; FER+'s own image names
drift from the row index after row 59, so `ferplus` keeps them as `ferplus_name`), its split the
Usage;
its pixels are read from the file (`source_offset`, `source_length`) where it is aligned, and its
content key is the row's own bytes, so one changed row redoes one face. FER2013 has no subject
ids. The faces are pre-cropped: by default the whole image is the face (the `given` backend with
dlib's 68 points inside it) and the chip is the 48-px image as it is (`whole` template).

Kaggle's image download is read where no CSV is (the layout found from what is there): an item
per image, its id the file's stem (`Training_10118481`), its split the name's prefix (the
Usage: `Training`, `PublicTest`, `PrivateTest`, whichever of `train/` and `test/` holds it), its
label the class folder's, its content the file's. The defaults are the CSV's, so folds (the
official scheme), the `fer2013` protocol and every FER2013 export read it unchanged. A file named
otherwise is a `bad_name` row, a folder that is not one of the seven classes makes `bad_label`
rows; two faces of one name in two class folders (Kaggle's copy has two such) keep both,
their ids carrying their class (`Training_8475486_angry`). The numbers in the names are not
row numbers of fer2013.csv, so FER+ cannot be joined to these files (`ferplus` refuses them).
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fer_prep.datasets import DATASETS, Dataset, find_file
from fer_prep.errors import InputError
from fer_prep.params import option

log = logging.getLogger("fer_prep")

SIDE = 48
GZIP = b"\x1f\x8b"  # the first bytes of a gzip file
UNKNOWN = "unknown"  # the split of rows read from a CSV without its Usage column
CODES = {0: "anger", 1: "disgust", 2: "fear", 3: "happiness", 4: "sadness", 5: "surprise",
         6: "neutral"}
#: file name → (id prefix, split when the file has no Usage column)
FILES = {"fer2013.csv": ("fer", None), "icml_face_data.csv": ("fer", None),
         "train.csv": ("train", "Training"), "test.csv": ("test", "Test")}
#: Kaggle's image download: its two parts, its class folders (→ FER2013's code), and the
#: prefixes of its file names (each the row's Usage)
PARTS = ("train", "test")
FOLDERS = {"angry": 0, "disgust": 1, "fear": 2, "happy": 3, "sad": 4, "surprise": 5,
           "neutral": 6}
PREFIXES = ("Training", "PublicTest", "PrivateTest")


@dataclass(frozen=True)
class FER2013Options:
    """Where a partial copy of fer2013.csv starts in the full file."""

    first_row: int | None = option(None, "The place (0-based) of this fer2013.csv's first data "
                                   "row in the full file, for a partial copy: ids keep the "
                                   "full file's row numbers, and FER+ joins from there [0].",
                                   low=0)


@DATASETS.register("fer2013")
class FER2013(Dataset):
    name = "fer2013"
    title = ("FER2013 faces (48 px grey) from fer2013.csv, icml_face_data.csv, Kaggle's CSVs or "
             "Kaggle's train/ and test/ image folders.")
    kind = "stills"
    root_help = ("Folder holding fer2013.csv (or icml_face_data.csv, or train.csv and test.csv, "
                 "or Kaggle's train/<class>/ and test/<class>/ images).")
    codes = CODES
    Options = FER2013Options
    official_test = "PrivateTest"
    official_train = ("training",)
    official_validation = "PublicTest"
    protocol = "fer2013"
    default_scheme = "official"
    defaults = {"align": {"backend": "given", "template": "whole", "grey": True}}
    extra_columns = {"source_line": "the row's line in the CSV (the header is line 1)"}
    internal = ("source_offset", "source_length")
    integers = ("label_code", "source_line")

    def read(self, root: Path, options: Any) -> list[dict[str, Any]]:
        given = getattr(options, "first_row", None)  # read(root, None) reads from row 0
        first = given or 0
        if not any(find_file(root, name) for name in FILES):
            images = image_folders(root)
            if images is not None:
                if given is not None:
                    raise InputError(f"{root}: --first-row places rows of fer2013.csv; "
                                     "Kaggle's images carry their own names")
                return read_images(images, self.name)
        return [item for path in csv_files(root) for item in read_rows(path, self.name, first)]

    def load_image(self, item: dict[str, Any]) -> Any:
        try:
            int(item.get("source_offset"))  # a CSV row's place; None or NA for an image file
        except (TypeError, ValueError):
            return image_file(item["source_path"])  # Kaggle's image download
        return row_image(item)

    def item_path(self, item: dict[str, Any]) -> str:
        return f"{item['split']}/{item['sample_id']}"

    def write_sample(self, out: Path) -> Path:
        from fer_prep.sample import write_fer2013_sample

        return write_fer2013_sample(out)


def csv_files(root: Path) -> list[Path]:
    """The FER2013 CSVs under `root` (at most two levels down): fer2013.csv, else
    icml_face_data.csv, else Kaggle's train.csv and test.csv."""
    found = {name: path for name in FILES if (path := find_file(root, name)) is not None}
    for name in ("fer2013.csv", "icml_face_data.csv"):
        if name in found:
            return [found[name]]
    kaggle = [found[n] for n in ("train.csv", "test.csv") if n in found]
    if not kaggle:
        raise InputError(f"{root}: no fer2013.csv, icml_face_data.csv, train.csv/test.csv or "
                         "Kaggle's train/<class>/ and test/<class>/ image folders (is this "
                         "FER2013?)")
    return kaggle


def image_folders(root: Path) -> Path | None:
    """The folder holding Kaggle's `train/` and `test/` class folders: `root` or a folder up to
    two levels below it; None where there is none."""
    for level in range(3):
        found = Path(root).glob("*/" * level) if level else [Path(root)]
        for base in sorted(p for p in found if p.is_dir()):
            if any((base / part / name).is_dir() for part in PARTS for name in FOLDERS):
                return base
    return None


def read_images(base: Path, dataset: str) -> list[dict[str, Any]]:
    """One item per file of Kaggle's image folders; a file it cannot use says why."""
    # names as strings (os.scandir): a Path per file is half a second of a no-op re-run
    files = [(folder, os.path.join(parent, name), _stem(name))
             for part in PARTS if (base / part).is_dir()
             for folder, parent in _folders(base / part)
             for name in sorted(e.name for e in os.scandir(parent)
                                if not e.name.startswith("."))]
    # Kaggle's copy names a few different faces alike in two class folders (2 of its 28,709
    # training images): each keeps its own label, its id its class too (Training_8475486_angry)
    names = Counter(stem for _, _, stem in files)
    items = []
    for folder, path, stem in files:
        prefix, _, number = stem.partition("_")
        code = FOLDERS.get(folder.lower())
        sample_id = stem if names[stem] == 1 else f"{stem}_{folder.lower()}"
        item: dict[str, Any] = {
            "sample_id": sample_id, "dataset": dataset, "subject": None, "sequence": sample_id,
            "label": None, "label_code": None, "split": None, "source_path": path,
            "source_line": None, "status": "ok", "message": ""}
        if prefix not in PREFIXES or not number.isdigit():
            item.update(status="bad_name", message=f"{path}: not a name of Kaggle's FER2013 "
                        "images (Training_<n>, PublicTest_<n>, PrivateTest_<n>)")
        elif code is None:
            item.update(status="bad_label", message=f"{path}: class folder {folder!r} is "
                        f"not one of {', '.join(FOLDERS)}")
        else:
            item.update(split=prefix, label=CODES[code], label_code=code)
        items.append(item)
    return items


def _folders(part: Path) -> list[tuple[str, str]]:
    """(name, path) of each class folder of `train/` or `test/`, sorted by name."""
    return sorted((e.name, e.path) for e in os.scandir(part) if e.is_dir())


def _stem(name: str) -> str:
    """pathlib's stem of a file name: the last suffix off, a leading dot kept."""
    dot = name.rfind(".")
    return name[:dot] if dot > 0 else name


def image_file(path: str) -> Any:
    """A Kaggle FER2013 image as a grey array (UnreadableImage naming the file otherwise)."""
    import cv2

    from fer_prep.images import read_image

    image = read_image(path)
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY if image.shape[2] == 4
                             else cv2.COLOR_BGR2GRAY)
    return image


def read_rows(path: Path, dataset: str, first: int = 0) -> list[dict[str, Any]]:
    """One item per data row of a FER2013 CSV; a row it cannot use says why, naming the line.
    `first`: the place of the file's first row in the full file (ids are the full file's)."""
    prefix, fixed_split = FILES[path.name]
    items = []
    with open(path, "rb") as fh:
        header = fh.readline()
        offset = len(header)
        if header.startswith(GZIP):
            raise InputError(f"{path}: gzip-compressed, not a CSV: unpack it first (gunzip, or "
                             "tar xzf fer2013.tar.gz)")
        try:
            names = [c.strip().lower() for c in next(csv.reader([header.decode("utf-8-sig")]),
                                                     [])]
        except (UnicodeDecodeError, csv.Error):
            raise InputError(f"{path}: its first line is not CSV text: not a FER2013 CSV "
                             "(emotion,pixels,Usage)") from None
        if "pixels" not in names:
            raise InputError(f"{path}: no 'pixels' column (found {names}): not a FER2013 CSV")
        col = {n: names.index(n) for n in ("emotion", "pixels", "usage") if n in names}
        if "usage" not in col and fixed_split is None:
            log.warning(f"{path}: no Usage column, so no official split: every row's split is "
                        f"'{UNKNOWN}' (folds: --scheme image-kfold)")
            fixed_split = UNKNOWN
        for index, raw in enumerate(fh):
            line = index + 2
            items.append(_item(raw, line, offset, col, path, dataset,
                               f"{prefix}{first + index:07d}", fixed_split))
            offset += len(raw)
    if not items:
        raise InputError(f"{path}: a header and no rows: no FER2013 face in it")
    return items


def _item(raw: bytes, line: int, offset: int, col: dict[str, int], path: Path, dataset: str,
          sample_id: str, fixed_split: str | None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "sample_id": sample_id, "dataset": dataset, "subject": None, "sequence": sample_id,
        "label": None, "label_code": None, "split": fixed_split, "source_path": str(path),
        "source_line": line, "source_offset": offset, "source_length": len(raw),
        "content": hashlib.blake2b(raw, digest_size=16).hexdigest(), "status": "ok",
        "message": "",
    }
    where = f"{path}:{line}"
    try:
        fields = next(csv.reader([raw.decode("utf-8")]))
    except (UnicodeDecodeError, StopIteration, csv.Error):
        return {**item, "status": "bad_row", "message": f"{where}: not a CSV row of text"}
    if len(fields) < len(col):
        return {**item, "status": "bad_row", "message": f"{where}: {len(fields)} fields, "
                f"expected {len(col)}"}
    if "usage" in col:
        item["split"] = fields[col["usage"]].strip()
    pixels = fields[col["pixels"]].split()
    if len(pixels) != SIDE * SIDE:
        return {**item, "status": "bad_pixels", "message": f"{where}: {len(pixels)} pixel "
                f"values, expected {SIDE * SIDE} (48×48)"}
    if not "".join(pixels).isdigit():
        bad = next(p for p in pixels if not p.isdigit())
        return {**item, "status": "bad_pixels", "message": f"{where}: pixel value {bad!r} is "
                "not a number"}
    if "emotion" in col:
        code = fields[col["emotion"]].strip()
        if not code.isdigit() or int(code) not in CODES:
            return {**item, "status": "bad_label", "message": f"{where}: emotion {code!r} is "
                    f"not one of FER2013's codes 0…6"}
        item.update(label=CODES[int(code)], label_code=int(code))
    return item


def row_image(item: dict[str, Any]) -> Any:
    """The 48×48 grey image of a FER2013 row, read from its place in the CSV."""
    import numpy as np

    from fer_prep.images import UnreadableImage

    where = f"{item['source_path']}:{item['source_line']}"
    try:
        with open(item["source_path"], "rb") as fh:
            fh.seek(int(item["source_offset"]))
            raw = fh.read(int(item["source_length"]))
    except OSError as exc:
        raise UnreadableImage(f"{where}: cannot read the row ({exc.strerror})") from exc
    if hashlib.blake2b(raw, digest_size=16).hexdigest() != item["content"]:
        raise UnreadableImage(f"{where}: the row changed since the CSV was read; run again")
    fields = next(csv.reader([raw.decode("utf-8")]))
    pixels = max(fields, key=len)
    values = np.array(pixels.split(), dtype=np.int64)
    if values.max(initial=0) > 255:
        raise UnreadableImage(f"{where}: pixel value {values.max()} is above 255")
    return values.astype(np.uint8).reshape(SIDE, SIDE)
