"""What a stage run gives back (`StageResult`), and the names of the files a stage folder holds
beside its outputs; shared by the runner and its content step (`execute`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fer_prep.cache import read_record

if TYPE_CHECKING:
    import pandas as pd

    from fer_prep.stages import Stage

PARQUET, CSV = "manifest.parquet", "manifest.csv"
ROWS = "rows.parquet"  # the mapped rows of a stage with a reduce (the manifest is the reduce's)
PARTS = ".parts"  # results saved per batch while a run goes
PART = ".arrow"  # one batch's rows in PARTS (Arrow IPC)
#: progress callback: (what, done, total)
Progress = Callable[[str, int, int], None]


@dataclass
class StageResult:
    """What a run did: its folder, the counts by status, what it computed and reused."""

    folder: Path
    counts: dict[str, int]
    computed: int
    reused: int
    skipped: bool
    seconds: float
    shows: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    mapped: bool = True  # False for a stage without a map (its reduce writes everything)
    manifest_written: bool = True  # False for a shard (`--shard`): batches only

    @cached_property
    def manifest(self) -> pd.DataFrame:
        """The stage's manifest (read on first use)."""
        from fer_prep.manifest import read_manifest

        return read_manifest(self.folder)

    @property
    def record(self) -> dict[str, Any]:
        return read_record(self.folder) or {}

    def summary(self) -> str:
        by_status = ", ".join(f"{k}: {v}" for k, v in sorted(self.counts.items()))
        verb = ("unchanged, skipped" if self.skipped else
                f"{self.computed} computed, {self.reused} reused" if self.mapped else "written")
        lines = [f"{self.folder.parent.name} {self.folder.name}: {sum(self.counts.values())} rows "
                 f"({by_status}); {verb}, {self.seconds:.1f} s"]
        if self.manifest_written:
            lines.append(f"  manifest: {self.folder / PARQUET} (+ manifest.csv)")
        lines += [f"  {note}" for note in self.notes]
        lines += [f"  {what + ':':9s} {self.folder / rel}" for what, rel in self.shows.items()]
        return "\n".join(lines)


def result(st: Stage, folder: Path, record: dict[str, Any], computed: int, reused: int,
           skipped: bool, started: float) -> StageResult:
    """The StageResult of a run of `st` that left `record`."""
    return StageResult(folder, record.get("counts", {}), computed, reused, skipped,
                       time.monotonic() - started, dict(st.shows), st.notes(record),
                       type(st).map is not None)
