"""Stages by name: functions from (input manifest, parameters) to (files, manifest).

A stage is one `Stage` subclass, registered with `@STAGES.register`: a name, a version, a frozen
params dataclass, the stage folders it reads, a map over items (a module-level function run in
worker processes, given the params object) and an optional reduce over the mapped rows. The one
runner (`fer_prep.runner`) owns everything else: fingerprints, the up-to-date rule, the record,
resume, orphans, locks, downstream staleness, schema checks. Stages know faces, not datasets:
what they need of one they ask its `Dataset` object. Stage modules import no model library at
import time, so the CLI can list and describe them cheaply. What a stage is (`Stage`, `Job`,
`Reduced`) and what it sees of a run (`Context`) are in `fer_prep.stages.base`.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from fer_prep.datasets import Dataset
from fer_prep.stages.base import STAGES, Context, Job, MapFn, Reduced, Stage

__all__ = ["STAGES", "Context", "Job", "MapFn", "Reduced", "Stage", "get_stage", "list_stages",
           "stages_for"]



@cache
def _load_builtin() -> None:
    """Import every module of this package once: each stage module registers its stage."""
    for module in pkgutil.iter_modules(__path__):
        if module.name != "base":
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
