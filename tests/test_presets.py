"""`fer-train --preset`: a recipe prepares the real CK+ faces as it says, trains with its options
(the command line winning), runs again from the cache, and its mistakes are one line."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from fer_models.cli import main
from fer_models.presets import train_runs, training_presets
from fer_prep.cache import read_record
from fer_prep.images import read_image
from fer_prep.params import list_presets


def test_every_training_preset_names_a_dataset_model_and_known_options() -> None:
    assert "ckplus48" in training_presets()
    options = {p.name for p in main.params}
    for name in training_presets():
        dataset, runs = train_runs(name)
        assert dataset and runs, name
        for run in runs:
            assert "model" in run and set(run) <= options, (name, set(run) - options)
    assert set(training_presets()) < set(list_presets())  # fmpn, emotion-fan: no [train]


def test_ckplus48_prepares_trains_and_reruns_from_the_cache(shared: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    args = ["--preset", "ckplus48", "--root", str(shared / "data/ckplus"), "--work", str(work),
            "--fold", "1", "--epochs", "1", "--workers", "0", "--quiet"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    faces = pd.read_parquet(work / "ckplus/align/manifest.parquet")
    assert len(faces) == 54 and set(faces["role"]) == {"peak"}  # the last 3 of 18 sequences
    chip = read_image(work / "ckplus/align" / faces["face_path"].iloc[0])
    assert chip.shape == (48, 48)  # grey, 48 px
    assert read_record(work / "ckplus/folds")["params"]["scheme"] == "loso"
    metrics = json.loads((work / "ckplus/train/resnet18/metrics.json").read_text())
    config = metrics["config"]
    assert (config["size"], config["epochs"], config["lr"]) == (48, 1, 3e-4)
    assert (config["batch_size"], config["rotate"]) == (8, 0)
    assert config["options"] == {"stem": "small", "standardize": True}
    assert list(metrics["folds"]) == ["1"]

    again = CliRunner().invoke(main, [*args, "--lr", "1e-3"])
    assert again.exit_code == 0, again.output
    assert "ckplus align: 54 rows (ok: 54); unchanged, skipped" in again.output
    config = json.loads((work / "ckplus/train/resnet18/metrics.json").read_text())["config"]
    assert config["lr"] == 1e-3


@pytest.mark.parametrize(("args", "message"), [
    (["--preset", "fmpn"],
     "preset fmpn has no [train] table; training presets: ckplus48, emotion-fan-afew"),
    (["--preset", "nope"], "unknown preset 'nope'"),
    (["--root", "/data/CK+", "--dataset", "ckplus", "--model", "resnet18"],
     "--root prepares the faces a --preset names"),
    (["--model", "resnet18"], "Missing option '--dataset' (or a --preset that names it)"),
])
def test_preset_mistakes_are_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, [*args, "--work", str(tmp_path)])
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output


def test_a_wrong_value_in_a_user_preset_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "mine.toml"
    bad.write_text('[train]\ndataset = "ckplus"\nmodel = "resnet18"\nepochs = "many"\n')
    result = CliRunner().invoke(main, ["--preset", str(bad), "--work", str(tmp_path)])
    assert result.exit_code == 1 and "'many' is not a valid integer" in result.output
    assert "Traceback" not in result.output
    bad.write_text('[train]\ndataset = "ckplus"\nmodel = "resnet18"\ndevice = "cuda"\n')
    result = CliRunner().invoke(main, ["--preset", str(bad), "--work", str(tmp_path)])
    assert result.exit_code == 1
    assert "[train] device is not a fer-train option a recipe can set" in result.output


def test_a_recipe_with_several_runs_trains_each_in_order(samples: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    result = CliRunner().invoke(main, [
        "--preset", "mafer-rafdb", "--root", str(samples / "rafdb"), "--work", str(work),
        "--epochs", "1", "--size", "64", "--batch-size", "8", "--workers", "0", "--quiet"])
    assert result.exit_code == 0, result.output
    step1 = json.loads((work / "rafdb/train/mafer-step1/metrics.json").read_text())
    step2 = json.loads((work / "rafdb/train/mafer/metrics.json").read_text())
    assert (step1["config"]["options"]["step"], step2["config"]["options"]["step"]) == (1, 2)
    assert result.output.index("mafer-step1") < result.output.index("rafdb/train/mafer/")
    assert "from " + str(work / "rafdb/train/mafer-step1/fold_0/last.pt") in result.output


def test_options_given_to_every_run_train_the_same_run_once(samples: Path, tmp_path: Path
                                                            ) -> None:
    work = tmp_path / "work"
    result = CliRunner().invoke(main, [
        "--preset", "mafer-rafdb", "--root", str(samples / "rafdb"), "--work", str(work),
        "--step", "2", "--epochs", "1", "--size", "64", "--workers", "0", "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.output.count("metrics: ") == 1  # step 1 then 2 became step 2 twice: once
    assert not (work / "rafdb/train/mafer-step1").exists()
