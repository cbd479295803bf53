"""The wheel: pipelines/ and manifests/ install inside fer_prep (data only), no generic top-level
`pipelines` or `manifests` module, the development script manifests/build.py left out, the Face
Landmarker model inside; the package never imports those top-level folders. And it installs
beside today's packages: resolved for Python 3.12–3.14 with numpy, pandas, pyarrow and protobuf
at their current majors, and installed into a venv that already holds them without changing
one (these two reach PyPI, as `pip install` does)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: what a current environment holds (2026-12): pip must leave each as it is
TODAY = ("numpy>=2.4", "pandas>=3.1", "pyarrow>=24", "protobuf>=6")
OPENCV = {"opencv-python", "opencv-python-headless", "opencv-contrib-python",
          "opencv-contrib-python-headless"}


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fer-prep's wheel, and face-recognition-models' (PyPI has it as an sdist only: pure
    data, built once here so that `--only-binary=:all:` can resolve the rest)."""
    out = tmp_path_factory.mktemp("wheels")
    source = out.parent / "source"  # a copy: building writes build/ and *.egg-info beside it
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "__pycache__", "fer-work", "sample-data"))
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out)]
    subprocess.run([*pip, "--no-build-isolation", str(source)], check=True, capture_output=True)
    subprocess.run([*pip, "face-recognition-models>=0.3"], check=True, capture_output=True)
    return out


def _wheel(wheels: Path) -> Path:
    (wheel,) = wheels.glob("fer_prep-*.whl")
    return wheel


def test_the_wheel_ships_the_data_inside_the_package(wheels: Path) -> None:
    names = zipfile.ZipFile(_wheel(wheels)).namelist()
    assert {f"fer_prep/faces/models/{n}" for n in ("face_landmarker.task", "LICENSE",
                                                    "NOTICE")} <= set(names)
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"fer_prep", "fer_models"}, tops
    assert not [n for n in names if n.endswith("build.py")]
    shipped = {str(p.relative_to(REPO)) for folder in ("pipelines", "manifests")
               for p in (REPO / folder).rglob("*") if p.suffix in (".toml", ".csv")}
    assert {f"fer_prep/{p}" for p in shipped} <= set(names)
    on_disk = {str(p.parent.relative_to(REPO)).replace("/", ".")
               for top in ("fer_prep", "fer_models") for p in (REPO / top).rglob("__init__.py")}
    packed = {n.rsplit("/", 1)[0].replace("/", ".") for n in names if n.endswith("__init__.py")}
    assert on_disk == packed, on_disk ^ packed  # pyproject lists every package


def test_the_package_never_imports_the_top_level_folders() -> None:
    pattern = re.compile(r"^\s*(from|import)\s+(manifests|pipelines)\b", re.M)
    for path in [*REPO.glob("fer_prep/**/*.py"), *REPO.glob("fer_models/**/*.py")]:
        assert not pattern.search(path.read_text()), path


@pytest.mark.parametrize("python", ["3.12", "3.13", "3.14"])
def test_resolves_beside_todays_packages(wheels: Path, tmp_path: Path, python: str) -> None:
    """Wheels only, for each newer Python: the wheel (with its hf, docs and cluster extras) and
    numpy, pandas, pyarrow and protobuf at today's versions resolves (an upper pin of ours would
    make it fail), with one OpenCV."""
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "-q", "--ignore-installed",
         "--python-version", python, "--only-binary=:all:", "--find-links", str(wheels),
         "--target", str(tmp_path / "target"), "--report", str(report),
         f"{_wheel(wheels)}[hf,docs,cluster]", *TODAY], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = {i["metadata"]["name"].lower() for i in json.loads(report.read_text())["install"]}
    assert {"fer-prep", "mediapipe", "numpy", "pandas", "pyarrow", "protobuf",
            "datasets"} <= names  # the hf extra (export hf) too
    assert {"sphinx", "myst-parser", "sphinx-click"} <= names  # the docs extra (make docs)
    assert {"distributed", "dask-jobqueue"} <= names  # the cluster extra (SLURM, PBS)
    assert names & OPENCV == {"opencv-contrib-python"}


@pytest.mark.shared
def test_installs_into_a_current_environment_without_changing_it(wheels: Path, tmp_path: Path,
                                                                 shared: Path) -> None:
    """A fresh venv holding numpy 2, pandas 3, pyarrow and protobuf: installing the wheel
    changes none of them, and `fer-prep ckplus align` runs there with MediaPipe and dlib."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin/python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, *TODAY], check=True, capture_output=True)
    before = _versions(venv)
    assert int(before["numpy"].split(".")[0]) >= 2
    proc = subprocess.run([*pip, "--find-links", str(wheels), str(_wheel(wheels))],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    after = _versions(venv)
    assert {n: after[n] for n in before if n in ("numpy", "pandas", "pyarrow", "protobuf")} \
        == {n: before[n] for n in before if n in ("numpy", "pandas", "pyarrow", "protobuf")}
    assert set(after) & OPENCV == {"opencv-contrib-python"}
    root = tmp_path / "ckplus"  # two sequences of the shared CK+
    for part in ("cohn-kanade-images", "Emotion"):
        for seq in ("S052/004", "S111/006"):
            shutil.copytree(shared / "data/ckplus" / part / seq, root / part / seq)
    for backend in ("mediapipe", "dlib-hog"):
        work = tmp_path / backend
        proc = subprocess.run([str(venv / "bin/fer-prep"), "ckplus", "align", "--root",
                               str(root), "--work", str(work), "--backend", backend],
                              capture_output=True, text=True, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "(ok: 8)" in proc.stdout, proc.stdout


def _versions(venv: Path) -> dict[str, str]:
    out = subprocess.run([str(venv / "bin/python"), "-m", "pip", "list", "--format", "json"],
                         capture_output=True, text=True, check=True).stdout
    return {p["name"].lower(): p["version"] for p in json.loads(out)}
