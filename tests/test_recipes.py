"""`fer-prep run RECIPE`: every shipped recipe's chain runs on its dataset's embedded sample
with the real stages, exports and models, writes what the recipe says, and a second run writes
nothing; a changed value redoes the steps after it; mistakes are one line."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from fer_prep.cache import read_record
from fer_prep.cli import main
from fer_prep.datasets import get_dataset, list_datasets
from fer_prep.exports import EXPORTS, MARKER
from fer_prep.params import load_preset
from fer_prep.recipes import STAGE_STEPS, list_recipes, load_recipe, parse_overrides
from fer_prep.stages import get_stage, stages_for

#: the papers' protocols the recipes must cover (issue 15)
PAPERS = ("emotion-fan-afew", "emotion-fan-ckplus", "fmpn-ckplus", "fmpn-mmi",
          "landmark-driven-fer2013", "mafer-fer2013", "mafer-rafdb", "mafer-oulu",
          "esr-affectnet", "esr-ferplus", "manet-rafdb")

#: small but real: one epoch of fold 0 on small faces, fewer folds and ESR branches, and AFEW
#: at 2 frames a second, 240 px (the Emotion-FAN cascade's CNN takes seconds a frame here)
QUICK = ["folds.k=3", "train.epochs=1", "train.fold=0", "train.size=64", "train.batch_size=8"]
EXTRA = {"emotion-fan-afew": ["video2frame.fps=2", "video2frame.max_side=240"],
         "esr-affectnet": ["train.branches=[1, 2]"],
         "esr-ferplus": ["train.branches=2"], "ckplus48": ["train.size=48"],
         "fer2013-resnet": ["train.size=24"],
         # the SE-ResNet-50 trunk at 32 px (its smallest input) is what keeps these in minutes
         **{f"mafer-{d}": ["train.size=32"] for d in ("fer2013", "rafdb", "oulu")}}


def _run(*args: str) -> str:
    result = CliRunner().invoke(main, ["run", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_every_papers_protocol_has_a_recipe_whose_tables_are_valid() -> None:
    from fer_models.cli import train_options

    assert set(PAPERS) <= set(list_recipes())
    for name in list_recipes():
        recipe = load_recipe(name)
        assert recipe.dataset in list_datasets(), name
        assert recipe.description, name
        commands = stages_for(get_dataset(recipe.dataset))
        for step in recipe.steps:
            if step in STAGE_STEPS:
                assert step in commands, (name, step)
                stage = get_stage(commands[step])
                given = {} if step == "align" else recipe.tables.get(step, {})
                stage.Params.resolve(name if step == "align" else None, **given)
        if "export" in recipe.steps:
            assert recipe.tables["export"]["format"] in EXPORTS.names(), name
        for run in recipe.train_runs():
            assert "model" in train_options(run, name), name


def test_a_recipe_inherits_its_presets_align_and_its_own_keys_win() -> None:
    fmpn = load_preset("fmpn")[1]["align"]
    assert load_preset("fmpn-ckplus")[1]["align"] == fmpn
    align = get_stage("align").Params.resolve("fmpn-ckplus")
    assert (align.backend, align.template, align.size, align.padding, align.grey) == (
        "dlib-hog", "dlib-chip", 320, 0.11, True)
    assert get_stage("align").Params.resolve("ckplus48").size == 48  # inherits default, 48 own


@pytest.mark.parametrize("name", [*PAPERS, "ckplus48", "fer2013-resnet"])
def test_each_recipe_runs_its_chain_on_the_sample_and_a_second_run_writes_nothing(
        name: str, samples: Path, tmp_path: Path) -> None:
    recipe = load_recipe(name)
    work = tmp_path / "work"
    sets = [item for s in QUICK + EXTRA.get(name, []) for item in ("--set", s)]
    args = [name, "--root", str(samples / recipe.dataset), "--work", str(work), *sets,
            "--device", "cpu", "--jobs", "1"]
    out = _run(*args)
    ds = work / recipe.dataset
    assert f"recipe {name} ({recipe.dataset}): {' → '.join(recipe.steps)} up to date" in out

    faces = pd.read_parquet(ds / "align/manifest.parquet")
    assert (faces["status"] == "ok").sum() > 0
    align = read_record(ds / "align")["params"]
    for key, value in load_preset(name)[1].get("align", {}).items():
        assert align[key] == value, (key, align[key], value)
    for key, value in recipe.tables.get("read", {}).items():
        stage = "frames" if "video2frame" in recipe.steps else "align"
        assert read_record(ds / stage)["options"][key] == value
    folds = read_record(ds / "folds")["params"]
    assert folds["scheme"] == recipe.tables["folds"]["scheme"]
    if "masks" in recipe.steps:
        assert read_record(ds / "masks")["complete"]
    if "export" in recipe.steps:
        marker = json.loads((recipe.export_out(work) / MARKER).read_text())
        assert marker["format"] == recipe.tables["export"]["format"]
        assert marker["files"] and sum(marker["counts"].values()) > 0
    runs = load_recipe(name, parse_overrides(QUICK + EXTRA.get(name, []))).train_runs()
    for run in runs:
        model = run["model"]
        metrics = [json.loads(p.read_text()) for p in (ds / "train").glob("*/metrics.json")]
        trained = [m for m in metrics if m["config"]["model"] == model
                   and all(m["config"]["options"].get(k) == v for k, v in run.items()
                           if k in m["config"]["options"])]
        assert trained and list(trained[0]["folds"]) == ["0"], (model, run)
        assert trained[0]["config"]["epochs"] == 1
    assert str(ds / "train") in out

    files = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    time.sleep(0.01)
    again = _run(*args)
    assert again.count("unchanged, skipped") == len(set(recipe.steps) & set(STAGE_STEPS))
    if "export" in recipe.steps:
        assert "unchanged since the last export; skipped" in again
    assert again.count(", kept") == len(runs)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()} == files


def test_a_changed_value_redoes_the_steps_after_it_and_to_stops_early(
        ck_sample: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    base = ["fmpn-ckplus", "--root", str(ck_sample), "--work", str(work), "--set", "folds.k=3",
            "--to", "masks"]
    first = _run(*base)
    assert "export" not in first and not (work / "exports").exists()
    assert "ckplus masks:" in first and not (work / "ckplus/train").exists()
    again = _run(*base, "--set", "folds.k=2")
    assert "ckplus align: 36 rows (ok: 36); unchanged, skipped" in again
    assert read_record(work / "ckplus/folds")["n_folds"] == 2
    assert read_record(work / "ckplus/masks")["n_folds"] == 2
    smaller = _run(*base, "--set", "folds.k=2", "--set", "align.size=160")
    assert "ckplus align: 36 rows (ok: 36); 36 computed" in smaller
    assert read_record(work / "ckplus/align")["params"]["size"] == 160


@pytest.mark.parametrize(("args", "message"), [
    (["nope"], "unknown preset 'nope'"),
    (["fmpn"], "fmpn names no dataset, so it is no recipe; recipes: ckplus48"),
    (["fmpn-ckplus"], "recipe fmpn-ckplus reads ckplus: give its --root"),
    (["mafer-rafdb", "--root", "x", "--to", "export"],
     "--to export: recipe mafer-rafdb has no export step (its steps: align, folds, train)"),
    (["fmpn-ckplus", "--root", "x", "--set", "epochs=1"],
     "--set 'epochs=1': give TABLE.KEY=VALUE, e.g. train.epochs=1"),
    (["fmpn-ckplus", "--root", "x", "--set", "fit.epochs=1"], "fit is not a table of a recipe"),
    (["fmpn-ckplus", "--root", "/no/such/ckplus"], "/no/such/ckplus"),
    (["fmpn-ckplus", "--root", "x", "--set", "align.sise=3"], "sise is not an option"),
])
def test_mistakes_are_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["run", *args, "--work", str(tmp_path / "w")])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], lines


@pytest.mark.parametrize(("value", "message"), [
    ("folds.k=abc", "--k 'abc' is not a whole number"),
    ("folds.scheme=nosuch", "--scheme 'nosuch' is not one of"),
    ("masks.size=big", "is not a whole number"),
])
def test_a_later_steps_bad_value_is_refused_before_the_first_step(
        value: str, message: str, ck_sample: Path, tmp_path: Path) -> None:
    """run-4, run-5: a value a later stage refuses (of any type) is one line before anything
    runs: no align written."""
    work = tmp_path / "w"
    result = CliRunner().invoke(main, ["run", "fmpn-ckplus", "--root", str(ck_sample),
                                       "--work", str(work), "--set", value])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], lines
    assert not (work / "ckplus/align/manifest.parquet").exists()


def test_a_train_value_the_option_refuses_is_one_line(ck_sample: Path, tmp_path: Path) -> None:
    work = tmp_path / "w"
    _run("ckplus48", "--root", str(ck_sample), "--work", str(work), "--to", "folds")
    result = CliRunner().invoke(main, ["run", "ckplus48", "--root", str(ck_sample), "--work",
                                       str(work), "--set", "train.model=nope"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: recipe ckplus48: [train] model:"), result.output


def test_training_is_redone_when_its_faces_change_and_an_export_when_a_file_goes(
        ck_sample: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    args = ["ckplus48", "--root", str(ck_sample), "--work", str(work), "--set", "train.epochs=1",
            "--set", "train.fold=0", "--device", "cpu"]
    _run(*args)
    kept = _run(*args)
    assert "fold 0: complete in" in kept and ", kept" in kept
    redone = _run(*args, "--set", "align.size=40")
    assert "ckplus align: 27 rows (ok: 27); 27 computed" in redone
    assert "was trained on other faces, folds, masks or starting weights; training it afresh" \
        in redone
    metrics = json.loads((work / "ckplus/train/resnet18/metrics.json").read_text())
    assert list(metrics["folds"]) == ["0"]
    longer = _run(*args, "--set", "align.size=40", "--set", "train.epochs=2")
    assert "was made with epochs 1 (now 2); training it afresh" in longer
    assert json.loads((work / "ckplus/train/resnet18/metrics.json").read_text())[
        "config"]["epochs"] == 2

    fmpn = ["emotion-fan-ckplus", "--root", str(ck_sample), "--work", str(work), "--to",
            "export", "--set", "folds.k=3"]
    _run(*fmpn)
    out = load_recipe("emotion-fan-ckplus").export_out(work)
    listed = out / "txt/CK+_10-fold_sample_IDascendorder_step10.txt"
    text = listed.read_text()
    listed.unlink()
    again = _run(*fmpn)
    assert "unchanged since the last export" not in again and listed.read_text() == text


def test_a_users_recipe_reading_a_renamed_tree_carries_the_name_through(
        samples: Path, tmp_path: Path) -> None:
    mine = tmp_path / "mine.toml"
    mine.write_text('dataset = "folders"\npreset = "default"\n[read]\nname = "cats"\n'
                    '[align]\nbackend = "given"\ntemplate = "whole"\n[folds]\nk = 2\n'
                    '[export]\nformat = "imagefolder"\n')
    work = tmp_path / "work"
    out = _run(str(mine), "--root", str(samples / "folders"), "--work", str(work))
    assert "cats align:" in out and "cats folds:" in out
    assert read_record(work / "cats/folds")["n_folds"] == 2
    assert json.loads((work / "exports/mine" / MARKER).read_text())["dataset"] == "cats"
    bad = CliRunner().invoke(main, ["run", str(mine), "--root", str(samples / "folders"),
                                    "--work", str(work), "--set", 'train.dataset="ckplus"',
                                    "--set", "train.model=resnet18"])
    assert bad.exit_code == 1 and "a recipe trains on its own dataset (folders)" in bad.output


def test_without_the_training_extra_a_train_step_is_one_line_before_anything_runs(
        ck_sample: Path, tmp_path: Path) -> None:
    """fer-prep without torch (its import blocked in a real interpreter): a recipe with a
    [train] step says in one line what to install, and nothing is written; one that stops
    before training runs."""
    import subprocess
    import sys

    blocked = ("import sys; sys.modules['torch'] = None; from fer_prep.cli import main; "
               "main()")
    work = tmp_path / "w"
    args = ["run", "ckplus48", "--root", str(ck_sample), "--work", str(work)]
    done = subprocess.run([sys.executable, "-c", blocked, *args], capture_output=True,
                          text=True)
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines() == [
        "Error: the train step needs fer-prep's training extra (torch is not installed): "
        "pip install 'fer-prep[train]'"]
    assert not work.exists()
    done = subprocess.run([sys.executable, "-c", blocked, *args, "--to", "folds"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "torch" not in done.stderr and (work / "ckplus/folds/stage.json").is_file()
