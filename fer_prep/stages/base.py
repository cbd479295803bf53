"""What a stage is (`Stage`, the `Job` its map sees in a worker, the `Reduced` its reduce gives)
and what it sees of one run (`Context`): the dataset, the folders, the reader's options, the
records of the stages it reads (checked complete, fresh and whole), and the dataset's items
fingerprinted by content. The runner (`fer_prep.runner`) makes a Context per run and hands it
to the stage's `items`, `read` and `reduce`; it lives here, below the runner, so that stages
never import the runner. The registry `STAGES` is here too; `fer_prep.stages` fills it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from fer_prep.cache import digest, file_hash, ready_record, stat_key
from fer_prep.datasets import Dataset
from fer_prep.params import Params
from fer_prep.registry import Registry

if TYPE_CHECKING:
    import pandas as pd

SOURCES = "sources.json"  # content hashes of the source files, by relative path


@dataclass(frozen=True)
class Job:
    """What a map sees in its worker: the parameters, the stage folder, the dataset object (to
    ask it, e.g. for an item's pixels)."""

    params: Any
    folder: Path
    dataset: Dataset


#: a batch of items (dicts) → manifest rows (dicts), in a worker: fn(batch, job)
MapFn = Callable[[list[dict[str, Any]], Job], list[dict[str, Any]]]


@dataclass
class Reduced:
    """What a reduce gives: the stage's manifest and the files it wrote (relative paths)."""

    manifest: pd.DataFrame
    files: list[str] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)  # extra facts for stage.json


class Stage:
    """One stage; subclass, set the class attributes, register. See the module docstring."""

    name: ClassVar[str]  # registry name
    command: ClassVar[str]  # the command under `fer-prep <dataset>` (two align stages: align)
    folder: ClassVar[str]  # WORK/<dataset>/<folder>
    version: ClassVar[int]  # bump when the stage's results change for the same inputs
    Params: ClassVar[type[Params]]
    kinds: ClassVar[frozenset[str]]  # the dataset kinds it applies to
    schema: ClassVar[str]  # manifests/<schema>.schema.csv, checked on every write
    inputs: ClassVar[tuple[str, ...]] = ()  # the stage folders it may read
    root: ClassVar[str] = "required"  # --root: required, optional or none
    reader_options: ClassVar[bool] = True  # offers the dataset reader's options (CK+ --frames)
    cross: ClassVar[bool] = False  # run as `fer-prep <command> --dataset D`, not `fer-prep D …`
    key: ClassVar[str] = "sample_id"  # the item column every row of one item carries
    outputs: ClassVar[tuple[str, ...]] = ()  # row columns holding file paths (resume, orphans)
    columns: ClassVar[tuple[str, ...]] = ()  # leading manifest columns, in order
    quiet: ClassVar[frozenset[str]] = frozenset({"ok"})  # row statuses not worth a warning
    internal: ClassVar[tuple[str, ...]] = ()  # item columns the workers need, not the manifest
    integers: ClassVar[tuple[str, ...]] = ()  # row columns holding whole numbers
    batch_size: ClassVar[int | None] = None  # items per batch (None: sized by the runner)
    #: the item column whose equal values one batch keeps together (the frames of a sequence
    #: the map follows), so results do not depend on batching or resume; None: any cut
    group: ClassVar[str | None] = None
    map: ClassVar[MapFn | None] = None
    shows: ClassVar[dict[str, str]] = {}  # summary lines: what → path under the stage folder

    def reads_dataset(self, params: Any, ctx: Context) -> bool:
        """Whether this run reads the dataset itself (needs --root)."""
        return not self.inputs

    def upstream(self, params: Any, ctx: Context) -> tuple[str, ...]:
        """The stage folders this run reads."""
        return () if self.reads_dataset(params, ctx) else self.inputs

    def for_dataset(self, params: Any, dataset: Dataset, read: dict[str, Any] | None = None
                    ) -> Any:
        """The parameters with the defaults that depend on the dataset filled in; `read`: the
        reader options the input stage's rows were read with (its record's)."""
        return params

    def read(self, ctx: Context) -> list[dict[str, Any]]:
        """The dataset's items, when this run reads the dataset (light: no model, no pandas)."""
        return ctx.dataset.read(ctx.root, ctx.options)

    def items(self, ctx: Context, params: Any) -> pd.DataFrame:
        """The items to map (heavy path only): `key`, `status`, `message`, `fingerprint` (what
        an item's result depends on besides the params), and what the map needs."""
        return ctx.source_items()

    def models(self, params: Any) -> list[Path]:
        """Model files the results depend on (hashed into the record)."""
        return []

    def map_params(self, params: Any) -> dict[str, Any]:
        """The parameters the map depends on: a change of the others redoes only the reduce."""
        return params.record()

    def extra_key(self, ctx: Context, params: Any) -> Any:
        """Anything else the results depend on, as a JSON-able value (e.g. a split file's hash)."""
        return None

    def reduce(self, ctx: Context, params: Any, rows: pd.DataFrame) -> Reduced | None:
        """The manifest from the mapped rows (None: the rows are the manifest). A stage
        without a map calls `ctx.begin()` before it writes its first file, so a reduce that
        fails first (folds that cannot be made) leaves the stage as it was."""
        return None

    def notes(self, record: dict[str, Any]) -> list[str]:
        """Lines the summary adds about this stage's result, from its record."""
        return []

    @classmethod
    def help(cls) -> str:
        return (cls.__doc__ or cls.name).strip()

    @classmethod
    def applies_to(cls, dataset: Dataset) -> bool:
        return dataset.kind in cls.kinds


