"""`fer-prep status` on real runs: counts from the records, a changed parameter shows the stages
it made stale, a killed run is partial with the rows it saved, and each suggested command, run
as printed, is the one that brings the work folder forward."""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from conftest import kill_after_parts

from fer_prep.cli import main
from fer_prep.reports.status import COMPLETE, MISSING, PARTIAL, STALE, work_status
from fer_prep.runner import run


def _cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _next(work: Path, dataset: str) -> str:
    return next(d for d in work_status(work) if d.dataset == dataset).next


def _states(work: Path, dataset: str) -> dict[str, str]:
    status = next(d for d in work_status(work) if d.dataset == dataset)
    return {s.stage: s.state for s in status.stages}


def test_a_changed_parameter_shows_the_stale_stages_and_the_command_that_mends_them(
        ck_sample: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    aligned = run("ckplus", "align", work, root=ck_sample, jobs=1)
    run("ckplus", "folds", work, k=3)
    status = work_status(work)[0]
    assert [(s.stage, s.state) for s in status.stages] == [
        ("align", COMPLETE), ("folds", COMPLETE), ("masks", MISSING)]
    assert status.stages[0].counts == aligned.counts and status.stages[0].changed == {}
    assert status.stages[1].changed == {"k": 3}
    assert status.next == f"fer-prep masks --dataset ckplus --work {work}"

    run("ckplus", "align", work, root=ck_sample, jobs=1, size=112)
    assert _states(work, "ckplus") == {"align": COMPLETE, "folds": STALE, "masks": MISSING}
    out = _cli("status", "--work", str(work))
    assert "size=112" in out and "stale" in out
    command = _next(work, "ckplus")
    assert command == f"fer-prep folds --dataset ckplus --k 3 --work {work}"
    _cli(*shlex.split(command)[1:])  # the suggested command, as printed
    assert _states(work, "ckplus")["folds"] == COMPLETE
    assert _next(work, "ckplus").startswith("fer-prep masks --dataset ckplus")


def test_a_clip_aligned_from_its_video_needs_no_frames(afew_sample: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    run("afew", "align-video", work, root=afew_sample, jobs=1, from_video=True)
    states = _states(work, "afew")
    assert states == {"frames": MISSING, "align": COMPLETE, "folds": MISSING}
    assert _next(work, "afew") == f"fer-prep folds --dataset afew --work {work}"


def test_a_killed_run_is_partial_and_its_command_resumes_it(shared: Path, tmp_path: Path
                                                            ) -> None:
    root, work = tmp_path / "ck", tmp_path / "work"
    for seq in ("S052/001", "S055/004", "S074/005", "S106/002"):
        for part in ("cohn-kanade-images", "Emotion"):
            shutil.copytree(shared / "data/ckplus" / part / seq, root / part / seq)
    cmd = [sys.executable, "-m", "fer_prep.cli", "ckplus", "align", "--root", str(root),
           "--work", str(work), "--jobs", "1", "--backend", "dlib-hog"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = work / "ckplus/align/.parts"
    kill_after_parts(proc, parts)
    saved = len(list(parts.glob("*.arrow")))

    align = work_status(work)[0].stages[0]
    assert align.state == PARTIAL and align.changed == {"backend": "dlib-hog"}
    assert 0 < sum(align.counts.values()) < 16 and saved >= 2
    assert align.command == (f"fer-prep ckplus align --root {root} --backend dlib-hog "
                             f"--work {work}")
    out = _cli(*shlex.split(align.command)[1:])
    assert "reused" in out and " 0 reused" not in out
    done = work_status(work)[0].stages[0]
    assert done.state == COMPLETE and done.counts == {"ok": 16}


def test_a_training_run_is_listed_with_its_accuracy(ck_sample: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from fer_models.train import train

    work = tmp_path / "work"
    run("ckplus", "align", work, root=ck_sample, jobs=1)
    run("ckplus", "folds", work, k=3)
    assert _next(work, "ckplus").startswith("fer-prep masks")
    metrics = train("ckplus", work, "resnet18", 0, epochs=1, batch_size=8, size=64,
                    device="cpu", workers=0, progress=False, echo=lambda line: None)
    status = work_status(work)[0]
    trained = next(s for s in status.stages if s.stage == "train/resnet18")
    assert trained.state == PARTIAL  # one fold of three
    assert f"{100 * metrics['mean_accuracy']:.2f}" in trained.detail
    assert "1/3 fold(s)" in trained.detail


@pytest.mark.parametrize("case", ["no folder", "no stage", "other dataset"])
def test_status_mistakes_are_one_line(case: str, ck_sample: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    args = ["status", "--work", str(work)]
    if case != "no folder":
        work.mkdir()
    if case == "other dataset":
        run("ckplus", "folds", work, root=ck_sample, k=3)
        args += ["--dataset", "afew"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and str(work) in lines[0]
    if case == "other dataset":
        assert "datasets here: ckplus" in lines[0]


def test_the_record_counts_are_what_status_prints(ck_sample: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    run("ckplus", "align", work, root=ck_sample, jobs=1)
    record = json.loads((work / "ckplus/align/stage.json").read_text())
    out = _cli("status", "--work", str(work))
    row = next(line for line in out.splitlines() if line.strip().startswith("align"))
    assert all(f"{k} {v}" in row for k, v in record["counts"].items())


def test_a_damaged_record_and_a_deleted_input_are_never_complete(ck_sample: Path,
                                                                 tmp_path: Path) -> None:
    """status-1b, status-1d: masks over a deleted folds/ are stale, naming it, and next: makes
    the folds; a stage.json that is not JSON is `damaged`, naming the file, and its command
    (next:) makes the stage again."""
    from fer_prep.reports.status import DAMAGED

    work = tmp_path / "work"
    run("ckplus", "align", work, root=ck_sample, jobs=1)
    run("ckplus", "folds", work, k=3)
    run("ckplus", "masks", work, jobs=1)
    assert _states(work, "ckplus") == {"align": COMPLETE, "folds": COMPLETE, "masks": COMPLETE}
    shutil.rmtree(work / "ckplus/folds")
    assert _states(work, "ckplus") == {"align": COMPLETE, "folds": MISSING, "masks": STALE}
    out = _cli("status", "--work", str(work))
    assert "made from folds is missing" in out
    assert _next(work, "ckplus").startswith("fer-prep folds --dataset ckplus")
    run("ckplus", "folds", work, k=3)
    record = work / "ckplus/align/stage.json"
    record.write_text(record.read_text()[:50])
    states = _states(work, "ckplus")
    assert states["align"] == DAMAGED and states["folds"] == STALE
    out = _cli("status", "--work", str(work))
    assert f"{record} is not a stage record" in out
    command = _next(work, "ckplus")  # the root was in the damaged record: a placeholder
    assert command.startswith("fer-prep ckplus align --root ROOT")
    _cli(*shlex.split(command.replace("ROOT", str(ck_sample)))[1:])  # mends it
    assert _states(work, "ckplus")["align"] == COMPLETE


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _fails(cli: click.Command, *args: str) -> str:
    """The one `Error:` line of a command that must fail (exit code 1)."""
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


@pytest.fixture()
def ck_masks(ck_sample: Path, tmp_path: Path) -> Path:
    """A work folder with CK+ aligned, in 3 folds, and its masks."""
    work = tmp_path / "work"
    run("ckplus", "align", work, root=ck_sample, jobs=1)
    run("ckplus", "folds", work, k=3)
    run("ckplus", "masks", work, jobs=1)
    return work


def test_a_truncated_manifest_is_damaged_refused_downstream_and_redone(ck_masks: Path,
                                                                        tmp_path: Path) -> None:
    """status-1a, 27c: folds/manifest.parquet cut to 100 bytes is `damaged` in status (naming
    it), in the report, and one Error: line for every command that reads it; the folds command
    redoes it (it was 'unchanged, skipped'), to the same bytes."""
    from fer_models.cli import main as train_main
    from fer_prep.reports.report import build_report
    from fer_prep.reports.status import DAMAGED

    work = ck_masks
    manifest = work / "ckplus/folds/manifest.parquet"
    original = manifest.read_bytes()
    manifest.write_bytes(original[:100])
    assert _states(work, "ckplus") == {"align": COMPLETE, "folds": DAMAGED, "masks": STALE}
    out = _cli("status", "--work", str(work))
    assert f"{manifest}: not whole (100 bytes, written as {len(original):,})" in out
    command = _next(work, "ckplus")
    assert command == f"fer-prep folds --dataset ckplus --k 3 --work {work}"
    assert "damaged" in build_report(work).read_text()

    aligned = _hashes(work / "ckplus/align")
    for cli, args in ((main, ["masks", "--dataset", "ckplus", "--work", str(work)]),
                      (main, ["export", "fmpn", "--dataset", "ckplus", "--work", str(work),
                              "--out", str(tmp_path / "fmpn")]),
                      (train_main, ["--dataset", "ckplus", "--work", str(work), "--model",
                                    "resnet18", "--epochs", "1", "--device", "cpu"])):
        line = _fails(cli, *args)
        assert f"{manifest}: not whole" in line and "fer-prep folds --dataset ckplus" in line
    assert not (tmp_path / "fmpn").exists() and not (work / "ckplus/train").exists()

    out = _cli(*shlex.split(command)[1:])
    assert "unchanged, skipped" not in out and "not whole" in out
    assert manifest.read_bytes() == original and _hashes(work / "ckplus/align") == aligned
    assert _states(work, "ckplus") == {"align": COMPLETE, "folds": COMPLETE, "masks": COMPLETE}


def test_stale_masks_are_not_exported(ck_masks: Path, tmp_path: Path) -> None:
    """status-1c: after the folds change (k 3 → 2) `export fmpn` is one Error: line naming the
    stale masks and the command that remakes them; the earlier export stays as it was."""
    out = tmp_path / "fmpn"
    args = ["export", "fmpn", "--dataset", "ckplus", "--work", str(ck_masks), "--out", str(out)]
    _cli(*args)
    before = _hashes(out)
    run("ckplus", "folds", ck_masks, k=2)
    line = _fails(main, *args)
    assert f"{ck_masks / 'ckplus/masks'}: stale" in line
    assert "`fer-prep masks --dataset ckplus`" in line
    assert _hashes(out) == before
    run("ckplus", "masks", ck_masks, jobs=1)
    assert "export fmpn ckplus" in _cli(*args)
    assert len(list((out / "imgs_res").iterdir())) == 2  # the new folds' masks


def test_the_next_command_is_quoted_for_a_shell(ck_sample: Path, tmp_path: Path) -> None:
    """A work folder whose name holds a space and a newline: `next:` pasted into a shell is
    the command it names."""
    work = tmp_path / "my work\nfolder"
    run("ckplus", "align", work, root=ck_sample, jobs=1)
    command = _next(work, "ckplus")
    assert shlex.split(command)[-2:] == ["--work", str(work)]
    run("ckplus", "folds", work, k=3)
    run("ckplus", "masks", work, jobs=1)
    command = _next(work, "ckplus")
    assert command.startswith("fer-train") and shlex.split(command)[-1] == str(work)
    shell = subprocess.run(["bash", "-c", f"printf '%s\\n' {command}"], capture_output=True,
                           text=True, check=True)
    words = ["fer-train", "--dataset", "ckplus", "--work", str(work)]
    assert shell.stdout == "\n".join(words) + "\n"
