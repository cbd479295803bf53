"""Sphinx configuration of the fer-prep manual: Markdown pages (MyST), the Python API from
docstrings (autodoc), the CLI reference generated from the click commands (sphinx-click).

Built offline and strict: `make docs`, or `python -m sphinx -W --keep-going -b html docs OUT`.
No intersphinx and no remote images, so nothing is fetched; links between pages, and to their
headings (`[text](page.md#heading)`), are checked and a broken one is an error.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

# the checkout's own packages, whether or not it is installed in the environment that builds,
# and _ext/cli_reference.py (the commands as cli.md documents them)
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(HERE.parent))


def _version() -> str:
    from fer_prep import __version__

    return __version__


project = "fer-prep"
author = "the fer-prep authors"
copyright = "the fer-prep authors"
version = release = _version()

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx_click"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# MyST: `[text](page.md#a-heading)` is checked against the headings of levels 1–3
myst_heading_anchors = 3

# Docstrings write code as `name` (Markdown's habit): read single backticks as code in
# reStructuredText too (autodoc, sphinx-click's help texts)
default_role = "literal"
autodoc_typehints = "description"
autodoc_member_order = "bysource"

html_theme = "alabaster"
html_title = f"fer-prep {release}"
html_static_path: list[str] = []
html_theme_options = {"description": "facial-expression datasets, prepared and trained on",
                      "fixed_sidebar": True, "page_width": "1240px", "sidebar_width": "250px"}

# Keep `--root`, `'s` and "…" as written (the CLI's help texts and the pages quote commands)
smartquotes = False

# sphinx-click reads each help text as reStructuredText, but they are written as plain text:
# `*.png` and `|peak − neutral|` would be emphasis and a substitution there. Escape those two
# outside `code` spans, in the help texts only (not in the directives sphinx-click writes).
_CODE = re.compile(r"(``.*?``|`[^`]*`)")


def _plain(line: str) -> str:
    if line.lstrip().startswith((".. ", ":")):
        return line
    # sphinx-click's own marks: a required option's, a line block's (click's \b paragraphs)
    mark = re.match(r"\s*(\*\*Required\*\* |\|(?: |$))?", line).group()
    parts = _CODE.split(line[len(mark):])
    return mark + "".join(p if i % 2 else re.sub(r"([*|])", r"\\\1", p)
                          for i, p in enumerate(parts))


def _escape_help(app: Any, ctx: Any, lines: list[str]) -> None:
    lines[:] = [_plain(line) for line in lines]


def setup(app: Any) -> None:
    for what in ("description", "options", "arguments", "epilog"):
        app.connect(f"sphinx-click-process-{what}", _escape_help)