STAGES: Registry[type[Stage]] = Registry("stage")


@dataclass
class Context:
    """What a stage sees of one run: the dataset object, the folders, the reader's options."""

    dataset: Dataset
    stage: Stage
    work: Path
    folder: Path
    root: Path | None
    options: Any
    record: dict[str, Any] | None
    sources: dict[str, list] = field(default_factory=dict)  # content hashes, for sources.json
    #: call before a stage writes its first file (the runner does, before a map)
    begin: Callable[[], None] = lambda: None
    _ready: dict[str, dict[str, Any]] = field(default_factory=dict)  # upstream records checked

    @cached_property
    def raw_items(self) -> list[dict[str, Any]]:
        """The dataset's items as the stage reads them (once per run)."""
        assert self.root is not None, "a stage reading the dataset needs its root"
        return self.stage.read(self)

    @cached_property
    def _root_prefixes(self) -> tuple[str, ...]:
        root = str(self.root)
        return tuple({os.path.join(root, ""), os.path.join(os.path.abspath(root), "")})

    def relative(self, path: str) -> str:
        """`path` relative to the dataset root (the cache key of a source file). A clean path
        under the root is cut, not resolved: relpath costs 17 µs a file (0.6 s of a no-op
        re-run over Kaggle's 35,887 FER2013 images)."""
        if not path:
            return ""
        clean = "/./" not in path and "/../" not in path and "//" not in path
        for prefix in self._root_prefixes if clean else ():
            if path.startswith(prefix):
                return path[len(prefix):]
        return os.path.relpath(path, self.root)

    def source_key(self) -> Any:
        """The light key of the dataset's items: relative paths, sizes, mtimes, inodes."""
        out, stats = [], {}
        for item in self.raw_items:
            stat: Any = None
            path = item["source_path"]
            if item["status"] == "ok" and not item.get("content"):
                for file in item.get("frame_files") or [path]:  # a clip of frame files: each
                    if file not in stats:  # items sharing one file (a CSV's rows) stat it once
                        try:
                            stats[file] = stat_key(file)
                        except OSError as exc:
                            stats[file] = exc.errno
                stat = [stats[f] for f in item.get("frame_files") or [path]]
            out.append([_meta(item), self.relative(path), stat])
        return [str(self.root), out]

    def upstream_folder(self, name: str) -> Path:
        return self.work / self.dataset.name / name

    def upstream_record(self, name: str) -> dict[str, Any]:
        """The record of the complete, fresh and whole upstream stage `name` (checked once a
        run); StageNotReady naming the command that makes it otherwise."""
        if name not in self._ready:
            self._ready[name] = ready_record(self.upstream_folder(name),
                                             f"run {self.remedy(name)} first")
        return self._ready[name]

    def upstream_manifest(self, name: str) -> pd.DataFrame:
        from fer_prep.manifest import read_manifest

        self.upstream_record(name)
        return read_manifest(self.upstream_folder(name))

    def remedy(self, folder: str) -> str:
        """The command that makes the stage folder `folder` of this dataset."""
        for name in STAGES.names():
            stage = STAGES.get(name)
            if stage.folder == folder and stage.applies_to(self.dataset):
                return (f"`fer-prep {stage.command} --dataset {self.dataset.name}`" if stage.cross
                        else f"`fer-prep {self.dataset.name} {stage.command}`")
        return f"the {folder} stage"

    def source_items(self) -> pd.DataFrame:
        """The dataset's items as a table, each ok item fingerprinted by content and by its
        path relative to the root; an item whose file cannot be read becomes `unreadable`."""
        return fingerprint_sources(self)


