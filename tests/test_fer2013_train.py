"""FER2013's CPU recipe, in parts, on the shared Kaggle copy: its blurred Training faces found
and the faces tested matched to them, a copy without PrivateTest trained and its epoch chosen
on PublicTest, the narrow trunk and the precision."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from fer_models import sharpness
from fer_models.cli import main
from fer_models.models.backbone import create_backbone
from fer_models.report import accuracy_table
from fer_models.train import cpu_has_bf16, resolve_precision, train
from fer_prep.runner import run

PER_CLASS = {"train": 10, "test": 5}  # Training and PublicTest faces of each class


@pytest.fixture(scope="module")
def kaggle_work(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small copy of the shared Kaggle layout (Training and PublicTest, no PrivateTest, as
    the shared copy), aligned and folded as the recipe does."""
    source = shared / "data/fer2013_kaggle"
    root = tmp_path_factory.mktemp("kaggle") / "fer2013"
    for part, n in PER_CLASS.items():
        for folder in sorted((source / part).iterdir()):
            (root / part / folder.name).mkdir(parents=True)
            for path in sorted(folder.glob("*.jpg"))[:n]:
                shutil.copy(path, root / part / folder.name / path.name)
    work = root.parent / "work"
    run("fer2013", "align", work, root=root, jobs=1, preset="fer2013-resnet")
    run("fer2013", "folds", work, preset="fer2013-resnet")
    return work


def _paths(shared: Path, prefix: str) -> list[str]:
    return sorted(str(p) for p in (shared / "data/fer2013_kaggle").glob(f"*/*/{prefix}_*.jpg"))


def test_the_shared_training_faces_are_blurred_and_the_tested_faces_matched(shared: Path
                                                                         ) -> None:
    training = sharpness.read_sample(_paths(shared, "Training"), 48)
    public = sharpness.read_sample(_paths(shared, "PublicTest"), 48)
    assert sharpness.sharpness(public) > 100 * sharpness.sharpness(training)
    sigma, seen = sharpness.matching_blur(training, public)
    assert 2.5 <= sigma <= 3.5  # a Gaussian of σ ≈ 3 px at 48 px
    assert abs(np.log(seen["tested_blurred"] / seen["training"])) < np.log(1.3)
    assert sharpness.matching_blur(training, training[::-1])[0] == 0.0  # alike: no blur
    half, _ = sharpness.matching_blur(sharpness.read_sample(_paths(shared, "Training"), 24),
                                      sharpness.read_sample(_paths(shared, "PublicTest"), 24))
    assert 1.0 <= half <= 2.0  # the same blur in pixels of a 24-px input
    face = torch.from_numpy(public[:4])[:, None]
    assert sharpness.blur(face, 0.0) is face
    blurred = sharpness.blur(face, sigma).round().to(torch.uint8)[:, 0].numpy()
    assert sharpness.sharpness(blurred) < sharpness.sharpness(public[:4]) / 50


def test_a_copy_without_privatetest_trains_and_chooses_on_publictest(kaggle_work: Path) -> None:
    lines: list[str] = []
    metrics = train("fer2013", kaggle_work, "resnet18", epochs=2, size=24, batch_size=16,
                    workers=0, progress=False, stem="small", width=0.5, standardize=True,
                    test_blur="auto", echo=lines.append)
    fold = metrics["folds"]["0"]
    assert fold["n_test"] == 0 and fold["accuracy"] is None
    assert fold["n_train"] == 7 * PER_CLASS["train"]
    assert fold["n_validation"] == 7 * PER_CLASS["test"]
    assert fold["validation_accuracy"] is not None and metrics["selected_by"] == "validation"
    assert any("FER2013 without PrivateTest" in line for line in lines)
    assert any("--test-blur auto: σ = " in line for line in lines)
    assert 1.0 <= metrics["config"]["test_blur"] <= 2.0
    table = accuracy_table(metrics)
    assert "validation %" in table and f"{100 * fold['validation_accuracy']:.2f}" in table
    results = (kaggle_work / "fer2013/train/resnet18/results.md").read_text()
    assert "validation accuracy %" in results
    assert metrics["precision"] == ("bf16" if cpu_has_bf16() else "fp32")


