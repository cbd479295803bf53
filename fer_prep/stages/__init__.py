"""Stages by name: functions from (input manifest, parameters) to (files, manifest).

A stage is one `Stage` subclass, registered with `@STAGES.register`: a name, a version, a frozen
params dataclass, the stage folders it reads, a map over items (a module-level function run in
worker processes, given the params object) and an optional reduce over the mapped rows. The one
runner (`fer_prep.runner`) owns everything else: fingerprints, the up-to-date rule, the record,
resume, orphans, locks, downstream staleness, schema checks. Stages know faces, not datasets:
what they need of one they ask its `Dataset` object. Stage modules import no model library at
import time, so the CLI can list and describe them cheaply.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from fer_prep.datasets import Dataset
from fer_prep.params import Params
from fer_prep.registry import Registry

if TYPE_CHECKING:
    import pandas as pd

    from fer_prep.runner import Context



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


@cache
def _load_builtin() -> None:
    """Import every module of this package once: each registers its stage."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


def get_stage(name: str) -> Stage:
    _load_builtin()
    return STAGES.get(name)()


def list_stages() -> list[str]:
    _load_builtin()
    return STAGES.names()


def stages_for(dataset: Dataset) -> dict[str, str]:
    """command → stage name, for every stage that applies to `dataset`."""
    _load_builtin()
    return {STAGES.get(n).command: n for n in STAGES.names() if STAGES.get(n).applies_to(dataset)}
