"""The folds stage: faces (or CK+'s labels alone) → the fold of every row, and per fold the lists.

    WORK/<dataset>/folds/
      stage.json                     params (scheme, k, seed, split), n_folds, fingerprints, counts
      manifest.parquet, manifest.csv one row per input row, `fold` = the fold whose test part
                                     holds it (−1: none), `status` ok / excluded, `message` why
      fold_<K>/train.csv, test.csv   the ok rows of each part: sample_id, subject, sequence,
                                     frame, label, face_path (relative to WORK/<dataset>/align/)

`folds(...)` is the whole stage; the CLI calls it as a notebook would. The schemes are in
`fer_prep.folds`; this module reads, caches and writes.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fer_prep import __version__
from fer_prep.adapters.ckplus import read_ckplus_labels
from fer_prep.cache import (
    atomic_path,
    digest,
    is_current,
    mark_downstream_stale,
    read_record,
    stage_fingerprint,
    write_record,
)
from fer_prep.folds import SCHEMES, Options, assign
from fer_prep.manifest import PARQUET, read_manifest, write_manifest
from manifests import list_splits, read_split, split_path

VERSION = 1
STAGE = "folds"
INPUT = "align"
#: the folds manifest, in order (see manifests/folds.schema.csv)
COLUMNS = (
    "sample_id", "dataset", "subject", "sequence", "frame", "role", "label", "label_code",
    "sequence_label", "split", "face_path", "fold", "status", "message",
)
#: the columns of fold_<K>/train.csv and test.csv
LIST_COLUMNS = ("sample_id", "subject", "sequence", "frame", "label", "face_path")


@dataclass
class FoldsResult:
    folder: Path
    manifest: pd.DataFrame
    n_folds: int
    skipped: bool
    seconds: float

    def summary(self) -> str:
        ok = self.manifest[self.manifest["status"] == "ok"]
        sizes = " ".join(str((ok["fold"] == k).sum()) for k in range(self.n_folds))
        verb = "unchanged, skipped" if self.skipped else "written"
        return (f"{self.folder.parent.name} folds: {self.n_folds} fold(s), {len(ok)} rows ok, "
                f"{len(self.manifest) - len(ok)} excluded; test rows per fold: {sizes}; {verb}, "
                f"{self.seconds:.1f} s\n  manifest: {self.folder / PARQUET} (+ manifest.csv)")


def resolve_split(split: str | Path) -> tuple[Path, str]:
    """(file, name) of a split: a user's CSV (named by its path) or a shipped one by name."""
    path = Path(split).expanduser()
    if path.is_file():
        return path.resolve(), str(path.resolve())
    if str(split) in list_splits():
        return split_path(str(split)), str(split)
    raise FileNotFoundError(f"{split}: neither a split file nor a shipped split "
                            f"({', '.join(list_splits())})")


def read_input(dataset: str, work: Path, root: str | Path | None) -> tuple[pd.DataFrame, list[str]]:
    """The rows to place and the stages they come from: the align manifest, or CK+'s labels."""
    if root is None:
        try:
            return read_manifest(work / dataset / INPUT), [INPUT]
        except FileNotFoundError as exc:
            hint = " (or give the CK+ root to use its labels alone)" if dataset == "ckplus" else ""
            raise FileNotFoundError(f"{exc}: `fer-prep {dataset} align` makes it{hint}") from None
    if dataset != "ckplus":
        raise ValueError(f"a root without faces works for CK+ only (its Emotion/ labels), not "
                         f"{dataset}: run `fer-prep {dataset} align` and drop --root")
    return read_ckplus_labels(root), []


def _typed(table: pd.DataFrame) -> pd.DataFrame:
    """The folds manifest's column types (as Parquet gives them back): text, or whole numbers."""
    types = {"frame": "Int64", "label_code": "Int64", "fold": "int64"}
    return table.astype({c: types.get(c, "str") for c in table.columns})


