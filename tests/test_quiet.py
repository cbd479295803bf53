"""Only the tool's own lines reach stderr: `native_quiet` mutes fd 2 only inside its block,
nests and lets exceptions through, and the real CLI on real data prints nothing foreign."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fer_prep.quiet import native_quiet


def test_mutes_fd2_inside_and_restores(capfd: pytest.CaptureFixture[str]) -> None:
    sys.stderr.write("before ")  # pending Python output is flushed, not lost
    with native_quiet():
        os.write(2, b"native\n")
        with native_quiet():
            os.write(2, b"nested\n")
        os.write(2, b"still muted\n")
    os.write(2, b"after\n")
    print("python", file=sys.stderr)
    assert capfd.readouterr().err == "before after\npython\n"


def test_exception_passes_and_fd2_comes_back(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="boom"), native_quiet():
        raise ValueError("boom")
    os.write(2, b"back\n")
    assert capfd.readouterr().err == "back\n"


TOOL_LINE = re.compile(r"^(\w+ [\w-]+: \d+/\d+ \(.* items/s, ETA .*\)|warning: .+)$")


def _stderr(*args: str) -> list[str]:
    proc = subprocess.run([sys.executable, "-m", "fer_prep.cli", *args], capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr.splitlines()


def test_the_cli_prints_only_its_own_lines_on_real_frames_and_clips(shared: Path,
                                                                    tmp_path: Path) -> None:
    """The real CLI on real CK+ frames (both worker counts) and real AFEW-layout clips."""
    afew = tmp_path / "afew"
    for rel, src in (("Train_AFEW/Happy/a.mp4", "single_face.mp4"),
                     ("Val_AFEW/Sad/b.mov", "face_noface.mov")):
        (afew / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shared / "data/media" / src, afew / rel)
    lines = []
    for jobs in ("1", "2"):
        lines += _stderr("ckplus", "align", "--root", str(shared / "data/ckplus"), "--work",
                         str(tmp_path / f"w{jobs}"), "--jobs", jobs)
    lines += _stderr("afew", "video2frame", "--root", str(afew), "--work", str(tmp_path / "w"))
    lines += _stderr("afew", "align", "--work", str(tmp_path / "w"))
    one = tmp_path / "one"  # dlib's cascade on the face clip: seconds a frame without faces
    (one / "Train_AFEW/Happy").mkdir(parents=True)
    shutil.copy(shared / "data/media/single_face.mp4", one / "Train_AFEW/Happy/a.mp4")
    lines += _stderr("afew", "align", "--from-video", "--root", str(one), "--work",
                     str(tmp_path / "v"), "--preset", "emotion-fan", "--jobs", "1")
    assert lines, "no progress lines at all"
    foreign = [line for line in lines if not TOOL_LINE.match(line)]
    assert not foreign, foreign
