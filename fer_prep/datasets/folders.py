"""Class-folder trees: one folder of images per class, as CK+48, FER2013's image release and
torchvision ImageFolder trees are published.

    <root>/anger/S010_004_00000017.png     <root>/<class>/…/*.{png,jpg,jpeg,bmp,tif,tiff}
    <root>/happy/S010_006_00000015.png     (any depth inside a class folder, as ImageFolder)

Labels: a folder's name (any letter case, spaces, `_` and `-` ignored) maps to a canonical label
when it is a common name for one (`ALIASES`: angry/anger, happy/happiness, sad/sadness,
surprised/surprise, fearful/fear, disgusted/disgust, neutral, contempt, and the three-letter
abbreviations). `--classes` overrides and extends that: comma-separated `folder=label` pairs,
the label canonical or a common name (`--classes '0=anger,1=disgust'`, `--classes
'joy=happiness'`). Numbered folders (MA-Net's `0…6`, AffectNet's `0…7`) follow no one
convention, so they are never guessed: without `--classes` their images are rows with status
`numbered_class`; a folder naming no label, `unknown_class`; each such folder is said once, with
the fix. A file that is no image (README, .DS_Store) is a `stray` row, counted and not warned
about; an image beside the class folders, `no_class`. The label code is the label's place in
`fer_prep.labels.CANONICAL`; the folder as named on disk is kept as `class_folder`.

Subjects: none, unless `--subject-pattern REGEX` says where the file name holds one: its first
group (else the whole match), searched in the name, is the subject (CK+48: `'^(S[0-9]+)_'`
gives S010), so `folds --scheme subject-kfold` or `loso` keep each person on one side; a file
the pattern does not match is a `no_subject` row. Without subjects the default fold scheme is
`image-kfold`, which the folds record marks as not subject-independent (CK+48's three frames of
one sequence then land in different folds: give the pattern where the names allow).

An item's id is its file's stem, or (where two files share a stem) its path under the root with
`/` as `-`. The images are taken as pre-cropped faces: the `given` backend (the whole image,
dlib's 68 points inside it) and the `whole` template (48 px: give `--size` for larger crops,
`--backend mediapipe --template eyes` for uncropped photos).

`--name NAME` gives a tree its own name: WORK/<name>/, and `--dataset <name>` in later
commands (CK+48 as `ck48`), so two trees do not share WORK/folders/.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fer_prep.datasets import DATASETS, Dataset, list_datasets
from fer_prep.errors import InputError, OptionError
from fer_prep.labels import CANONICAL
from fer_prep.params import option

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
#: common class-folder names → canonical label (keys normalised as `_key` does)
ALIASES = {
    **dict.fromkeys(("neutral", "neutrality", "neu"), "neutral"),
    **dict.fromkeys(("anger", "angry", "ang"), "anger"),
    **dict.fromkeys(("contempt", "contemptuous"), "contempt"),
    **dict.fromkeys(("disgust", "disgusted", "dis"), "disgust"),
    **dict.fromkeys(("fear", "fearful", "afraid", "scared", "fea"), "fear"),
    **dict.fromkeys(("happiness", "happy", "joy", "hap"), "happiness"),
    **dict.fromkeys(("sadness", "sad"), "sadness"),
    **dict.fromkeys(("surprise", "surprised", "sur"), "surprise"),
}
CLASSES_FORMAT = "comma-separated folder=label pairs, e.g. '0=anger,1=disgust' or 'joy=happiness'"
NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")  # a --name: a folder name and a CLI word
EXAMPLE_NUMBERED = "--classes '0=neutral,1=happiness,2=sadness,3=surprise,4=fear,5=disgust,6=anger'"


@dataclass(frozen=True)
class FolderOptions:
    """Where the subject is, and what the class folders are."""

    subject_pattern: str | None = option(None, "Regex searched in each file name: its first "
                                         "group (else the match) is the subject, e.g. "
                                         "'^(S[0-9]+)_' for CK+48 [no subjects].")
    classes: str | None = option(None, "Class folder → label, over the common names: "
                                 "'0=anger,1=disgust' or 'joy=happiness' (needed for numbered "
                                 "folders).")
    name: str | None = option(None, "The name this tree goes by: WORK/<name>/, and "
                              "`--dataset <name>` in later commands [folders].")


@DATASETS.register("folders")
class Folders(Dataset):
    name = "folders"
    title = "Class-folder trees <root>/<class>/*.png (CK+48, FER2013 images, ImageFolder)."
    kind = "stills"
    root_help = "Folder holding one folder of images per class (anger/, happy/, …)."
    codes = dict(enumerate(CANONICAL))
    default_scheme = "image-kfold"
    defaults = {"align": {"backend": "given", "template": "whole"}}
    Options = FolderOptions
    extra_columns = {"class_folder": "the class folder holding the image, as named on disk"}
    integers = ("label_code",)
    quiet = frozenset({"stray"})

    def read(self, root: Path, options: FolderOptions) -> list[dict[str, Any]]:
        items = read_folders(root, options.subject_pattern, options.classes)
        return [{**item, "dataset": self.name} for item in items]

    def named(self, options: FolderOptions) -> Folders:
        """This dataset under `--name` (CK+48 as `ck48`), so trees do not share WORK/folders/."""
        if not options.name or options.name == self.name:
            return self
        if not NAME.fullmatch(options.name) or options.name in list_datasets():
            raise OptionError(f"--name {options.name!r}: give a new name of lower-case letters, "
                              "digits, - and _ (not one of the registered datasets)")
        renamed = copy.copy(self)
        renamed.name = options.name
        return renamed

    def scheme_for(self, read: dict[str, Any]) -> str:
        """Subject k-fold where `--subject-pattern` gave the rows subjects, else image k-fold."""
        return "subject-kfold" if read.get("subject_pattern") else self.default_scheme

    def read_labels(self, root: Path) -> list[dict[str, Any]]:
        """Labels are folder names: folds from --root need no image opened (no subjects, as
        the reader options do not reach the folds stage)."""
        return read_folders(root)

    def item_path(self, item: dict[str, Any]) -> str:
        return f"{item['class_folder']}/{item['sample_id']}"

    def write_sample(self, out: Path) -> Path:
        return write_folders_sample(out)


def folder_key(name: str) -> str:
    """A folder name as the alias table and --classes match it."""
    return re.sub(r"[\s_\-]+", "", name.strip().lower())


def parse_classes(text: str | None) -> dict[str, str]:
    """`--classes` as {normalised folder name: canonical label}; OptionError naming the bad
    part otherwise."""
    out: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        folder, sep, label = part.partition("=")
        if not sep or not folder.strip() or not label.strip():
            raise OptionError(f"--classes {text!r}: {part.strip()!r} is not folder=label "
                              f"({CLASSES_FORMAT})")
        name = label.strip().lower()
        canonical = name if name in CANONICAL else ALIASES.get(folder_key(name))
        if canonical is None:
            raise OptionError(f"--classes {text!r}: {label.strip()!r} is not a label; labels: "
                              f"{', '.join(CANONICAL)} (or a common name: happy, angry, …)")
        out[folder_key(folder)] = canonical
    return out


def _subject_regex(pattern: str | None) -> re.Pattern[str] | None:
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise OptionError(f"--subject-pattern {pattern!r} is not a regular expression "
                          f"({exc})") from None


def is_stray(path: Path) -> bool:
    name = path.name.lower()
    return name.startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES


def is_hidden(path: Path, root: Path) -> bool:
    """Whether `path` lies in a hidden folder or macOS's __MACOSX below `root`."""
    return any(p.startswith(".") or p == "__MACOSX" for p in path.relative_to(root).parts[:-1])


