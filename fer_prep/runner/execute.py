"""The content step of a stage run (see `fer_prep.runner`): fingerprints, the parallel map with
per-batch parts for resume, the reduce, orphan removal, the schema check, the record.

Items are the rows of a table, one per source item, keyed by `sample_id`, with a `fingerprint`
of everything its result depends on besides the parameters and a `status` ("ok" or why it cannot
be used). The stage's map turns a batch of ok items into manifest rows (one or more per item,
each carrying its item's id in the stage's `key` column) and writes their files atomically; it
runs in joblib worker processes that keep their models between batches and exit when the run's
process dies. Results are saved per batch (`.parts/`), so a killed run resumes where it stopped
and ends with the same bytes as a run that was never interrupted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fer_prep import __version__
from fer_prep.cache import (
    BEGIN_LOCK,
    Whole,
    atomic_path,
    begin_lock,
    check_whole,
    digest,
    mark_downstream_stale,
    read_record,
    remove_temporaries,
    stage_fingerprint,
    write_record,
    write_text_atomic,
    write_whole,
)
from fer_prep.datasets import Dataset
from fer_prep.errors import InputError
from fer_prep.manifest import check_schema, read_table, write_manifest, write_table
from fer_prep.runner.cluster import Cluster
from fer_prep.runner.result import PARQUET, PART, PARTS, ROWS, Progress, StageResult, result
from fer_prep.runner.shard import Shard, item_key
from fer_prep.runner.workers import Workers, work
from fer_prep.stages import Job, Stage
from fer_prep.stages.base import SOURCES, Context

log = logging.getLogger("fer_prep")


def _plain(value: Any) -> Any:
    """numpy arrays → flat lists of floats, so results store as Parquet list columns."""
    if isinstance(value, np.ndarray):
        return value.astype(np.float64).ravel().tolist()
    return value


def _batches(items: list[dict[str, Any]], jobs: int, size: int | None,
             group: str | None = None) -> list[list]:
    """The items in batches of `size` (None: about four a worker, at most 32), cut only between
    groups (items with equal `group` values, taken in order of first appearance; an item whose
    value is null is a group of its own): a group larger than `size` is one batch."""
    size = size or max(1, min(32, math.ceil(len(items) / (4 * jobs))))
    if group is None:
        return [items[i : i + size] for i in range(0, len(items), size)]
    groups: dict[Any, list[dict[str, Any]]] = {}
    for item in items:
        value = item.get(group)
        groups.setdefault(object() if value is None or pd.isna(value) else value,
                          []).append(item)
    batches: list[list] = []
    for members in groups.values():
        if batches and len(batches[-1]) + len(members) <= size:
            batches[-1].extend(members)
        else:
            batches.append(list(members))
    return batches


def _has_reduce(stage: Stage) -> bool:
    return type(stage).reduce is not Stage.reduce


def _check_unique(items: pd.DataFrame) -> None:
    twice = items["sample_id"][items["sample_id"].duplicated()].unique()
    if len(twice):
        raise InputError(f"{len(twice)} items share an id, e.g. {twice[0]}: each item of a "
                         "stage must have its own")


def execute(ctx: Context, params: Any, models: dict, fp: str, key: str,
            upstream: tuple[str, ...], jobs: int | None, force: bool,
            progress: Progress | None, started: float, cluster: Cluster | None = None,
            shard: Shard | None = None) -> StageResult:
    """Bring the stage folder up to date with its items (the runner's content step); with a
    `shard`, map its share of them and save their batches only."""
    with Workers(jobs, cluster) as workers:
        return _execute(ctx, params, models, fp, key, upstream, force, progress, started,
                        workers, shard)


def _execute(ctx: Context, params: Any, models: dict, fp: str, key: str,
             upstream: tuple[str, ...], force: bool, progress: Progress | None,
             started: float, workers: Workers, shard: Shard | None) -> StageResult:
    st, folder, record = ctx.stage, ctx.folder, ctx.record
    ctx.sources = {}
    items = st.items(ctx, params)
    _check_unique(items)
    up = {u: ctx.upstream_record(u).get("output_fingerprint") for u in upstream}
    input_fp = digest([up, st.extra_key(ctx, params),
                       items[["sample_id", "status", "fingerprint"]].astype(str).values.tolist()])
    map_fp = stage_fingerprint(st.name, st.version, st.map_params(params), models)
    reduce = _has_reduce(st)
    rows_file = folder / (ROWS if reduce else PARQUET)
    base = {
        "stage": st.name, "version": st.version, "package_version": __version__,
        "dataset": ctx.dataset.name, "params": params.record(), "models": models,
        "fingerprint": fp, "map_fingerprint": map_fp, "inputs": list(upstream),
        "root": str(ctx.root) if ctx.root else None, "options": asdict(ctx.options),
    }

    whole = check_whole(folder, record) if record else Whole({}, None)
    if (not force and record and record.get("complete") and record.get("fingerprint") == fp
            and record.get("input_fingerprint") == input_fp and whole.ok
            and rows_file.is_file() and (folder / PARQUET).is_file()):
        old = read_table(rows_file)
        if shard is not None:  # the stage is up to date: a shard has nothing to add
            return result(st, folder, record, 0, 0, True, started)
        if _outputs_exist(old, folder, st.outputs) and all(
                (folder / f).is_file() for f in record.get("files", [])):
            if not reduce:  # the same results; only where the sources now live may differ
                refreshed = _refresh(old, items, st.key)
                if refreshed is not None:
                    write_manifest(refreshed, folder)
            _write_sources(ctx)
            record = {**record, **base, "key": key, "stale": False,
                      "whole": write_whole(folder, whole.table)}
            write_record(folder, record)
            return result(st, folder, record, 0, len(items), True, started)

    fresh = force or record is None or record.get("map_fingerprint") != map_fp
    old_rows = None if fresh else _old_rows(rows_file, whole)
    results = {} if fresh else _reusable(folder, items, st, old_rows, set(whole.damaged))
    reused = len(results)
    begun = False

    def begin() -> None:
        """Before the first write: clear a run with other parameters, mark the record open (a
        shard: unless another shard opened it for these parameters first)."""
        nonlocal begun
        if begun:
            return
        begun = True
        with begin_lock(folder) if shard is not None else contextlib.nullcontext():
            now = read_record(folder) if shard is not None else record
            if shard is not None and now is not None and not now.get("complete") \
                    and now.get("map_fingerprint") == map_fp:
                return  # another shard of this run opened it
            if fresh:
                _clear(folder)
            remove_temporaries(folder)
            write_record(folder, {**base, "complete": False})

    ctx.begin = begin
    if type(st).map is not None:
        begin()

    usable = items[items["status"] == "ok"]
    mine = usable.to_dict("records")
    if shard is not None:
        mine = [r for r in mine if shard.mine(item_key(r, st.group))]
    todo = [r for r in mine if r["sample_id"] not in results]
    if todo and type(st).map is not None:
        _map(st, todo, params, folder, items, results, workers, progress, ctx.dataset)
        remove_temporaries(folder)  # a worker killed mid-write (its batch ran again elsewhere)
    if shard is not None:
        return _shard_result(st, folder, shard, mine, todo, results, started)
    complaints = ~items["status"].isin(["ok", *ctx.dataset.quiet])
    for message in dict.fromkeys(items.loc[complaints, "message"].dropna()):
        if message:
            log.warning(message)  # the dataset's own complaints, and unreadable sources, once

    rows = _assemble(items, results, st, ctx.dataset)
    reduced = st.reduce(ctx, params, rows) if reduce else None
    begin()
    manifest = rows if reduced is None else reduced.manifest
    files = [] if reduced is None else reduced.files
    if old_rows is not None:
        _remove_orphans(old_rows, rows, folder, st.outputs)
    for rel in set((record or {}).get("files", [])) - set(files):
        _remove_file(folder / rel)
    check_schema(manifest, st.schema, ctx.dataset.extra_columns)
    if reduced is not None:
        write_table(rows, rows_file)
    write_manifest(manifest, folder)
    _write_sources(ctx)
    counts = {str(k): int(v) for k, v in manifest["status"].value_counts().sort_index().items()}
    output_fp = digest([fp, input_fp])
    extra = {} if reduced is None else reduced.record
    finished = datetime.now(UTC).isoformat(timespec="seconds")
    new_record = {**base, **extra, "complete": True, "stale": False, "counts": counts, "key": key,
                  "finished": finished, "seconds": round(time.monotonic() - started, 3),
                  "input_fingerprint": input_fp, "output_fingerprint": output_fp,
                  "files": sorted(files), "whole": write_whole(folder, whole.table)}
    write_record(folder, new_record)
    shutil.rmtree(folder / PARTS, ignore_errors=True)
    (folder / BEGIN_LOCK).unlink(missing_ok=True)  # shards' (this run holds the folder alone)
    if (record or {}).get("output_fingerprint") != output_fp:
        mark_downstream_stale(folder.parent, st.folder)
    return result(st, folder, new_record, len(todo), reused, False, started)


def _shard_result(st: Stage, folder: Path, shard: Shard, mine: list[dict], todo: list[dict],
                  results: dict[str, list[dict]], started: float) -> StageResult:
    """What a shard did: its items' rows by status, computed and reused."""
    counts: dict[str, int] = {}
    for item in mine:
        for row in results.get(item["sample_id"], []):
            counts[str(row["status"])] = counts.get(str(row["status"]), 0) + 1
    note = (f"shard {shard}: {len(mine)} of the items, saved in {PARTS}/; the same command "
            "without --shard, once every shard is done, writes the manifest")
    return StageResult(folder, dict(sorted(counts.items())), len(todo), len(mine) - len(todo),
                       False, time.monotonic() - started, {}, [note], manifest_written=False)


def _map(st: Stage, todo: list[dict], params: Any, folder: Path, items: pd.DataFrame,
         results: dict[str, list[dict]], workers: Workers, progress: Progress | None,
         dataset: Dataset) -> None:
    """Map the items to do on the workers, saving each batch's rows as it arrives."""
    n_jobs = min(workers.size, len(todo))
    fps = dict(zip(items["sample_id"], items["fingerprint"], strict=True))
    batches = _batches(todo, n_jobs, st.batch_size, st.group)
    done, what = 0, f"{dataset.name} {st.folder}"
    if progress is not None:
        progress(what, 0, len(todo))
    seen: set[str] = set()
    job = Job(params, folder, dataset)
    calls = [(type(st).map, b, job, os.getpid()) for b in batches]
    for rows in workers.map(work, calls, n_jobs):
        rows = [{**{k: _plain(v) for k, v in r.items()}, "fingerprint": fps[r[st.key]]}
                for r in rows]
        _save_part(folder / PARTS, rows, st.key)
        new: dict[str, list[dict]] = {}
        for row in rows:
            new.setdefault(row[st.key], []).append(row)
            message = row.get("message")
            if message and row.get("status") not in st.quiet and message not in seen:
                seen.add(message)  # a clip's frames share one message: say it once
                log.warning(message)
        results.update(new)
        done += len(new)
        if progress is not None:
            progress(what, done, len(todo))


def _save_part(parts: Path, rows: list[dict[str, Any]], key: str) -> None:
    """A batch's rows as an Arrow IPC (Feather) file made from their columns directly: about
    5× cheaper than a DataFrame's Parquet, which the run's process pays for every batch while
    its workers compute (1.5 ms a row with the 478-point meshes)."""
    import pyarrow as pa
    from pyarrow import feather

    name = digest(sorted({r[key] for r in rows}))
    columns = list(dict.fromkeys(k for row in rows for k in row))
    try:
        table = pa.Table.from_pydict({c: [row.get(c) for row in rows] for c in columns})
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # a column of mixed types: pandas' objects
        table = pa.Table.from_pandas(pd.DataFrame(rows), preserve_index=False)
    with atomic_path(parts / f"{name}{PART}") as tmp:
        feather.write_feather(table, tmp)


def _write_sources(ctx: Context) -> None:
    if ctx.sources:
        write_text_atomic(ctx.folder / SOURCES, json.dumps(ctx.sources, sort_keys=True))


def _clear(folder: Path) -> None:
    """Remove an earlier run's outputs before a run with other parameters (the shards' lock
    file stays: a shard may hold it)."""
    for entry in folder.iterdir():
        if entry.name == BEGIN_LOCK:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _outputs_exist(df: pd.DataFrame, folder: Path, outputs: tuple[str, ...]) -> bool:
    return all((folder / p).is_file() for col in outputs if col in df for p in df[col].dropna()
               if p)


def _old_rows(rows_file: Path, whole: Whole) -> pd.DataFrame | None:
    """The rows an earlier run wrote, or None when there are none or they are not whole (their
    items are done again)."""
    if not rows_file.is_file() or rows_file.name in whole.damaged:
        return None
    try:
        return read_table(rows_file)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        log.warning("%s: not a whole table (%s); its items are done again", rows_file,
                    str(exc).splitlines()[0])
        return None


def _parts(folder: Path) -> list[pd.DataFrame]:
    """The batches a stopped run saved; one that is not whole is removed, its items done again
    (a dot-name is a killed run's half write, never read)."""
    tables = []
    for part in sorted(p for p in (folder / PARTS).glob(f"*{PART}")
                       if not p.name.startswith(".")):
        try:
            tables.append(pd.read_feather(part))
        except (OSError, ValueError) as exc:
            log.warning("%s: a saved batch that is not whole (%s); its items are done again",
                        part, str(exc).splitlines()[0])
            part.unlink(missing_ok=True)
    return tables


def _reusable(folder: Path, items: pd.DataFrame, st: Stage, old: pd.DataFrame | None,
              damaged: set[str]) -> dict[str, list[dict]]:
    """Rows of an earlier run, by item, where the item's fingerprint matches and its files are
    there and whole."""
    tables = _parts(folder)
    if old is not None:
        tables.insert(0, old)
    wanted = dict(zip(items["sample_id"], items["fingerprint"], strict=True))
    done: dict[str, list[dict]] = {}
    for table in tables:
        if "fingerprint" not in table.columns or st.key not in table.columns:
            continue
        fresh: dict[str, list[dict]] = {}
        for row in table.to_dict("records"):
            if row["fingerprint"] and wanted.get(row[st.key]) == row["fingerprint"]:
                fresh.setdefault(row[st.key], []).append(row)
        done.update(fresh)  # a later table's rows for an item replace an earlier table's
    return {
        k: rows for k, rows in done.items()
        if all(not isinstance(r.get(c), str) or not r.get(c)
               or (r[c] not in damaged and (folder / r[c]).is_file())
               for r in rows for c in st.outputs)
    }


def _assemble(items: pd.DataFrame, results: dict[str, list[dict]], st: Stage,
              dataset: Dataset) -> pd.DataFrame:
    """Every item's rows in item order (an unprocessed item stands as itself); where the source
    lives now is taken from the item, so reused rows follow a moved dataset."""
    rows: list[dict[str, Any]] = []
    for item in items.to_dict("records"):
        found = results.get(item["sample_id"])
        if found is None:
            rows.append({**item, "fingerprint": None})
        else:
            rows.extend({**r, "source_path": item["source_path"]} if "source_path" in item
                        else r for r in found)
    drop = [*st.internal, *dataset.internal, "item_path", "content"]
    out = pd.DataFrame(rows).drop(columns=drop, errors="ignore")
    for col in (*st.integers, *dataset.integers):
        if col in out:
            out[col] = out[col].astype("Int64")
    order = [c for c in st.columns if c in out.columns]
    return out[order + [c for c in out.columns if c not in order]]


def _refresh(old: pd.DataFrame, items: pd.DataFrame, key: str) -> pd.DataFrame | None:
    """`old` with each row's `source_path` from its item, or None when none changed."""
    if "source_path" not in old or "source_path" not in items or key not in old:
        return None
    now = old[key].map(dict(zip(items["sample_id"], items["source_path"], strict=True)))
    now = now.fillna(old["source_path"])
    if (now == old["source_path"]).all():
        return None
    return old.assign(source_path=now)


def _remove_orphans(old: pd.DataFrame, new: pd.DataFrame, folder: Path,
                    outputs: tuple[str, ...]) -> None:
    """Delete files of the previous rows that the new ones no longer list."""
    for col in outputs:
        if col in old.columns:
            keep = set(new[col].dropna()) if col in new.columns else set()
            for rel in set(old[col].dropna()) - keep - {""}:
                _remove_file(folder / rel)


def _remove_file(path: Path) -> None:
    """Delete an output file an earlier run wrote; anything else standing there is left."""
    if path.is_symlink() or path.is_file():
        path.unlink()