def test_width_and_precision() -> None:
    narrow, dim = create_backbone("resnet18", "small", 0.5)
    full, full_dim = create_backbone("resnet18", "small")
    assert (dim, full_dim) == (256, 512)
    ratio = sum(p.numel() for p in narrow.parameters()) / sum(
        p.numel() for p in full.parameters())
    assert 0.2 < ratio < 0.3  # channels halved: a quarter of the weights
    assert narrow(torch.zeros(2, 3, 24, 24)).shape == (2, 256)
    with pytest.raises(ValueError, match="one width"):
        create_backbone("seresnet50", "imagenet", 0.5)
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) is False and resolve_precision("bf16", cpu) is True
    assert resolve_precision("auto", cpu) is cpu_has_bf16()


def test_cli_takes_a_blur_or_auto_and_nothing_else() -> None:
    result = CliRunner().invoke(main, ["--dataset", "fer2013", "--model", "resnet18",
                                       "--test-blur", "soft"])
    assert result.exit_code == 1 and "neither a σ in pixels nor 'auto'" in result.output
    assert "Traceback" not in result.output


def test_the_report_warns_that_the_training_faces_are_blurred(kaggle_work: Path) -> None:
    from fer_prep.manifest import read_manifest
    from fer_prep.reports.report import _sharpness_section

    folder = kaggle_work / "fer2013/align"
    faces = read_manifest(folder)
    html = _sharpness_section(folder, faces[faces["status"] == "ok"])
    assert "<h3>Sharpness per split</h3>" in html and "<td>Training</td>" in html
    assert "PublicTest faces are" in html and "sharper than Training faces" in html
    training = faces[(faces["status"] == "ok") & (faces["split"] == "Training")]
    assert _sharpness_section(folder, training) == ""  # one split: nothing to compare


def test_a_damaged_metrics_json_is_said_by_status_and_report_and_written_again(
        kaggle_work: Path, tmp_path: Path) -> None:
    """status-2: a run's metrics.json that is not JSON: `status` says "damaged" naming it, `report`
    says so on the page, neither crashes; fer-train --resume writes it again."""
    from fer_prep.cli import main as prep

    work = tmp_path / "work"
    shutil.copytree(kaggle_work, work)
    options = {"epochs": 1, "size": 24, "batch_size": 16, "workers": 0, "progress": False,
               "stem": "small", "width": 0.5}
    train("fer2013", work, "resnet18", **options)
    metrics = work / "fer2013/train/resnet18/metrics.json"
    metrics.write_bytes(metrics.read_bytes()[:100])
    status = CliRunner().invoke(prep, ["status", "--work", str(work)])
    assert status.exit_code == 0, status.output
    line = next(x for x in status.output.splitlines() if "train/resnet18" in x)
    assert "damaged" in line and str(metrics) in status.output
    report = CliRunner().invoke(prep, ["report", "--work", str(work), "--out",
                                       str(tmp_path / "r.html")])
    assert report.exit_code == 0, report.output
    assert f"{metrics} is not a run&#x27;s metrics" in (tmp_path / "r.html").read_text()
    train("fer2013", work, "resnet18", resume=True, **options)
    again = CliRunner().invoke(prep, ["status", "--work", str(work)])
    line = next(x for x in again.output.splitlines() if "train/resnet18" in x)
    assert "complete" in line


def test_resuming_from_a_truncated_checkpoint_is_one_line(kaggle_work: Path,
                                                          tmp_path: Path) -> None:
    """train-3: `fer-train --resume` over a last.pt cut short says which file and how to start
    the fold afresh, in one line; without --resume the fold trains afresh."""
    work = tmp_path / "work"
    shutil.copytree(kaggle_work, work)
    args = ["--dataset", "fer2013", "--work", str(work), "--model", "resnet18", "--epochs", "1",
            "--size", "24", "--batch-size", "16", "--workers", "0", "--width", "0.5", "--quiet"]
    assert CliRunner().invoke(main, args).exit_code == 0
    last = work / "fer2013/train/resnet18/fold_0/last.pt"
    last.write_bytes(last.read_bytes()[:5000])
    resumed = CliRunner().invoke(main, [*args, "--resume"])
    assert resumed.exit_code == 1, resumed.output
    errors = [x for x in resumed.output.splitlines() if x.startswith("Error:")]
    assert len(errors) == 1 and errors[0].startswith(f"Error: {last}: not a whole checkpoint")
    assert "drop --resume to train fold 0 afresh" in errors[0]
    assert "Traceback" not in resumed.output
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0, again.output
    assert torch.load(last, weights_only=True)["epoch"] == 1
