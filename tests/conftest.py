"""Shared fixtures.

`shared`: the real data folder; skips when it is absent, fails instead under
FER_PREP_REQUIRE_SHARED=1. `slurm`: a one-node SLURM cluster (the same rule).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """The shared data folder, absolute (tests link into it): $FER_PREP_SHARED, else `../shared`
    next to the repository."""
    return Path(os.environ.get("FER_PREP_SHARED", REPO.parent / "shared")).expanduser().absolute()


@pytest.fixture(scope="session")
def shared() -> Path:
    """The shared folder; skips when it is absent, fails instead if FER_PREP_REQUIRE_SHARED=1."""
    path = shared_dir()
    if not path.is_dir():
        reason = f"shared data folder {path} is absent (set FER_PREP_SHARED)"
        if os.environ.get("FER_PREP_REQUIRE_SHARED") == "1":
            pytest.fail(f"{reason}, and FER_PREP_REQUIRE_SHARED=1")
        pytest.skip(reason)
    return path


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs the shared data (through the `shared` fixture) `shared`, so
    `-m "not shared"` selects exactly the tests that run anywhere."""
    for item in items:
        if "shared" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.shared)


@pytest.fixture(scope="session")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded sample of every registered dataset, written once (no ../shared needed)."""
    from fer_prep.datasets import get_dataset, list_datasets

    out = tmp_path_factory.mktemp("samples")
    for name in list_datasets():
        get_dataset(name).write_sample(out)
    return out


@pytest.fixture(scope="session")
def ck_sample(samples: Path) -> Path:
    return samples / "ckplus"


@pytest.fixture(scope="session")
def afew_sample(samples: Path) -> Path:
    return samples / "afew"


@contextlib.contextmanager
def tmpfs(path: Path, size: str, read_only: bool = False) -> Iterator[Path]:
    """A real tmpfs of `size` (e.g. "400k") mounted at `path` for the block (root only; skips
    where mounting is not permitted)."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def remount(path: Path, size: str) -> None:
    """Grow (or shrink) a tmpfs mounted by `tmpfs`: as if space were freed."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True)


def kill_after_parts(proc: subprocess.Popen, parts: Path, n: int = 2, timeout: float = 300
                     ) -> None:
    """SIGKILL the run `proc` once it has saved `n` batches in `parts` (a stage's .parts/)."""
    deadline = time.monotonic() + timeout
    while not (parts.is_dir() and len(list(parts.glob("*.arrow"))) >= n):
        assert proc.poll() is None, "the run finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A one-node SLURM cluster on this machine for the session (`slurm_cluster`); skipped with
    its reason where munge and SLURM are not installed or the tests do not run as root, and a
    failure instead where the real-data tests are mandatory (CI)."""
    from slurm_cluster import missing, start

    why = missing()
    if why and os.environ.get("FER_PREP_REQUIRE_SHARED"):
        pytest.fail(f"no SLURM cluster for the tests: {why}")
    if why:
        pytest.skip(why)
    cluster = start(tmp_path_factory.mktemp("slurm"))
    yield cluster
    cluster.stop()


def _align_shared_ckplus(work: Path, shared: Path, *options: str) -> str:
    """`fer-prep ckplus align` of the shared CK+ into `work`, in a fresh process: its output."""
    done = subprocess.run([sys.executable, "-m", "fer_prep.cli", "ckplus", "align", "--root",
                           str(shared / "data/ckplus"), "--work", str(work), *options],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="session")
def ck_unsharded(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared CK+ aligned in one run, never sharded (`--jobs 1`): the reference of the
    sharded runs."""
    work = tmp_path_factory.mktemp("unsharded")
    _align_shared_ckplus(work, shared, "--jobs", "1")
    return work / "ckplus/align"


@pytest.fixture(scope="session")
def ck_all_local(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every frame of the shared CK+ (`--frames all`, 333) aligned by local processes: the
    reference of the runs on clusters that lost a worker or a task."""
    work = tmp_path_factory.mktemp("all-local")
    out = _align_shared_ckplus(work, shared, "--frames", "all", "--jobs", "2")
    assert "333 rows (ok: 333)" in out, out
    return work / "ckplus/align"


def stage_contents(stage: Path) -> dict[str, str]:
    """Every file of a stage folder but its record and whole.json (which hold times), by
    content hash."""
    import hashlib

    return {str(p.relative_to(stage)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(stage.rglob("*"))
            if p.is_file() and p.name not in ("stage.json", "whole.json")}


@pytest.fixture(scope="session")
def chromium() -> str:
    """Headless Chromium's path (Debian's `chromium`, which `make test` installs where it can);
    skipped where there is none, a failure instead where the real-data tests are mandatory."""
    from fer_prep.reports.report import browser

    found = browser()
    if found is None:
        reason = "no Chromium on PATH (make test installs Debian's chromium where it can)"
        if os.environ.get("FER_PREP_REQUIRE_SHARED") == "1":
            pytest.fail(f"{reason}, and FER_PREP_REQUIRE_SHARED=1")
        pytest.skip(reason)
    return found
