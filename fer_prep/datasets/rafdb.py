"""RAF-DB basic (Real-world Affective Faces, Li, Deng & Du, CVPR 2017) in its published layout.

    EmoLabel/list_patition_label.txt                       `train_00001.jpg 5` (sic: "patition")
    Image/original/train_00001.jpg, test_0001.jpg          12,271 train and 3,068 test photos
    Image/aligned/train_00001_aligned.jpg                  the same faces, 100×100
    Annotation/boundingbox/train_00001_boundingbox.txt     `x_min y_min x_max y_max`
    Annotation/manual/train_00001_manu_attri.txt           5 lines `x<TAB>y`: eye centres, nose
                                                           tip, mouth corners; then gender, race
                                                           and age lines
    Annotation/auto/train_00001_auto_attri.txt             37 lines `x<TAB>y` (Face++)

Codes: 1 Surprise, 2 Fear, 3 Disgust, 4 Happiness, 5 Sadness, 6 Anger, 7 Neutral. The split is
the name's prefix (`train`, `test`): RAF-DB's official protocol, so `folds` takes it by default.
An item's id is the image's stem without `_aligned` (`train_00001`) whichever source is read;
RAF-DB has no subject ids. The folders are found below nested extractions (`RAF-DB/basic/…`).

`--source aligned` (the default) reads `Image/aligned/`: the 100×100 faces RAF-DB aligned itself
(a similarity on the eyes and the mouth centre), which DAN, MA-Net, ESR and most papers train on,
and which need nothing but the images. The whole image is the face (the `given` backend with no
box: dlib's 68 points inside it). RAF-DB's points and boxes are in the ORIGINAL photos' pixels and
the aligning transform is not published, so an aligned item carries none of them.
`--source original` reads `Image/original/` with the annotated box as `given_box` (x, y, w, h;
the `given` backend runs dlib's 68 points inside it, so the target face is aligned even in a photo
of several), and keeps the 5 manual and 37 automatic points as `landmarks5_manual` and
`landmarks37_auto` (flat x0 y0 x1 …, in the photo's pixels, as the files give them).

Template: the preset's (eyes). Dataset defaults cannot depend on `--source`, and the eyes
template is right for both: the chips of either source come out with the same geometry. RAF-DB's
own 100-px faces as they are: `--template whole --size 100` (with `--source aligned`).

A list line that cannot be used (not `<name> <code>`, an unknown code, a listed image that is
missing, a missing or malformed annotation file) is an item with its status and a message naming
the file and line; a box outside the photo is the align stage's `no_landmarks` row. A whole
annotation folder left unextracted (`auto/`, `manual/`) leaves its column empty, with a warning;
`--source original` needs `boundingbox/`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fer_prep.datasets import DATASETS, Dataset, find_folder
from fer_prep.errors import InputError
from fer_prep.params import option

log = logging.getLogger("fer_prep")

SOURCES = ("aligned", "original")
#: the list as shipped (sic), and as RAF-DB's README spells it
LISTS = ("list_patition_label.txt", "list_partition_label.txt")
CODES = {1: "surprise", 2: "fear", 3: "disgust", 4: "happiness", 5: "sadness", 6: "anger",
         7: "neutral"}
_NAME = re.compile(r"^((train|test)_\d+)\.jpg$")
#: annotation folder → (file suffix, points it holds, item column)
ANNOTATIONS = {"manual": ("_manu_attri.txt", 5, "landmarks5_manual"),
               "auto": ("_auto_attri.txt", 37, "landmarks37_auto")}
BOXES = "boundingbox"


@dataclass(frozen=True)
class RAFDBOptions:
    """Which of RAF-DB's images to read."""

    source: str = option("aligned", "Image/aligned (RAF-DB's own 100×100 faces, what most "
                         "papers train on) or Image/original (the photos, aligned from the "
                         "annotated box; keeps the manual 5 and automatic 37 points).",
                         choices=SOURCES)


