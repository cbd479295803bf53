"""A third dataset registered from this test module alone runs align, folds and an export through
the CLI: no stage or CLI file knows it (the unit of extension is one dataset class)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fer_prep.cli import main
from fer_prep.datasets import DATASETS, Dataset
from fer_prep.manifest import read_manifest

REPO = Path(__file__).resolve().parents[1]
#: (CK+ sample sequence, class folder): the toy's layout is <class>/<subject>_<n>.png
SOURCES = {"S901/001": "happy", "S901/002": "surprised", "S902/001": "happy",
           "S902/002": "surprised", "S903/001": "happy", "S903/002": "surprised"}


class Toy(Dataset):
    """Class folders of stills named <subject>_<n>.png: everything a dataset has to say."""

    name = "toy"
    title = "A toy dataset of class folders, defined in a test alone."
    kind = "stills"
    root_help = "A folder of <class>/<subject>_<n>.png."
    codes = {0: "happiness", 1: "surprise"}
    folders = {"happy": 0, "surprised": 1}
    integers = ("label_code",)

    def read(self, root: Path, options: Any) -> list[dict[str, Any]]:
        items = []
        for path in sorted(Path(root).glob("*/*.png")):
            code = self.folders.get(path.parent.name)
            subject = path.stem.split("_")[0]
            items.append({
                "sample_id": f"{path.parent.name}_{path.stem}", "dataset": self.name,
                "subject": subject, "sequence": f"{subject}_{path.parent.name}",
                "label": None if code is None else self.codes[code], "label_code": code,
                "source_path": str(path.absolute()),
                "status": "ok" if code is not None else "bad_label",
                "message": "" if code is not None else f"{path.parent}: not a toy class",
            })
        return items

    def item_path(self, item: dict[str, Any]) -> str:
        return f"{item['label']}/{item['sample_id']}"


@pytest.fixture()
def toy(ck_sample: Path, tmp_path: Path) -> Iterator[Path]:
    DATASETS.register("toy")(Toy)
    root = tmp_path / "toy"
    for sequence, folder in SOURCES.items():
        frames = sorted((ck_sample / "cohn-kanade-images" / sequence).glob("*.png"))
        (root / folder).mkdir(parents=True, exist_ok=True)
        for n, frame in enumerate(frames[-2:]):  # the two frames nearest the peak
            shutil.copy(frame, root / folder / f"{sequence.split('/')[0]}_{n}.png")
    yield root
    DATASETS.unregister("toy")


def _cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_a_dataset_registered_in_a_test_runs_through_the_cli(toy: Path, tmp_path: Path) -> None:
    assert "toy" in _cli("--help")
    assert "align" in _cli("toy", "--help") and "masks" not in _cli("toy", "--help")
    work, out = str(tmp_path / "work"), tmp_path / "export"
    assert "12 computed" in _cli("toy", "align", "--root", str(toy), "--work", work)
    faces = read_manifest(tmp_path / "work/toy/align")
    assert len(faces) == 12 and (faces["status"] == "ok").all()
    assert faces["face_path"].str.match(r"faces/(happiness|surprise)/\w+\.png$").all()
    assert "2 fold(s)" in _cli("folds", "--dataset", "toy", "--work", work, "--k", "2")
    _cli("export", "imagefolder", "--dataset", "toy", "--work", work, "--out", str(out))
    exported = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert len(exported) == 2 * 12  # every face once in each fold, in train or in test
    assert {p.split("/")[2] for p in exported} == {"1", "3"}  # MA-Net's happiness, surprise

    again = _cli("toy", "align", "--root", str(toy), "--work", work)
    assert "unchanged, skipped" in again


def test_no_stage_or_cli_file_branches_on_a_dataset() -> None:
    """Stages, the runner and the CLI ask the dataset object: none compares a dataset's name or
    keeps a table by dataset (help examples may name one)."""
    names = "|".join(("ckplus", "afew", "toy"))
    branch = re.compile(rf"""(==|!=|\bin\b)\s*[(\[{{]?\s*["']({names})["']|["']({names})["']\s*:""")
    for path in [REPO / "fer_prep/cli.py", *sorted((REPO / "fer_prep/stages").glob("*.py")),
                 *sorted((REPO / "fer_prep/runner").glob("*.py"))]:
        found = branch.findall(path.read_text())
        assert not found, (path.name, found)