def read_folders(root: Path, subject_pattern: str | None = None, classes: str | None = None
                 ) -> list[dict[str, Any]]:
    """One item per file under `root`'s class folders (and per file beside them)."""
    root = Path(root)
    given = parse_classes(classes)
    regex = _subject_regex(subject_pattern)
    folders = sorted(d for d in root.iterdir() if d.is_dir() and not is_hidden(d / "x", root))
    files = {d: sorted(p for p in d.rglob("*") if p.is_file() and not is_hidden(p, root))
             for d in folders}
    if not any(not is_stray(p) for found in files.values() for p in found):
        raise InputError(f"{root}: no class folder holding images (<root>/<class>/*.png, .jpg, "
                         "…: is this a class-folder tree?)")
    loose = sorted(p for p in root.iterdir() if p.is_file())
    images = [p for found in files.values() for p in found if not is_stray(p)]
    ids = _sample_ids(images, root)
    items = [_loose(p, root) for p in loose]
    for folder in folders:
        label, status, message = _label_of(folder, given, files[folder])
        for path in files[folder]:
            item = {"sample_id": ids.get(path, path.relative_to(root).as_posix()),
                    "dataset": "folders", "subject": None, "label": None, "label_code": None,
                    "class_folder": folder.name, "split": None,
                    "source_path": str(path.absolute()), "status": "ok", "message": ""}
            item["sequence"] = item["sample_id"]
            if is_stray(path):
                item.update(status="stray", message=f"{path}: not an image: skipped")
            elif status != "ok":
                item.update(status=status, message=message)
            else:
                item.update(label=label, label_code=CANONICAL.index(label))
                if regex is not None:
                    item.update(_subject(regex, path, subject_pattern))
            items.append(item)
    return items


