"""Where a work folder stands: per dataset and stage, its rows by status, whether it is complete,
partial (a run stopped part way) or stale (a stage it reads changed since), the parameters that
differ from the defaults, and the command to run next (`fer-prep status`).

Read from the stage records (`stage.json`), each complete stage's outputs checked whole against
its `whole.json` (`cache.check_whole`: a stat a file, a hash where the mtime changed), and, for a
partial run, the batches it saved (`.parts/`); nothing is run or written. Training runs
(`WORK/<dataset>/train/<run>/`) are listed after the stages.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fer_prep.cache import RECORD, check_whole, holders, read_record
from fer_prep.datasets import ALIAS, Dataset, get_dataset, list_datasets
from fer_prep.errors import InputError
from fer_prep.stages import Stage, get_stage, stages_for

COMPLETE, PARTIAL, STALE, MISSING = "complete", "partial", "stale", "missing"
DAMAGED = "damaged"  # an output missing or not whole, a record or metrics.json not JSON
TRAIN = "train"


@dataclass(frozen=True)
class StageStatus:
    """One stage folder (or training run) of one dataset in a work folder."""

    dataset: str
    stage: str  # the folder under WORK/<dataset>/ (align, folds, …; train/<run>)
    state: str  # complete, partial, stale, missing or damaged
    counts: dict[str, int] = field(default_factory=dict)  # rows by status
    changed: dict[str, Any] = field(default_factory=dict)  # parameters off their defaults
    command: str = ""  # the command that makes, resumes or redoes it
    detail: str = ""  # e.g. a training run's accuracy


@dataclass(frozen=True)
class DatasetStatus:
    dataset: str
    stages: list[StageStatus]
    next: str  # the command to run next, "" when everything is up to date


def _registered(work: Path, name: str) -> Dataset | None:
    """The dataset of WORK/<name>/ (a renamed class-folder tree through its alias file)."""
    if name in list_datasets() or (work / name / ALIAS).is_file():
        return get_dataset(name, work)
    return None


def _chain(dataset: Dataset) -> list[tuple[str, Stage]]:
    """(command, stage) of every stage that applies, readers of other stages after them."""
    stages = [(command, get_stage(name)) for command, name in stages_for(dataset).items()]
    depth: dict[str, int] = {}

    def level(stage: Stage) -> int:
        if stage.folder not in depth:
            inputs = [s for _, s in stages if s.folder in stage.inputs]
            depth[stage.folder] = 1 + max((level(s) for s in inputs), default=0)
        return depth[stage.folder]

    return sorted(stages, key=lambda cs: (level(cs[1]), cs[1].folder))


def _part_counts(folder: Path) -> dict[str, int]:
    """Rows by status in the batches a stopped run saved."""
    import pyarrow.feather as feather

    counts: dict[str, int] = {}
    for part in sorted((folder / ".parts").glob("*.arrow")):
        try:
            statuses = feather.read_table(part, columns=["status"]).column("status").to_pylist()
        except Exception:  # a batch being written as we read: counted on the next look
            continue
        for status in statuses:
            counts[status] = counts.get(status, 0) + 1
    return dict(sorted(counts.items()))


def _running(folder: Path, counts: dict[str, int]) -> str:
    """The runs writing `folder` now, each shard by its share ("shards running: 0/4, 2/4"),
    beside the rows saved so far; "" when none runs."""
    running = [_shard_of(command) for command in holders(folder)]
    if not running:
        return ""
    saved = ", ".join(f"{k} {v}" for k, v in counts.items()) or "no rows yet"
    shards = sorted(r for r in running if r)
    what = (f"shards running: {', '.join(shards)}" if shards else "a run is writing it")
    return f"{what} ({saved} saved)"


def _shard_of(command: str) -> str:
    """The `--shard` value of a command line ("" for a run without one)."""
    found = re.search(r"--shard[= ](\S+)", command)
    if found is None:
        return ""
    return "an array task" if found[1] == "slurm" else found[1]


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _defaults(dataset: Dataset, stage: Stage) -> dict[str, Any]:
    return _plain(stage.for_dataset(stage.Params.resolve(None, dataset.defaults),
                                    dataset).record())


def _changed(given: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in sorted(given.items()) if k in defaults and v != defaults[k]}


def _flags(values: dict[str, Any]) -> list[str]:
    out = []
    for key, value in values.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            out.append(flag if value else f"--no-{flag[2:]}")
        elif value is None:
            continue
        else:
            out += [flag, str(value)]
    return out


def _command(dataset: Dataset, command: str, stage: Stage, work: Path,
             record: dict[str, Any] | None, changed: dict[str, Any], root: str | None) -> str:
    """The command that makes the stage again with the parameters it has (`changed`: those off
    the defaults; none when it has not run), reading the dataset from `root` where the stage
    reads it."""
    params = (record or {}).get("params") or {}
    words = (["fer-prep", command, "--dataset", dataset.name] if stage.cross
             else ["fer-prep", dataset.name, command])
    reads = not stage.inputs or params.get("from_video")
    if reads and stage.root != "none":
        words += ["--root", root or "ROOT"]
        options = (record or {}).get("options") or {}
        defaults = _plain(vars(dataset.options())) if options else {}
        words += _flags(_changed(options, defaults))
    words += _flags(changed)
    return shlex.join([*words, "--work", str(work)])


def _train_runs(work: Path, dataset: str) -> list[StageStatus]:
    runs = []
    for folder in sorted((work / dataset / TRAIN).glob("*/")):
        path = folder / "metrics.json"
        folds = sorted(folder.glob("fold_*/metrics.json"))
        metrics = None
        if path.is_file():
            try:
                metrics = json.loads(path.read_text(encoding="utf-8"))
                if not isinstance(metrics, dict) or not {"folds", "n_folds"} <= set(metrics):
                    raise ValueError("no folds in it")
            except (OSError, ValueError) as exc:  # a decoding error is a ValueError too
                runs.append(StageStatus(dataset, f"{TRAIN}/{folder.name}", DAMAGED,
                                        detail=f"{path} is not a run's metrics ({exc}): its "
                                        "fer-train command again, with --resume, writes it"))
                continue
        if metrics is None:  # its options are the run's own: say how, not what, to resume
            runs.append(StageStatus(dataset, f"{TRAIN}/{folder.name}", PARTIAL,
                                    detail=f"stopped after {len(folds)} fold(s): its fer-train "
                                    "command again, with --resume, continues it"))
            continue
        mean, std = metrics.get("mean_accuracy"), metrics.get("std_accuracy")
        detail = f"{len(metrics['folds'])}/{metrics['n_folds']} fold(s)"
        if mean is not None:
            detail += f", accuracy {100 * mean:.2f} ± {100 * std:.2f} %"
        state = COMPLETE if len(metrics["folds"]) == metrics["n_folds"] else PARTIAL
        runs.append(StageStatus(dataset, f"{TRAIN}/{folder.name}", state, detail=detail))
    return runs


def dataset_status(work: Path, dataset: Dataset) -> DatasetStatus:
    """Every stage of `dataset` in `work`, in the order they run, and the next command."""
    work = Path(work)
    chain = _chain(dataset)
    records = {st.folder: read_record(work / dataset.name / st.folder) for _, st in chain}
    root = next((r["root"] for r in records.values() if r and r.get("root")), None)
    stages: list[StageStatus] = []
    for command, st in chain:
        record, detail = records[st.folder], ""
        path = work / dataset.name / st.folder / RECORD
        if record is None and path.is_file():
            state, counts = DAMAGED, {}
            detail = f"{path} is not a stage record (not JSON): the stage's command redoes it"
        elif record is None:
            state, counts = MISSING, {}
        elif not record.get("complete"):
            state, counts = PARTIAL, _part_counts(work / dataset.name / st.folder)
            detail = _running(work / dataset.name / st.folder, counts)
        else:
            state = STALE if record.get("stale") else COMPLETE
            counts = record.get("counts", {})
            folder = work / dataset.name / st.folder
            whole = check_whole(folder, record)
            if not whole.ok:
                state, detail = DAMAGED, f"{whole.say(folder)}: the stage's command redoes it"
            done = {s.stage: s.state for s in stages}
            gone = [f"{i} is {done[i]}" for i in record.get("inputs") or []
                    if done.get(i, COMPLETE) != COMPLETE]
            if state == COMPLETE and gone:  # never complete above a missing or stale input
                state, detail = STALE, f"made from {', '.join(gone)}"
        changed = _changed(record.get("params") or {}, _defaults(dataset, st)) if record else {}
        stages.append(StageStatus(dataset.name, st.folder, state, counts, changed,
                                  _command(dataset, command, st, work, record, changed, root),
                                  detail=detail))
    used = {i for r in records.values() if r for i in r.get("inputs") or []}
    needed = _needed(chain, stages, used)
    nxt = next((s.command for s in stages if s.stage in needed and s.state != COMPLETE), "")
    runs = _train_runs(work, dataset.name)
    if not nxt and not runs and any(s.stage == "folds" and s.state == COMPLETE for s in stages):
        nxt = shlex.join(["fer-train", "--dataset", dataset.name, "--work", str(work)])
    return DatasetStatus(dataset.name, stages + runs, nxt)


def _needed(chain: list[tuple[str, Stage]], stages: list[StageStatus], used: set[str]
            ) -> set[str]:
    """The stage folders still worth making: all but a missing stage whose readers all are
    done without it (AFEW's frames, when align decoded the videos itself); `used`: the stage
    folders some record says it was made from."""
    state = {s.stage: s.state for s in stages}
    needed = set()
    for _, st in chain:
        readers = [s for _, s in chain if st.folder in s.inputs]
        if state[st.folder] == MISSING and st.folder not in used and readers and all(
                state[r.folder] != MISSING for r in readers):
            continue
        needed.add(st.folder)
    return needed


def work_status(work: str | Path, dataset: str | None = None) -> list[DatasetStatus]:
    """The status of every dataset in `work` (or of `dataset`); InputError when `work` holds
    no stage at all."""
    work = Path(work).expanduser()
    if not work.is_dir():
        raise InputError(f"{work}: no such work folder")
    names = sorted({p.parent.parent.name for p in work.glob(f"*/*/{RECORD}")}
                   | {p.parent.parent.parent.name for p in work.glob(f"*/{TRAIN}/*/")})
    if dataset is not None:
        if dataset not in names:
            raise InputError(f"{work}: no stage of {dataset} here"
                             + (f" (datasets here: {', '.join(names)})" if names else ""))
        names = [dataset]
    found = [(n, _registered(work, n)) for n in names]
    out = [dataset_status(work, ds) for _, ds in found if ds is not None]
    if not out:
        raise InputError(f"{work}: no fer-prep stage here (no WORK/<dataset>/<stage>/"
                         f"{RECORD}); run a dataset's first stage with --work {work}")
    return out


def format_status(statuses: list[DatasetStatus]) -> str:
    """The status as a text table, one block per dataset."""
    lines = []
    for ds in statuses:
        lines.append(ds.dataset)
        rows = [("stage", "state", "rows", "changed from the defaults")]
        for s in ds.stages:
            rows.append((s.stage, s.state,
                         s.detail or ", ".join(f"{k} {v}" for k, v in s.counts.items()) or "—",
                         " ".join(f"{k}={v}" for k, v in s.changed.items()) or "—"))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        for row in rows:
            lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False))
                         + "  " + row[3])
        lines.append(f"  next: {ds.next}" if ds.next else "  next: nothing, up to date")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
