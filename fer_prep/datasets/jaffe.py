"""JAFFE (the Japanese Female Facial Expression database, Lyons et al. 1998) as it is published.

    jaffedbase/KA.AN1.39.tiff    subject . expression + index . image id (213 TIFFs, 256×256 grey)
    jaffedbase/README            and other stray files (.DS_Store, Thumbs.db, ._*): skipped

Ten women (KA KL KM KR MK NA NM TM UY YM), each posing the seven expressions about three times:
NE neutral, HA happiness, SA sadness, SU surprise, AN anger, DI disgust, FE fear (the label code
is that order, 0…6; the two letters are kept as `expression`). The files are found in the root
or up to two levels below it (`jaffe/jaffedbase/`); every file of a folder holding JAFFE names is
an item. A stray file is a row with status `stray`, counted in the summary and not warned about;
an image whose name is not JAFFE's pattern, names an unknown subject or expression, or repeats an
image already read is a row saying so.

Some JAFFE files are palette ("P") images: `load_image` reads every file with PIL and converts
it with `convert("L")`, so a palette image is its palette's grey (OpenCV reads such a TIFF as
three-channel BGR; both give the same grey, the tests check it).

Faces: MediaPipe (the default preset's backend) finds every face of a JAFFE-framed test set (36
CK+ faces cropped with their head and resized to 256×256) with landmarks within 0.04 of the
inter-ocular distance of dlib's; the whole-image box (`--backend given`) puts dlib's points off
by 0.05 (tight crops) to 0.29 (head and shoulders, as JAFFE is framed) of it. So the default
backend stays MediaPipe; the chips are grey, as the images are. Protocol: leave one subject out
(scheme `loso`, 10 folds), the default of `folds`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fer_prep.datasets import DATASETS, Dataset
from fer_prep.errors import InputError

SUBJECTS = ("KA", "KL", "KM", "KR", "MK", "NA", "NM", "TM", "UY", "YM")
#: JAFFE's expression letters, in the order of the label codes
EXPRESSIONS = {"NE": "neutral", "HA": "happiness", "SA": "sadness", "SU": "surprise",
               "AN": "anger", "DI": "disgust", "FE": "fear"}
CODES = dict(enumerate(EXPRESSIONS.values()))
_NAME = re.compile(r"^([A-Za-z]{2})\.([A-Za-z]{2})(\d+)\.(\d+)\.tiff?$", re.IGNORECASE)
#: suffixes of files that may be meant as images (any other file is stray)
IMAGE_SUFFIXES = (".tiff", ".tif", ".png", ".jpg", ".jpeg", ".bmp")
#: files that come with downloads and archives, never images
STRAY_NAMES = ("thumbs.db", "desktop.ini")
DEPTH = 2  # folder levels below the root searched for the images
PATTERN = "subject.expression+index.id.tiff, e.g. KA.AN1.39.tiff"


@DATASETS.register("jaffe")
class JAFFE(Dataset):
    name = "jaffe"
    title = "JAFFE: 213 grey 256×256 TIFFs of 10 women, 7 expressions (KA.AN1.39.tiff)."
    kind = "stills"
    root_help = "Folder holding JAFFE's TIFFs (KA.AN1.39.tiff …), or one up to two levels above."
    codes = CODES
    class_orders = {"jaffe": tuple(EXPRESSIONS.values())}
    default_scheme = "loso"
    defaults = {"align": {"grey": True}}
    extra_columns = {"expression": "JAFFE's expression letters in the file name (NE HA SA SU AN "
                                   "DI FE)"}
    integers = ("label_code",)
    quiet = frozenset({"stray"})

    def read(self, root: Path, options: Any) -> list[dict[str, Any]]:
        return read_jaffe(root)

    def read_labels(self, root: Path) -> list[dict[str, Any]]:
        """The file names say everything folds need: no image is opened."""
        return read_jaffe(root)

    def load_image(self, item: dict[str, Any]) -> Any:
        return read_grey(item["source_path"])

    def item_path(self, item: dict[str, Any]) -> str:
        return f"{item['subject']}/{item['sample_id']}"

    def write_sample(self, out: Path) -> Path:
        return write_jaffe_sample(out)


def _image_folders(root: Path) -> list[Path]:
    """The folders (the root, or up to DEPTH levels below) holding a JAFFE-named file."""
    found = []
    level = [root]
    for _ in range(DEPTH + 1):
        found += [d for d in level if any(_NAME.match(p.name) for p in d.iterdir()
                                          if p.is_file())]
        level = sorted(c for d in level for c in d.iterdir()
                       if c.is_dir() and not c.name.startswith((".", "__MACOSX")))
    return found


def _stray(path: Path) -> bool:
    """README, .DS_Store, ._* (macOS), Thumbs.db and any file not named as an image."""
    name = path.name.lower()
    return (name.startswith(".") or name in STRAY_NAMES or name.startswith("readme")
            or path.suffix.lower() not in IMAGE_SUFFIXES)


def read_jaffe(root: Path) -> list[dict[str, Any]]:
    """One item per file of the folders holding JAFFE's images: subject, label and expression
    from the name; a file it cannot use keeps its place with the reason."""
    root = Path(root)
    folders = _image_folders(root)
    if not folders:
        raise InputError(f"{root}: no JAFFE image ({PATTERN}) here or up to {DEPTH} levels "
                         "below (is this JAFFE?)")
    items: list[dict[str, Any]] = []
    first: dict[str, Path] = {}
    for folder in folders:
        for path in sorted(p for p in folder.iterdir() if p.is_file()):
            items.append(_item(path, root, first))
    return items


def _item(path: Path, root: Path, first: dict[str, Path]) -> dict[str, Any]:
    rel = path.relative_to(root).as_posix()
    item: dict[str, Any] = {
        "sample_id": rel, "dataset": "jaffe", "subject": None, "sequence": rel, "label": None,
        "label_code": None, "expression": None, "split": None,
        "source_path": str(path.absolute()), "status": "ok", "message": "",
    }
    name = _NAME.match(path.name)
    if name is None:
        if _stray(path):
            return {**item, "status": "stray", "message": f"{path}: not a JAFFE image (a "
                    "stray file): skipped"}
        return {**item, "status": "bad_name", "message": f"{path}: not a JAFFE file name "
                f"({PATTERN})"}
    subject, expression = name.group(1).upper(), name.group(2).upper()
    if subject not in SUBJECTS:
        return {**item, "status": "bad_name", "message": f"{path}: subject {subject} is not "
                f"one of JAFFE's {' '.join(SUBJECTS)}"}
    if expression not in EXPRESSIONS:
        return {**item, "status": "bad_label", "message": f"{path}: expression {expression} is "
                f"not one of JAFFE's {' '.join(EXPRESSIONS)}"}
    stem = f"{subject}.{expression}{name.group(3)}.{name.group(4)}"
    if stem in first:
        return {**item, "status": "duplicate", "message": f"{path}: image {stem} again (first "
                f"read from {first[stem]}): skipped"}
    first[stem] = path
    code = list(EXPRESSIONS).index(expression)
    return {**item, "sample_id": stem, "sequence": stem, "subject": subject,
            "label": EXPRESSIONS[expression], "label_code": code, "expression": expression}


def read_grey(path: str | Path) -> Any:
    """The 8-bit grey pixels of an image file by PIL: a palette image through its palette."""
    import numpy as np
    from PIL import Image

    from fer_prep.images import UnreadableImage

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("L"))
    except FileNotFoundError:
        raise UnreadableImage(f"{path}: the file is missing") from None
    except (OSError, ValueError, SyntaxError) as exc:  # PIL's words for a bad or cut file
        raise UnreadableImage(f"{path}: not a readable image ({exc})") from None


# --- the embedded sample ---------------------------------------------------------------------

SIDE = 256
#: (JAFFE letters, the sample's warp) of each sample image, per subject
SAMPLE_EXPRESSIONS = (("NE", None), ("HA", "happy"), ("SA", "sadness"), ("SU", "surprise"),
                      ("AN", "anger"))


def write_jaffe_sample(out: Path) -> Path:
    """Write a JAFFE look-alike under ``out/jaffe`` and return that root: 15 TIFFs (3 subjects ×
    5 expressions, 256×256 grey, the second subject's as palette images) named as JAFFE names
    them, and a README as JAFFE ships one. Re-running writes the same bytes."""
    import cv2
    import numpy as np
    from PIL import Image
    from skimage import data

    from fer_prep.sample import SUBJECTS as FACES
    from fer_prep.sample import _peak, _render, _similarity

    root = Path(out) / "jaffe"
    root.mkdir(parents=True, exist_ok=True)
    grey = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY).astype(np.float32)
    number = 0
    for who, face in zip(SUBJECTS, FACES, strict=False):
        m = _similarity(0.7 * face.scale, face.angle, face.flip,
                        (0.3 * face.shift[0], 0.3 * face.shift[1]), (SIDE, SIDE))
        for letters, warp in SAMPLE_EXPRESSIONS:
            number += 1
            img = _render(grey, m, _peak(warp), size=(SIDE, SIDE))
            pixels = np.clip(img * face.gain + face.bias, 0, 255).round().astype(np.uint8)
            image = Image.fromarray(pixels, "L")
            if who == "KL":  # a palette image, as some of JAFFE's are
                image = Image.fromarray(pixels, "P")
                image.putpalette(np.repeat(np.arange(256, dtype=np.uint8), 3).tobytes())
            image.save(root / f"{who}.{letters}1.{number}.tiff")
    (root / "README").write_text("A JAFFE look-alike written by fer-prep from scikit-image's "
                                 "astronaut photograph; not JAFFE.\n", encoding="ascii")
    return root
