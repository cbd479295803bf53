"""A one-node SLURM cluster on this machine, for the tests: Debian's `munge`, `slurmctld` and
`slurmd` (which `make test` installs where apt and root allow), started with a configuration
of their own in a temporary folder — a munge key and socket, a `slurm.conf` with one partition
and the machine's CPUs — so nothing of the system's is read or changed. Client commands find it
through `SLURM_CONF`, which `Slurm.env` sets."""

from __future__ import annotations

import math
import os
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scancel", "scontrol")
CONF = """\
ClusterName=ferprep
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={base}/munge.socket
CryptoType=crypto/munge
StateSaveLocation={base}/ctld
SlurmdSpoolDir={base}/d
SlurmctldPidFile={base}/slurmctld.pid
SlurmdPidFile={base}/slurmd.pid
SlurmctldLogFile={base}/slurmctld.log
SlurmdLogFile={base}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
SwitchType=switch/none
KillWait=5
MinJobAge=5
InactiveLimit=0
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory} State=UNKNOWN
PartitionName=test Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def missing() -> str:
    """Why a SLURM cluster cannot be started here ("" when it can)."""
    if os.geteuid() != 0:
        return "the SLURM daemons run as root, and the tests do not"
    gone = [name for name in DAEMONS if shutil.which(name) is None]
    return f"not installed: {', '.join(gone)} (Debian's munge, slurmctld, slurmd, slurm-client)" \
        if gone else ""


def _memory_mb() -> int:
    """Nine tenths of the machine's memory in MB: what jobs may ask for (`--mem`)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 9 // 10 // 1024
    return 1024


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: slurmctld ends jobs past their time limit on a cycle of this many seconds, counted from its
#: start (PERIODIC_TIMEOUT in its source; measured on 22.05: a job whose minute ran out is
#: ended at the next multiple, within a second)
TIME_LIMIT_CYCLE = 30


@dataclass
class Slurm:
    """The running cluster: its folder, the environment its client commands need, and when
    slurmctld started (wall clock)."""

    base: Path
    env: dict[str, str] = field(default_factory=dict)
    procs: list[subprocess.Popen] = field(default_factory=list)
    ctld_started: float = 0.0

    def run(self, *args: str, check: bool = True) -> str:
        """A client command's output (sbatch, squeue, scancel, sinfo)."""
        done = subprocess.run(list(args), env=self.env, capture_output=True, text=True)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)}: {done.stderr.strip()}\n{self.logs()}")
        return done.stdout

    def sbatch(self, script: str, *args: str) -> int:
        """Submit `script` (its text); the job id."""
        path = self.base / f"job-{time.monotonic_ns()}.sh"
        path.write_text(script)
        out = self.run("sbatch", "--parsable", f"--chdir={self.base}",
                       f"--output={self.base}/%x-%A_%a.out", *args, str(path))
        return int(out.strip().split(";")[0])

    def wait(self, job: int, timeout: float = 600) -> None:
        """Until job `job` (every task of an array) has left the queue."""
        deadline = time.monotonic() + timeout
        while self.run("squeue", "--noheader", "-j", str(job), check=False).strip():
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job} still queued after {timeout} s\n{self.logs()}")
            time.sleep(0.5)

    def state(self, job: int | str) -> str:
        """A job's (or an array task's, `JOB_TASK`) state: RUNNING, TIMEOUT, …; "" once
        slurmctld forgot it (MinJobAge)."""
        return self.run("squeue", "--noheader", "-t", "all", "-j", str(job), "-o", "%T",
                        check=False).strip()

    def walltime_end(self, job: int) -> float:
        """When (wall clock) slurmctld will end running job `job` for its time limit: the first
        of its time-limit cycles at or after the job's start plus its limit."""
        fields = dict(f.split("=", 1) for f in self.run(
            "scontrol", "--oneliner", "show", "job", str(job)).split() if "=" in f)
        start = datetime.fromisoformat(fields["StartTime"]).timestamp()
        days, _, clock = fields["TimeLimit"].rpartition("-")
        h, m, sec = (int(x) for x in clock.split(":"))
        limit = start + 86400 * int(days or 0) + 3600 * h + 60 * m + sec
        cycles = math.ceil((limit - self.ctld_started) / TIME_LIMIT_CYCLE)
        return self.ctld_started + cycles * TIME_LIMIT_CYCLE

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}"
                         for p in sorted(self.base.glob("*.log")))

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def start(base: Path, timeout: float = 60) -> Slurm:
    """Start munged, slurmctld and slurmd in `base`; return once `sinfo` shows the node idle."""
    for folder in ("ctld", "d", "munge"):
        (base / folder).mkdir(parents=True, exist_ok=True)
    key = base / "munge.key"
    key.write_bytes(secrets.token_bytes(1024))
    key.chmod(0o400)
    host = socket.gethostname().split(".")[0]
    conf = base / "slurm.conf"
    conf.write_text(CONF.format(host=host, base=base, cpus=os.cpu_count() or 1,
                                memory=_memory_mb(), ctld_port=_port(), d_port=_port()))
    cluster = Slurm(base, {**os.environ, "SLURM_CONF": str(conf)})
    daemons = [
        ["munged", "--foreground", "--force", f"--key-file={key}",
         f"--socket={base}/munge.socket", f"--pid-file={base}/munged.pid",
         f"--log-file={base}/munged.log", f"--seed-file={base}/munge/seed"],
        ["slurmctld", "-D", "-i", "-f", str(conf)],
        ["slurmd", "-D", "-f", str(conf), "-N", host],
    ]
    for argv in daemons:
        if argv[0] == "slurmctld":
            cluster.ctld_started = time.time()
        with open(base / f"{argv[0]}.err.log", "w") as err:  # the child keeps its own copy
            cluster.procs.append(subprocess.Popen(argv, env=cluster.env, stderr=err,
                                                  stdout=subprocess.DEVNULL))
        time.sleep(0.5 if argv[0] == "munged" else 0)
    deadline = time.monotonic() + timeout
    while "idle" not in cluster.run("sinfo", "--noheader", "-o", "%T", check=False):
        if time.monotonic() > deadline or any(p.poll() is not None for p in cluster.procs):
            cluster.stop()
            raise RuntimeError(f"the SLURM cluster did not come up\n{cluster.logs()}")
        time.sleep(0.5)
    return cluster
