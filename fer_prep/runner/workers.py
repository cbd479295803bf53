"""The worker processes a stage's map runs on: local ones (joblib's loky processes, `--jobs`) or
a Dask cluster's (`fer_prep.runner.cluster`), behind one `map`. Loky keeps its processes, and their
models, between the batches of a run and between the runs of one Python process."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from joblib import Parallel, cpu_count, delayed

from fer_prep.runner.cluster import Cluster

if TYPE_CHECKING:
    from fer_prep.stages import Job

WATCH_INTERVAL = 0.5  # seconds between a worker's checks that the run's process is alive


def _watch(ppid: int) -> None:
    while True:
        time.sleep(WATCH_INTERVAL)
        if os.getppid() != ppid:  # the run's process died: stop writing, leave no orphan
            os._exit(1)


_watching = False


def work(fn: Callable, batch: list[dict[str, Any]], job: Job, parent: int
         ) -> list[dict[str, Any]]:
    """A batch in a worker; the first call in a worker process starts its parent watch. Here,
    not beside the runner, so that a worker imports neither pandas nor the runner's modules
    (0.3 s of every worker's start)."""
    global _watching
    if os.getpid() != parent and not _watching:
        _watching = True
        threading.Thread(target=_watch, args=(os.getppid(),), daemon=True).start()
    return fn(batch, job)


def resolve_jobs(jobs: int | None) -> int:
    """`None` or 0 → all cores; negative counts back from all cores, as joblib does."""
    if not jobs:
        return cpu_count()
    return jobs if jobs > 0 else max(1, cpu_count() + 1 + jobs)


class Workers:
    """`with Workers(jobs, cluster) as w: w.map(fn, calls, n)`: results as they finish; the
    cluster (if any) is closed, a LocalCluster shut down, on leaving."""

    def __init__(self, jobs: int | None, cluster: Cluster | None = None) -> None:
        self.jobs, self.cluster = resolve_jobs(jobs), cluster
        self.client: Any = None
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> Workers:
        return self

    def _connected(self) -> Any:
        """The cluster's client, connected on first use (a run with nothing to map never
        starts a cluster); None for local workers."""
        if self.cluster is not None and self.client is None:
            from fer_prep.runner.cluster import connect

            self.client = self._stack.enter_context(connect(self.cluster))
        return self.client

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    @property
    def size(self) -> int:
        """How many batches run at once."""
        if self._connected() is not None:
            from fer_prep.runner.cluster import workers

            return workers(self.client)
        return self.jobs

    def map(self, fn: Callable, calls: Iterable[tuple], n: int) -> Iterator[Any]:
        """`fn(*args)` for every call, on at most `n` workers, as each finishes."""
        if self._connected() is not None:
            from fer_prep.runner.cluster import map_unordered

            return map_unordered(self.client, fn, calls)
        run = Parallel(n_jobs=min(n, self.jobs), return_as="generator_unordered")
        return run(delayed(fn)(*args) for args in calls)
