"""Run a stage: skip what is done, fan the rest out with joblib, write the manifest last.

Items are rows of a DataFrame, one per source file (`source_path`: a frame, a video, …) with a
`fingerprint` of everything the result depends on and a `status` ("ok" or why the adapter could
not use it). A stage's `process(batch, ctx)` turns a batch of item dicts into manifest rows (one
or more per item), writing its files atomically; it runs in worker processes that keep their
models between batches. Results are saved per batch (`.parts/`), so a killed run
resumes where it stopped and ends with the same bytes as a run that was never interrupted.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import numpy as np
import pandas as pd
from joblib import Parallel, cpu_count, delayed
from tqdm import tqdm

from fer_prep import __version__
from fer_prep.cache import (
    atomic_path,
    digest,
    mark_downstream_stale,
    read_record,
    remove_temporaries,
    stage_fingerprint,
    write_record,
)
from fer_prep.manifest import PARQUET, read_manifest, write_manifest

PARTS = ".parts"


@dataclass
class StageSpec:
    """What identifies a stage run: where it writes and everything its results depend on."""

    dataset: str
    name: str
    version: int
    params: dict[str, Any]
    models: list[Path] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)  # upstream stage names
    outputs: tuple[str, ...] = ()  # result columns holding file paths to check before reuse
    columns: tuple[str, ...] = ()  # leading manifest columns, in order
    quiet: frozenset[str] = frozenset({"ok"})  # statuses not worth a warning line
    internal: tuple[str, ...] = ()  # item columns the workers need but the manifest leaves out
    integers: tuple[str, ...] = ()  # result columns that hold whole numbers (nullable)

    def folder(self, work: Path) -> Path:
        return Path(work) / self.dataset / self.name


@dataclass
class StageResult:
    folder: Path
    manifest: pd.DataFrame
    computed: int
    reused: int
    skipped: bool
    seconds: float

    def summary(self) -> str:
        counts = self.manifest["status"].value_counts().to_dict()
        by_status = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
        verb = "unchanged, skipped" if self.skipped else f"{self.computed} computed"
        return (
            f"{self.folder.parent.name} {self.folder.name}: "
            f"{len(self.manifest)} rows ({by_status}); "
            f"{verb}, {self.reused} reused, {self.seconds:.1f} s\n"
            f"  manifest: {self.folder / PARQUET} (+ manifest.csv)"
        )


def resolve_jobs(jobs: int | None) -> int:
    """`None` or 0 → all cores; negative counts back from all cores, as joblib does."""
    if not jobs:
        return cpu_count()
    return jobs if jobs > 0 else max(1, cpu_count() + 1 + jobs)


class Progress:
    """A tqdm bar on a terminal; otherwise a log line about every 10 % or 30 s."""

    def __init__(self, total: int, desc: str) -> None:
        self.total, self.desc, self.done = total, desc, 0
        self.start = self.last = time.monotonic()
        self.bar = tqdm(total=total, desc=desc, unit="item") if sys.stderr.isatty() else None
        self.next_mark = max(1, total // 10)

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.monotonic()
        if self.done >= self.next_mark or now - self.last > 30 or self.done == self.total:
            rate = self.done / max(now - self.start, 1e-9)
            eta = (self.total - self.done) / rate if rate else math.inf
            click.echo(
                f"{self.desc}: {self.done}/{self.total} ({rate:.1f} items/s, ETA {eta:.0f} s)",
                err=True,
            )
            self.last = now
            self.next_mark = self.done + max(1, self.total // 10)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _plain(value: Any) -> Any:
    """numpy arrays → flat lists of floats, so results store as Parquet list columns."""
    if isinstance(value, np.ndarray):
        return value.astype(np.float64).ravel().tolist()
    return value


def _save_part(parts: Path, rows: list[dict[str, Any]]) -> None:
    name = digest(sorted({r["source_path"] for r in rows}))
    with atomic_path(parts / f"{name}.parquet") as tmp:
        pd.DataFrame(rows).to_parquet(tmp)


def _batches(items: list[dict[str, Any]], jobs: int, batch_size: int | None) -> list[list]:
    size = batch_size or max(1, min(32, math.ceil(len(items) / (4 * jobs))))
    return [items[i : i + size] for i in range(0, len(items), size)]


def run_stage(
    spec: StageSpec,
    items: pd.DataFrame,
    process: Callable[[list[dict[str, Any]], dict[str, Any]], list[dict[str, Any]]],
    work: Path,
    jobs: int | None = None,
    force: bool = False,
    batch_size: int | None = None,
) -> StageResult:
    """Bring `spec`'s folder up to date with `items`; see the module docstring.

    An item is keyed by its `source_path` (one source file: a frame, a video, …) and its
    `fingerprint`; `process` turns a batch of items into manifest rows, one or more per item,
    each carrying its item's `source_path`. Items whose `status` is not `ok` pass through as rows.
    """
    started = time.monotonic()
    twice = items["source_path"][items["source_path"].duplicated()].unique()
    if len(twice):
        raise ValueError(f"{len(twice)} source files are listed twice, e.g. {twice[0]}: "
                         "each item of a stage must have its own source file")
    folder = spec.folder(work)
    fp, model_hashes = stage_fingerprint(spec.name, spec.version, spec.params, spec.models)
    input_fp = digest(items.astype(str).to_dict("list"))
    record = read_record(folder)
    manifest_path = folder / PARQUET

    up_to_date = (
        not force and record and record["complete"] and record["fingerprint"] == fp
        and record["input_fingerprint"] == input_fp and manifest_path.is_file()
    )
    if up_to_date:
        manifest = read_manifest(folder)
        if _outputs_exist(manifest, folder, spec.outputs):
            return StageResult(folder, manifest, 0, 0, True, time.monotonic() - started)

    fresh = force or record is None or record["fingerprint"] != fp
    if fresh and folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    remove_temporaries(folder)

    results = {} if fresh else _reusable(folder, items, spec.outputs)
    reused = len(results)
    old = read_manifest(folder) if manifest_path.is_file() else None
    base = {
        "stage": spec.name, "version": spec.version, "package_version": __version__,
        "params": spec.params, "models": model_hashes, "fingerprint": fp,
        "inputs": spec.inputs, "input_fingerprint": input_fp,
    }
    write_record(folder, {**base, "complete": False})

    usable = items[items["status"] == "ok"]
    todo = [r for r in usable.to_dict("records") if r["source_path"] not in results]
    fps = dict(zip(items["source_path"], items["fingerprint"], strict=True))
    if todo:
        n_jobs = min(resolve_jobs(jobs), len(todo))
        ctx = {"folder": str(folder), **spec.params}
        progress = Progress(len(todo), f"{spec.dataset} {spec.name}")
        run = Parallel(n_jobs=n_jobs, return_as="generator_unordered")
        try:
            for rows in run(delayed(process)(b, ctx) for b in _batches(todo, n_jobs, batch_size)):
                rows = [{**{k: _plain(v) for k, v in r.items()},
                         "fingerprint": fps[r["source_path"]]} for r in rows]
                _save_part(folder / PARTS, rows)
                new = {}
                for row in rows:
                    new.setdefault(row["source_path"], []).append(row)
                    if row.get("status") not in spec.quiet and row.get("message"):
                        click.echo(f"warning: {row['message']}", err=True)
                results.update(new)
                progress.update(len(new))
        finally:
            progress.close()

    manifest = _assemble(items, results, spec.columns).drop(columns=list(spec.internal),
                                                            errors="ignore")
    for col in spec.integers:
        if col in manifest:
            manifest[col] = manifest[col].astype("Int64")
    for row in items[items["status"] != "ok"].itertuples():
        if getattr(row, "message", None):
            click.echo(f"warning: {row.message}", err=True)  # the adapter's own complaints
    if old is not None:
        _remove_orphans(old, manifest, folder, spec.outputs)
    write_manifest(manifest, folder)
    counts = {str(k): int(v) for k, v in manifest["status"].value_counts().sort_index().items()}
    write_record(folder, {**base, "complete": True, "counts": counts})
    shutil.rmtree(folder / PARTS, ignore_errors=True)
    mark_downstream_stale(folder.parent, spec.name)
    return StageResult(folder, manifest, len(todo), reused, False, time.monotonic() - started)


def _outputs_exist(df: pd.DataFrame, folder: Path, outputs: tuple[str, ...]) -> bool:
    return all((folder / p).is_file() for col in outputs if col in df for p in df[col].dropna())


def _reusable(
    folder: Path, items: pd.DataFrame, outputs: tuple[str, ...]
) -> dict[str, list[dict]]:
    """Rows of an earlier run, by item, where the item's fingerprint matches and files exist."""
    tables = [pd.read_parquet(p) for p in sorted((folder / PARTS).glob("*.parquet"))]
    if (folder / PARQUET).is_file():
        tables.insert(0, pd.read_parquet(folder / PARQUET))
    wanted = dict(zip(items["source_path"], items["fingerprint"], strict=True))
    done: dict[str, list[dict]] = {}
    for table in tables:
        if "fingerprint" not in table.columns:
            continue
        fresh: dict[str, list[dict]] = {}
        for row in table.to_dict("records"):
            if row["fingerprint"] and wanted.get(row["source_path"]) == row["fingerprint"]:
                fresh.setdefault(row["source_path"], []).append(row)
        done.update(fresh)  # a later table's rows for an item replace an earlier table's
    return {
        key: rows for key, rows in done.items()
        if all(not isinstance(r.get(c), str) or (folder / r[c]).is_file()
               for r in rows for c in outputs)
    }


def _assemble(
    items: pd.DataFrame, results: dict[str, list[dict]], leading: tuple[str, ...]
) -> pd.DataFrame:
    """Every item's rows in item order (an unprocessed item stands as itself)."""
    rows: list[dict[str, Any]] = []
    for item in items.to_dict("records"):
        rows.extend(results.get(item["source_path"], [{**item, "fingerprint": None}]))
    out = pd.DataFrame(rows)
    for col, dtype in items.dtypes.items():
        if str(dtype) == "Int64" and col in out:
            out[col] = out[col].astype("Int64")
    order = [c for c in leading if c in out.columns]
    return out[order + [c for c in out.columns if c not in order]]


def _remove_orphans(
    old: pd.DataFrame, new: pd.DataFrame, folder: Path, outputs: tuple[str, ...]
) -> None:
    """Delete files of the previous manifest that the new one no longer lists."""
    for col in outputs:
        if col in old.columns:
            keep = set(new[col].dropna()) if col in new.columns else set()
            for rel in set(old[col].dropna()) - keep:
                (folder / rel).unlink(missing_ok=True)