@DATASETS.register("rafdb")
class RAFDB(Dataset):
    name = "rafdb"
    title = "RAF-DB basic: 15,339 faces in the wild, 7 classes (aligned faces or photos + boxes)."
    kind = "stills"
    root_help = "RAF-DB basic root holding EmoLabel/, Image/aligned or Image/original, Annotation/."
    codes = CODES
    #: the index RAF-DB loaders train on (DAN, MA-Net, ESR: code − 1)
    class_orders = {"rafdb": tuple(CODES[code] for code in range(1, 8))}
    official_test = "test"
    official_train = ("train",)
    protocol = "rafdb"
    default_scheme = "official"
    defaults = {"align": {"backend": "given"}}
    Options = RAFDBOptions
    extra_columns = {
        "landmarks5_manual": "RAF-DB's manual 5 points (eye centres, nose tip, mouth corners) in "
                             "the original photo's pixels, flat x0 y0 …; --source original only",
        "landmarks37_auto": "RAF-DB's 37 automatic points (Face++) in the original photo's "
                            "pixels, flat x0 y0 …; --source original only",
    }
    integers = ("label_code",)

    def read(self, root: Path, options: RAFDBOptions) -> list[dict[str, Any]]:
        return read_rafdb(root, options.source)

    def read_labels(self, root: Path) -> list[dict[str, Any]]:
        """The items from the list alone (no images): folds need nothing else."""
        keep = ("line", "name")
        return [{k: v for k, v in item.items() if k not in keep}
                for item in read_list(list_file(root))]

    def item_path(self, item: dict[str, Any]) -> str:
        return f"{item['split']}/{item['sample_id']}"

    def write_sample(self, out: Path) -> Path:
        return write_rafdb_sample(out)


def list_file(root: Path) -> Path:
    """EmoLabel/list_patition_label.txt under `root` (up to three levels down)."""
    emo = find_folder(Path(root), "EmoLabel")
    if emo is None:
        raise InputError(f"{root}: no EmoLabel/ folder (is this RAF-DB basic? its root holds "
                         "EmoLabel/, Image/ and Annotation/)")
    for name in LISTS:
        if (emo / name).is_file():
            return emo / name
    raise InputError(f"{emo}: no {LISTS[0]} (RAF-DB's label list)")


def _item(sample_id: str, split: str | None, code: int | None, path: str, status: str = "ok",
          message: str = "") -> dict[str, Any]:
    return {"sample_id": sample_id, "dataset": "rafdb", "subject": None, "sequence": sample_id,
            "label": CODES.get(code) if code is not None else None, "label_code": code,
            "split": split, "source_path": path, "status": status, "message": message}


def read_list(path: Path) -> list[dict[str, Any]]:
    """One item per line of the label list (`source_path` empty); a line it cannot use says
    why, naming the file and line. `line` and `name` are kept for the reader."""
    items: list[dict[str, Any]] = []
    first: dict[str, int] = {}
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    for n, raw in enumerate(text.splitlines(), start=1):
        fields = raw.split()
        if not fields:
            continue
        where = f"{path}:{n}"
        name = _NAME.match(fields[0])
        stem, split = (name.group(1), name.group(2)) if name else (f"line_{n}", None)
        if name and stem in first:
            item = _item(f"{stem}_line{n}", split, None, "", "bad_row",
                         f"{where}: {fields[0]} is listed again (first on line {first[stem]})")
        elif len(fields) != 2 or not name:
            what = ("not a RAF-DB image name (train_NNNNN.jpg, test_NNNN.jpg)" if not name else
                    "expected `<image name> <code>`")
            item = _item(stem, split, None, "", "bad_row", f"{where}: {what}: {raw.strip()!r}")
        elif not fields[1].isdigit() or int(fields[1]) not in CODES:
            item = _item(stem, split, None, "", "bad_label", f"{where}: label {fields[1]!r} of "
                         f"{fields[0]} is not one of RAF-DB's codes 1…7")
        else:
            item = _item(stem, split, int(fields[1]), "")
        if name and stem not in first:
            first[stem] = n
        items.append({**item, "line": n, "name": fields[0]})
    if not items:
        raise InputError(f"{path}: an empty label list")
    return items


def _subfolder(parent: Path, name: str) -> Path | None:
    """`parent/name`, or one level further down (a zip extracted into a folder of its name)."""
    return find_folder(parent, name, depth=1) if parent.is_dir() else None


