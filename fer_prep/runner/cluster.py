"""A stage's map on a Dask cluster: `--cluster local:N` or `--scheduler tcp://HOST:PORT`.

The runner hands the cluster the same batches it hands its local worker processes, and keeps
everything else where it was: the client (the `fer-prep` process) saves each batch's rows as it
arrives, writes the manifest and the record, shows the progress; the workers run the stage's map
and write the chips into `--work`, which they must all see at the same path (a shared file
system). Each worker process loads its face models once, on its first batch, and keeps them.

A worker that dies mid-batch loses nothing: the scheduler runs the batch again on another
worker; chips are written atomically, so a half-written one is never seen and a rewritten one is
the same bytes, and the dead worker's temporary file is removed once the map ends; a batch's
rows are saved once, when its first result arrives. The results equal a local run's byte for
byte (tested on a real `LocalCluster`, a worker killed mid-run included).

Workers need fer-prep installed, the same version, and one thread each (`dask worker
--nthreads 1 …`): a thread shares its process's models, which are not thread-safe.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from fer_prep.errors import OptionError, WorkError

#: the environment variable naming a scheduler when neither option is given
SCHEDULER_ENV = "FER_PREP_SCHEDULER"
LOCAL = re.compile(r"local:(\d+)")
#: seconds to wait for a scheduler to answer, and for a worker (the first, or one after all left)
CONNECT_TIMEOUT = 15
WORKER_WAIT = 120
#: seconds between looks for finished batches, and between asking whether workers are left
POLL, LOOK = 0.05, 2.0


@dataclass(frozen=True)
class Cluster:
    """Where a stage's batches run: a LocalCluster of `workers` processes, or a scheduler."""

    workers: int | None = None
    address: str | None = None

    def __str__(self) -> str:
        return f"local:{self.workers}" if self.workers else str(self.address)


def resolve_cluster(cluster: str | None = None, scheduler: str | None = None
                    ) -> Cluster | None:
    """The cluster the options (or $FER_PREP_SCHEDULER) ask for; None: local processes."""
    if cluster and scheduler:
        raise OptionError("--cluster and --scheduler: give one (a local cluster, or the "
                          "scheduler of a running one)")
    if cluster:
        match = LOCAL.fullmatch(cluster.strip())
        if not match or int(match.group(1)) < 1:
            raise OptionError(f"--cluster {cluster!r}: write local:N, N ≥ 1 worker processes "
                              "(for a running cluster, --scheduler tcp://HOST:PORT)")
        return Cluster(workers=int(match.group(1)))
    address = scheduler or os.environ.get(SCHEDULER_ENV)
    if address:
        return Cluster(address=address.strip())
    return None


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise OptionError("running on a Dask cluster needs the `distributed` package: "
                          "pip install 'fer-prep[cluster]'") from None
    return distributed


@contextlib.contextmanager
def connect(spec: Cluster) -> Iterator[Any]:
    """A `distributed.Client` of the cluster, closed (and a local cluster shut down) after."""
    distributed = _import_distributed()
    quiet = {"silence_logs": logging.ERROR}
    if spec.workers:
        with distributed.LocalCluster(n_workers=spec.workers, threads_per_worker=1,
                                      processes=True, host="127.0.0.1",
                                      dashboard_address=None, **quiet) as local, \
                distributed.Client(local) as client:
            yield client
        return
    try:
        client = distributed.Client(spec.address, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        raise WorkError(f"--scheduler {spec.address}: no Dask scheduler answers there ({exc}); "
                        f"start one (`dask scheduler`) or check the address") from None
    with client:
        try:  # a batch system's workers may still be queued
            client.wait_for_workers(1, timeout=WORKER_WAIT)
        except TimeoutError:
            raise WorkError(f"--scheduler {spec.address}: no worker joined the cluster in "
                            f"{WORKER_WAIT} s; start them (`dask worker {spec.address} "
                            "--nthreads 1`)") from None
        threads = client.nthreads()
        shared = sorted(w for w, n in threads.items() if n > 1)
        if shared:
            raise WorkError(f"--scheduler {spec.address}: worker {shared[0]} runs "
                            f"{threads[shared[0]]} threads; start workers with --nthreads 1 "
                            "(threads would share one process's face models)")
        yield client


def workers(client: Any) -> int:
    """How many batches the cluster runs at once (its worker threads)."""
    return max(1, sum(client.nthreads().values()))


def map_unordered(client: Any, fn: Callable, calls: Iterable[tuple]) -> Iterator[Any]:
    """`fn(*args)` for every call on the cluster, yielding results as they finish. A batch
    whose workers kept dying, and a cluster left without workers for `WORKER_WAIT` seconds
    (batch jobs ended by their walltime or `scancel`, none queued to follow), are errors: the
    batches done are saved, and a rerun goes on from them."""
    distributed = _import_distributed()
    futures = [client.submit(fn, *args, pure=False) for args in calls]
    running = distributed.as_completed(futures)
    alone_since, next_look = None, 0.0
    try:
        while not running.is_empty():
            ready = running.next_batch(block=False)
            for future in ready:
                try:
                    yield future.result()
                except distributed.KilledWorker as exc:
                    raise WorkError(f"a batch killed every Dask worker that ran it ({exc}); "
                                    "the run resumes where it stopped once the cause is fixed"
                                    ) from None
            if ready:
                continue
            now = time.monotonic()
            if now >= next_look:
                next_look = now + LOOK
                if client.nthreads():
                    alone_since = None
                elif alone_since is None:
                    alone_since = now
                elif now - alone_since > WORKER_WAIT:
                    raise WorkError(f"--scheduler {client.scheduler.address}: no worker left "
                                    f"for {WORKER_WAIT} s (their batch jobs ended: a walltime, "
                                    "scancel?); the batches done are saved: start workers and "
                                    "run the same command again")
            time.sleep(POLL)
    finally:
        client.cancel(futures)
