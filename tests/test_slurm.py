"""On a real one-node SLURM cluster (the `slurm` fixture: Debian's munge, slurmctld, slurmd):
array jobs of `--shard slurm` tasks (one killed mid-run) and the run without `--shard` after
them; the manual's dask-jobqueue script; the by-hand scheduler and `srun` workers; a worker job
`scancel`ed and one ended by its walltime mid-run. Each gives the bytes of a local run."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import stage_contents

BIN = Path(sys.executable).parent  # the venv's commands: dask, fer-prep


def _script(*args: str) -> str:
    return f"#!/bin/bash\nset -e\n{sys.executable} -m fer_prep.cli {' '.join(args)}\n"


@contextlib.contextmanager
def _scheduler(folder: Path) -> Iterator[tuple[str, Path]]:
    """A Dask scheduler started by hand (`dask scheduler --scheduler-file`, as on a login node):
    (its address, its file), stopped at the end."""
    file = folder / "scheduler.json"
    proc = subprocess.Popen([str(BIN / "dask"), "scheduler", "--scheduler-file", str(file),
                             "--host", "127.0.0.1", "--no-dashboard"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not file.is_file():
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.2)
        yield json.loads(file.read_text())["address"], file
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _workers(file: Path) -> str:
    """A batch script whose tasks (sbatch's --ntasks) are single-threaded Dask workers."""
    return (f"#!/bin/bash\nsrun {BIN / 'dask'} worker --scheduler-file {file} --nthreads 1 "
            "--no-dashboard\n")


def _final(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "fer_prep.cli", *args], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _ended(slurm, job: int | str, timeout: float = 300) -> str:
    """Job `job`'s state once it has ended (TIMEOUT, CANCELLED, …)."""
    deadline = time.monotonic() + timeout
    while (state := slurm.state(job)) in ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING"):
        assert time.monotonic() < deadline, f"job {job} still {state}\n{slurm.logs()}"
        time.sleep(0.2)
    return state


def _first_shard_saved(parts: Path, count: int, timeout: float = 300) -> int:
    """The shard (of `count`) of the first batch saved in `parts`, as soon as there is one."""
    from pyarrow import feather

    from fer_prep.runner.shard import Shard

    deadline = time.monotonic() + timeout
    while not (saved := sorted(parts.glob("[!.]*.arrow"))):
        assert time.monotonic() < deadline, "no batch saved"
        time.sleep(0.05)
    sequence = feather.read_table(saved[0], columns=["sequence"])["sequence"][0].as_py()
    return next(i for i in range(count) if Shard(i, count).mine(sequence))


def test_an_array_job_with_a_task_killed_mid_run_then_one_run_is_a_whole_run(
        slurm, shared: Path, ck_all_local: Path, tmp_path: Path) -> None:
    """Four `--shard slurm` tasks, two at a time, on every frame of the shared CK+: the task
    that saved the first batch is `scancel`ed then, mid-run; the others finish, and the run
    without `--shard` maps what the killed task left, byte-identical to a run never sharded."""
    args = ["ckplus", "align", "--root", str(shared / "data/ckplus"), "--work", str(tmp_path),
            "--frames", "all", "--jobs", "1"]
    folder = tmp_path / "ckplus/align"
    job = slurm.sbatch(_script(*args, "--shard", "slurm"), "--array=0-3%2", "--ntasks=1",
                       "--cpus-per-task=1", "--job-name=align")
    killed = _first_shard_saved(folder / ".parts", 4)
    slurm.run("scancel", f"{job}_{killed}")
    assert _ended(slurm, f"{job}_{killed}") == "CANCELLED"
    slurm.wait(job)
    logs = {i: (slurm.base / f"align-{job}_{i}.out").read_text() for i in range(4)}
    for i, log in logs.items():  # a task's summary line: every task's but the killed one's
        assert (f"shard {i}/4:" in log) == (i != killed), (i, killed, log)
    assert not (folder / "manifest.parquet").exists()

    out = _final(*args)
    computed = int(out.split(" computed")[0].rsplit(" ", 1)[-1])
    assert computed > 0 and " 0 reused" not in out  # the killed task's rest, the others' saved
    assert stage_contents(folder) == stage_contents(ck_all_local)


def test_afew_clips_in_an_array_job(slurm, afew_sample: Path, tmp_path: Path) -> None:
    once, work = tmp_path / "once", tmp_path / "work"
    args = ["afew", "video2frame", "--root", str(afew_sample), "--jobs", "1"]
    _final(*args, "--work", str(once))
    job = slurm.sbatch(_script(*args, "--work", str(work), "--shard", "slurm"), "--array=0-3",
                       "--cpus-per-task=1", "--job-name=frames")
    slurm.wait(job)
    assert " 0 computed" in _final(*args, "--work", str(work))
    assert stage_contents(work / "afew/frames") == stage_contents(once / "afew/frames")


def test_the_manuals_dask_jobqueue_script_aligns_as_a_local_run(
        slurm, shared: Path, ck_unsharded: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/clusters.md's SLURMCluster script, but for the partition, the sizes and the paths:
    two single-core worker jobs, and the bytes of a local run."""
    pytest.importorskip("dask_jobqueue")
    from dask.distributed import Client
    from dask_jobqueue import SLURMCluster

    from fer_prep.runner import run

    monkeypatch.setenv("SLURM_CONF", slurm.env["SLURM_CONF"])
    cluster = SLURMCluster(
        queue="test",
        cores=1, processes=1,
        memory="2GB", walltime="00:20:00",
        job_script_prologue=[f"source {BIN / 'activate'}"],
        local_directory=str(tmp_path / "dask"),
        log_directory=str(slurm.base),
    )
    try:
        cluster.scale(jobs=2)
        with Client(cluster) as client:
            client.wait_for_workers(2, timeout=120)
            result = run("ckplus", "align", tmp_path / "work", root=shared / "data/ckplus",
                         scheduler=cluster.scheduler_address)
    finally:
        cluster.close()
    assert result.counts == {"ok": 72}
    assert stage_contents(result.folder) == stage_contents(ck_unsharded)


def test_the_by_hand_route_a_scheduler_and_srun_workers(slurm, shared: Path, ck_unsharded: Path,
                                                          tmp_path: Path) -> None:
    """`dask scheduler --scheduler-file`, an `sbatch` of `srun dask worker --nthreads 1` (two
    tasks), then `fer-prep … --scheduler`: the bytes of a local run."""
    from dask.distributed import Client

    with _scheduler(tmp_path) as (address, file):
        job = slurm.sbatch(_workers(file), "--ntasks=2", "--cpus-per-task=1",
                           "--job-name=workers")
        try:
            with Client(address) as client:
                client.wait_for_workers(2, timeout=120)
            out = _final("ckplus", "align", "--root", str(shared / "data/ckplus"), "--work",
                         str(tmp_path / "work"), "--scheduler", address)
        finally:
            slurm.run("scancel", str(job), check=False)
    assert "72 rows (ok: 72)" in out
    assert stage_contents(tmp_path / "work/ckplus/align") == stage_contents(ck_unsharded)


def test_a_worker_job_cancelled_mid_run_loses_nothing(slurm, shared: Path, ck_all_local: Path,
                                                      tmp_path: Path) -> None:
    """Two worker jobs; one `scancel`ed once batches are saved: the run finishes on the other
    (or stops on one line), and the rerun from the saved batches equals a local run."""
    from dask.distributed import Client

    args = ["ckplus", "align", "--root", str(shared / "data/ckplus"), "--frames", "all"]
    work = tmp_path / "work"
    with _scheduler(tmp_path) as (address, file):
        jobs = [slurm.sbatch(_workers(file), "--ntasks=1", "--cpus-per-task=1",
                             "--job-name=worker") for _ in range(2)]
        try:
            with Client(address) as client:
                client.wait_for_workers(2, timeout=120)
            proc = subprocess.Popen([sys.executable, "-m", "fer_prep.cli", *args, "--work",
                                     str(work), "--scheduler", address], text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            parts = work / "ckplus/align/.parts"
            while not (parts.is_dir() and len(list(parts.glob("*.arrow"))) >= 2):
                assert proc.poll() is None, proc.communicate()
                time.sleep(0.1)
            slurm.run("scancel", str(jobs[0]))
            err = proc.communicate(timeout=600)[1]
            lines = err.strip().splitlines()
            assert proc.returncode == 0 or (proc.returncode == 1 and "Traceback" not in err
                                            and lines[-1].startswith("Error:")), err
            again = _final(*args, "--work", str(work), "--scheduler", address)
        finally:
            for job in jobs:
                slurm.run("scancel", str(job), check=False)
    assert "ckplus align: 333 rows" in again  # every frame of the shared CK+
    assert stage_contents(work / "ckplus/align") == stage_contents(ck_all_local)


def test_a_worker_job_ended_by_its_walltime_mid_run_loses_nothing(
        slurm, shared: Path, tmp_path: Path) -> None:
    """A worker job of `--time=1` alone on the cluster, its minute running out while it maps
    (the run starts ten seconds before slurmctld ends the job), and a second worker job queued
    to follow it (`--dependency=afterany`): the run finishes on the second, and equals a local
    run of the same 999 frames (the shared CK+ linked 3 times: enough work to outlast the
    ten seconds on a machine several times faster)."""
    from copies import link_ckplus

    root = link_ckplus(tmp_path / "ck", shared / "data/ckplus", 3)
    args = ["ckplus", "align", "--root", str(root), "--frames", "all"]
    work, parts = tmp_path / "work", tmp_path / "work/ckplus/align/.parts"
    with _scheduler(tmp_path) as (address, file):
        first = slurm.sbatch(_workers(file), "--ntasks=1", "--cpus-per-task=1", "--time=1",
                             "--job-name=walltime")
        then = slurm.sbatch(_workers(file), "--ntasks=1", "--cpus-per-task=1",
                            f"--dependency=afterany:{first}", "--job-name=then")
        try:
            # the reference while the first job's minute runs (its worker waits, idle)
            _final(*args, "--work", str(tmp_path / "local"), "--jobs", "2")
            deadline = time.monotonic() + 120
            while slurm.state(first) != "RUNNING":  # its start time is known from then on
                assert time.monotonic() < deadline, slurm.run("squeue")
                time.sleep(0.2)
            end = slurm.walltime_end(first)
            time.sleep(max(0.0, end - 10 - time.time()))
            proc = subprocess.Popen([sys.executable, "-m", "fer_prep.cli", *args, "--work",
                                     str(work), "--scheduler", address], text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            assert _ended(slurm, first) == "TIMEOUT"
            saved = len(list(parts.glob("*.arrow")))
            assert proc.poll() is None, "the run ended before the walltime"
            assert saved >= 1, "the first worker job ended before a batch was saved"
            out, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, err  # on the worker job that followed
            assert "ckplus align: 999 rows (ok: 999)" in out
            again = _final(*args, "--work", str(work), "--scheduler", address)
        finally:
            for job in (first, then):
                slurm.run("scancel", str(job), check=False)
    assert "unchanged, skipped" in again
    assert stage_contents(work / "ckplus/align") == \
        stage_contents(tmp_path / "local/ckplus/align")
