"""The generated CLI: every command's --help works and shows an example; presets resolve in the
library; every user mistake is one `Error:` line and exit 1 (on the embedded sample data)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from conftest import tmpfs

from fer_prep.cli import main
from fer_prep.errors import OptionError
from fer_prep.faces import create_backend
from fer_prep.stages.align import AlignParams
from fer_prep.stages.align_video import VideoAlignParams


def _commands(group: click.Group, prefix: tuple[str, ...] = ()):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        yield (*prefix, name)
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*prefix, name))


@pytest.mark.parametrize("path", [(), *_commands(main)], ids=lambda p: " ".join(p) or "fer-prep")
def test_help_shows_an_example(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example:" in result.output or "Commands:" in result.output


def test_every_dataset_has_a_command_per_stage_that_applies() -> None:
    from fer_prep.datasets import get_dataset, list_datasets
    from fer_prep.stages import stages_for

    commands = set(_commands(main))
    for name in list_datasets():
        for command in stages_for(get_dataset(name)):
            assert (name, command) in commands
    assert ("afew", "video2frame") in commands and ("ckplus", "video2frame") not in commands
    assert ("afew", "masks") not in commands and ("ckplus", "masks") in commands


def test_unknown_backend_lists_the_choices() -> None:
    with pytest.raises(KeyError, match="dlib-hog"):
        create_backend("no-such-backend")


def test_preset_gives_defaults_and_explicit_options_win(tmp_path: Path) -> None:
    assert AlignParams.resolve("emotion-fan", backend=None, size=None) == AlignParams(
        backend="emotion-fan", template="dlib-chip5", size=224, padding=0.25, grey=False)
    assert AlignParams.resolve("emotion-fan", size=112).size == 112
    assert AlignParams.resolve().backend == "mediapipe"
    assert AlignParams.resolve().format == "png"
    assert VideoAlignParams.resolve().format == "jpg"  # the [video-align] table, in the library
    user = tmp_path / "mine.toml"
    user.write_text('[align]\nbackend = "dlib-hog"\nsize = 96\n')
    assert AlignParams.resolve(user).size == 96
    user.write_text('[align]\nbackend = "dlib-hog"\nsizes = 96\n')
    with pytest.raises(OptionError, match=r"\[align\] sizes is not an option"):
        AlignParams.resolve(user)
    with pytest.raises(OptionError, match="--size 8 is out of range"):
        AlignParams.resolve(size=8)


def _error(args: list[str]) -> str:
    """Run the CLI; assert exit 1 and a single `Error:` line on stderr; return that line."""
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, (result.exit_code, result.output)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


def test_user_mistakes_are_one_line_errors(ck_sample: Path, afew_sample: Path,
                                           tmp_path: Path) -> None:
    work = str(tmp_path / "work")
    line = _error(["ckplus", "align", "--root", str(afew_sample), "--work", work])
    assert "no cohn-kanade-images/" in line and str(afew_sample) in line

    no_labels = tmp_path / "ck-no-labels"
    shutil.copytree(ck_sample / "cohn-kanade-images", no_labels / "cohn-kanade-images")
    line = _error(["ckplus", "align", "--root", str(no_labels), "--work", work])
    assert "no Emotion/ folder" in line and "--include-unlabelled" in line

    afew = tmp_path / "afew"
    shutil.copytree(afew_sample, afew)
    shutil.rmtree(afew / "Val_AFEW")
    (afew / "Val_AFEW").mkdir()
    line = _error(["afew", "video2frame", "--root", str(afew), "--work", work])
    assert "Val_AFEW: holds no video" in line

    line = _error(["ckplus", "align", "--root", str(tmp_path / "nowhere"), "--work", work])
    assert "nowhere" in line and "missing" in line

    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "ckplus").write_text("a file where the dataset's folder goes")
    line = _error(["ckplus", "align", "--root", str(ck_sample), "--work", str(occupied)])
    assert "ckplus: a file where" in line

    preset = tmp_path / "bad.toml"
    preset.write_text("[align]\nbackend = 'mediapipe'\nsmooth = true\n")
    line = _error(["ckplus", "align", "--root", str(ck_sample), "--work", work,
                   "--preset", str(preset)])
    assert "smooth is not an option" in line

    line = _error(["ckplus", "align", "--root", str(ck_sample), "--work", work, "--size", "5"])
    assert "--size" in line and "5" in line
    line = _error(["ckplus", "align", "--root", str(ck_sample), "--work", work,
                   "--backend", "nope"])
    assert "mediapipe" in line  # the valid choices are named
    line = _error(["folds", "--dataset", "ckplus", "--work", work, "--split", "no-such-split"])
    assert "no-such-split" in line
    line = _error(["ckplus", "masks", "--work", work])
    assert "fer-prep ckplus align" in line  # the command that makes the missing input


def test_a_read_only_work_folder_is_one_line(ck_sample: Path, tmp_path: Path) -> None:
    """A real read-only folder: a read-only tmpfs as root (who may write anywhere else), a
    folder without write permission otherwise."""
    work = tmp_path / "work"
    with contextlib.ExitStack() as stack:
        if os.geteuid() == 0:
            stack.enter_context(tmpfs(work, "1m", read_only=True))
        else:
            work.mkdir()
            work.chmod(0o555)
            stack.callback(work.chmod, 0o755)
        line = _error(["ckplus", "align", "--root", str(ck_sample), "--work", str(work)])
    assert "cannot write the work folder" in line and str(work) in line


def test_help_and_list_import_no_model_or_table_library() -> None:
    heavy = ("sklearn", "scipy", "torch", "mediapipe", "cv2", "dlib", "skimage", "pandas",
             "pyarrow")
    probe = ("import sys, runpy; sys.argv = {argv!r}\n"
             "try:\n    runpy.run_module({module!r}, run_name='__main__')\n"
             "except SystemExit:\n    pass\n"
             "print(sorted(m for m in {heavy!r} if m in sys.modules))")
    for module, argv in (("fer_prep.cli", ["fer-prep", "--help"]),
                         ("fer_prep.cli", ["fer-prep", "list"]),
                         ("fer_prep.cli", ["fer-prep", "ckplus", "align", "--help"]),
                         ("fer_models.cli", ["fer-train", "--help"])):
        code = probe.format(argv=argv, module=module, heavy=heavy)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True).stdout
        assert out.strip().splitlines()[-1] == "[]", (argv, out[-300:])
