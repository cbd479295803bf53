"""What makes a stage cacheable: fingerprints, atomic writes and the stage record.

A stage folder holds `stage.json` (the record), `manifest.parquet` (+ `manifest.csv`) and its output
files. The record's fingerprint covers the stage version, its parameters, the package version and
the hashes of the model files (DVC's stage hash); what cannot change a result — worker count,
verbosity — is left out (joblib.Memory's `ignore=`). Every file is written under a temporary name
and renamed into place, so a killed run leaves nothing half-written that a later run would trust.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from fer_prep import __version__

RECORD = "stage.json"
TMP_MARK = ".tmp-"


def digest(obj: Any) -> str:
    """Stable short hash of a JSON-able object."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


@cache
def _file_hash(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_hash(path: str | Path) -> str:
    """Content hash of a file (memoised per size and mtime within a process)."""
    st = os.stat(path)
    return _file_hash(str(path), st.st_size, st.st_mtime_ns)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temp sibling of `path` (same suffix) to write; renamed into place on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}{TMP_MARK}{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def remove_temporaries(folder: Path) -> int:
    """Delete temporary files and folders a killed run left behind; return how many."""
    leftovers = sorted(folder.rglob(f".*{TMP_MARK}*"))
    for tmp in leftovers:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
    return len(leftovers)


def read_record(stage_dir: Path) -> dict[str, Any] | None:
    path = stage_dir / RECORD
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None


def write_record(stage_dir: Path, record: dict[str, Any]) -> None:
    write_text_atomic(stage_dir / RECORD, json.dumps(record, indent=2, sort_keys=True) + "\n")


def stage_fingerprint(
    stage: str, version: int, params: dict[str, Any], models: list[Path]
) -> tuple[str, dict[str, str]]:
    """The stage's fingerprint and the model-file hashes it covers."""
    model_hashes = {Path(m).name: file_hash(m) for m in models}
    fp = digest([stage, version, __version__, params, model_hashes])
    return fp, model_hashes


def is_current(record: dict[str, Any] | None, fp: str, input_fp: str) -> bool:
    """Whether a stage record is complete, not stale, and made with these parameters and input."""
    return bool(record and record.get("complete") and not record.get("stale")
                and record.get("fingerprint") == fp and record.get("input_fingerprint") == input_fp)


def mark_downstream_stale(dataset_dir: Path, stage: str) -> list[str]:
    """Flag every stage of this dataset that reads `stage` as stale; return their names."""
    flagged = []
    for record_path in sorted(dataset_dir.glob(f"*/{RECORD}")):
        record = read_record(record_path.parent)
        if record and stage in record.get("inputs", []) and not record.get("stale"):
            record["stale"] = True
            write_record(record_path.parent, record)
            flagged.append(record_path.parent.name)
    return flagged


class StageNotReady(ValueError):
    """A stage another one reads has not completed, or is stale."""


def ready_record(folder: Path, remedy: str) -> dict[str, Any]:
    """The record of the complete, up-to-date stage in `folder`; StageNotReady naming the folder
    and `remedy` (the command that fixes it) otherwise."""
    record = read_record(folder)
    if record is None or not record.get("complete"):
        raise StageNotReady(f"{folder}: the {folder.name} stage has not completed; {remedy}")
    if record.get("stale"):
        raise StageNotReady(f"{folder}: stale, a stage it reads changed after it ran; {remedy}")
    return record