def read_rafdb(root: Path, source: str = "aligned") -> list[dict[str, Any]]:
    """One item per line of the label list, its image from `Image/<source>/`; with `original`,
    the annotated box as `given_box` and the manual and automatic points."""
    if source not in SOURCES:
        raise InputError(f"--source {source!r} is not one of: {', '.join(SOURCES)}")
    listed = list_file(root)
    base = listed.parent.parent
    images = _subfolder(base / "Image", source)
    if images is None:
        raise InputError(f"{base}: no Image/{source}/ folder (extract Image/{source}.zip, or "
                         f"read the other source with --source "
                         f"{SOURCES[1 - SOURCES.index(source)]})")
    folders: dict[str, Path | None] = {}
    if source == "original":
        for kind in (BOXES, *ANNOTATIONS):
            folders[kind] = _subfolder(base / "Annotation", kind)
        if folders[BOXES] is None:
            raise InputError(f"{base}: no Annotation/{BOXES}/ folder: the original photos are "
                             f"aligned from RAF-DB's boxes (extract Annotation/{BOXES}.zip, or "
                             "use --source aligned)")
        for kind, (_, _, column) in ANNOTATIONS.items():
            if folders[kind] is None:
                log.warning(f"{base}: no Annotation/{kind}/ folder (Annotation/{kind}.zip not "
                            f"extracted?): {column} left empty")
    items = []
    for entry in read_list(listed):
        line, name = entry.pop("line"), entry.pop("name")
        if entry["status"] not in ("ok", "bad_label"):  # a line naming no image: the list
            items.append({**entry, "source_path": str(listed.absolute())})
            continue
        stem = entry["sample_id"]
        path = images / (f"{stem}_aligned.jpg" if source == "aligned" else name)
        entry["source_path"] = str(path.absolute())
        if entry["status"] == "ok" and not path.is_file():
            entry.update(status="missing_image", message=f"{listed}:{line}: lists {name}, but "
                         f"{path} does not exist")
        if source == "original":
            entry.update(_annotations(stem, folders) if entry["status"] == "ok" else {})
        items.append(entry)
    return items


def _numbers(path: Path, rows: int, per_row: int, what: str
             ) -> tuple[list[float] | None, str, str]:
    """The first `rows` lines of `path` as `per_row` numbers each (flat), or None with the
    status and message saying why."""
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return None, "missing_annotation", f"{path}: missing ({what})"
    except OSError as exc:
        return None, "missing_annotation", f"{path}: cannot be read ({exc.strerror})"
    lines = [line.split() for line in text.splitlines() if line.strip()]
    try:
        if len(lines) < rows or any(len(line) != per_row for line in lines[:rows]):
            raise ValueError
        return [float(v) for line in lines[:rows] for v in line], "ok", ""
    except ValueError:
        shape = f"{rows} lines of {per_row} numbers" if rows > 1 else f"{per_row} numbers"
        return None, "bad_annotation", (f"{path}: expected {shape} ({what}), found "
                                        f"{text.strip()[:60]!r}")


def _annotations(stem: str, folders: dict[str, Path | None]) -> dict[str, Any]:
    """The box (as x, y, w, h) and points of one photo, or its status and message."""
    path = folders[BOXES] / f"{stem}_boundingbox.txt"
    box, status, message = _numbers(path, 1, 4, "the face's box: x_min y_min x_max y_max")
    found: dict[str, Any] = {"given_box": None, **{c: None for *_, c in ANNOTATIONS.values()}}
    if box is not None:
        x0, y0, x1, y1 = box
        if x1 <= x0 or y1 <= y0:
            status, message = "bad_annotation", (f"{path}: box {box} is empty (x_max ≤ x_min "
                                                 "or y_max ≤ y_min)")
        found["given_box"] = [x0, y0, round(x1 - x0, 6), round(y1 - y0, 6)]
    for kind, (suffix, count, column) in ANNOTATIONS.items():
        folder = folders[kind]
        if folder is not None and status == "ok":
            found[column], status, message = _numbers(folder / f"{stem}{suffix}", count, 2,
                                                      f"{count} points x y, one a line")
    if status != "ok":
        return {**found, "given_box": None, "status": status, "message": message}
    return found


# --- the embedded sample ----------------------------------------------------------------------

#: the sample's images: (id, code, subject index, expression of fer_prep.sample or None)
_SAMPLE = (("train_00001", 4, 0, "happy"), ("train_00002", 1, 1, "surprise"),
           ("train_00003", 5, 2, "sadness"), ("train_00004", 6, 0, "anger"),
           ("train_00005", 7, 1, None), ("train_00006", 4, 2, "happy"),
           ("test_0001", 1, 2, "surprise"), ("test_0002", 7, 0, None),
           ("test_0003", 6, 1, "anger"))
SAMPLE_SIZE = (480, 400)  # (w, h) of the sample's photos; RAF-DB's vary
#: the 68-point indices standing for Face++'s 37 (3 + 3 brow, 2 + 5 nose, 6 + 6 eye, 12 mouth)
AUTO_FROM_68 = (17, 19, 21, 22, 24, 26, 27, 30, 31, 32, 33, 34, 35, *range(36, 48),
                *range(48, 60))
