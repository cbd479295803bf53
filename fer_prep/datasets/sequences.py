"""Image-sequence trees: CK+-like datasets without a module of their own (a lab's recording,
BU-4DFE- or Oulu-like trees), one folder of frames per sequence.

    <root>/<subject>/<sequence>/*.{png,jpg,jpeg,bmp,tif,tiff}   + labels.csv (or --labels FILE)
    <root>/<subject>/<Class>/*.png                  Oulu-like: the sequence folder is the class
    <root>/<Class>/<subject>/<sequence>/*.png       a class level above the subjects

Which of the three a tree is, the reader works out: frames three folders down (more than two
down) are a class-above tree; frames two down are a `<subject>/<Class>` tree when at least one
sequence folder names a class, else a plain `<subject>/<sequence>` one. It says which on the log.
Frames are ordered by the natural sort of their file names (1.png < 2.png < 10.png); the first is
the neutral frame, the last `--peak-frames` (3) the peak (never the first), the rest onset, as in
CK+; `--frames` keeps neutral + peak (the default, so `fer-prep masks` works), peak, or all.

Labels, first found wins: `--labels FILE`, else `<root>/labels.csv`, a CSV with a header naming
`sequence,label` (sequence: `<subject>/<sequence>` or the manifest's `<subject>_<sequence>`) or
`subject,sequence,label` (other columns are ignored); else the class folders. A label (a CSV
value or a folder name) is a canonical name or a common one, as class-folder trees take them
(`fer_prep.datasets.folders.ALIASES`: happy, angry, sad, …), and `--classes` maps any other name
or a code (`--classes '1=anger,5=happiness'`); a number is never guessed. The label code is the
label's place in `fer_prep.labels.CANONICAL`. A labelled sequence's first frame is `neutral`; its
label stays in `sequence_label`.

Items are CK+'s: `sample_id` is the frame's stem where it starts with its sequence id (CK+'s
names), else `<subject>_<sequence>_<stem>`, characters outside `A-Za-z0-9._-` as `-`; `subject`
the subject folder's name; `sequence` `<subject>_<sequence>`; `frame` the frame's 1-based
position in its sequence (names need hold no number, and Oulu-CASIA's start at 000), so align's
`follow` takes a folder's frames as consecutive; chips go to `faces/<subject>/<sequence>/<stem>`.
In a class-above tree where one subject's sequence name repeats under two classes, each takes
`<Class>-<sequence>` as its name.

A sequence without a label is one `no_label` row (counted, not warned about: most CK+-like
releases label a subset), or with `--include-unlabelled` its frames, unlabelled; a tree in which
no sequence is labelled is an error unless that is given. Bad inputs are rows, the rest goes on:
`empty_sequence`; `unknown_class` and `numbered_class` (a label naming no class, said once per
folder name); `bad_label` (a CSV line that cannot be read, or two lines disagreeing);
`missing_images` (a CSV line naming no sequence folder); `duplicate_frame` (two frames of one
stem); `misplaced` (an image outside the sequence folders); `stray` (a file that is no image:
counted only). `--name NAME` runs the tree as its own dataset (WORK/<name>/, `--dataset NAME`
later), as class-folder trees do.
"""

from __future__ import annotations

import csv
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fer_prep.datasets import DATASETS, Dataset
from fer_prep.datasets.ckplus import FRAME_SELECTIONS, PEAK_FRAMES
from fer_prep.datasets.folders import (
    ALIASES,
    Folders,
    folder_key,
    is_hidden,
    is_stray,
    parse_classes,
)
from fer_prep.errors import InputError
from fer_prep.labels import CANONICAL
from fer_prep.params import option

log = logging.getLogger("fer_prep")

LABELS = "labels.csv"  # read from the root when --labels is not given
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_DIGITS = re.compile(r"(\d+)")
KEEPS = {"neutral-peak": ("neutral", "peak"), "peak": ("peak",),
         "all": ("neutral", "onset", "peak")}  # --frames → the roles it keeps
CODES_EXAMPLE = "--classes '1=anger,2=contempt,3=disgust,4=fear,5=happiness,6=sadness,7=surprise'"


