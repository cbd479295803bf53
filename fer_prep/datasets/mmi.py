"""MMI Facial Expression Database: session videos with their metadata, or frames extracted.

    Sessions/<id>/S001-100.avi          one session: neutral → apex → neutral, 720x576
    Sessions/<id>/S001-100.xml          its metadata: an entry Name="Emotion", Value 1…6 =
                                        Anger Disgust Fear Happiness Sadness Surprise
    Sessions/<id>/S001-100-oao_aucs.xml its FACS coding (not needed)

or the frames as FMPN-FER extracted them, flat, beside its labels:

    imgs/S001_100_040.png               subject, session, frame number
    emotion_labels.pkl                  {'S001_100': 0…5} (FMPN's: the MMI code − 1), or
    emotion_labels.csv                  sequence,label with the same codes

A session is a clip (`sample_id` = `sequence` = `S001_100`); its frames are `S001_100_040`, as
FMPN names them. The protocol (`--frames neutral-peak`, FMPN and the literature) keeps the first
frame as the neutral reference and three frames around the apex, the middle of the clip unless
`--apex` places it elsewhere (0 = the first frame, 1 = the last); `peak` the three alone; `all`
every frame (roles neutral, onset, peak, offset). The frames are picked from the decoded clip,
so they are the same whether `video2frame` extracts them or `align --from-video` decodes them.
Frames already extracted are taken as they are named: a run of frames from the clip's start,
more than four, is a whole clip and the selection applies; fewer (FMPN's three) are the chosen
frames, the first of them neutral when a gap parts it from the rest.

Dual-view sessions (the frontal face in one half of the frame) and sessions filmed with the
camera turned are fixed per session by `--view` (`auto` decides from the first frame;
`fer_prep.faces.views`); the manifest's `view` says what each session got.

A session the protocol cannot use is one row saying why: metadata without an Emotion entry
(`no_emotion`), a value other than 1…6 (`not_basic`: MMI codes more than the six basic
emotions), metadata that is no XML (`bad_metadata`), metadata whose video is missing
(`missing_video`), a video without metadata (`no_metadata`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fer_prep.datasets import DATASETS, ClipTooShort, Dataset, find_folder
from fer_prep.errors import InputError
from fer_prep.params import option

CODES = {0: "neutral", 1: "anger", 2: "disgust", 3: "fear", 4: "happiness", 5: "sadness",
         6: "surprise"}  # 1…6: the metadata's Emotion values; 0: a session's neutral first frame
FRAME_SELECTIONS = ("neutral-peak", "peak", "all")
VIEW_OPTIONS = ("auto", "full", "left", "right", "rotate")
VIDEO_SUFFIXES = (".avi", ".mp4", ".mov", ".mkv", ".wmv", ".mpg")
PEAK_FRAMES = 3
_STEM = re.compile(r"^(S\d+)[-_](\w+?)$", re.IGNORECASE)
_FRAME = re.compile(r"^(S\d+)_(\d+)_(\d+)\.(png|jpe?g|bmp)$", re.IGNORECASE)
_WHOLE = PEAK_FRAMES + 1  # more frames than a selection holds: a whole extracted clip


@dataclass(frozen=True)
class MMIOptions:
    """Which frames of which view of each session."""

    frames: str = option("neutral-peak", "First frame + three around the apex (FMPN), the "
                         "three alone, or every frame.", choices=FRAME_SELECTIONS)
    apex: float = option(0.5, "Where the apex is, as a fraction of the clip (0 first frame, "
                         "1 last) [the middle].", low=0, high=1)
    view: str = option("auto", "Per session: the whole frame, the left or right half (dual "
                       "view), turned a quarter (rotate), or decided from its first frame.",
                       choices=VIEW_OPTIONS)


@DATASETS.register("mmi")
class MMI(Dataset):
    name = "mmi"
    title = "MMI session videos with their metadata XML (or frames as FMPN extracted them)."
    kind = "videos"
    root_help = "MMI root holding Sessions/<id>/<name>.avi + .xml, or FMPN's imgs/ + labels."
    codes = CODES
    #: FMPN-FER's MMI loader reads imgs_res/<fold>/<class>.png, class = the pickle's 0…5
    class_orders = {"fmpn": tuple(CODES[code] for code in range(1, 7))}
    Options = MMIOptions
    extra_columns = {
        "session": "the MMI session folder (Sessions/<id>)",
        "view": "the view asked for (auto, full, left, right, rotate); align: the one applied",
    }
    integers = ("frame", "label_code")
    internal = ("select", "apex", "frame_files", "frame_numbers", "frame_roles")

    def read(self, root: Path, options: MMIOptions) -> list[dict[str, Any]]:
        return read_mmi(root, options)

    def read_labels(self, root: Path) -> list[dict[str, Any]] | None:
        """Frames already extracted are named by number, so their names and labels make folds
        without opening an image; session videos need decoding to place the apex (None)."""
        if _frames_folder(Path(root)) is None:
            return None
        return [row for item in read_mmi(root, MMIOptions()) for row in frame_rows(self, item)]

    def item_path(self, item: dict[str, Any]) -> str:
        return f"{item['subject']}/{item['sequence']}"

    def frame_selection(self, item: dict[str, Any]) -> Callable[[int], dict[int, str]]:
        how, apex = item.get("select") or "neutral-peak", float(item.get("apex") or 0.5)
        return lambda count: select(count, how, apex)

    def frame_id(self, clip: str, number: int) -> str:
        return f"{clip}_{number:03d}"  # FMPN's names: S001_100_040

    def write_sample(self, out: Path) -> Path:
        return write_mmi_sample(out)


def select(count: int, how: str, apex: float = 0.5) -> dict[int, str]:
    """The frames (1-based) of a clip of `count` frames a selection keeps, with their roles:
    the first is neutral, the three centred on the apex are peak (never the first).
    ClipTooShort for a clip without a first frame and three after it: its peak would be lost."""
    if count < _WHOLE:
        raise ClipTooShort(f"{count} frame(s), and the {how} selection needs {_WHOLE} (a "
                           f"neutral first frame and {PEAK_FRAMES} peak frames after it)")
    centre = 1 + round(apex * (count - 1))
    centre = min(max(centre, 1 + PEAK_FRAMES // 2 + 1), count - PEAK_FRAMES // 2)
    peaks = [n for n in range(centre - PEAK_FRAMES // 2, centre + PEAK_FRAMES // 2 + 1)
             if 1 < n <= count]
    roles = {n: "peak" for n in peaks}
    if how == "peak":
        return roles
    roles[1] = "neutral"
    if how == "all":
        first = min(peaks, default=count + 1)
        for n in range(2, count + 1):
            roles.setdefault(n, "onset" if n < first else "offset")
    return dict(sorted(roles.items()))


def frame_rows(dataset: Dataset, item: dict[str, Any]) -> list[dict[str, Any]]:
    """The frame rows of an item of extracted frames (a problem item as it is)."""
    if item["status"] != "ok":
        return [item]
    clip = {k: v for k, v in item.items() if k not in dataset.internal}
    return [{**clip, "sample_id": dataset.frame_id(item["sample_id"], n), "frame": n,
             "role": role, "source_path": path, **dataset.frame_label(item, role)}
            for n, role, path in zip(item["frame_numbers"], item["frame_roles"],
                                     item["frame_files"], strict=True)]


def read_mmi(root: Path, options: MMIOptions) -> list[dict[str, Any]]:
    """One item per session: its video (or its extracted frames), label and problems."""
    root = Path(root)
    frames = _frames_folder(root)
    if frames is not None:
        return _read_frames(frames, options)
    sessions = find_folder(root, "Sessions") or root
    files = sorted(p for p in sessions.glob("*/*") if p.is_file())
    videos = {p.with_suffix(""): p for p in files if p.suffix.lower() in VIDEO_SUFFIXES}
    metas = {p.with_suffix(""): p for p in files if p.suffix.lower() == ".xml"
             and not p.stem.lower().endswith("-oao_aucs")}
    if not videos and not metas:
        raise InputError(f"{root}: no Sessions/<id>/<name>.avi with its .xml, and no FMPN "
                         "imgs/S001_100_040.png frames (is this MMI?)")
    items = []
    for stem in sorted(set(videos) | set(metas)):
        video, meta = videos.get(stem), metas.get(stem)
        item = _session(stem, video or meta, options)
        if video is None:
            item.update(status="missing_video", message=f"{meta}: metadata without its video "
                        f"(no {stem.name}.avi or other video beside it)")
        elif meta is None:
            item.update(status="no_metadata", message=f"{video}: no {stem.name}.xml beside it, "
                        "so no Emotion label")
        else:
            code, status, message = read_emotion(meta)
            if status != "ok":
                item.update(status=status, message=message)
            else:
                item.update(label=CODES[code], label_code=code, sequence_label=CODES[code])
        items.append(item)
    return items


def read_emotion(path: Path) -> tuple[int | None, str, str]:
    """The Emotion value of a session's metadata: (code, "ok", "") or (None, status, why)."""
    import xml.etree.ElementTree as ET

    try:
        tree = ET.parse(path)
    except (ET.ParseError, OSError) as exc:
        return None, "bad_metadata", f"{path}: not readable as XML ({exc})"
    values = []
    for element in tree.iter():  # the entry's element name varies; its attributes do not
        attrs = {k.lower(): v for k, v in element.attrib.items()}
        if attrs.get("name", "").lower() == "emotion" and "value" in attrs:
            values.append(attrs["value"])
    if not values:
        return None, "no_emotion", f"{path}: no metadata entry Name=\"Emotion\""
    raw = values[0].strip()
    if not raw.isdigit() or not 1 <= int(raw) <= 6:
        return None, "not_basic", (f"{path}: Emotion value {raw!r} is not one of the six basic "
                                   "emotions (1-6: Anger Disgust Fear Happiness Sadness "
                                   "Surprise); left out")
    return int(raw), "ok", ""


