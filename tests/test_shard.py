"""`--shard I/N`: shards of one stage run at once on one work folder, each mapping its share of
the items into saved batches; the run without --shard then writes the stage, byte-identical to
a run never sharded, computing only what no shard finished (a task that died). On the shared
CK+ (real MediaPipe) and the AFEW sample clips (real ffmpeg)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import stage_contents

from fer_prep.cli import main
from fer_prep.errors import OptionError
from fer_prep.reports.status import PARTIAL, work_status
from fer_prep.runner.shard import Shard, parse_shard


def _fer_prep(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "fer_prep.cli", *args], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _done(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    return out


@pytest.mark.parametrize(("value", "words"), [
    ("4/4", "I counts from 0, so it must be below N (0/4 … 3/4)"),
    ("0/0", "N, the number of shards, must be 1 or more"),
    ("half", "give I/N"),
    ("slurm", "not inside a SLURM array job"),
])
def test_a_wrong_shard_is_one_line(value: str, words: str, ck_sample: Path, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(main, ["ckplus", "align", "--root", str(ck_sample), "--work",
                                       str(tmp_path / "w"), "--shard", value])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines == [f"Error: --shard {value}: {lines[0].split(': ', 2)[2]}"] and words in lines[0]
    assert not (tmp_path / "w").exists()


def test_slurm_array_tasks_are_shards() -> None:
    env = {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_COUNT": "4",
           "SLURM_ARRAY_TASK_MIN": "5", "SLURM_ARRAY_TASK_MAX": "8"}
    assert parse_shard("slurm", env) == Shard(2, 4)
    with pytest.raises(OptionError, match="not 4 in a row"):
        parse_shard("slurm", {**env, "SLURM_ARRAY_TASK_MAX": "11"})  # --array=5-11:2
    keys = [f"S{n:03d}/001" for n in range(400)]
    shares = [[k for k in keys if Shard(i, 4).mine(k)] for i in range(4)]
    assert sorted(k for share in shares for k in share) == sorted(keys)
    assert all(len(share) > 50 for share in shares)


def test_shards_at_once_then_the_run_without_is_byte_identical(shared: Path,
                                                               ck_unsharded: Path,
                                                               tmp_path: Path) -> None:
    root, work = shared / "data/ckplus", tmp_path / "work"
    args = ["ckplus", "align", "--root", str(root), "--work", str(work), "--jobs", "1"]
    shards = [_fer_prep(*args, "--shard", f"{i}/3") for i in range(2)]  # 2/3: a task that died
    seen = ""
    while any(p.poll() is None for p in shards):  # status while they run
        status = work_status(work, "ckplus")[0] if (work / "ckplus/align/stage.json").is_file() \
            else None
        stage = status and status.stages[0]
        if stage and stage.state == PARTIAL and "shards running" in stage.detail:
            seen = stage.detail
        time.sleep(0.05)
    outs = [_done(p) for p in shards]
    assert seen.startswith("shards running: 0/3") or seen.startswith("shards running: 1/3")
    assert all("of the items, saved in .parts/" in out for out in outs)
    folder = work / "ckplus/align"
    assert not (folder / "manifest.parquet").exists()
    mapped = [int(out.split(" computed")[0].rsplit(" ", 1)[-1]) for out in outs]
    assert all(n > 0 for n in mapped)

    out = _done(_fer_prep(*args))
    left = int(out.split(" computed")[0].rsplit(" ", 1)[-1])
    assert left > 0 and f"{left} computed, {sum(mapped)} reused" in out
    assert stage_contents(folder) == stage_contents(ck_unsharded)
    assert not (folder / ".parts").exists()


def test_afew_clips_in_two_shards(afew_sample: Path, tmp_path: Path) -> None:
    """Video frames: two shards, then the run without, equal a run never sharded."""
    once, work = tmp_path / "once", tmp_path / "work"
    args = ["afew", "video2frame", "--root", str(afew_sample), "--jobs", "1"]
    _done(_fer_prep(*args, "--work", str(once)))
    for proc in [_fer_prep(*args, "--work", str(work), "--shard", f"{i}/2") for i in range(2)]:
        _done(proc)
    out = _done(_fer_prep(*args, "--work", str(work)))
    assert " 0 computed" in out
    assert stage_contents(work / "afew/frames") == stage_contents(once / "afew/frames")


def test_a_stage_without_a_map_is_not_sharded(ck_sample: Path, tmp_path: Path) -> None:
    work = tmp_path / "w"
    CliRunner().invoke(main, ["ckplus", "align", "--root", str(ck_sample), "--work", str(work)])
    result = CliRunner().invoke(main, ["folds", "--dataset", "ckplus", "--work", str(work),
                                       "--shard", "0/2"])
    assert result.exit_code == 1
    assert result.output.strip() == ("Error: --shard: folds has no per-item work to share; run "
                                     "it whole")
