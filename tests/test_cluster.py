"""Stages on a real Dask cluster (`distributed.LocalCluster`, 2 worker processes, loopback): the
same bytes as a local run on real CK+ frames and AFEW clips, a worker killed mid-run costs
nothing, resume and the CLI's summary hold, and the mistakes are one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import stage_contents

from fer_prep.cli import main
from fer_prep.errors import OptionError, WorkError
from fer_prep.runner import PARTS, run
from fer_prep.runner.cluster import resolve_cluster

distributed = pytest.importorskip("distributed")

CLIPS = ("WolfgangLanger_Pexels.mp4", "single_face.mp4")


@pytest.fixture(scope="module")
def cluster():
    """A LocalCluster of 2 single-threaded worker processes on the loopback interface."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None,
                                  silence_logs=50) as local:
        yield local


@pytest.fixture(scope="module")
def afew_root(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("afew")
    (root / "Train_AFEW/Happy").mkdir(parents=True)
    for clip in CLIPS:
        (root / "Train_AFEW/Happy" / clip).symlink_to(shared / "data/media" / clip)
    return root


def test_ckplus_on_a_local_cluster_is_a_local_run_byte_for_byte(shared: Path,
                                                                 tmp_path: Path) -> None:
    root = shared / "data/ckplus"
    local = run("ckplus", "align", tmp_path / "local", root=root, jobs=2)
    dask = run("ckplus", "align", tmp_path / "dask", root=root, cluster="local:2")
    assert local.counts == dask.counts == {"ok": 72}
    ours = stage_contents(tmp_path / "local/ckplus/align")
    theirs = stage_contents(tmp_path / "dask/ckplus/align")
    assert len(ours) == 75 and ours == theirs  # 72 chips, the manifest (parquet, csv), sources


def test_afew_clips_on_a_running_cluster_are_a_local_run_byte_for_byte(
        afew_root: Path, cluster, tmp_path: Path) -> None:
    local = run("afew", "align-video", tmp_path / "local", root=afew_root, from_video=True,
                jobs=1)
    dask = run("afew", "align-video", tmp_path / "dask", root=afew_root, from_video=True,
               scheduler=cluster.scheduler_address)
    assert local.counts == dask.counts and local.counts["ok"] == 544
    assert stage_contents(tmp_path / "local/afew/align") == \
        stage_contents(tmp_path / "dask/afew/align")


def _kill_once_saved(work: Path, pid: int) -> threading.Thread:
    """A thread that kills process `pid` (SIGKILL) once a batch of the CK+ align in `work` is
    saved."""
    def kill() -> None:
        parts = work / "ckplus/align" / PARTS
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list(parts.glob("[!.]*.arrow")):
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)

    thread = threading.Thread(target=kill)
    thread.start()
    return thread


def test_a_worker_killed_mid_run_loses_nothing(shared: Path, cluster, ck_all_local: Path,
                                               tmp_path: Path) -> None:
    """Every frame of the 18 sequences in batches; once the first batch is saved, one worker
    process is killed (SIGKILL): its batch runs again elsewhere, every frame comes out once and
    the bytes equal a local run's."""
    root = shared / "data/ckplus"
    work = tmp_path / "dask"
    client = distributed.Client(cluster)
    pid = next(iter(client.run(os.getpid).values()))
    killer = _kill_once_saved(work, pid)
    try:
        dask = run("ckplus", "align", work, root=root, frames="all",
                   scheduler=cluster.scheduler_address)
    finally:
        killer.join()
        client.close()
    with pytest.raises(ProcessLookupError):  # the kill happened during the run
        os.kill(pid, 0)
    assert dask.counts == {"ok": 333}
    manifest = pd.read_parquet(work / "ckplus/align/manifest.parquet")
    assert manifest["sample_id"].is_unique and len(manifest) == 333
    assert stage_contents(ck_all_local) == stage_contents(work / "ckplus/align")
    again = run("ckplus", "align", work, root=root, frames="all",
                scheduler=cluster.scheduler_address)
    assert again.skipped  # the resume rules hold: up to date, nothing redone