def _session(stem: Path, path: Path, options: MMIOptions) -> dict[str, Any]:
    named = _STEM.match(stem.name)
    subject = named.group(1).upper() if named else stem.parent.name
    take = named.group(2) if named else stem.name
    sequence = f"{subject}_{take}"
    return {"sample_id": sequence, "dataset": "mmi", "subject": subject, "sequence": sequence,
            "session": stem.parent.name, "label": None, "label_code": None,
            "sequence_label": None, "source_path": str(path.absolute()), "status": "ok",
            "message": "", "view": options.view, "select": options.frames,
            "apex": options.apex}


def _frames_folder(root: Path) -> Path | None:
    """The folder of FMPN-named frames (`imgs/`, or the root itself), if this is that layout."""
    for folder in (find_folder(root, "imgs", depth=1), root):
        if folder is not None and any(_FRAME.match(p.name) for p in folder.iterdir()):
            return folder
    return None


def _labels(folder: Path) -> tuple[dict[str, int], Path | None]:
    """FMPN's sequence → 0…5 table beside the frames (pickle or CSV), and where it was."""
    for where in (folder, folder.parent):
        csv_file, pkl = where / "emotion_labels.csv", where / "emotion_labels.pkl"
        if csv_file.is_file():
            import csv

            with open(csv_file, newline="", encoding="utf-8") as f:
                return {r["sequence"]: int(float(r["label"])) for r in csv.DictReader(f)}, \
                    csv_file
        if pkl.is_file():
            return load_plain(pkl), pkl
    return {}, None


