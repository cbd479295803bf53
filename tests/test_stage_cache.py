"""Cache and resume on real CK+ frames: a re-run rewrites nothing, a parameter change recomputes,
a SIGKILLed run resumes to byte-identical outputs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import kill_after_parts

SEQUENCES = ["S052/001", "S055/004", "S074/005", "S106/002"]


@pytest.fixture()
def ck_root(shared: Path, tmp_path: Path) -> Path:
    """A copy of four real CK+ sequences (images + Emotion files) in the original layout."""
    root = tmp_path / "ck"
    for seq in SEQUENCES:
        for part in ("cohn-kanade-images", "Emotion"):
            shutil.copytree(shared / "data/ckplus" / part / seq, root / part / seq)
    return root


def _align(root: Path, work: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "fer_prep.cli", "ckplus", "align", "--root", str(root),
           "--work", str(work), *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _run(root: Path, work: Path, *extra: str) -> str:
    proc = _align(root, work, *extra)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    return out


def _snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_rerun_rewrites_nothing_and_a_changed_parameter_recomputes(ck_root, tmp_path) -> None:
    work = tmp_path / "work"
    _run(ck_root, work, "--jobs", "2")
    stage = work / "ckplus/align"
    before = _snapshot(stage)
    assert len([k for k in before if k.endswith(".png")]) == 16
    out = _run(ck_root, work, "--jobs", "2")
    assert "unchanged, skipped" in out
    assert _snapshot(stage) == before  # same bytes and same mtimes: nothing rewritten

    downstream = work / "ckplus/masks"  # a later stage that read this one
    downstream.mkdir()
    (downstream / "stage.json").write_text(json.dumps({"inputs": ["align"], "complete": True}))
    # without --follow each frame's result is its own, so another frame selection reuses it
    out = _run(ck_root, work, "--jobs", "2", "--padding", "0.1", "--no-follow")
    after = _snapshot(stage)
    assert json.loads((downstream / "stage.json").read_text())["stale"] is True
    assert "16 computed" in out
    assert json.loads((stage / "stage.json").read_text())["params"]["padding"] == 0.1
    chips = [k for k in before if k.endswith(".png")]
    assert all(after[k][1] != before[k][1] for k in chips)  # every chip is a new crop

    out = _run(ck_root, work, "--jobs", "2", "--padding", "0.1", "--no-follow", "--frames", "all")
    assert "16 reused" in out  # the frames already aligned with these parameters are kept


def test_killed_run_resumes_to_identical_bytes(ck_root, tmp_path) -> None:
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    _run(ck_root, clean, "--jobs", "1", "--backend", "dlib-hog")

    proc = _align(ck_root, killed, "--jobs", "1", "--backend", "dlib-hog")
    parts = killed / "ckplus/align/.parts"
    kill_after_parts(proc, parts)
    record = json.loads((killed / "ckplus/align/stage.json").read_text())
    assert record["complete"] is False
    (parts / ".0a1b2c.tmp-99999.arrow").write_bytes(b"ARROW1 half")  # killed while writing one

    out = _run(ck_root, killed, "--jobs", "1", "--backend", "dlib-hog")
    assert "reused" in out and " 0 reused" not in out
    a = {k: v[1] for k, v in _snapshot(clean / "ckplus/align").items()}
    b = {k: v[1] for k, v in _snapshot(killed / "ckplus/align").items()}
    assert a.keys() == b.keys()
    # the record says when each run ended and how long it took; whole.json each file's mtime
    when = ("finished", "seconds", "whole")
    records = [{k: v for k, v in json.loads(x.pop("stage.json")).items() if k not in when}
               for x in (a, b)]
    wholes = [{k: v for k, v in json.loads(x.pop("whole.json")).items() if k != "mtime"}
              for x in (a, b)]
    assert a == b and records[0] == records[1] and wholes[0] == wholes[1]
    assert set(wholes[0]["path"]) == set(a)  # every output file is listed
