"""Shipped manifests: the manifest schemas (and, to come, the published benchmark splits)."""

from __future__ import annotations

from importlib.resources import files

import pandas as pd


def schema(name: str) -> pd.DataFrame:
    """The schema `name` (e.g. `faces`): one row per column with its type and meaning."""
    path = files(__name__) / f"{name}.schema.csv"
    if not path.is_file():
        raise KeyError(f"no manifest schema {name!r} in {files(__name__)}")
    return pd.read_csv(path, dtype=str, keep_default_na=False)