def _contract(rows: pd.DataFrame) -> pd.DataFrame:
    """The input columns the folds manifest carries, missing ones empty."""
    table = rows.reindex(columns=[c for c in COLUMNS if c != "fold"])
    for col in ("face_path", "message"):
        table[col] = table[col].fillna("")
    return _typed(table)


def folds(
    dataset: str,
    work: str | Path,
    scheme: str = "subject-kfold",
    k: int = 10,
    seed: int = 0,
    root: str | Path | None = None,
    split_file: str | Path | None = None,
    force: bool = False,
) -> FoldsResult:
    """Place every row of `WORK/<dataset>/align/manifest.parquet` (or, for CK+ with `root`, of
    its Emotion/ label tree) in a fold by `scheme`; write `WORK/<dataset>/folds/`.

    `split_file`: for scheme `file`, a shipped split's name or a CSV (format in `manifests`).
    Same inputs and parameters as the last run: nothing is written. Raises KeyError for an
    unknown scheme, FileNotFoundError for a missing input or split, ValueError (FoldError,
    SplitFileError) when the folds cannot be made, each naming the problem.
    """
    started = time.monotonic()
    work = Path(work)
    chosen = SCHEMES.get(scheme)
    if (split_file is None) == (scheme == "file"):
        raise ValueError("a split file goes with scheme 'file', and only with it")
    split, split_name = resolve_split(split_file) if split_file is not None else (None, None)
    rows, inputs = read_input(dataset, work, root)
    rows = _contract(rows)
    params = {"scheme": scheme, "k": k if chosen.k_folds else None,
              "seed": seed if chosen.seeded else None, "split": split_name}
    fp, split_hash = stage_fingerprint(STAGE, VERSION, params, [split] if split else [])
    input_fp = digest(rows.astype(str).to_dict("list"))
    folder = work / dataset / STAGE
    record = read_record(folder)
    if not force and _up_to_date(record, fp, input_fp, folder):
        return FoldsResult(folder, read_manifest(folder), record["n_folds"], True,
                           time.monotonic() - started)

    table = read_split(split) if split else None
    opts = Options(dataset, k, seed, table, split_name or "")
    placed = _typed(assign(rows, scheme, opts)[list(COLUMNS)])  # fails before writing anything
    n_folds = k if chosen.k_folds else (int(table["fold"].max()) + 1 if table is not None else 1)
    base = {"stage": STAGE, "version": VERSION, "package_version": __version__, "params": params,
            "models": split_hash, "fingerprint": fp, "inputs": inputs,
            "input_fingerprint": input_fp, "n_folds": n_folds}
    if folder.exists():
        shutil.rmtree(folder)
    write_record(folder, {**base, "complete": False})
    ok = placed[placed["status"] == "ok"].sort_values("sample_id")
    for fold in range(n_folds):
        for part, members in (("train", ok[ok["fold"] != fold]), ("test", ok[ok["fold"] == fold])):
            with atomic_path(folder / f"fold_{fold}" / f"{part}.csv") as tmp:
                members[list(LIST_COLUMNS)].to_csv(tmp, index=False)
    write_manifest(placed, folder)
    counts = {str(s): int(n) for s, n in placed["status"].value_counts().sort_index().items()}
    write_record(folder, {**base, "complete": True, "counts": counts})
    mark_downstream_stale(folder.parent, STAGE)
    return FoldsResult(folder, placed, n_folds, False, time.monotonic() - started)


def _up_to_date(record: dict | None, fp: str, input_fp: str, folder: Path) -> bool:
    if not is_current(record, fp, input_fp):
        return False
    lists = [folder / f"fold_{k}" / f"{p}.csv" for k in range(record["n_folds"])
             for p in ("train", "test")]
    return (folder / PARQUET).is_file() and all(p.is_file() for p in lists)


def read_folds(work: str | Path, dataset: str) -> pd.DataFrame:
    """The folds manifest of `dataset` under `work` (one row per input row, with `fold`)."""
    return read_manifest(Path(work) / dataset / STAGE)
