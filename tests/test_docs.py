"""The manual: `docs/` builds into a site offline with every warning an error (broken links
between pages and to their headings included), and two of its pages, opened in a real headless
Chromium, hold what they must: the CLI reference generated from the registries' commands
(`fer-prep ckplus align` and its `--root`) and a dataset page. The README stays one screen.

Chromium is Debian's `chromium` package, which `make test` installs where it is missing and
can; without it the browser test skips, and fails under FER_PREP_REQUIRE_SHARED=1 (CI)."""

from __future__ import annotations

import html
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built once as `make docs` builds it."""
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html",
                           str(REPO / "docs"), str(out)], capture_output=True, text=True,
                          cwd=REPO, timeout=300)
    said = done.stdout + done.stderr
    assert done.returncode == 0, said[-3000:]
    assert not re.search(r"WARNING|ERROR", said), said[-3000:]
    return out


def _dom(chromium: str, page: Path) -> str:
    """`page` as headless Chromium has it once loaded (a fresh profile, nothing fetched)."""
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                               "--no-first-run", f"--user-data-dir={profile}",
                               "--virtual-time-budget=3000", "--dump-dom", page.as_uri()],
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _text(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def test_the_site_builds_with_every_page_and_the_report_picture(site: Path) -> None:
    pages = {p.stem for p in (REPO / "docs").glob("*.md")}
    assert {p.stem for p in site.glob("*.html")} >= pages
    assert {"index", "cli", "api", "ckplus", "afew", "benchmarks"} <= pages
    assert (site / "_images/report.png").stat().st_size > 10_000
    assert 'src="_images/report.png"' in (site / "status-report.html").read_text()
    api = (site / "api.html").read_text()
    for name in ("fer_prep.runner.run", "fer_models.train.train", "fer_prep.exports.export"):
        assert f'id="{name}"' in api, name  # autodoc found the function


def test_the_cli_reference_and_a_dataset_page_in_chromium(site: Path, chromium: str) -> None:
    cli = _dom(chromium, site / "cli.html")
    # fer-prep's dataset groups and their stages come from the registries (list_commands)
    section = re.search(r'<section id="fer-prep-ckplus-align">(.*?)</section>', cli, re.S)
    assert section, "no generated section for fer-prep ckplus align"
    block = section.group(1)
    assert 'id="cmdoption-fer-prep-ckplus-align-root"' in block
    text = _text(block)
    assert re.search(r"fer-prep ckplus align \[ ?OPTIONS ?\]", text), text[:300]
    assert "--root" in text and "CK+ root holding cohn-kanade-images/ and Emotion/." in text
    for command in ("fer-prep-afew-video2frame", "fer-prep-folds", "fer-prep-run", "fer-train"):
        assert f'<section id="{command}">' in cli, command

    page = _dom(chromium, site / "ckplus.html")
    title = re.search(r"<h1>(.*?)</h1>", page, re.S)
    assert title and _text(title.group(1)).startswith("CK+: fer-prep ckplus align")
    assert "cohn-kanade-images/Sxxx/nnn/*.png" in _text(page)


def test_the_readme_is_one_screen() -> None:
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) < 150
    for said in ("make demo", "make test", "make docs", "docs/_build/html/index.html",
                 "FER_PREP_SHARED", "../shared", "## Contributing"):
        assert said in readme, said
