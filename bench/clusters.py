"""The same faces three ways on one machine: local `--jobs 2`, a SLURM array of 2 one-CPU tasks
(`--shard slurm`, then the run without `--shard`), and a dask-jobqueue `SLURMCluster` of 2
one-core worker jobs, in one run, with each one's wall time, its ratio to `--jobs 2` and peak
resident memory.

The data: `bench/throughput.py`'s 1,332 CK+ frames (the 18 shared sequences linked 4 times under
other names, `ckplus align --frames all`). The SLURM cluster is the tests' one-node cluster
(`tests/slurm_cluster.py`: Debian's munge, slurmctld and slurmd, started here in a temporary
folder; root and those packages needed). Every method starts from an empty work folder, in
fresh processes; the three results are checked to be the same bytes.

Peak memory is per process (the largest one's resident peak, `wait4`/`getrusage`): the client
and each worker or task.

    python bench/clusters.py [--shared ../shared] [--copies 4]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the tests' helpers

from conftest import stage_contents
from copies import link_ckplus
from slurm_cluster import missing, start

BIN = Path(sys.executable).parent
#: runs a command and prints its peak resident memory (its own or any child's), in MB
PEAK = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]); "
        "print(f'peak_mb={resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f}');"
        " sys.exit(done.returncode)")
#: the manual's dask-jobqueue script (docs/clusters.md) but for the partition, sizes and paths;
#: prints its times and each worker's peak as JSON
JOBQUEUE = """
import json, resource, sys, time
from dask.distributed import Client
from dask_jobqueue import SLURMCluster
from fer_prep.runner import run

work, root, logs, venv = sys.argv[1:5]
start = time.perf_counter()
cluster = SLURMCluster(queue="test", cores=1, processes=1, memory="2GB", walltime="00:30:00",
                       job_script_prologue=[f"source {venv}/activate"],
                       local_directory=f"{work}/dask", log_directory=logs)
cluster.scale(jobs=2)
with Client(cluster) as client:
    client.wait_for_workers(2, timeout=300)
    ready = time.perf_counter()
    result = run("ckplus", "align", work, root=root, frames="all",
                 scheduler=cluster.scheduler_address)
    done = time.perf_counter()
    peaks = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
cluster.close()
print(json.dumps({"faces": result.counts.get("ok", 0), "start": ready - start,
                  "run": done - ready, "workers_mb": sorted(peaks.values())}))
"""


def fresh(command: list[str], env: dict[str, str] | None = None) -> tuple[str, float, float]:
    """A fresh process: (its stdout, seconds, peak MB of it or of any process it started)."""
    with tempfile.TemporaryFile("w+") as err:
        begin = time.perf_counter()
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - begin
        if status:
            err.seek(0)
            raise SystemExit(f"{' '.join(command)} failed:\n{err.read()[-3000:]}")
    return out, seconds, usage.ru_maxrss / 1024


def faces(out: str) -> int:
    """The ok rows of a run's summary line ("… rows (ok: N, …)")."""
    return int(out.split("ok: ")[1].split(")")[0].split(",")[0])


def local(args: list[str]) -> dict:
    out, seconds, peak = fresh([str(BIN / "fer-prep"), *args, "--jobs", "2"])
    return {"wall": seconds, "peak": peak, "faces": faces(out)}


def array(slurm, args: list[str]) -> dict:
    """`sbatch --array=0-1 --cpus-per-task=1` of `--shard slurm --jobs 1` tasks, waited for,
    then the run without `--shard` (from the login node)."""
    task = (f"#!/bin/bash\n{sys.executable} -c \"{PEAK}\" {BIN / 'fer-prep'} "
            f"{' '.join(args)} --jobs 1 --shard slurm\n")
    begin = time.perf_counter()
    job = slurm.sbatch(task, "--array=0-1", "--ntasks=1", "--cpus-per-task=1",
                       "--job-name=array")
    slurm.wait(job, timeout=1800)
    tasks = time.perf_counter() - begin
    peaks = []
    for log in sorted(slurm.base.glob(f"array-{job}_*.out")):
        text = log.read_text()
        if "peak_mb=" not in text:
            raise SystemExit(f"array task {log.name} failed:\n{text[-3000:]}")
        peaks.append(float(text.rsplit("peak_mb=", 1)[1].split()[0]))
    out, final, final_mb = fresh([str(BIN / "fer-prep"), *args])
    return {"wall": tasks + final, "tasks": tasks, "final": final, "task_mb": peaks,
            "final_mb": final_mb, "peak": max(*peaks, final_mb), "faces": faces(out)}


def jobqueue(slurm, work: Path, root: Path) -> dict:
    """The manual's dask-jobqueue script in a fresh process (the client), 2 worker jobs."""
    out, seconds, client_mb = fresh(
        [sys.executable, "-c", JOBQUEUE, str(work), str(root), str(slurm.base), str(BIN)],
        env={**os.environ, "SLURM_CONF": slurm.env["SLURM_CONF"]})
    found = json.loads(out.strip().splitlines()[-1])
    return {**found, "wall": seconds, "client_mb": client_mb,
            "peak": max(*found["workers_mb"], client_mb)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path,
                        default=Path(os.environ.get("FER_PREP_SHARED", "../shared")))
    parser.add_argument("--copies", type=int, default=4, help="copies of the shared CK+")
    options = parser.parse_args()
    why = missing()
    if why:  # said, and `make bench` goes on to the next benchmark
        print(f"bench/clusters.py: not run, it starts a SLURM cluster on this machine: {why}")
        return
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        root = link_ckplus(tmp / "ck", options.shared.resolve() / "data/ckplus", options.copies)
        slurm = start(tmp / "slurm")
        try:
            align = ["ckplus", "align", "--root", str(root), "--frames", "all", "--work"]
            found = {"local --jobs 2": local([*align, str(tmp / "local")]),
                     "SLURM array, 2 tasks × 1 CPU": array(slurm, [*align, str(tmp / "array")]),
                     "dask-jobqueue, 2 workers × 1 core": jobqueue(slurm, tmp / "jobqueue", root)}
        finally:
            slurm.stop()
        same = {w: stage_contents(tmp / w / "ckplus/align") for w in ("local", "array", "jobqueue")}
        alike = same["local"] == same["array"] == same["jobqueue"]

    cpus = os.cpu_count()
    base = found["local --jobs 2"]
    print(f"{cpus} cores; ckplus align --frames all, {base['faces']:,} frames; fresh processes, "
          "empty work folders")
    print(f"{'method':36s} {'wall s':>7s} {'faces/s':>8s} {'× jobs 2':>9s} {'peak MB':>8s}")
    for what, row in found.items():
        print(f"{what:36s} {row['wall']:7.1f} {row['faces'] / row['wall']:8.1f} "
              f"{base['wall'] / row['wall']:9.2f} {row['peak']:8.0f}")
    a, q = found["SLURM array, 2 tasks × 1 CPU"], found["dask-jobqueue, 2 workers × 1 core"]
    print(f"\narray: the tasks {a['tasks']:.1f} s (submission to the last task's end; peaks "
          f"{', '.join(f'{m:.0f}' for m in a['task_mb'])} MB), the run without --shard "
          f"{a['final']:.1f} s ({a['final_mb']:.0f} MB)")
    print(f"dask-jobqueue: the worker jobs {q['start']:.1f} s (submission to both workers "
          f"joined), the run {q['run']:.1f} s; client {q['client_mb']:.0f} MB, workers "
          f"{', '.join(f'{m:.0f}' for m in q['workers_mb'])} MB")
    print(f"the three results byte-identical: {'yes' if alike else 'NO'}")
    if not alike:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
