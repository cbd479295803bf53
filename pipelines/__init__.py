"""Declarative recipes: named parameter sets for the stages, e.g. Emotion-FAN's face preprocessing.

A recipe is a TOML file here with one table per stage (`[align]`, …; `[video-align]` overrides
`[align]` for video clips). Its values are defaults: an option given on the command line wins
(timm's `resolve_data_config` rule).
"""

from __future__ import annotations

import tomllib
from importlib.resources import files
from typing import Any


def list_presets() -> list[str]:
    return sorted(p.name[:-5] for p in files(__name__).iterdir() if p.name.endswith(".toml"))


def load_preset(name: str) -> dict[str, Any]:
    """The recipe `name` as a dict of stage tables; KeyError listing the recipes otherwise."""
    if name not in list_presets():
        raise KeyError(f"unknown preset {name!r}; choose one of: {', '.join(list_presets())}")
    return tomllib.loads((files(__name__) / f"{name}.toml").read_text(encoding="utf-8"))
