"""Oulu-CASIA NIR&VIS facial expressions (Zhao et al. 2011) in their published layout.

    OriginalImg/VL/Strong/P001/Anger/000.jpeg      camera / light / subject / expression / frame
    Preprocess Img/VL/Strong/P001/Anger/000.jpeg   the same frames cropped to the face

80 subjects pose six expressions (Anger Disgust Fear Happiness Sadness Surprise) once each, filmed
by two cameras (VL visible light, NI near infrared) under three lights (Strong, Weak, Dark): 320×240
JPEG frames numbered from 000.jpeg, neutral first and the apex last. Archives nest
(`B_OriginalImg/B_OriginalImg/OriginalImg/…`): the set's folder (`OriginalImg`, or `Preprocess Img`
with `--set preprocessed`) is the root or is found up to three levels below it. Folder names
match in any letter case.

A run reads one camera under one light (`--camera VL --light Strong` by default). The two cameras
record separately and a sequence's NI and VL frame counts can differ, so each camera's sequence is
read on its own, its frames numbered by its own files: frames are never paired by index across
cameras (NI's 012.jpeg is not VL's 012.jpeg), and `--camera NI` takes NI's own last frames.

Frames (`--frames`): `peak` (the default) the last three of each sequence, `neutral-peak` the
first (role `neutral`) and the last three, `all` every frame (neutral, onset, peak as for CK+);
the first frame is never a peak. Items are CK+'s: `P001_Anger_000` (subject_expression_frame),
subject `P001`, sequence `P001_Anger`, with `camera` and `light`. Labels come from the expression
folder's name; `label_code` is MAFER's order (0 surprise, 1 happiness, 2 sadness, 3 anger,
4 fear, 5 disgust) with 6 for the neutral first frame: Oulu-CASIA has no neutral class, so
MAFER's six codes stay as they are and neutral is appended, as seven-class setups add it.

Rows the reader cannot use keep their place, naming the file: an expression folder with no frame
(`empty_sequence`) or one frame (`short_sequence`), a subject folder with no expression folder
(`empty_subject`), an unknown expression folder (`bad_label`), a file in an expression folder
that is not a JPEG (`not_jpeg`, not counted as a frame) or not named as a frame (`bad_name`), a
frame number twice (`duplicate_frame`); .DS_Store, Thumbs.db, ._* are `stray`, counted and not
warned about. Protocol: 10 folds by subject (`subject-kfold`; the folds stage's default k is 10).

The preprocessed set holds face crops. Dataset defaults cannot depend on `--set`, so both sets
take the default preset (MediaPipe, eyes template): on the 54 peak faces of the shared CK+
frames at Oulu's 320×240, cut as squares 1.0 to 2.0 times dlib's face box, MediaPipe finds every
face with its points 0.05 inter-ocular distances from dlib's on the whole frame (as on the whole
frames: 0.05), whatever the margin; the whole-image box (`--backend given`, dlib's 68 points
inside the crop) is closer for tight crops (0.02 to 0.03 up to 1.4 times the box) but misses
with margin (0.10 at 1.6, 0.31 at 2.0). So MediaPipe stays; `--backend given` (with `--template
whole --size N` to keep each crop as it is) suits tight crops.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fer_prep.datasets import DATASETS, Dataset, find_folder
from fer_prep.errors import InputError
from fer_prep.params import option

CAMERAS = ("VL", "NI")
LIGHTS = ("Strong", "Weak", "Dark")
FRAME_SELECTIONS = ("peak", "neutral-peak", "all")
SETS = {"original": "OriginalImg", "preprocessed": "Preprocess Img"}  # --set → its folder
PEAK_FRAMES = 3  # the last three frames are the apex, as for CK+
EXPRESSIONS = ("Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise")  # the folders
#: MAFER's codes (datasets/oulucasia.py), and 6 for a sequence's neutral first frame
CODES = {0: "surprise", 1: "happiness", 2: "sadness", 3: "anger", 4: "fear", 5: "disgust",
         6: "neutral"}
_CODE_OF = {label: code for code, label in CODES.items()}
_FRAME = re.compile(r"^(\d+)\.jpe?g$", re.IGNORECASE)
_JPEG = (".jpeg", ".jpg")
STRAY_NAMES = ("thumbs.db", "desktop.ini")  # files archives and file browsers leave behind
LAYOUT = "{NI,VL}/{Dark,Strong,Weak}/P###/<Expression>/NNN.jpeg"


@dataclass(frozen=True)
class OuluOptions:
    """Which camera, light, frames and image set to read."""

    camera: str = option("VL", "Camera: VL (visible light) or NI (near infrared).",
                         choices=CAMERAS)
    light: str = option("Strong", "Illumination: Strong, Weak or Dark.", choices=LIGHTS)
    frames: str = option("peak", "The last three frames, the first (neutral) + last three, or "
                         "every frame.", choices=FRAME_SELECTIONS)
    set: str = option("original", "OriginalImg (320×240 frames) or Preprocess Img (face "
                      "crops).", choices=tuple(SETS))


@DATASETS.register("oulu")
class OuluCASIA(Dataset):
    name = "oulu"
    title = "Oulu-CASIA NIR&VIS: 80 subjects × 6 expression sequences, VL and NI, 3 lights."
    kind = "sequences"
    root_help = f"Folder holding OriginalImg/{LAYOUT} (or Preprocess Img/), up to 3 levels down."
    codes = CODES
    class_orders = {"mafer": tuple(CODES[code] for code in range(6))}
    default_scheme = "subject-kfold"
    Options = OuluOptions
    extra_columns = {"camera": "Oulu-CASIA's camera: VL (visible light) or NI (near infrared)",
                     "light": "Oulu-CASIA's illumination: Strong, Weak or Dark"}
    integers = ("frame", "label_code")
    quiet = frozenset({"stray"})

    def read(self, root: Path, options: OuluOptions) -> list[dict[str, Any]]:
        return read_oulu(root, options.camera, options.light, options.frames, options.set)

    def read_labels(self, root: Path) -> list[dict[str, Any]]:
        """The file names say everything folds need (no image is opened): the items of the
        default options (VL, Strong, peak frames, OriginalImg)."""
        return self.read(root, self.Options())

    def item_path(self, item: dict[str, Any]) -> str:
        expression = item["sequence"].removeprefix(f"{item['subject']}_")
        return f"{item['subject']}/{expression}/{item['sample_id']}"

    def write_sample(self, out: Path) -> Path:
        return write_oulu_sample(out)


def _set_folder(root: Path, image_set: str) -> Path:
    """The `OriginalImg` (or `Preprocess Img`) folder: the root or up to 3 levels below it."""
    name = SETS[image_set]
    if root.name.lower() == name.lower():
        return root
    found = find_folder(root, name)
    if found is not None:
        return found
    other = next(s for s in SETS if s != image_set)
    there = find_folder(root, SETS[other])
    hint = (f"; it holds {there} (--set {other})" if there else
            " (is this the Oulu-CASIA root?)")
    raise InputError(f"{root}: no {name}/ folder here or up to 3 levels below{hint}; Oulu-CASIA's "
                     f"frames are {name}/{LAYOUT}")


def _child(parent: Path, name: str, flag: str, known: tuple[str, ...]) -> Path:
    """`parent/name` in any letter case; InputError saying which of `known` exist instead."""
    folders = {p.name.lower(): p for p in parent.iterdir() if p.is_dir()}
    if name.lower() in folders:
        return folders[name.lower()]
    present = [p.name for key, p in sorted(folders.items()) if key in {k.lower() for k in known}]
    holds = (f"it holds {', '.join(present)}" if present else
             f"it holds none of {', '.join(known)} (is it Oulu-CASIA's {parent.name}?)")
    raise InputError(f"{parent}: no {name}/ folder for {flag} {name}; {holds}")


def _stray(path: Path) -> bool:
    return path.name.startswith(".") or path.name.lower() in STRAY_NAMES


def read_oulu(root: Path, camera: str = "VL", light: str = "Strong", frames: str = "peak",
              image_set: str = "original") -> list[dict[str, Any]]:
    """One item per selected frame of every sequence of one camera under one light; a folder or
    file the reader cannot use is one item with its reason as `status`."""
    root = Path(root)
    top = _set_folder(root, image_set)
    lit = _child(_child(top, camera, "--camera", CAMERAS), light, "--light", LIGHTS)
    items: list[dict[str, Any]] = []
    subjects = 0
    for subject_dir in sorted(lit.iterdir()):
        if not subject_dir.is_dir() or _stray(subject_dir):
            items.append(_file_row(subject_dir, subject_dir.name, None))
            continue
        subjects += 1
        children = sorted(subject_dir.iterdir())
        if not any(d.is_dir() and not _stray(d) for d in children):
            items.append(_row({"dataset": "oulu", "subject": subject_dir.name, "camera": camera,
                               "light": light}, subject_dir.name, "empty_subject", subject_dir,
                              f"{subject_dir}: no expression folder ({' '.join(EXPRESSIONS)})"))
        for child in children:
            items += _sequence(child, subject_dir.name, frames, camera, light)
    if not subjects:
        raise InputError(f"{lit}: no subject folder (P001/ …); Oulu-CASIA's frames are "
                         f"{SETS[image_set]}/{LAYOUT}")
    return items


def _sequence(folder: Path, subject: str, how: str, camera: str, light: str
              ) -> list[dict[str, Any]]:
    """The selected frames of one expression folder, and a row per file that is no frame."""
    expression = next((e for e in EXPRESSIONS if e.lower() == folder.name.lower()), None)
    base = {"dataset": "oulu", "subject": subject, "camera": camera, "light": light}
    if not folder.is_dir() or _stray(folder):
        return [_file_row(folder, f"{subject}_{folder.name}", base)]
    if expression is None:
        return [_row(base, f"{subject}_{folder.name}", "bad_label", folder,
                     f"{folder}: {folder.name!r} is not one of Oulu-CASIA's expression folders "
                     f"({' '.join(EXPRESSIONS)})")]
    sequence = f"{subject}_{expression}"
    base["sequence"] = sequence
    rows: list[dict[str, Any]] = []
    frames: dict[int, Path] = {}
    for path in sorted(folder.iterdir()):
        name = _FRAME.match(path.name)
        if name is None or not path.is_file():
            rows.append(_file_row(path, f"{sequence}_{path.name}", base))
        elif int(name.group(1)) in frames:
            rows.append(_row(base, f"{sequence}_{path.name}", "duplicate_frame", path,
                             f"{path}: frame {int(name.group(1))} again (first read from "
                             f"{frames[int(name.group(1))].name}): skipped"))
        else:
            frames[int(name.group(1))] = path
    if len(frames) < 2:
        status, count = ("empty_sequence", "no") if not frames else ("short_sequence", "one")
        rows.append(_row(base, sequence, status, folder, f"{folder}: {count} JPEG frame "
                         "(NNN.jpeg); a sequence runs from a neutral first frame to its peak"))
        return rows
    label = expression.lower()
    numbers = sorted(frames)
    for pos in _chosen(len(numbers), how):
        frame = numbers[pos]
        role = "neutral" if pos == 0 else ("peak" if pos >= len(numbers) - PEAK_FRAMES
                                           else "onset")
        shown = "neutral" if role == "neutral" else label
        rows.append({
            "sample_id": f"{sequence}_{frames[frame].stem}", **base, "frame": frame, "role": role,
            "label": shown, "label_code": _CODE_OF[shown], "sequence_label": label,
            "source_path": str(frames[frame].absolute()), "status": "ok", "message": "",
        })
    return rows


def _chosen(count: int, how: str) -> list[int]:
    """Positions a selection keeps of `count` frames; the first frame is never a peak."""
    peaks = list(range(max(1, count - PEAK_FRAMES), count))
    return {"all": list(range(count)), "peak": peaks, "neutral-peak": [0, *peaks]}[how]


def _file_row(path: Path, sample_id: str, base: dict[str, Any] | None) -> dict[str, Any]:
    """The row of a file or folder where Oulu-CASIA has none of its kind."""
    base = base or {"dataset": "oulu", "subject": None}
    if _stray(path):
        return _row(base, sample_id, "stray", path, f"{path}: not Oulu-CASIA's (a stray file): "
                                                    "skipped")
    if path.is_dir():
        return _row(base, sample_id, "not_jpeg", path, f"{path}: a folder inside an expression "
                                                       "folder, not a JPEG frame: skipped")
    if "sequence" not in base:
        return _row(base, sample_id, "stray", path, f"{path}: a file where Oulu-CASIA has "
                                                    "folders: skipped")
    if path.suffix.lower() in _JPEG:
        return _row(base, sample_id, "bad_name", path, f"{path}: not a frame name (Oulu-CASIA "
                                                       "names frames 000.jpeg, 001.jpeg, …): "
                                                       "skipped, not counted as a frame")
    return _row(base, sample_id, "not_jpeg", path, f"{path}: not a JPEG frame (Oulu-CASIA's "
                                                   "frames are NNN.jpeg): skipped, not counted "
                                                   "as a frame")


def _row(base: dict[str, Any], sample_id: str, status: str, where: Path, message: str
         ) -> dict[str, Any]:
    """An item standing for a file or folder the reader could not use."""
    return {"sample_id": sample_id, "sequence": sample_id, **base, "frame": None, "role": None,
            "label": None, "label_code": None, "sequence_label": None,
            "source_path": str(where.absolute()), "status": status, "message": message}


# --- the embedded sample ---------------------------------------------------------------------

#: the CK+ sample's expressions (its Emotion codes; S901/004 has none and shows anger) → Oulu's
SAMPLE_EXPRESSIONS = {5: "Happiness", 7: "Surprise", 6: "Sadness", None: "Anger"}
SAMPLE_SIZE = (320, 240)  # Oulu-CASIA's frames


def write_oulu_sample(out: Path) -> Path:
    """Write an Oulu-CASIA look-alike under ``out/oulu`` and return that root: the CK+ sample's
    sequences (3 subjects, 3 or 4 expressions each) as 320×240 JPEG frames 000.jpeg… in
    ``OriginalImg/VL/Strong`` (colour) and ``OriginalImg/NI/Strong`` (grey, one frame fewer:
    the second is missing, so the cameras' counts differ). Re-running writes the same bytes."""
    import tempfile

    import cv2

    from fer_prep.sample import write_ckplus_sample

    root = Path(out) / "oulu"
    images = root / "OriginalImg"
    with tempfile.TemporaryDirectory() as tmp:
        ck = write_ckplus_sample(Path(tmp))
        labels = {f.parent.relative_to(ck / "Emotion").as_posix(): int(float(f.read_text()))
                  for f in (ck / "Emotion").glob("*/*/*_emotion.txt")}
        subjects = sorted(p.name for p in (ck / "cohn-kanade-images").iterdir())
        for take in sorted((ck / "cohn-kanade-images").glob("*/*")):
            subject = f"P{subjects.index(take.parent.name) + 1:03d}"
            expression = SAMPLE_EXPRESSIONS[labels.get(f"{take.parent.name}/{take.name}")]
            grey = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in sorted(take.glob("*.png"))]
            frames = [cv2.resize(g[5:485], SAMPLE_SIZE, interpolation=cv2.INTER_AREA)
                      for g in grey]  # 640×490 → 640×480 → 320×240
            for camera, shots in (("VL", [cv2.cvtColor(f, cv2.COLOR_GRAY2BGR) for f in frames]),
                                  ("NI", frames[:1] + frames[2:])):
                folder = images / camera / "Strong" / subject / expression
                folder.mkdir(parents=True, exist_ok=True)
                for number, frame in enumerate(shots):
                    jpeg = cv2.imencode(".jpeg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])[1]
                    (folder / f"{number:03d}.jpeg").write_bytes(jpeg.tobytes())
    return root
