"""A stage run cut into N shards that run at once, e.g. as the tasks of a SLURM array job.

`--shard I/N` maps only this run's share of the items: those whose key (an item's group, e.g.
its sequence, where the stage keeps groups in one batch, else its sample id) hashes to I modulo
N, a split that does not depend on which or how many other tasks run. Its batches are saved as
a stopped run's are (`.parts/`), and no manifest is written. Shards of one stage hold its folder
lock shared, so they run together; a run without `--shard` holds it alone, takes every saved
batch, maps what no shard finished (a task that died) and writes the manifest and the record:
the same bytes as a run that was never sharded. `--shard slurm` reads I and N from the array
job's environment (`SLURM_ARRAY_TASK_ID` − `SLURM_ARRAY_TASK_MIN`, `SLURM_ARRAY_TASK_COUNT`).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fer_prep.errors import OptionError

SLURM = "slurm"


@dataclass(frozen=True)
class Shard:
    """Share `index` of `count` (0 ≤ index < count)."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def mine(self, key: str) -> bool:
        """Whether the item (or group) with `key` is this shard's."""
        number = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")
        return number % self.count == self.index


def item_key(item: dict[str, Any], group: str | None) -> str:
    """What an item is sharded by: its group's value where the stage keeps groups whole, so a
    sequence's frames stay in one shard (and one batch), else its sample id."""
    value = item.get(group) if group else None
    return str(item["sample_id"] if value is None or value != value else value)


def parse_shard(value: str | None, environ: Mapping[str, str] = os.environ) -> Shard | None:
    """The shard `value` names (`I/N` or `slurm`); None for None; OptionError saying how to give
    it otherwise."""
    if value is None:
        return None
    text = value.strip()
    if text == SLURM:
        return _slurm(environ)
    match = re.fullmatch(r"(\d+)\s*/\s*(\d+)", text)
    if match is None:
        raise OptionError(f"--shard {value}: give I/N (this run's share I of N, counted from 0: "
                          "0/4 … 3/4), or slurm inside an `sbatch --array` job")
    index, count = int(match[1]), int(match[2])
    if count < 1:
        raise OptionError(f"--shard {value}: N, the number of shards, must be 1 or more")
    if index >= count:
        raise OptionError(f"--shard {value}: I counts from 0, so it must be below N "
                          f"(0/{count} … {count - 1}/{count})")
    return Shard(index, count)


def _slurm(environ: Mapping[str, str]) -> Shard:
    """This array task's shard, from SLURM's environment."""
    names = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN",
             "SLURM_ARRAY_TASK_MAX")
    values = [environ.get(name) for name in names]
    if any(v is None or not v.isdigit() for v in values):
        raise OptionError("--shard slurm: not inside a SLURM array job (SLURM_ARRAY_TASK_ID and "
                          "SLURM_ARRAY_TASK_COUNT are not set): submit it with `sbatch "
                          "--array=0-3`, or give --shard I/N")
    task, count, first, last = (int(v) for v in values)
    if last - first + 1 != count:
        raise OptionError(f"--shard slurm: the array's task ids {first}-{last} are not "
                          f"{count} in a row: use --array={first}-{first + count - 1} (no "
                          "step, no list)")
    return Shard(task - first, count)
