"""Where the shipped data lives: the presets (`pipelines/`) and the manifest schemas and
benchmark splits (`manifests/`). Installed, they sit inside the package (`fer_prep/pipelines`,
`fer_prep/manifests`); in a source checkout, at the repository's top level."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _folder(name: str) -> Path:
    inside = _PACKAGE / name
    return inside if inside.is_dir() else _PACKAGE.parent / name


PIPELINES = _folder("pipelines")
MANIFESTS = _folder("manifests")
