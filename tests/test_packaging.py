"""The wheel: pipelines/ and manifests/ install inside fer_prep (data only), no generic top-level
`pipelines` or `manifests` module, the development script manifests/build.py left out; and the
package never imports those top-level folders."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_wheel_ships_the_data_inside_the_package(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info beside it
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "__pycache__", "fer-work", "sample-data"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(source)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("fer_prep-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
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
