"""On a real one-node SLURM cluster (the `slurm` fixture: Debian's munge, slurmctld, slurmd):
an array job whose tasks each run `--shard slurm`, one task cancelled before it ran, and the
run without `--shard` after it, byte-identical to a run never sharded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import stage_contents


def _script(*args: str) -> str:
    return f"#!/bin/bash\nset -e\n{sys.executable} -m fer_prep.cli {' '.join(args)}\n"


def _final(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "fer_prep.cli", *args], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_an_array_job_with_a_cancelled_task_then_one_run_is_a_whole_run(
        slurm, shared: Path, ck_unsharded: Path, tmp_path: Path) -> None:
    args = ["ckplus", "align", "--root", str(shared / "data/ckplus"), "--work", str(tmp_path),
            "--jobs", "1"]
    # four tasks, two at a time: task 3 waits behind the others and is cancelled (as a task
    # that died) before it runs
    job = slurm.sbatch(_script(*args, "--shard", "slurm"), "--array=0-3%2", "--ntasks=1",
                       "--cpus-per-task=1", "--job-name=align")
    slurm.run("scancel", f"{job}_3")
    slurm.wait(job)
    logs = {p.name: p.read_text() for p in slurm.base.glob(f"align-{job}_*.out")}
    assert sorted(logs) == [f"align-{job}_{i}.out" for i in range(3)], logs
    for i in range(3):
        assert f"shard {i}/4:" in logs[f"align-{job}_{i}.out"], logs
    folder = tmp_path / "ckplus/align"
    assert not (folder / "manifest.parquet").exists()

    out = _final(*args)
    computed = int(out.split(" computed")[0].rsplit(" ", 1)[-1])
    assert computed > 0 and " 0 reused" not in out  # task 3's share, the rest from the tasks
    assert stage_contents(folder) == stage_contents(ck_unsharded)


def test_afew_clips_in_an_array_job(slurm, afew_sample: Path, tmp_path: Path) -> None:
    once, work = tmp_path / "once", tmp_path / "work"
    args = ["afew", "video2frame", "--root", str(afew_sample), "--jobs", "1"]
    _final(*args, "--work", str(once))
    job = slurm.sbatch(_script(*args, "--work", str(work), "--shard", "slurm"), "--array=0-3",
                       "--cpus-per-task=1", "--job-name=frames")
    slurm.wait(job)
    assert " 0 computed" in _final(*args, "--work", str(work))
    assert stage_contents(work / "afew/frames") == stage_contents(once / "afew/frames")