@dataclass(frozen=True)
class SequenceOptions:
    """Where the labels are, which frames to read, and the name the tree goes by."""

    labels: str | None = option(None, "CSV with a sequence,label or subject,sequence,label "
                                "header [ROOT/labels.csv if there, else the class folders].")
    classes: str | None = option(None, "Label or class folder → label, over the common names: "
                                 "'1=anger,5=happiness' (codes) or 'joy=happiness'.")
    frames: str = option("neutral-peak", "First + last --peak-frames frames, the last ones, or "
                         "every frame.", choices=FRAME_SELECTIONS)
    peak_frames: int = option(PEAK_FRAMES, "How many last frames of a sequence are its peak.",
                              low=1)
    include_unlabelled: bool = option(False, "Also the frames of sequences without a label "
                                      "(unlabelled) [a no_label row each].")
    name: str | None = option(None, "The name this tree goes by: WORK/<name>/, and "
                              "`--dataset <name>` in later commands [sequences].")


@DATASETS.register("sequences")
class Sequences(Dataset):
    name = "sequences"
    title = "Image-sequence trees <root>/<subject>/<sequence>/*.png, labels from a CSV or folders."
    kind = "sequences"
    root_help = ("Folder of <subject>/<sequence>/ frame folders (labels.csv or --labels), "
                 "<subject>/<Class>/ or <Class>/<subject>/<sequence>/.")
    codes = dict(enumerate(CANONICAL))
    Options = SequenceOptions
    integers = ("frame", "label_code")
    quiet = frozenset({"stray", "no_label"})

    def read(self, root: Path, options: SequenceOptions) -> list[dict[str, Any]]:
        items = read_sequences(root, options.labels, options.classes, options.frames,
                               options.peak_frames, options.include_unlabelled)
        return [{**item, "dataset": self.name} for item in items]

    def named(self, options: SequenceOptions) -> Dataset:
        """This tree under `--name` (a lab's recording as `mylab`): class-folder trees' rule."""
        return Folders.named(self, options)

    def item_path(self, item: dict[str, Any]) -> str:
        take = item["sequence"].removeprefix(f"{item['subject']}_")
        return f"{item['subject']}/{take}/{Path(item['source_path']).stem}"

    def write_sample(self, out: Path) -> Path:
        return write_sequences_sample(out)


@dataclass
class _Sequence:
    """One sequence folder and what is known of its label."""

    folder: Path
    subject: str
    take: str  # its name in the manifest (the folder's, or <Class>-<folder> where that repeats)
    class_folder: Path | None  # the class folder above it (class-above trees)
    label: str | None = None
    problem: tuple[str, str] | None = None  # (status, message) of a label it cannot take
    lines: list[tuple[int, str]] = field(default_factory=list)  # CSV (line, label) naming it

    @property
    def id(self) -> str:
        return f"{self.subject}_{self.take}"


