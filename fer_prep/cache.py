"""What makes a stage cacheable: fingerprints, atomic writes, the stage record and its lock.

A stage folder holds `stage.json` (the record), `manifest.parquet` (+ `manifest.csv`), its output
files and `whole.json`: every output file's size, mtime and content hash, itself sized and hashed
in the record, so that a truncated or changed output is told from a whole one (`check_whole`).
The record's fingerprint covers the stage version, its parameters, the package version and the
hashes of the model files (DVC's stage hash); what cannot change a result — worker count,
verbosity — is left out (joblib.Memory's `ignore=`). Every file is written under a temporary name
and renamed into place, so a killed run leaves nothing half-written that a later run would trust.
Standard library only: the no-op check of a finished stage runs on this module alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fer_prep import __version__
from fer_prep.errors import ENVIRONMENT_ERRNOS, LockedError, StageNotReady, output_error

RECORD = "stage.json"
WHOLE = "whole.json"  # every output file of the stage: size, mtime, content hash
TMP_MARK = ".tmp-"
BEGIN_LOCK = ".begin.lock"  # shards open a run's record one at a time (`begin_lock`)


def digest(obj: Any) -> str:
    """Stable short hash of a JSON-able object."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_plain)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _plain(value: Any) -> Any:
    """A numpy array (AffectNet's landmarks) as its full list: str() would abbreviate it."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


def file_hash(path: str | Path) -> str:
    """Content hash of a file."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def stat_key(path: str | Path) -> list[int]:
    """Size, mtime and inode: the fast check that a file is the one hashed before."""
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ino]


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temp sibling of `path` (same suffix) to write; renamed into place on success.

    A full disk, a read-only folder or a permission error while writing is the place's fault,
    not the item's: it raises `WorkError`, which stops the run (the resume redoes the item).
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}{TMP_MARK}{os.getpid()}{path.suffix}")
    except OSError as exc:
        if exc.errno in ENVIRONMENT_ERRNOS:
            raise output_error(path, exc) from exc
        raise
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        if exc.errno in ENVIRONMENT_ERRNOS:
            raise output_error(path, exc) from exc
        raise
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def remove_temporaries(folder: Path) -> int:
    """Delete temporary files and folders a killed run left behind; return how many. One whose
    writer is alive (its pid is in the name: another shard's run, its workers) is left."""
    leftovers = [tmp for tmp in sorted(folder.rglob(f".*{TMP_MARK}*"))
                 if not _alive(_writer(tmp.name))]
    for tmp in leftovers:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
    return len(leftovers)


def _writer(name: str) -> int | None:
    """The pid a temporary's name holds (`.chip.tmp-1234.png`), if any."""
    digits = name.partition(TMP_MARK)[2].split(".")[0]
    return int(digits) if digits.isdigit() else None


def _alive(pid: int | None) -> bool:
    """Whether `pid` is a running process other than this one (which is not writing now)."""
    if pid is None or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_record(stage_dir: Path) -> dict[str, Any] | None:
    path = stage_dir / RECORD
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def write_record(stage_dir: Path, record: dict[str, Any]) -> None:
    write_text_atomic(stage_dir / RECORD, json.dumps(record, indent=2, sort_keys=True) + "\n")


