"""The worker processes a stage's map runs on: local ones (joblib's loky processes, `--jobs`) or
a Dask cluster's (`fer_prep.cluster`), behind one `map`. Loky keeps its processes, and their
models, between the batches of a run and between the runs of one Python process."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from joblib import Parallel, cpu_count, delayed

from fer_prep.cluster import Cluster


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
            from fer_prep.cluster import connect

            self.client = self._stack.enter_context(connect(self.cluster))
        return self.client

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    @property
    def size(self) -> int:
        """How many batches run at once."""
        if self._connected() is not None:
            from fer_prep.cluster import workers

            return workers(self.client)
        return self.jobs

    def map(self, fn: Callable, calls: Iterable[tuple], n: int) -> Iterator[Any]:
        """`fn(*args)` for every call, on at most `n` workers, as each finishes."""
        if self._connected() is not None:
            from fer_prep.cluster import map_unordered

            return map_unordered(self.client, fn, calls)
        run = Parallel(n_jobs=min(n, self.jobs), return_as="generator_unordered")
        return run(delayed(fn)(*args) for args in calls)