def natural_key(name: str) -> list[Any]:
    """Sort key putting 2.png before 10.png: digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part.lower() for part in _DIGITS.split(name)]


def canonical(value: str, given: dict[str, str]) -> tuple[str | None, str]:
    """(label, "") of a label or class name (--classes first, then the common names), else
    (None, status): `numbered_class` for a code, `unknown_class` otherwise."""
    key = folder_key(value)
    found = given.get(key) or ALIASES.get(key)
    if found:
        return found, ""
    return None, "numbered_class" if key.replace(".", "", 1).isdigit() else "unknown_class"


def _why(status: str, where: str, value: str) -> str:
    """The message of a label naming no class, with the --classes that fixes it."""
    if status == "numbered_class":
        return (f"{where} is a number ({value!r}): codes follow no one convention, so fer-prep "
                f"does not guess; say what each is, e.g. {CODES_EXAMPLE}")
    return (f"{where} ({value!r}) names no label; say which with --classes '{value}=<label>' "
            f"(labels: {', '.join(CANONICAL)}, or a common name: happy, angry, …)")


def read_sequences(root: Path, labels: str | None = None, classes: str | None = None,
                   frames: str = "neutral-peak", peak_frames: int = PEAK_FRAMES,
                   include_unlabelled: bool = False) -> list[dict[str, Any]]:
    """One item per selected frame of every labelled (optionally every) sequence under `root`,
    and one per sequence or file the reader cannot use; see the module docstring."""
    root = Path(root)
    given = parse_classes(classes)
    table = _labels_file(root, labels)
    paths = sorted(p for p in root.rglob("*") if p != table and not is_hidden(
        p / "x" if p.is_dir() else p, root))  # no .git/, __MACOSX/, .thumbnails/
    files = [p for p in paths if p.is_file()]
    depth = _depth(root, files)
    sequences = _sequences(root, [p for p in paths if p.is_dir() and
                                  len(p.relative_to(root).parts) == depth], depth)
    named = depth == 2 and any(canonical(s.folder.name, given)[0] for s in sequences)
    shape = ("<Class>/<subject>/<sequence>" if depth == 3 else
             "<subject>/<Class>" if named and table is None else "<subject>/<sequence>")
    items: list[dict[str, Any]] = []
    if table is not None:
        source = str(table)
        items += _csv_labels(table, root, sequences, given)
    elif depth == 3 or named:
        source = "the class folders"
        _folder_labels(sequences, given, root)
    else:
        source = f"nowhere (no {LABELS}, no --labels, no class folder)"
    log.info(f"{root}: read as {shape}/ frames, labels from {source}")
    if not include_unlabelled and not any(s.label or s.problem for s in sequences):
        hint = f" ({items[0]['message']})" if items else ""  # the CSV's first bad line
        raise InputError(f"{root}: no sequence is labelled (read as {shape}/, labels from "
                         f"{source}); give --labels FILE (a sequence,label CSV), class folders, "
                         f"or --include-unlabelled{hint}")
    by_folder: dict[Path, list[Path]] = {s.folder: [] for s in sequences}
    for path in files:
        if path.parent in by_folder:
            by_folder[path.parent].append(path)
        else:
            items.append(_loose(path, root))
    for seq in sequences:
        items += _sequence_items(seq, by_folder[seq.folder], root, frames, peak_frames,
                                 include_unlabelled, source)
    return _unique(items)


def _labels_file(root: Path, labels: str | None) -> Path | None:
    """The CSV the labels come from: --labels, else ROOT/labels.csv where there, else None."""
    if labels is None:
        found = root / LABELS
        return found.absolute() if found.is_file() else None
    path = Path(labels).expanduser().absolute()
    if not path.is_file():
        raise InputError(f"{path}: --labels file {'is a folder' if path.exists() else 'missing'}")
    return path


def _depth(root: Path, files: list[Path]) -> int:
    """How many folders down the frames are: 3 (class-above) where more images lie there than
    two down, else 2; InputError when neither holds an image."""
    counts = {2: 0, 3: 0}
    for path in files:
        level = len(path.relative_to(root).parts) - 1
        if level in counts and not is_stray(path):
            counts[level] += 1
    if not any(counts.values()):
        image = next((p for p in files if not is_stray(p)), None)
        seen = f"; the first image found is {image}" if image else "; it holds no image"
        raise InputError(f"{root}: no <subject>/<sequence>/ (or <Class>/<subject>/<sequence>/) "
                         f"folder of frames (*.png, *.jpg, …): is this an image-sequence "
                         f"tree?{seen}")
    return 3 if counts[3] > counts[2] else 2


def _sequences(root: Path, folders: list[Path], depth: int) -> list[_Sequence]:
    """The sequence folders, named; a class-above subject's sequence name that repeats under
    two classes becomes <Class>-<sequence>."""
    out = []
    for folder in folders:
        parts = folder.relative_to(root).parts
        above = root / parts[0] if depth == 3 else None
        out.append(_Sequence(folder, parts[-2], parts[-1], above))
    seen: dict[tuple[str, str], int] = {}
    for seq in out:
        seen[seq.subject, seq.take] = seen.get((seq.subject, seq.take), 0) + 1
    for seq in out:
        if seen[seq.subject, seq.take] > 1 and seq.class_folder is not None:
            seq.take = f"{seq.class_folder.name}-{seq.take}"
    return out


def _folder_labels(sequences: list[_Sequence], given: dict[str, str], root: Path) -> None:
    """Label each sequence by its class folder (the one above, else its own); one message per
    folder name it cannot take."""
    for seq in sequences:
        folder = seq.class_folder or seq.folder
        seq.label, status = canonical(folder.name, given)
        if status and seq.class_folder is not None:  # perhaps a folder around the tree
            seq.problem = status, (f"{_why(status, f'{folder}: class folder', folder.name)}; "
                                   f"or, if it holds <subject>/<sequence>/ folders, give "
                                   f"--root {folder}")
        elif status:
            where = f"{root}/*/{folder.name}: sequence folder name"
            seq.problem = status, _why(status, where, folder.name)


def _csv_labels(table: Path, root: Path, sequences: list[_Sequence], given: dict[str, str]
                ) -> list[dict[str, Any]]:
    """Label the sequences from the CSV; rows for its lines naming no sequence or unreadable."""
    rows = _csv_rows(table)
    by_pair = {(s.subject, s.folder.name): s for s in sequences}
    by_id = {s.id: s for s in sequences}
    items = []
    for line, fields in rows:
        where = f"{table} line {line}"
        if isinstance(fields, str):
            items.append(_problem(f"{table.name}:{line}", None, "bad_label",
                                  f"{where}: {fields}", table))
            continue
        subject, name, value = fields["subject"], fields["sequence"], fields["label"]
        if subject is None and name.count("/") == 1:
            subject, name = name.split("/")
        seq = by_pair.get((subject, name)) if subject is not None else by_id.get(name)
        if seq is None:
            folder = root / subject / name if subject is not None else None
            sequence = f"{subject}_{name}" if subject is not None else name
            what = (f"no folder {folder}" if folder else
                    "no <subject>/<sequence> folder whose <subject>_<sequence> this is")
            items.append(_problem(sequence, subject, "missing_images",
                                  f"{where}: sequence {sequence!r} is not in {root} ({what})",
                                  table))
            continue
        seq.lines.append((line, value))
    for seq in sequences:
        _csv_label(seq, table, given)
    return items


def _csv_label(seq: _Sequence, table: Path, given: dict[str, str]) -> None:
    """A sequence's label from the CSV lines naming it: one label, or its problem."""
    values: dict[str, tuple[int, str]] = {}  # label → its first line
    for line, value in seq.lines:
        values.setdefault(canonical(value, given)[0] or folder_key(value), (line, value))
    if len(values) > 1:
        (a, x), (b, y) = list(values.values())[:2]
        seq.problem = "bad_label", (f"{table} lines {a} and {b}: sequence {seq.id} is labelled "
                                    f"both {x!r} and {y!r}")
    elif values:
        line, value = next(iter(values.values()))
        seq.label, status = canonical(value, given)
        if status:
            seq.problem = status, _why(status, f"{table} line {line}: the label of {seq.id}",
                                       value)