def _meta(item: dict[str, Any]) -> dict[str, Any]:
    """What an item says about itself, without the paths that change when the dataset moves."""
    return {k: v for k, v in item.items() if k not in ("source_path", "message")}


def describe_os_error(path: str, exc: OSError) -> str:
    """Why a source file cannot be read, in words, naming it."""
    if os.path.islink(path) and not os.path.exists(path):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        if isinstance(exc, FileNotFoundError):
            return f"{path}: a symbolic link to {target}, which does not exist"
    if exc.errno == 40:  # ELOOP
        return f"{path}: a symbolic link loop"
    if isinstance(exc, IsADirectoryError):
        return f"{path}: a folder, not a file"
    return f"{path}: cannot be read ({exc.strerror or exc})"


def fingerprint_sources(ctx: Context) -> pd.DataFrame:
    """The dataset's items, each ok one fingerprinted by its content (an item of `frame_files`:
    theirs) and its path relative to the root (see `Context.source_items`). Content hashes are
    re-used from the stage folder's `sources.json` while a file's size, mtime and inode are
    unchanged."""
    try:
        known = json.loads((ctx.folder / SOURCES).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    sources: dict[str, list] = {}
    rows = []
    for raw in ctx.raw_items:
        item = {**raw, "fingerprint": "", "item_path": None}
        if item["status"] == "ok":
            path, rel = item["source_path"], ctx.relative(raw["source_path"])
            try:
                content = raw.get("content") or (
                    digest([_content(f, ctx.relative(f), known, sources)  # frames as files
                            for f in raw["frame_files"]]) if raw.get("frame_files")
                    else _content(path, rel, known, sources))
            except OSError as exc:
                item.update(status="unreadable", message=describe_os_error(path, exc))
            else:
                item.update(fingerprint=digest([content, rel, _meta(raw)]),
                            item_path=ctx.dataset.item_path(raw))
        rows.append(item)
    ctx.sources = sources
    import pandas as pd

    table = pd.DataFrame(rows)
    for col in ctx.dataset.integers:
        if col in table:
            table[col] = table[col].astype("Int64")
    return table


def _content(path: str, rel: str, known: dict[str, list], sources: dict[str, list]) -> str:
    """A source file's content hash: from this run (files several items share), from the last
    run while its size, mtime and inode are unchanged, else read now."""
    if rel in sources:
        return sources[rel][3]
    stat = stat_key(path)
    old = known.get(rel)
    sources[rel] = [*stat, old[3] if old and old[:3] == stat else file_hash(path)]
    return sources[rel][3]