#: where the sample's aligned faces put the eye centres and the mouth centre (100×100); RAF-DB
#: does not publish its own
ALIGNED_POINTS = ((30.0, 33.0), (70.0, 33.0), (50.0, 72.0))


def aligned_face(image: Any, five: Any, side: int = 100) -> tuple[Any, Any]:
    """(100×100 face, 2×3 matrix): a similarity on the eye centres and the mouth centre, as
    RAF-DB made Image/aligned/ (its README); `five` are the 5 points (eyes, nose, mouth)."""
    import cv2
    import numpy as np

    five = np.asarray(five, float).reshape(5, 2)
    src = np.stack([five[0], five[1], five[3:5].mean(0)])
    matrix = cv2.estimateAffinePartial2D(src, np.asarray(ALIGNED_POINTS) * side / 100)[0]
    return cv2.warpAffine(image, matrix, (side, side), flags=cv2.INTER_LINEAR), matrix


def write_rafdb_sample(out: Path) -> Path:
    """Write a tiny RAF-DB basic under `out/rafdb` in its published layout; return that root.

    The astronaut's face (`fer_prep.sample`: its subjects' similarity transforms and synthetic
    expressions) as 480×400 colour photos, 6 train and 3 test; their 100×100 aligned faces; the
    label list; and the three annotations from the face's own 68 landmarks moved as the image
    was: the box around them (brows to chin), the eye centres, nose tip and mouth corners, and
    37 of them for Face++'s points; gender, race and age lines as RAF-DB writes them.
    Deterministic: re-running writes the same bytes.
    """
    import cv2
    import numpy as np
    from skimage import data

    from fer_prep.faces import five_points
    from fer_prep.sample import (
        ASTRONAUT_LANDMARKS,
        SUBJECTS,
        _apply,
        _peak,
        _render,
        _similarity,
    )

    root = Path(out) / "rafdb"
    folders = {k: root / k for k in ("EmoLabel", "Image/original", "Image/aligned",
                                     "Annotation/boundingbox", "Annotation/manual",
                                     "Annotation/auto")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    lines = []
    for stem, code, index, expression in _SAMPLE:
        s = SUBJECTS[index]
        m = _similarity(s.scale * 0.8, s.angle, s.flip, s.shift, SAMPLE_SIZE)
        offsets = _peak(expression)
        image = _render(photo, m, offsets, SAMPLE_SIZE)
        points = _apply(m, ASTRONAUT_LANDMARKS + offsets)
        if s.flip:  # a mirrored face: its image-left points are the other side's
            points = points[_MIRROR_68]
        five = five_points(points)
        jpeg = [cv2.IMWRITE_JPEG_QUALITY, 95]
        (folders["Image/original"] / f"{stem}.jpg").write_bytes(
            cv2.imencode(".jpg", image, jpeg)[1].tobytes())
        face = aligned_face(image, five)[0]
        (folders["Image/aligned"] / f"{stem}_aligned.jpg").write_bytes(
            cv2.imencode(".jpg", face, jpeg)[1].tobytes())
        (x0, _), (x1, y1) = points.min(0), points.max(0)
        y0 = points[17:27, 1].min() - 0.1 * (y1 - points[17:27, 1].min())
        (folders["Annotation/boundingbox"] / f"{stem}_boundingbox.txt").write_text(
            f"{x0:.2f} {y0:.2f} {x1:.2f} {y1:.2f}\n", newline="\n")
        manual = "".join(f"{x:.2f}\t{y:.2f}\n" for x, y in five) + f"{index % 2}\n0\n2\n"
        (folders["Annotation/manual"] / f"{stem}_manu_attri.txt").write_text(manual,
                                                                              newline="\n")
        auto = "".join(f"{x:.2f}\t{y:.2f}\n" for x, y in np.asarray(points)[list(AUTO_FROM_68)])
        (folders["Annotation/auto"] / f"{stem}_auto_attri.txt").write_text(auto, newline="\n")
        lines.append(f"{stem}.jpg {code}\n")
    (folders["EmoLabel"] / LISTS[0]).write_text("".join(lines), newline="\n")
    return root


#: iBUG 68-point index of each point's mirror image (a horizontally flipped face)
_MIRROR_68 = [*range(16, -1, -1), *range(26, 16, -1), 27, 28, 29, 30, 35, 34, 33, 32, 31,
              45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40,
              54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65]