def test_a_cluster_whose_every_worker_left_is_one_line_and_the_rerun_goes_on(
        shared: Path, ck_all_local: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The only worker (a `dask worker` process, as a batch job's) killed once a batch is
    saved, and no other coming: after WORKER_WAIT the run stops on one error naming the
    scheduler; with a new worker, the same command maps only what was not saved, and the bytes
    equal a local run's."""
    monkeypatch.setattr("fer_prep.runner.cluster.WORKER_WAIT", 2)
    root, work = shared / "data/ckplus", tmp_path / "dask"
    quiet = {"host": "127.0.0.1", "dashboard_address": None, "silence_logs": 50}

    def worker(address: str) -> subprocess.Popen:
        return subprocess.Popen([str(Path(sys.executable).parent / "dask"), "worker", address,
                                 "--nthreads", "1", "--no-nanny", "--no-dashboard"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    with distributed.LocalCluster(n_workers=0, **quiet) as empty:
        address = empty.scheduler_address
        first = worker(address)
        try:
            killer = _kill_once_saved(work, first.pid)
            with pytest.raises(WorkError, match=f"--scheduler {address}: no worker left for "
                               "2 s .* the batches done are saved"):
                run("ckplus", "align", work, root=root, frames="all", scheduler=address)
            killer.join()
            assert first.wait(timeout=30) == -signal.SIGKILL
            saved = len(list((work / "ckplus/align" / PARTS).glob("[!.]*.arrow")))
            assert saved >= 1 and not (work / "ckplus/align/manifest.parquet").exists()
            second = worker(address)
            try:
                again = run("ckplus", "align", work, root=root, frames="all",
                            scheduler=address)
            finally:
                second.terminate()
                second.wait(timeout=30)
        finally:
            first.kill()
    assert again.counts == {"ok": 333} and 0 < again.reused < 333
    assert stage_contents(ck_all_local) == stage_contents(work / "ckplus/align")


def test_the_cli_runs_on_a_cluster_and_prints_its_summary(ck_sample: Path, tmp_path: Path
                                                          ) -> None:
    result = CliRunner().invoke(main, ["ckplus", "align", "--root", str(ck_sample), "--work",
                                       str(tmp_path), "--cluster", "local:2"])
    assert result.exit_code == 0, result.output
    assert "ckplus align:" in result.output and "computed, 0 reused" in result.output


@pytest.mark.parametrize(("cluster", "scheduler", "message"), [
    ("local2", None, "--cluster 'local2': write local:N"),
    ("local:0", None, "--cluster 'local:0': write local:N"),
    ("local:2", "tcp://127.0.0.1:8786", "--cluster and --scheduler: give one"),
])
def test_bad_cluster_options_are_one_line(cluster: str, scheduler: str | None,
                                          message: str) -> None:
    with pytest.raises(OptionError, match=message.replace("(", r"\(")):
        resolve_cluster(cluster, scheduler)


def test_a_scheduler_from_the_environment_and_one_that_does_not_answer(
        ck_sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FER_PREP_SCHEDULER", "tcp://127.0.0.1:9")
    assert str(resolve_cluster()) == "tcp://127.0.0.1:9"
    monkeypatch.setattr("fer_prep.runner.cluster.CONNECT_TIMEOUT", 2)
    with pytest.raises(WorkError, match="no Dask scheduler answers there"):
        run("ckplus", "align", tmp_path, root=ck_sample)


def test_a_cluster_without_workers_or_with_threaded_ones_is_one_line(
        ck_sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("fer_prep.runner.cluster.WORKER_WAIT", 1)
    quiet = {"host": "127.0.0.1", "dashboard_address": None, "silence_logs": 50}
    with distributed.LocalCluster(n_workers=0, **quiet) as empty, \
            pytest.raises(WorkError, match="no worker joined the cluster in 1 s"):
        run("ckplus", "align", tmp_path, root=ck_sample, scheduler=empty.scheduler_address)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, **quiet) as threaded, \
            pytest.raises(WorkError, match="runs 2 threads; start workers with --nthreads 1"):
        run("ckplus", "align", tmp_path, root=ck_sample, scheduler=threaded.scheduler_address)


def test_a_broken_frame_on_a_cluster_is_a_row_and_the_rest_completes(shared: Path,
                                                                     tmp_path: Path) -> None:
    """One CK+ frame replaced by garbage: on the cluster as locally, its row says so and
    names the file, and every other frame is aligned."""
    source, root = shared / "data/ckplus", tmp_path / "ckplus"
    for path in sorted(source.rglob("*")):
        if path.is_file():
            (root / path.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
            (root / path.relative_to(source)).symlink_to(path)
    broken = root / "cohn-kanade-images/S052/001/S052_001_00000015.png"
    broken.unlink()
    broken.write_bytes(b"not a png at all")
    local = run("ckplus", "align", tmp_path / "local", root=root, jobs=2)
    dask = run("ckplus", "align", tmp_path / "dask", root=root, cluster="local:2")
    assert local.counts == dask.counts
    assert dask.counts["ok"] == 71 and sum(dask.counts.values()) == 72
    rows = pd.read_parquet(tmp_path / "dask/ckplus/align/manifest.parquet")
    bad = rows[rows["status"] != "ok"]
    assert len(bad) == 1 and "S052_001_00000015.png" in bad["message"].iloc[0]
    assert stage_contents(tmp_path / "local/ckplus/align") == \
        stage_contents(tmp_path / "dask/ckplus/align")