def load_plain(path: Path) -> Any:
    """A pickle of plain data only (FMPN's dict of str → int): no class is ever loaded, so a
    crafted file cannot run code. pickle.UnpicklingError naming what it asked for otherwise."""
    import io
    import pickle

    class Plain(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            raise pickle.UnpicklingError(f"{module}.{name} is not plain data")

    return Plain(io.BytesIO(path.read_bytes()), encoding="latin1").load()


def _read_frames(folder: Path, options: MMIOptions) -> list[dict[str, Any]]:
    """Items of the extracted-frames layout: one per session, its frame files in order."""
    import pickle

    try:
        labels, source = _labels(folder)
    except (pickle.UnpicklingError, ValueError, KeyError, EOFError) as exc:
        raise InputError(f"{folder.parent}/emotion_labels.*: not FMPN's label table "
                         f"({exc})") from None
    if source is None:
        raise InputError(f"{folder}: frames without emotion_labels.pkl or emotion_labels.csv "
                         "beside them (FMPN's sequence → 0…5 table)")
    sessions: dict[str, list[tuple[int, Path]]] = {}
    for path in sorted(folder.iterdir()):
        named = _FRAME.match(path.name)
        if named:
            sessions.setdefault(f"{named.group(1)}_{named.group(2)}", []).append(
                (int(named.group(3)), path))
    items = []
    for sequence, frames in sorted(sessions.items()):
        frames.sort()
        numbers = [n for n, _ in frames]
        roles = _roles_of(numbers, options)
        subject = sequence.split("_")[0]
        item = {"sample_id": sequence, "dataset": "mmi", "subject": subject,
                "sequence": sequence, "session": None, "label": None, "label_code": None,
                "sequence_label": None, "source_path": str(folder.absolute()), "status": "ok",
                "message": "", "view": options.view,
                "frame_numbers": [n for n, _ in frames if n in roles],
                "frame_files": [str(p.absolute()) for n, p in frames if n in roles],
                "frame_roles": [roles[n] for n in numbers if n in roles]}
        code = labels.get(sequence)
        if code is None:
            item.update(status="no_label", message=f"{source}: no label for {sequence}")
        elif code + 1 not in CODES or code < 0:
            item.update(status="not_basic", message=f"{source}: {sequence} has code {code}, "
                        "not one of FMPN's 0-5")
        else:
            item.update(label=CODES[code + 1], label_code=code + 1,
                        sequence_label=CODES[code + 1])
        items.append(item)
    return items


def _roles_of(numbers: list[int], options: MMIOptions) -> dict[int, str]:
    """Roles of extracted frames: a whole clip (a run from its start) is selected from as a
    video is; fewer frames are the chosen ones (see the module docstring)."""
    whole = len(numbers) > _WHOLE and numbers == list(range(numbers[0], numbers[0] +
                                                            len(numbers)))
    if whole:
        picked = select(len(numbers), options.frames, options.apex)
        return {numbers[i - 1]: role for i, role in picked.items()}
    roles = dict.fromkeys(numbers, "peak")
    if len(numbers) > 1 and numbers[1] - numbers[0] > 1:
        roles[numbers[0]] = "neutral"
    if options.frames == "peak":
        roles = {n: r for n, r in roles.items() if r == "peak"}
    return roles


#: canonical labels → MMI's Emotion values
MMI_VALUES = {label: code for code, label in CODES.items() if code}
SAMPLE_SIZE = (720, 576)  # MMI's frame size
METADATA = """<?xml version="1.0" encoding="utf-8"?>
<Session>
  <Metatag Name="Emotion" Value="{code}" />
  <Metatag Name="Source" Value="written by fer-prep from CK+ frames, not MMI" />
</Session>
"""
RECORDINGS = ("single", "dual-left", "dual-right", "turned")


def ckplus_as_mmi(images: Path, labels: dict[str, str], out: Path,
                  recordings: dict[str, str] | None = None) -> Path:
    """Write CK+ sequences as MMI sessions under `out`: `Sessions/<n>/S052-001.avi` played
    neutral → apex → neutral at MMI's 720x576 and 24 fps, beside its metadata XML; return `out`.

    `images` is CK+'s cohn-kanade-images/, `labels` sequence (`S052_001`) → canonical label
    (those MMI has); `recordings` sequence → how it was filmed (`RECORDINGS`): `dual-left` /
    `dual-right` put the frontal face in that half with a turned copy in the other, `turned`
    rotates the frames a quarter turn clockwise. For the embedded sample and for tests.
    """
    import cv2
    import numpy as np

    from fer_prep.sample import encode_avi

    recordings = recordings or {}
    for number, (sequence, label) in enumerate(sorted(labels.items()), start=1):
        subject, take = sequence.split("_")
        files = sorted((images / subject / take).glob("*.png"))
        grey = [cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in files]
        how = recordings.get(sequence, "single")
        frames = [_filmed(image, how, cv2, np) for image in [*grey, *grey[-2::-1]]]
        session = Path(out) / "Sessions" / str(number)
        session.mkdir(parents=True, exist_ok=True)
        h, w = frames[0].shape[:2]
        encode_avi(iter(frames), session / f"{subject}-{take}.avi", (w, h), 24)
        (session / f"{subject}-{take}.xml").write_text(
            METADATA.format(code=MMI_VALUES[label]), encoding="utf-8")
    return Path(out)


def _filmed(image: Any, how: str, cv2: Any, np: Any) -> Any:
    """One grey CK+ frame as MMI's camera would have given it (BGR, 720x576 or turned)."""
    w, h = SAMPLE_SIZE
    canvas = np.full((h, w), 40, np.uint8)
    if how.startswith("dual"):
        half = w // 2
        scale = half / image.shape[1]
        face = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        fh, fw = face.shape
        # the other view: the face turned away (its far side squeezed), as a mirror shows it
        src = np.float32([[0, 0], [fw, 0], [fw, fh], [0, fh]])
        dst = np.float32([[0, 0], [fw * 0.55, fh * 0.12], [fw * 0.55, fh * 0.88], [0, fh]])
        turned = cv2.warpPerspective(face, cv2.getPerspectiveTransform(src, dst), (fw, fh),
                                     borderValue=40)
        y = (h - fh) // 2
        frontal_x, other_x = (0, half) if how == "dual-left" else (half, 0)
        canvas[y:y + fh, frontal_x:frontal_x + fw] = face
        canvas[y:y + fh, other_x:other_x + fw] = turned
    else:
        y, x = (h - image.shape[0]) // 2, (w - image.shape[1]) // 2
        canvas[y:y + image.shape[0], x:x + image.shape[1]] = image
    if how == "turned":
        canvas = cv2.rotate(canvas, cv2.ROTATE_90_CLOCKWISE)
    return cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR)


def write_mmi_sample(out: Path) -> Path:
    """Write an MMI look-alike under ``out/mmi`` and return that root: the labelled sequences
    of the embedded CK+ sample as MMI sessions (`ckplus_as_mmi`). Re-running writes the same
    bytes."""
    import tempfile

    from fer_prep.datasets.ckplus import read_ckplus
    from fer_prep.sample import write_ckplus_sample

    with tempfile.TemporaryDirectory() as tmp:
        ck = write_ckplus_sample(Path(tmp))
        labels = {i["sequence"]: i["sequence_label"] for i in read_ckplus(ck, "peak")
                  if i["sequence_label"] in MMI_VALUES}
        return ckplus_as_mmi(ck / "cohn-kanade-images", labels, Path(out) / "mmi")
