"""The one runner: `run(dataset, stage, work, ...)` brings `WORK/<dataset>/<stage>/` up to date.

The up-to-date rule, in two steps so that a finished stage costs almost nothing to re-run:

1. Fast (standard library only, no model loaded): the record is complete and was made with these
   parameters and model files, the light input key is the recorded one (a dataset's items with
   their paths relative to the root, sizes, mtimes and inodes; or the output fingerprints of the
   upstream stages, each upstream whole), and every output file the stage wrote is there and
   whole (`cache.check_whole`: its size, and its hash where its mtime changed). Then nothing
   runs; a `stale` flag, set when an upstream stage changed, is cleared, since the input is what
   this run used.
2. Content (`fer_prep.runner.execute`): otherwise the items are fingerprinted by content (a
   file's hash, re-used while its size, mtime and inode are unchanged) and by their path
   relative to the dataset root, so a moved dataset or a copied work folder recomputes nothing;
   only items whose fingerprint is new are mapped, in worker processes, and the reduce runs when
   anything changed.

A run holds the stage folder's lock; every item of a killed run that finished is kept. The
package holds the runner's parts: `execute` (the content step), `workers` (processes), `cluster`
(Dask), `result` (what a run gives back); what a stage sees is `fer_prep.stages.base.Context`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from fer_prep.cache import (
    check_whole,
    digest,
    model_hashes,
    read_record,
    stage_fingerprint,
    stage_lock,
    write_record,
    write_text_atomic,
    write_whole,
)
from fer_prep.datasets import ALIAS, Dataset, check_root, get_dataset
from fer_prep.errors import InputError, OptionError, WorkError
from fer_prep.params import check_fields
from fer_prep.runner.result import PARTS, Progress, StageResult, result
from fer_prep.stages import Stage, get_stage, stages_for
from fer_prep.stages.base import Context

__all__ = ["PARTS", "Context", "StageResult", "resolve", "run", "split_options", "stage_folder"]
log = logging.getLogger("fer_prep")



def split_options(dataset: Dataset, stage: Stage, options: dict[str, Any]
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(reader options, stage parameters) by field name; OptionError for any other name."""
    reader = {f.name for f in dataclasses.fields(dataset.Options)}
    params = {f.name for f in dataclasses.fields(stage.Params)}
    unknown = sorted(set(options) - reader - params)
    if unknown:
        raise OptionError(f"{unknown[0]} is not an option of `{dataset.name} {stage.command}` "
                          f"(options: {', '.join(sorted(reader | params))})")
    return ({k: v for k, v in options.items() if k in reader},
            {k: v for k, v in options.items() if k in params})


def stage_folder(work: Path, dataset: str, stage: Stage) -> Path:
    """`WORK/<dataset>/<stage>`, created; WorkError when the work folder cannot hold it."""
    folder = Path(work).expanduser() / dataset / stage.folder
    for parent in (folder.parent.parent, folder.parent):
        if parent.exists() and not parent.is_dir():
            raise WorkError(f"{parent}: a file where fer-prep's work folder goes; give another "
                            "--work or move the file")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder.parent / f".write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise WorkError(f"{folder}: cannot write the work folder here ({exc.strerror}); give "
                        "another --work") from None
    return folder


def resolve(dataset: str, stage: str, work: str | Path = "fer-work",
            root: str | Path | None = None, preset: str | Path | None = None,
            **options: Any) -> tuple[Dataset, Stage, Any, Any]:
    """(dataset, stage, parameters, reader options) of a run, every value checked; what `run`
    does before it touches a file, so a recipe checks all its steps before its first one."""
    ds, st = get_dataset(dataset, work), get_stage(stage)
    if not st.applies_to(ds):
        raise InputError(f"stage {stage} does not apply to {dataset} ({ds.kind}); its commands: "
                         f"{', '.join(sorted(stages_for(ds)))}")
    reader, given = split_options(ds, st, options)
    upstream = read_record(Path(work).expanduser() / ds.name / st.inputs[0]) \
        if st.inputs and not reader and root is None else None
    params = st.for_dataset(st.Params.resolve(preset, ds.defaults, **given), ds,
                            (upstream or {}).get("options"))
    read_options = ds.options(**reader)
    check_fields(read_options)
    return ds, st, params, read_options


