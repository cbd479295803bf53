"""`fer-prep report` on the work folder `make demo` makes, opened in a real headless Chromium:
every picture decodes, the page logs no console message, and its screenshot is not blank.

Chromium is Debian's `chromium` package, which `make test` installs where it is missing and
can; without it these tests skip, and fail under FER_PREP_REQUIRE_SHARED=1 (CI)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from fer_prep.cli import main
from fer_prep.reports.report import build_report, headless

REPO = Path(__file__).resolve().parents[1]

#: loads the report in a frame, then writes whether each of its pictures decoded (a broken one
#: has no natural width)
CHECK = """<!doctype html><html><body><pre id="result">pending</pre><script>
function check(frame) {{  // the frame's load event comes after every picture loaded or failed
  var doc = frame.contentDocument;
  var out = Array.from(doc.images).map(function (img) {{
    return {{alt: img.alt, ok: img.complete && img.naturalWidth > 0, w: img.naturalWidth}};
  }});
  document.getElementById("result").textContent = JSON.stringify(
    {{images: out, tables: doc.querySelectorAll("table").length, title: doc.title}});
}}
</script><iframe src="{page}" width="1280" height="900" onload="check(this)"></iframe>
</body></html>"""


def _demo_commands() -> list[list[str]]:
    """The fer-prep and fer-train lines of the Makefile's demo target, as argument lists."""
    text = (REPO / "Makefile").read_text().replace("\\\n", " ")
    recipe = text.split("\ndemo:", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    bin_dir = Path(sys.executable).parent
    return [shlex.split(line.strip().replace("$(BIN)/", f"{bin_dir}/"))
            for line in recipe if line.strip().startswith("$(BIN)/")]


@pytest.fixture(scope="module")
def demo_work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The work folder of `make demo`'s own commands, run in a fresh folder."""
    where = tmp_path_factory.mktemp("demo")
    commands = _demo_commands()
    assert [c[1] for c in commands][:2] == ["sample", "ckplus"] and len(commands) >= 8
    for command in commands:
        done = subprocess.run(command, cwd=where, capture_output=True, text=True)
        assert done.returncode == 0, (command, done.stderr[-2000:])
    return where / "fer-work"


def test_the_demo_report_renders_in_chromium(demo_work: Path, chromium: str,
                                             tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["report", "--work", str(demo_work), "--out",
                                       str(tmp_path / "report.html"), "--screenshot",
                                       str(tmp_path / "shot.png")])
    assert result.exit_code == 0, result.output
    page = tmp_path / "report.html"
    html = page.read_text()
    for section in ("Stages", "Failures", "Aligned faces per class", "Sources with box",
                    "Worst first", "Frames over time, per clip", "Masks per fold and class",
                    "Folds: test rows per class and fold", "Subjects per fold",
                    "Training: resnet18", "Head pose", "Blendshapes per class (mean score)"):
        assert section in html, section
    assert not re.search(r'src="(?!data:)', html)  # self-contained: every picture embedded
    assert "a column per class (anger, contempt, disgust" in html  # the masks' class order

    check = tmp_path / "check.html"
    check.write_text(CHECK.format(page=page.name))
    done = headless(check, "--allow-file-access-from-files", "--virtual-time-budget=20000",
                    "--enable-logging=stderr", "--v=0", "--dump-dom")
    result = json.loads(re.search(r'<pre id="result">(.*?)</pre>', done.stdout, re.S)
                        .group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert result["title"].startswith("fer-prep report")
    assert len(result["images"]) >= 15 and result["tables"] >= 5
    assert all(img["ok"] for img in result["images"]), [i for i in result["images"]
                                                        if not i["ok"]]
    consoles = [ln for ln in done.stderr.splitlines() if "CONSOLE" in ln and "report.html" in ln]
    assert consoles == []

    shot = cv2.imread(str(tmp_path / "shot.png"))
    assert shot is not None and shot.shape[:2] == (1600, 1280)
    grey = cv2.cvtColor(shot, cv2.COLOR_BGR2GRAY)
    assert grey.std() > 20  # text, tables and faces, not a blank page
    colours = np.unique(shot.reshape(-1, 3) // 32, axis=0)
    assert len(colours) > 50  # the faces' colours, not only black text on white


def test_the_report_sorts_and_filters_its_failures_in_chromium(demo_work: Path, chromium: str,
                                                              tmp_path: Path) -> None:
    page = build_report(demo_work, "afew", tmp_path / "afew.html")
    html = page.read_text()
    rows = html.split('id="failures-afew"', 1)[1].split("</table>", 1)[0].count("<tr>") - 1
    assert rows > 0  # the demo clip that leaves the frame has borrowed frames
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("</body>", """<script>
var input = document.querySelector("input.filter");
input.value = "no rows match this"; input.dispatchEvent(new Event("input"));
var table = document.getElementById("failures-afew");
var shown = Array.from(table.tBodies[0].rows).filter(r => r.style.display !== "none").length;
table.querySelectorAll("th")[1].click(); table.querySelectorAll("th")[1].click();
var first = table.tBodies[0].rows[0].cells[1].textContent;
var all = Array.from(table.tBodies[0].rows).map(r => r.cells[1].textContent);
document.title = JSON.stringify({shown: shown, first: first, max: all.sort().reverse()[0]});
</script></body>"""))
    done = headless(probe, "--virtual-time-budget=5000", "--dump-dom")
    title = re.search(r"<title>(.*?)</title>", done.stdout, re.S).group(1)
    got = json.loads(title.replace("&quot;", '"'))
    assert got["shown"] == 0  # the filter hid every row
    assert got["first"] == got["max"]  # two clicks: sorted descending by the row column


def test_report_mistakes_are_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["report", "--work", str(tmp_path / "nowhere")])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: {tmp_path / 'nowhere'}: no such work folder"]