def _csv_rows(table: Path) -> list[tuple[int, dict[str, str | None] | str]]:
    """(line, fields) per data line of the labels CSV, or (line, what is wrong with it);
    InputError when it has no usable header."""
    try:
        text = table.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{table}: cannot read the labels CSV ({exc})") from None
    reader = csv.reader(text.splitlines())
    header = [h.strip().lower() for h in next(reader, [])]
    if not {"sequence", "label"} <= set(header):
        raise InputError(f"{table}: the labels CSV needs a header naming sequence,label or "
                         f"subject,sequence,label (found {','.join(header) or 'nothing'})")
    wanted = [c for c in ("subject", "sequence", "label") if c in header]
    out: list[tuple[int, dict[str, str | None] | str]] = []
    for row in reader:
        if not any(v.strip() for v in row):
            continue
        line = reader.line_num
        if len(row) != len(header):
            out.append((line, f"{len(row)} field{'s' * (len(row) != 1)}, the header has "
                              f"{len(header)} ({','.join(header)})"))
            continue
        fields: dict[str, str | None] = {c: row[header.index(c)].strip() for c in wanted}
        empty = [c for c in wanted if not fields[c]]
        if empty:
            out.append((line, f"no {empty[0]} ({','.join(row)})"))
            continue
        out.append((line, {"subject": None, **fields}))
    return out