def model_hashes(models: list[Path], known: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """{file name: {hash, stat}} of the model files; a hash in `known` (an earlier record's) is
    reused while the file's size, mtime and inode are unchanged (dlib's 68-point model is 99 MB)."""
    known = known or {}
    out = {}
    for path in models:
        stat = stat_key(path)
        old = known.get(Path(path).name)
        reuse = isinstance(old, dict) and old.get("stat") == stat
        out[Path(path).name] = {"hash": old["hash"] if reuse else file_hash(path), "stat": stat}
    return out


def stage_fingerprint(stage: str, version: int, params: dict[str, Any],
                      models: dict[str, dict[str, Any]]) -> str:
    """The stage's fingerprint: version, package version, parameters and model contents."""
    return digest([stage, version, __version__, params,
                   {name: m["hash"] for name, m in models.items()}])


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


def _outputs(folder: Path) -> list[str]:
    """Every output file under `folder`, relative: all but the record, `whole.json` and the
    dot-names (a run's saved batches, temporaries)."""
    out = []
    for parent, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel = os.path.relpath(parent, folder)
        out += [f if rel == "." else os.path.join(rel, f) for f in files
                if not f.startswith(".") and not (rel == "." and f in (RECORD, WHOLE))]
    return sorted(out)


Table = dict[str, list[Any]]  # whole.json: columns path, size, mtime, hash


def write_whole(folder: Path, known: Table | None = None) -> dict[str, Any]:
    """Hash every output file of `folder` into `whole.json` (a hash of `known` is reused while
    the file's size and mtime are unchanged); its size and hash, for the record."""
    old = {p: (s, m, h) for p, s, m, h in _rows(known)}
    table: Table = {"path": [], "size": [], "mtime": [], "hash": []}
    for rel in _outputs(folder):
        st = os.stat(folder / rel)
        size, mtime, content = old.get(rel, (None, None, None))
        if (size, mtime) != (st.st_size, st.st_mtime_ns):
            content = file_hash(folder / rel)
        for column, value in zip(table, (rel, st.st_size, st.st_mtime_ns, content), strict=True):
            table[column].append(value)
    data = json.dumps(table, separators=(",", ":")).encode()
    with atomic_path(folder / WHOLE) as tmp:
        tmp.write_bytes(data)
    return {"size": len(data), "hash": hashlib.blake2b(data, digest_size=16).hexdigest()}


def _rows(table: Table | None) -> Iterator[tuple[str, int, int, str]]:
    if table:
        yield from zip(table["path"], table["size"], table["mtime"], table["hash"], strict=True)


@dataclass
class Whole:
    """What `check_whole` found: the damaged outputs (relative path → why), and the table with
    the stats of the files found whole after a hash (a copied folder: new mtimes)."""

    damaged: dict[str, str]
    table: Table | None
    rehashed: bool = False  # some file's stat changed and its content did not

    @property
    def ok(self) -> bool:
        return not self.damaged

    def say(self, folder: Path) -> str:
        """The first damaged file and why, and how many more, in a few words."""
        rel, why = next(iter(self.damaged.items()))
        more = f" (and {len(self.damaged) - 1} more)" if len(self.damaged) > 1 else ""
        return f"{folder / rel}: {why}{more}"


def check_whole(folder: Path, record: dict[str, Any]) -> Whole:
    """Whether every output the record's `whole.json` lists is the file written: same size, and
    same content where the mtime changed. A record from before whole.json is taken as whole."""
    entry = record.get("whole")
    if not isinstance(entry, dict):
        return Whole({}, None)
    try:
        data = (folder / WHOLE).read_bytes()
    except OSError:
        return Whole({WHOLE: "missing"}, None)
    if (len(data) != entry.get("size")
            or hashlib.blake2b(data, digest_size=16).hexdigest() != entry.get("hash")):
        return Whole({WHOLE: f"not the list of outputs written ({len(data):,} bytes)"}, None)
    table: Table = json.loads(data)
    damaged, rehashed = {}, False
    for i, (rel, size, mtime, content) in enumerate(_rows(table)):
        try:
            st = os.stat(folder / rel)
        except OSError:
            damaged[rel] = "missing"
            continue
        if st.st_size != size:
            damaged[rel] = f"not whole ({st.st_size:,} bytes, written as {size:,})"
        elif st.st_mtime_ns != mtime:
            if file_hash(folder / rel) != content:
                damaged[rel] = "changed since it was written"
            else:
                table["mtime"][i], rehashed = st.st_mtime_ns, True
    return Whole(damaged, table, rehashed)


def ready_record(folder: Path, remedy: str) -> dict[str, Any]:
    """The record of the complete, up-to-date and whole stage in `folder`; StageNotReady naming
    the folder (or its damaged file) and `remedy` (the command that fixes it) otherwise."""
    record = read_record(folder)
    if record is None and (folder / RECORD).is_file():
        raise StageNotReady(f"{folder / RECORD}: not a stage record (not JSON); {remedy}")
    if record is None or not record.get("complete"):
        raise StageNotReady(f"{folder}: the {folder.name} stage has not completed; {remedy}")
    if record.get("stale"):
        raise StageNotReady(f"{folder}: stale, a stage it reads changed after it ran; {remedy}")
    whole = check_whole(folder, record)
    if not whole.ok:
        raise StageNotReady(f"{whole.say(folder)}; {remedy}")
    return record


@contextlib.contextmanager
def stage_lock(folder: Path, shared: bool = False) -> Iterator[None]:
    """Hold `folder`'s lock (an advisory flock on the folder itself) while a run writes it.

    A second run on the same folder stops at once with `LockedError` naming the holder's pid;
    `shared` (the shards of one run, `--shard`) lets runs that share it in together, and keeps
    out a run that wants it alone. The kernel releases the lock when its holder dies, so a
    killed run never leaves it behind, and taking it writes nothing (a no-op re-run leaves every
    mtime as it was).
    """
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockedError(f"{folder} is being written by another fer-prep run "
                              f"({_holder(os.fstat(fd).st_ino)}); wait for it to finish, or "
                              "stop it") from None
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def begin_lock(folder: Path) -> Iterator[None]:
    """Hold, for a moment, the lock shards take to open a run's record one at a time (a lock
    file `.begin.lock` in `folder`, which `_clear` keeps)."""
    fd = os.open(folder / BEGIN_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def holders(folder: Path) -> list[str]:
    """The command lines of the processes holding `folder`'s lock (Linux's /proc/locks)."""
    try:
        inode = os.stat(folder).st_ino
    except OSError:
        return []
    return [command for _, command in _flock_holders(inode) if command]


def _holder(inode: int) -> str:
    """The process holding a flock on `inode`, in words."""
    for pid, command in _flock_holders(inode):
        return f"pid {pid}: {command[:120]}" if command else f"pid {pid}"
    return "another process"


def _flock_holders(inode: int) -> list[tuple[str, str]]:
    """(pid, command line, "" where unreadable) of each flock on `inode`, from /proc/locks."""
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        fields = line.split()
        if len(fields) > 5 and fields[1] == "FLOCK" and fields[5].endswith(f":{inode}"):
            command = ""
            with contextlib.suppress(OSError):
                argv = Path(f"/proc/{fields[4]}/cmdline").read_bytes().split(b"\0")
                command = " ".join(a.decode(errors="replace") for a in argv if a)
            found.append((fields[4], command))
    return found
