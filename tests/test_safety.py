"""Data safety, on real files (the embedded sample's frames and clips, real models, real ffmpeg):
the stale flag, a full disk, broken links, a truncated video, two runs at once, a killed parent,
a moved dataset and a copied work folder, and the API giving the CLI's bytes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import remount, tmpfs

from fer_prep.cli import main
from fer_prep.manifest import read_manifest
from fer_prep.runner import run


def _cli(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == code, result.output
    return result.output


def _files(folder: Path, suffix: str = "") -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(folder.rglob(f"*{suffix}")) if p.is_file()}


def _record(folder: Path) -> dict:
    return json.loads((folder / "stage.json").read_text())


def _ck_copy(ck_sample: Path, dest: Path, sequences: int | None = None) -> Path:
    shutil.copytree(ck_sample, dest)
    if sequences is not None:  # keep the first `sequences` labelled sequences
        labelled = sorted(p.relative_to(dest / "Emotion") for p in (dest / "Emotion").glob("*/*"))
        for rel in labelled[sequences:]:
            shutil.rmtree(dest / "Emotion" / rel)
            shutil.rmtree(dest / "cohn-kanade-images" / rel)
    return dest


def test_a_rerun_on_unchanged_input_clears_stale_and_a_change_recomputes(afew_sample, tmp_path):
    work = str(tmp_path / "work")
    _cli("afew", "video2frame", "--root", str(afew_sample), "--work", work, "--jobs", "1")
    _cli("afew", "align", "--work", work, "--jobs", "1")
    align = tmp_path / "work/afew/align"
    chips = _files(align, ".jpg")

    _cli("afew", "video2frame", "--root", str(afew_sample), "--work", work, "--quality", "9")
    assert _record(align)["stale"] is True  # the frames it read have changed
    _cli("afew", "video2frame", "--root", str(afew_sample), "--work", work, "--quality", "2")
    assert _record(align)["stale"] is True
    out = _cli("afew", "align", "--work", work)
    assert "unchanged, skipped" in out  # the frames are again those it aligned
    assert _record(align)["stale"] is False
    assert _files(align, ".jpg") == chips

    _cli("afew", "video2frame", "--root", str(afew_sample), "--work", work, "--quality", "9")
    out = _cli("afew", "align", "--work", work, "--jobs", "1")
    assert "4 computed, 0 reused" in out  # frames extracted otherwise: aligned again
    assert _record(align)["stale"] is False


def test_a_full_disk_stops_the_run_and_the_resume_computes_the_rest(ck_sample, tmp_path):
    """A real disk-full: the work folder on a small tmpfs. Nothing is cached as failed."""
    root = _ck_copy(ck_sample, tmp_path / "ck")
    args = ["ckplus", "align", "--root", str(root), "--jobs", "1", "--include-unlabelled"]
    clean = tmp_path / "clean"
    _cli(*args, "--work", str(clean))
    with tmpfs(tmp_path / "small", "1500k") as work:
        result = CliRunner().invoke(main, [*args, "--work", str(work)])
        assert result.exit_code == 1, result.output
        error = result.output.strip().splitlines()[-1]
        assert error.startswith("Error: ") and "No space left on device" in error, error
        assert "Traceback" not in result.output
        folder = work / "ckplus/align"
        assert _record(folder)["complete"] is False
        done = len(list(folder.rglob("*.png")))
        assert 0 < done < 40
        remount(work, "20m")  # space freed
        out = _cli(*args, "--work", str(work))
        assert " reused" in out and " 0 reused" not in out and "40 computed" not in out
        manifest = read_manifest(folder)
        assert (manifest.status == "ok").all() and len(manifest) == 40
        ours = {k: v[1] for k, v in _files(folder, ".png").items()}
        assert ours == {k: v[1] for k, v in _files(clean / "ckplus/align", ".png").items()}


def test_broken_links_and_folders_named_like_frames_are_rows(ck_sample, tmp_path):
    root = _ck_copy(ck_sample, tmp_path / "ck")
    frames = sorted((root / "cohn-kanade-images/S901/001").glob("*.png"))
    dangling, loop, folder = frames[-1], frames[-2], frames[-3]
    dangling.unlink()
    dangling.symlink_to(tmp_path / "gone.png")
    loop.unlink()
    loop.symlink_to(loop.with_name("other.png"))
    loop.with_name("other.png").symlink_to(loop)
    folder.unlink()
    folder.mkdir()
    work = tmp_path / "work"
    out = _cli("ckplus", "align", "--root", str(root), "--work", str(work), "--jobs", "2")
    rows = read_manifest(work / "ckplus/align").set_index("sample_id")
    reasons = {dangling.stem: "a symbolic link to", loop.stem: "symbolic link loop",
               folder.stem: "a folder, not a file"}
    for stem, reason in reasons.items():
        assert rows.loc[stem, "status"] == "unreadable", stem
        assert reason in rows.loc[stem, "message"] and stem in rows.loc[stem, "message"]
        assert stem in out  # said on the console too
    assert (rows.drop(index=list(reasons)).status == "ok").all()


def test_a_truncated_video_says_so_with_ffmpegs_words(afew_sample, tmp_path):
    root = tmp_path / "afew"
    shutil.copytree(afew_sample, root)
    clip = root / "Train_AFEW/Happy/000000101.avi"
    clip.write_bytes(clip.read_bytes()[: clip.stat().st_size * 6 // 10])
    work = str(tmp_path / "work")
    out = _cli("afew", "video2frame", "--root", str(root), "--work", work)
    frames = read_manifest(tmp_path / "work/afew/frames")
    cut = frames[frames.sequence == "train_000000101"]
    assert 0 < len(cut) < 60 and (cut.status == "partial").all()
    assert cut.message.str.contains("000000101.avi: decoded").all()
    assert "000000101.avi: decoded" in out
    assert (frames[frames.sequence != "train_000000101"].status == "ok").all()
    _cli("afew", "align", "--work", work)
    faces = read_manifest(tmp_path / "work/afew/align")
    cut_faces = faces[faces.sequence == "train_000000101"]
    assert len(cut_faces) == len(cut) and cut_faces.message.str.contains("decoded").all()
    assert cut_faces.status.isin(["ok", "borrowed"]).all()

    _cli("afew", "align", "--from-video", "--root", str(root), "--work", str(tmp_path / "w2"))
    direct = read_manifest(tmp_path / "w2/afew/align")
    assert direct[direct.sequence == "train_000000101"].message.str.contains("decoded").all()


def _align_process(root: Path, work: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "fer_prep.cli", "ckplus", "align", "--root", str(root),
           "--work", str(work), *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_parts(work: Path, proc: subprocess.Popen) -> None:
    parts = work / "ckplus/align/.parts"
    deadline = time.monotonic() + 300
    while not (parts.is_dir() and any(parts.glob("*.arrow"))):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_a_second_run_on_the_same_folder_says_who_holds_it(ck_sample, tmp_path):
    work = tmp_path / "work"
    first = _align_process(ck_sample, work, "--jobs", "1", "--frames", "all",
                           "--backend", "dlib-hog")
    try:
        _wait_for_parts(work, first)
        result = CliRunner().invoke(main, ["ckplus", "align", "--root", str(ck_sample),
                                           "--work", str(work)])
        assert result.exit_code == 1, result.output
        assert f"pid {first.pid}" in result.output and "being written" in result.output
        assert "Error: " in result.output.strip().splitlines()[-1]
    finally:
        _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    assert (read_manifest(work / "ckplus/align").status == "ok").all()


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_killing_the_parent_leaves_no_worker(ck_sample, tmp_path, how):
    work = tmp_path / "work"
    proc = _align_process(ck_sample, work, "--jobs", "2", "--frames", "all",
                          "--include-unlabelled")
    _wait_for_parts(work, proc)
    workers = _descendants(proc.pid)
    assert workers, "the run had no worker processes"
    os.kill(proc.pid, how)
    proc.wait(timeout=60)
    deadline = time.monotonic() + 20
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in workers if _alive(p)], "workers outlived their parent"
    if how == signal.SIGTERM:
        assert proc.returncode == 130 and "run the same command again" in proc.stderr.read()
    chips = len(list((work / "ckplus/align").rglob("*.png")))
    time.sleep(1.0)
    assert len(list((work / "ckplus/align").rglob("*.png"))) == chips  # nobody writes on


def test_a_moved_dataset_and_a_copied_work_folder_recompute_nothing(ck_sample, tmp_path):
    root = _ck_copy(ck_sample, tmp_path / "ck")
    work = tmp_path / "work"
    _cli("ckplus", "align", "--root", str(root), "--work", str(work), "--jobs", "1")
    _cli("folds", "--dataset", "ckplus", "--work", str(work), "--k", "3")
    chips = _files(work / "ckplus/align", ".png")

    moved = tmp_path / "moved" / "CK+"
    moved.parent.mkdir()
    root.rename(moved)
    out = _cli("ckplus", "align", "--root", str(moved), "--work", str(work))
    assert "unchanged, skipped" in out
    assert _files(work / "ckplus/align", ".png") == chips
    manifest = read_manifest(work / "ckplus/align")
    assert manifest.source_path.str.startswith(str(moved)).all()  # where the frames are now

    copy = tmp_path / "copy"
    shutil.copytree(work, copy)  # new inodes and the same bytes
    out = _cli("ckplus", "align", "--root", str(moved), "--work", str(copy))
    assert "unchanged, skipped" in out
    assert {k: v[1] for k, v in _files(copy / "ckplus/align", ".png").items()} == {
        k: v[1] for k, v in chips.items()}
    assert "unchanged, skipped" in _cli("folds", "--dataset", "ckplus", "--work", str(copy),
                                        "--k", "3")
    recopied = tmp_path / "recopied"
    shutil.copytree(moved, recopied)  # the dataset copied: new inodes, content hashed again
    before = _files(copy / "ckplus/align", ".png")
    out = _cli("ckplus", "align", "--root", str(recopied), "--work", str(copy))
    assert "unchanged, skipped" in out and _files(copy / "ckplus/align", ".png") == before


def test_the_api_and_the_cli_make_the_same_bytes(ck_sample, afew_sample, tmp_path):
    _cli("ckplus", "align", "--root", str(ck_sample), "--work", str(tmp_path / "cli"),
         "--preset", "emotion-fan", "--size", "112")
    run("ckplus", "align", tmp_path / "api", root=ck_sample, preset="emotion-fan", size=112)
    _cli("afew", "align", "--from-video", "--root", str(afew_sample), "--work",
         str(tmp_path / "cli"))
    run("afew", "align-video", tmp_path / "api", root=afew_sample, from_video=True)
    for stage in ("ckplus/align", "afew/align"):
        cli = {k: v[1] for k, v in _files(tmp_path / "cli" / stage).items()
               if not k.endswith(".json")}
        api = {k: v[1] for k, v in _files(tmp_path / "api" / stage).items()
               if not k.endswith(".json")}
        assert cli.keys() == api.keys() and cli == api, stage
        assert any(k.endswith(".jpg") for k in cli) == (stage == "afew/align")


def test_a_chip_that_cannot_be_written_fails_its_frame_alone(afew_sample, tmp_path):
    """A folder where one chip goes: that frame's row fails, its clip's other frames align."""
    work = tmp_path / "work"
    _cli("afew", "video2frame", "--root", str(afew_sample), "--work", str(work))
    _cli("afew", "align", "--work", str(work), "--jobs", "1")
    blocked = work / "afew/align/faces/train/Happy/000000101/0000005.jpg"
    blocked.unlink()  # the chip lost, so its clip is aligned again …
    blocked.mkdir()  # … and a folder stands where the chip goes
    (blocked / "keep").write_text("a folder where the chip should go")
    assert "1 computed, 3 reused" in _cli("afew", "align", "--work", str(work), "--jobs", "1")
    rows = read_manifest(work / "afew/align").set_index("sample_id")
    assert rows.loc["train_000000101_0000005", "status"] == "failed"
    assert "cutting the chip" in rows.loc["train_000000101_0000005", "message"]
    clip = rows[rows.sequence == "train_000000101"].drop(index="train_000000101_0000005")
    assert len(clip) == 59 and clip.status.isin(["ok", "borrowed"]).all()


def test_a_no_op_rerun_loads_no_model_and_no_table_library(ck_sample, tmp_path):
    work = tmp_path / "work"
    _cli("ckplus", "align", "--root", str(ck_sample), "--work", str(work))
    probe = ("import sys, runpy\n"
             f"sys.argv = ['fer-prep', 'ckplus', 'align', '--root', {str(ck_sample)!r}, "
             f"'--work', {str(work)!r}]\n"
             "try:\n    runpy.run_module('fer_prep.cli', run_name='__main__')\n"
             "except SystemExit:\n    pass\n"
             "heavy = ('mediapipe', 'dlib', 'cv2', 'torch', 'sklearn', 'scipy', 'pandas',"
             " 'pyarrow', 'joblib')\n"
             "print(sorted(m for m in heavy if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert any("unchanged, skipped" in line for line in out), out
    assert out[-1] == "[]", out


def _tree(folder: Path) -> dict[str, str]:
    """Every entry under `folder` by relative path: a file's SHA-256, a link's target."""
    import hashlib

    return {str(p.relative_to(folder)): os.readlink(p) if p.is_symlink()
            else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() or p.is_symlink()}


def _one_error(result, words: str) -> str:
    """The run failed (exit 1) on one last `Error:` line holding `words`, no traceback."""
    assert result.exit_code == 1, result.output
    error = result.output.strip().splitlines()[-1]
    assert error.startswith("Error: ") and words in error, result.output
    assert "Traceback" not in result.output
    return error


def test_an_export_onto_a_full_disk_keeps_the_earlier_one(ck_sample, tmp_path):
    """full-1: `export --copy` onto a full disk is one Error: line; the earlier export (links)
    is as it was, no staging is left, and with space freed the same command completes."""
    work = tmp_path / "work"
    run("ckplus", "align", work, root=ck_sample, jobs=1)
    run("ckplus", "folds", work, k=3)
    with tmpfs(tmp_path / "small", "64k") as small:
        out = small / "fmpn"
        args = ["export", "fmpn", "--dataset", "ckplus", "--work", str(work), "--out", str(out)]
        _cli(*args)  # on another file system than the chips: symbolic links, a few bytes each
        before = _tree(out)
        assert any(os.path.islink(out / rel) for rel in before)
        error = _one_error(CliRunner().invoke(main, [*args, "--copy"]), "No space left")
        assert str(out) in error
        assert _tree(out) == before and sorted(os.listdir(small)) == ["fmpn"]
        remount(small, "20m")
        assert "copies" in _cli(*args, "--copy")
        assert not any(p.is_symlink() for p in out.rglob("*"))


def test_a_full_disk_while_training_keeps_the_last_checkpoint(ck_sample, tmp_path):
    """train-6, full-2: fer-train writing a checkpoint onto a full disk is one Error: line
    naming it; the checkpoint of the epoch before is whole, no temporary is left, and with
    space freed the same command, resumed, completes."""
    torch = pytest.importorskip("torch")
    from fer_models.cli import main as train_main

    work = tmp_path / "work"
    run("ckplus", "align", work, root=ck_sample, jobs=1)
    run("ckplus", "folds", work, k=3)
    args = ["--dataset", "ckplus", "--work", str(work), "--model", "resnet18", "--fold", "0",
            "--epochs", "2", "--batch-size", "8", "--size", "48", "--device", "cpu",
            "--workers", "0"]
    # one epoch's last.pt (134 MB: weights and Adam's state) and best.pt (45 MB) fit, a second
    # last.pt written beside them does not
    with tmpfs(work / "ckplus/train", "250m") as runs:
        error = _one_error(CliRunner().invoke(train_main, args), "No space left")
        last = runs / "resnet18/fold_0/last.pt"
        assert "last.pt" in error or "best.pt" in error
        assert torch.load(last, weights_only=False)["epoch"] == 1
        assert not [p for p in runs.rglob("*") if ".tmp-" in p.name]
        remount(runs, "600m")
        result = CliRunner().invoke(train_main, [*args, "--resume"])
        assert result.exit_code == 0, result.output
        metrics = json.loads((runs / "resnet18/metrics.json").read_text())
        assert list(metrics["folds"]) == ["0"]