def _sample_ids(images: list[Path], root: Path) -> dict[Path, str]:
    """Each image's id: its stem, or where stems repeat its path under the root (`/` as `-`);
    `~N` after the rare id still taken."""
    stems: dict[str, int] = {}
    for path in images:
        stems[path.stem] = stems.get(path.stem, 0) + 1
    out: dict[Path, str] = {}
    taken: set[str] = set()
    for path in images:
        base = path.stem if stems[path.stem] == 1 else path.relative_to(root).as_posix().replace(
            "/", "-")
        sample_id, n = base, 1
        while sample_id in taken:
            n += 1
            sample_id = f"{base}~{n}"
        taken.add(sample_id)
        out[path] = sample_id
    return out


def _loose(path: Path, root: Path) -> dict[str, Any]:
    """A file beside the class folders: stray, or an image in no class."""
    rel = path.relative_to(root).as_posix()
    status, message = (("stray", f"{path}: not an image: skipped") if is_stray(path) else
                       ("no_class", f"{path}: an image outside the class folders "
                        "(<root>/<class>/…): skipped"))
    return {"sample_id": f"./{rel}", "dataset": "folders", "subject": None, "sequence": f"./{rel}",
            "label": None, "label_code": None, "class_folder": None, "split": None,
            "source_path": str(path.absolute()), "status": status, "message": message}


def _label_of(folder: Path, given: dict[str, str], files: list[Path]) -> tuple[str | None, str,
                                                                               str]:
    """(label, status, message) of a class folder: --classes first, then the common names."""
    key = folder_key(folder.name)
    if key in given:
        return given[key], "ok", ""
    if key in ALIASES:
        return ALIASES[key], "ok", ""
    n = sum(not is_stray(p) for p in files)
    if key.isdigit():
        return None, "numbered_class", (
            f"{folder}: numbered class folder '{folder.name}' ({n} images): numbered trees "
            "follow no one convention (MA-Net's 0…6 are AffectNet's order), so fer-prep does "
            f"not guess; say what each folder is, e.g. {EXAMPLE_NUMBERED}")
    inner = [d.name for d in sorted(folder.iterdir())
             if d.is_dir() and folder_key(d.name) in ALIASES]
    hint = (f"; its subfolders are classes ({', '.join(inner)}): give --root {folder}"
            if inner else "")
    return None, "unknown_class", (
        f"{folder}: class folder '{folder.name}' ({n} images) names no label; say which with "
        f"--classes '{folder.name}=<label>' (labels: {', '.join(CANONICAL)}){hint}")


def _subject(regex: re.Pattern[str], path: Path, pattern: str | None) -> dict[str, Any]:
    found = regex.search(path.name)
    if found is None:
        return {"status": "no_subject", "message": f"{path}: --subject-pattern {pattern!r} does "
                "not match the file name, so its subject is unknown"}
    subject = next((g for g in found.groups() if g), None) or found.group(0)
    return {"subject": subject}


# --- the embedded sample ---------------------------------------------------------------------

#: the sample's expressions → CK+48's folder names
SAMPLE_FOLDERS = {"anger": "anger", "happy": "happy", "sadness": "sadness",
                  "surprise": "surprise"}
SIDE = 48
PEAKS = 3  # CK+48 keeps the last three frames of each sequence


def write_folders_sample(out: Path) -> Path:
    """Write a CK+48 look-alike under ``out/folders`` and return that root: the last three
    frames of every sequence of the CK+ sample, cropped square around the face, 48×48 grey
    PNGs in CK+48's class folders (anger/, happy/, sadness/, surprise/) named as CK+ names its
    frames. Re-running writes the same bytes."""
    import cv2
    import numpy as np
    from skimage import data

    from fer_prep.sample import (
        SUBJECTS,
        _peak,
        _render,
        _smoothstep,
        _subject_matrix,
        face_square,
    )

    root = Path(out) / "folders"
    grey = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY).astype(np.float32)
    for subject in SUBJECTS:
        m = _subject_matrix(subject)
        cx, cy, half = face_square(subject, 0.55)
        for seq in subject.sequences:
            folder = root / SAMPLE_FOLDERS[seq.expression]
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(seq.frames - PEAKS, seq.frames):
                w = _smoothstep(k / (seq.frames - 1))
                frame = _render(grey, m, w * _peak(seq.expression))
                frame = np.clip(frame * subject.gain + subject.bias, 0, 255).round()
                crop = frame.astype(np.uint8)[int(cy - half):int(cy + half),
                                              int(cx - half):int(cx + half)]
                face = cv2.resize(crop, (SIDE, SIDE), interpolation=cv2.INTER_AREA)
                name = f"{subject.name}_{seq.number:03d}_{k + 1:08d}.png"
                (folder / name).write_bytes(cv2.imencode(".png", face)[1].tobytes())
    return root
