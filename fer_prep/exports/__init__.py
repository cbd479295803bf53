"""Exports: the folds of one dataset (and their faces) in the layouts the seed papers' code reads.

`export(name, dataset, work, out)` is the whole job; the CLI calls it as a notebook would. Each
format lives in its own module, registered by name in `EXPORTS` and imported only when chosen:

- `fmpn`: FMPN-FER's `datasets/CKPlus` (flat `imgs/`, `imgs_res/`, `emotion_labels.pkl`, CSVs);
- `emotion-fan`: Emotion-FAN's `data/` (`face/…` folders per sequence or clip, `txt/` lists);
- `imagefolder`: `fold_K/{train,test}/<class>/…` for torchvision's ImageFolder (MA-Net);
- `landmark-driven`: grey images with a 136-line landmark file each, and `*_images.txt` /
  `*_labels.txt` lists (Landmark-Driven FER);
- `ferplus`, `diversified-fer`, `esr-affectnet`: FERPlus's, Diversified FER's and ESR's trees;
- `mafer`: MAFER's Oulu-CASIA folder (`<Expression>/…`, its database CSV, `mean.npy`);
- `hf`: a Hugging Face `DatasetDict` per fold (`save_to_disk`), for timm / transformers code.

The export is built in a temporary sibling of `out` and moved into place entry by entry at the
end, so a killed run leaves nothing half-written in `out`; a full disk while building it is one
`WorkError` line, the staging removed and the earlier export in `out` as it was. An `out` that
holds files this export did not write is refused unless `force`; then only the files the export
writes are replaced, and a user's file stays, beside ours or inside one of our folders.
A row whose face file is missing is reported by name and left out; the rest goes on.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fer_prep import __version__
from fer_prep.cache import TMP_MARK, digest, read_record, ready_record, write_text_atomic
from fer_prep.datasets import Dataset, get_dataset
from fer_prep.errors import ENVIRONMENT_ERRNOS, InputError, OptionError, output_error
from fer_prep.manifest import read_manifest
from fer_prep.registry import Registry

if TYPE_CHECKING:
    import pandas as pd

#: export name → "module:function", imported on first use
EXPORTS: Registry[str] = Registry("export format")
EXPORTS.add("fmpn", "fer_prep.exports.fmpn:write")
EXPORTS.add("emotion-fan", "fer_prep.exports.emotion_fan:write")
EXPORTS.add("imagefolder", "fer_prep.exports.imagefolder:write")
EXPORTS.add("landmark-driven", "fer_prep.exports.landmark_driven:write")
EXPORTS.add("ferplus", "fer_prep.exports.ferplus:write")
EXPORTS.add("diversified-fer", "fer_prep.exports.diversified_fer:write")
EXPORTS.add("esr-affectnet", "fer_prep.exports.esr_affectnet:write")
EXPORTS.add("mafer", "fer_prep.exports.mafer:write")
EXPORTS.add("hf", "fer_prep.exports.hf:write")

MARKER = "fer-prep-export.json"  # what an export wrote into `out`, so a re-export may replace it
HOW = ("link", "copy")


@dataclass
class Source:
    """What an exporter reads: one dataset's folds manifest and the faces it points to."""

    dataset: str
    work: Path
    rows: pd.DataFrame  # the folds manifest; `face`: absolute path of the chip, "" when none
    folds: list[int]  # fold numbers that have a test part, ascending
    record: dict[str, Any]  # the folds stage's stage.json
    info: Dataset  # the dataset object (its codes and class orders)

    @property
    def has_faces(self) -> bool:
        """False when the folds came from labels alone (e.g. the CK+ Emotion tree, no images)."""
        return bool(self.rows["face"].ne("").any())

    def usable(self) -> pd.DataFrame:
        """Rows in a fold's train or test part (status `ok`)."""
        return self.rows[self.rows["status"] == "ok"]

    def part(self, fold: int, which: str, rows: pd.DataFrame | None = None) -> pd.DataFrame:
        """The `test` rows of `fold`, or its `train` rows (every other one), of the usable rows
        or of `rows` (a subset of them)."""
        rows = self.usable() if rows is None else rows
        in_test = rows["fold"] == fold
        return rows[in_test] if which == "test" else rows[~in_test]

    def need_faces(self, export: str) -> None:
        """InputError when there is nothing to put in an image export."""
        if not self.has_faces:
            raise InputError(f"{export} export needs faces, but the {self.dataset} folds in "
                             f"{self.work} point to none (were they computed from labels alone? "
                             f"run `fer-prep {self.dataset} align`, then `fer-prep folds`)")

    def with_alignment(self, rows: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
        """`rows` with `columns` of the faces manifest (landmarks, matrix) joined by sample_id."""
        missing = [c for c in columns if c not in rows.columns]
        if not missing:
            return rows
        faces = read_manifest(self.work / self.dataset / "align")[["sample_id", *missing]]
        return rows.merge(faces, on="sample_id", how="left", validate="many_to_one")


class Staging:
    """The export's temporary folder: exporters place faces and write files here."""

    def __init__(self, root: Path, how: str, allow_empty: bool = False,
                 final: Path | None = None) -> None:
        if how not in HOW:
            raise OptionError(f"how must be one of {HOW}, not {how!r}")
        self.root, self.how, self.allow_empty = root, how, allow_empty
        self.final = final or root  # where the export is published (for absolute paths in it)
        self.placed: Counter[str] = Counter()  # faces by how they were placed
        self.counts: Counter[str] = Counter()  # what the exporter wants the summary to say
        self.skipped: list[str] = []  # one message per item left out, naming it
        self.notes: list[str] = []

    def path(self, rel: str) -> Path:
        target = self.root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def place(self, src: str | Path, rel: str) -> None:
        """A face at `rel`: a hard link, else a symbolic link, else a copy (`how="copy"`: copy)."""
        target = self.path(rel)
        if self.how == "link":
            try:
                os.link(src, target)
                self.placed["hard links"] += 1
                return
            except FileNotFoundError:
                raise
            except OSError:  # another filesystem, or one without hard links
                pass
            try:
                target.symlink_to(Path(src).resolve())
                self.placed["symbolic links"] += 1
                return
            except OSError:
                pass
        shutil.copyfile(src, target)
        self.placed["copies"] += 1

    def text(self, rel: str, text: str) -> None:
        """A text file written byte for byte (UTF-8, `\\n` line ends on every platform)."""
        self.path(rel).write_bytes(text.encode("utf-8"))

    def data(self, rel: str, data: bytes) -> None:
        self.path(rel).write_bytes(data)

    def skip(self, message: str) -> None:
        self.skipped.append(message)

    def loader_check(self, export: str, problems: list[str]) -> None:
        """What would crash the seed's loader (an empty test fold, a class without its mask):
        InputError naming each, unless `allow_empty`, when they become notes."""
        if not problems:
            return
        if not self.allow_empty:
            raise InputError(f"{export} export: " + "; ".join(problems) + " — the seed's loader "
                             "fails on these; --allow-empty writes the export anyway")
        self.notes += [f"{p} (written anyway: --allow-empty)" for p in problems]


@dataclass
class ExportResult:
    """What an export wrote, how, and what it left out (and why)."""

    name: str
    dataset: str
    out: Path
    counts: dict[str, int]
    placed: dict[str, int]
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        what = ", ".join(f"{n} {k}" for k, n in self.counts.items())
        if self.placed:
            what += "; placed as " + ", ".join(f"{n} {k}" for k, n in
                                                      sorted(self.placed.items()))
        lines = [f"export {self.name} {self.dataset}: {what}; {len(self.skipped)} skipped",
                 f"  out:      {self.out}"]
        lines += [f"  note:     {note}" for note in self.notes]
        return "\n".join(lines)


def load_source(dataset: str, work: str | Path) -> Source:
    """The folds of `dataset` under `work`, with each row's face file resolved; StageNotReady
    when the folds or the faces are not complete, fresh and whole."""
    work = Path(work)
    info = get_dataset(dataset, work)
    folder = work / dataset / "folds"
    if not (folder / "manifest.parquet").is_file():
        raise InputError(f"{folder}: no folds here; `fer-prep folds --dataset {dataset}` makes "
                         "them")
    record = ready_record(folder, f"run `fer-prep folds --dataset {dataset}`")
    if (work / dataset / "align").is_dir():  # folds from labels alone (CK+'s Emotion) have none
        ready_record(work / dataset / "align", f"run `fer-prep {dataset} align`")
    rows = read_manifest(folder)
    rows = rows.reset_index(drop=True)
    rows["fold"] = rows["fold"].astype(int)
    rel = rows["face_path"].fillna("").astype(str)
    faces = work / dataset / "align"
    rows["face"] = [str(faces / p) if p else "" for p in rel]
    n_folds = record.get("n_folds")
    folds = list(range(n_folds)) if n_folds else sorted(set(rows["fold"]) - {-1})
    return Source(dataset, work, rows, folds, record, info)


def _drop_missing_faces(source: Source, staging: Staging) -> Source:
    """`source` without the usable rows whose face file is not there, each named in `staging`."""
    if not source.has_faces:
        return source
    rows = source.rows
    usable = rows["status"] == "ok"
    no_face = usable & rows["face"].eq("")
    gone = usable & ~no_face & ~rows["face"].map(os.path.isfile)
    for row in rows[no_face].itertuples():
        staging.skip(f"{row.sample_id}: no face file in the folds manifest; left out")
    for row in rows[gone].itertuples():
        staging.skip(f"{row.sample_id}: face file {row.face} is missing; left out")
    return dataclasses.replace(source, rows=rows[~(no_face | gone)].reset_index(drop=True))


def _entries(folder: Path) -> set[str]:
    return set(os.listdir(folder)) if folder.is_dir() else set()


def _ours(out: Path, name: str, dataset: str) -> set[str]:
    """The top-level names an earlier export of the same format and dataset wrote into `out`."""
    try:
        marker = json.loads((out / MARKER).read_text(encoding="utf-8"))
        same = (marker["format"], marker["dataset"]) == (name, dataset)
        return set(marker["entries"]) if same else set()
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def _remove_leftovers(out: Path) -> None:
    """Delete what a killed export left: its staging folder beside `out`, temporaries inside."""
    for leftover in [*out.parent.glob(f".{out.name}{TMP_MARK}*"), *out.glob(f".*{TMP_MARK}*")]:
        if _is_folder(leftover):
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def _check_out(out: Path, name: str, dataset: str, force: bool) -> None:
    """InputError when `out` holds files this export did not write before, unless `force`."""
    foreign = sorted(_entries(out) - _ours(out, name, dataset) - {MARKER})
    if foreign and not force:
        shown = ", ".join(foreign[:5]) + (", …" if len(foreign) > 5 else "")
        raise InputError(f"{out} already holds other files ({shown}); choose an empty "
                              "--out, or --force to write beside them (only the names this "
                              "export writes are replaced)")


def _publish(staging: Path, out: Path, marker: dict[str, Any]) -> None:
    """Move every file of `staging` into `out`, replacing same-named ones, and delete the files
    the earlier export of this format wrote that this one does not; nothing else in `out` (a
    user's own file beside ours, or inside one of our folders) is touched.

    The marker first lists the earlier export's files and the new ones, so a run killed while
    moving still owns every name it touched; it lists the new ones alone once all are moved.
    """
    out.mkdir(parents=True, exist_ok=True)
    new = {p.relative_to(staging).as_posix() for p in staging.rglob("*")
           if p.is_file() or p.is_symlink()}
    before = _our_files(out, marker["format"], marker["dataset"])
    entries = {rel.split("/")[0] for rel in new}
    # no key until every file is in place: a run killed while moving is not up to date
    write_text_atomic(out / MARKER, _marker_text({k: v for k, v in marker.items() if k != "key"},
                                                 new | before))
    for rel in sorted(new):
        target = out / rel
        if _is_folder(target):
            raise InputError(f"{target}: a folder where the export writes a file; move it away")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / rel, target)
    for rel in sorted(before - new - {MARKER}):
        gone = out / rel
        if gone.is_symlink() or gone.is_file():
            gone.unlink()
        for parent in gone.parents:  # folders the export emptied go too; a user's file stays
            if parent == out or not parent.is_dir() or any(parent.iterdir()):
                break
            parent.rmdir()
    write_text_atomic(out / MARKER, _marker_text(marker, new, entries))