def run(
    dataset: str,
    stage: str,
    work: str | Path = "fer-work",
    root: str | Path | None = None,
    preset: str | Path | None = None,
    jobs: int | None = None,
    force: bool = False,
    progress: Progress | None = None,
    cluster: str | None = None,
    scheduler: str | None = None,
    shard: str | None = None,
    **options: Any,
) -> StageResult:
    """Bring `WORK/<dataset>/<stage>/` up to date; see the module docstring.

    `options`: the dataset reader's options (CK+: `frames`, `include_unlabelled`) and the
    stage's parameters (align: `backend`, `template`, `size`, …) by name; a parameter not given
    comes from `preset` (the `default` preset when None, for stages that have presets).
    `jobs`: worker processes (None or 0: every core). `cluster="local:N"` runs the batches on
    a Dask LocalCluster of N processes instead, `scheduler` (or $FER_PREP_SCHEDULER) on a
    running cluster (`fer_prep.runner.cluster`). `shard="I/N"` (or "slurm" in an array job)
    maps only this run's share of the items and writes no manifest; a run without it finishes
    the stage (`fer_prep.runner.shard`). Raises a `FerPrepError` for every mistake of the
    caller, naming the file or option.
    """
    from fer_prep.runner.cluster import resolve_cluster
    from fer_prep.runner.shard import parse_shard

    started = time.monotonic()
    on = resolve_cluster(cluster, scheduler)
    part = parse_shard(shard)
    ds, st, params, read_options = resolve(dataset, stage, work, root, preset, **options)
    if part is not None and (type(st).map is None or force):
        raise OptionError(f"--shard: {st.command} has no per-item work to share; run it whole"
                          if type(st).map is None else "--shard with --force: force the run "
                          "without --shard (it redoes every item), or clear what shards made")
    reader = split_options(ds, st, options)[0]
    registered, ds = ds, ds.named(read_options)
    folder = stage_folder(Path(work), ds.name, st)
    if ds.name != registered.name:  # a renamed dataset: later commands find it by its name
        write_text_atomic(folder.parent / ALIAS, json.dumps(
            {"dataset": registered.name, "options": dataclasses.asdict(read_options)}) + "\n")
    with stage_lock(folder, shared=part is not None):
        record = read_record(folder)
        ctx = Context(ds, st, Path(work).expanduser(), folder, None, read_options, record)
        if st.reads_dataset(params, ctx) or root is not None:
            ctx.root = check_root(root, ds.name)
        elif given_reader := sorted(k for k, v in reader.items() if v is not None):
            names = ", ".join(f"--{k.replace('_', '-')}" for k in given_reader)
            made = ", ".join(f"{ds.name}/{u}" for u in st.upstream(params, ctx))
            raise OptionError(f"{names}: options of reading {ds.name}, and this {st.command} "
                              f"reads what is in {made}: give them where {ds.name} is read "
                              f"(the stage that made {made}), or read it here if the stage "
                              "can (align --from-video --root)")
        upstream = st.upstream(params, ctx)
        models = model_hashes(st.models(params), (record or {}).get("models"))
        fp = stage_fingerprint(st.name, st.version, params.record(), models)
        key = digest([ctx.source_key() if st.reads_dataset(params, ctx) else None,
                      {u: ctx.upstream_record(u).get("output_fingerprint") for u in upstream},
                      st.extra_key(ctx, params)])
        whole = check_whole(folder, record) if record else None
        if not force and whole and whole.ok and _fast_current(record, fp, key):
            if whole.rehashed:  # a copied folder: the new mtimes, so the next run hashes nothing
                record = {**record, "whole": write_whole(folder, whole.table)}
            if record.get("stale") or whole.rehashed:
                record = {**record, "stale": False}
                write_record(folder, record)
            return result(st, folder, record, 0, 0, True, started)
        if whole and not whole.ok:
            log.warning("%s; redoing it", whole.say(folder))
        from fer_prep.runner.execute import execute

        return execute(ctx, params, models, fp, key, upstream, jobs=jobs, force=force,
                       progress=progress, started=started, cluster=on, shard=part)


def _fast_current(record: dict[str, Any] | None, fp: str, key: str) -> bool:
    return bool(record and record.get("complete") and record.get("whole")
                and record.get("fingerprint") == fp and record.get("key") == key)