def _sequence_items(seq: _Sequence, files: list[Path], root: Path, frames: str, peaks: int,
                    include_unlabelled: bool, source: str) -> list[dict[str, Any]]:
    """The rows of one sequence folder: its selected frames, or why it has none, and a row
    for each file in it that is no frame."""
    base = {"subject": seq.subject, "sequence": seq.id}
    items = [{**_loose(p, root), **base} for p in files if is_stray(p)]
    ordered: dict[str, Path] = {}
    for path in sorted((p for p in files if not is_stray(p)), key=lambda p: natural_key(p.name)):
        if path.stem in ordered:
            items.append({**_problem(path.relative_to(root).as_posix(), seq.subject,
                                     "duplicate_frame", f"{path}: a second frame named "
                                     f"{path.stem} (beside {ordered[path.stem].name}): skipped",
                                     path), **base})
        else:
            ordered[path.stem] = path
    if seq.problem:
        return [*items, _problem(seq.id, seq.subject, *seq.problem, seq.folder)]
    if not ordered:
        return [*items, _problem(seq.id, seq.subject, "empty_sequence", f"{seq.folder}: "
                                 "sequence folder holds no frames (*.png, *.jpg, …)", seq.folder)]
    if seq.label is None and not include_unlabelled:
        return [*items, _problem(seq.id, seq.subject, "no_label", f"{seq.folder}: no label for "
                                 f"sequence {seq.id} in {source}: skipped "
                                 "(--include-unlabelled keeps it)", seq.folder)]
    count = len(ordered)
    for pos, path in enumerate(ordered.values()):
        role = "neutral" if pos == 0 else "peak" if pos >= count - peaks else "onset"
        if role not in KEEPS[frames]:
            continue
        label = "neutral" if role == "neutral" and seq.label else seq.label
        stem = path.stem if path.stem.startswith(f"{seq.id}_") else f"{seq.id}_{path.stem}"
        items.append({
            "sample_id": _UNSAFE.sub("-", stem), **base, "frame": pos + 1, "role": role,
            "label": label, "label_code": CANONICAL.index(label) if label else None,
            "sequence_label": seq.label, "source_path": str(path.absolute()), "status": "ok",
            "message": "",
        })
    return items


def _loose(path: Path, root: Path) -> dict[str, Any]:
    """A file that is no frame: stray (no image), or an image outside the sequence folders;
    its id is its path under the root."""
    status, message = (("stray", f"{path}: not an image: skipped") if is_stray(path) else
                       ("misplaced", f"{path}: an image outside the sequence folders "
                        "(<subject>/<sequence>/*.png): skipped"))
    return _problem(path.relative_to(root).as_posix(), None, status, message, path)


def _problem(sample_id: str, subject: str | None, status: str, message: str, where: Path
             ) -> dict[str, Any]:
    """A row the reader cannot use: a sequence, a CSV line or a file."""
    return {"sample_id": sample_id, "dataset": "sequences", "subject": subject,
            "sequence": sample_id, "frame": None, "role": None, "label": None,
            "label_code": None, "sequence_label": None, "source_path": str(where.absolute()),
            "status": status, "message": message}


def _unique(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The items with `~N` after the rare id already taken (sanitised names can meet)."""
    taken: set[str] = set()
    for item in items:
        base, n = item["sample_id"], 1
        while item["sample_id"] in taken:
            n += 1
            item["sample_id"] = f"{base}~{n}"
        taken.add(item["sample_id"])
    return items


# --- the embedded sample ---------------------------------------------------------------------


def write_sequences_sample(out: Path) -> Path:
    """Write a lab-recording look-alike under ``out/sequences`` and return that root: every
    sequence of the CK+ sample as ``<subject>/<sequence>/<n>.png`` (frames numbered from 1,
    unpadded, so only the natural sort orders them) and ``labels.csv`` (subject,sequence,label,
    the labels by their common names) for the sequences CK+'s sample labels. Re-running writes
    the same bytes."""
    import shutil
    import tempfile

    from fer_prep.datasets.ckplus import read_ckplus
    from fer_prep.sample import write_ckplus_sample

    root = Path(out) / "sequences"
    common = {"happiness": "happy", "sadness": "sad", "surprise": "surprised"}
    with tempfile.TemporaryDirectory() as tmp:
        ck = write_ckplus_sample(Path(tmp))
        labels = {(i["subject"], i["sequence"]): i["sequence_label"]
                  for i in read_ckplus(ck, "peak", include_unlabelled=True)}
        lines = ["subject,sequence,label"]
        for (subject, sequence), label in sorted(labels.items()):
            take = sequence.removeprefix(f"{subject}_")
            folder = root / subject / take
            folder.mkdir(parents=True, exist_ok=True)
            frames = sorted((ck / "cohn-kanade-images" / subject / take).glob("*.png"))
            for n, frame in enumerate(frames, start=1):
                shutil.copyfile(frame, folder / f"{n}.png")
            if label is not None:
                lines.append(f"{subject},{take},{common.get(label, label)}")
    (root / LABELS).write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")
    return root