def _key(name: str, dataset: str, work: Path, out: Path, how: str, allow_empty: bool,
         options: dict[str, Any]) -> str:
    """What an export's files and notes depend on: the format and its options, where it reads
    and writes, and the output fingerprints (and staleness) of the stages it reads."""
    records = {stage: read_record(work / dataset / stage) or {}
               for stage in ("align", "folds", "masks")}
    stages = {stage: [r.get("output_fingerprint"), r.get("stale")] for stage, r in records.items()}
    return digest([name, dataset, str(work.resolve()), str(out.resolve()), how, allow_empty,
                   options, stages, __version__])


def _unchanged(out: Path, name: str, dataset: str, key: str) -> ExportResult | None:
    """The result of the earlier export in `out` when it was made with `key` and every file it
    wrote is still there (a second run does nothing); None otherwise."""
    try:
        marker = json.loads((out / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("key") != key or \
            (marker.get("format"), marker.get("dataset")) != (name, dataset):
        return None
    if not all(os.path.lexists(out / rel) for rel in marker.get("files", [])):
        return None
    return ExportResult(name, dataset, out, marker["counts"], marker["placed"],
                        marker["skipped"], [*marker.get("notes", []),
                                            "unchanged since the last export; skipped"])


def _our_files(out: Path, name: str, dataset: str) -> set[str]:
    """The files an earlier export of the same format and dataset wrote into `out`."""
    try:
        marker = json.loads((out / MARKER).read_text(encoding="utf-8"))
        same = (marker["format"], marker["dataset"]) == (name, dataset)
        return set(marker.get("files", [])) if same else set()
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def _marker_text(marker: dict[str, Any], files: set[str], entries: set[str] | None = None
                 ) -> str:
    tops = {rel.split("/")[0] for rel in files} if entries is None else entries
    return json.dumps({**marker, "entries": sorted(tops), "files": sorted(files)},
                      indent=2) + "\n"


def _is_folder(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def exporter(name: str) -> Callable[..., None]:
    """The write function of the export format `name`, imported now (and only now)."""
    module, func = EXPORTS.get(name).split(":")
    return getattr(importlib.import_module(module), func)


def export(
    name: str,
    dataset: str,
    work: str | Path,
    out: str | Path,
    how: str = "link",
    force: bool = False,
    allow_empty: bool = False,
    **options: Any,
) -> ExportResult:
    """Write the folds of `dataset` under `work` into `out` in the export format `name`.

    `how`: `link` places faces as hard links (symbolic links where hard links fail, copies
    where both fail), `copy` copies them. `allow_empty`: write what the seed's loader would
    fail on (an empty test fold, a test class without its mask) instead of refusing. `options`
    go to the format (landmark-driven: `size`).
    """
    write = exporter(name)
    out = Path(out)
    _remove_leftovers(out)
    _check_out(out, name, dataset, force)
    key = _key(name, dataset, Path(work), out, how, allow_empty, options)
    if not force and (done := _unchanged(out, name, dataset, key)) is not None:
        return done
    source = load_source(dataset, work)
    root = out.parent / f".{out.name}{TMP_MARK}{os.getpid()}"
    try:
        root.mkdir(parents=True)
        staging = Staging(root, how, allow_empty, out.absolute())
        source = _drop_missing_faces(source, staging)
        write(source, staging, **options)
        result = ExportResult(name, dataset, out, dict(staging.counts), dict(staging.placed),
                              staging.skipped, staging.notes)
        _check_out(out, name, dataset, force)  # nothing foreign appeared meanwhile
        _publish(root, out, {"format": name, "dataset": dataset,
                             "work": str(Path(work).resolve()),
                             "folds": source.folds, "counts": result.counts,
                             "placed": result.placed, "skipped": result.skipped,
                             "notes": result.notes, "key": key})
    except OSError as exc:  # a full disk, a read-only folder: one line, nothing half-published
        if exc.errno in ENVIRONMENT_ERRNOS:
            raise output_error(out, exc) from None
        raise
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return result
