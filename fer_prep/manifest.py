"""Manifests: one row per output item, as Parquet (for code) and CSV (for people).

Paths inside a manifest are relative to its stage folder. Array columns (box, landmarks, matrix)
are lists of floats in Parquet and JSON arrays in the CSV copy; the 478-point mesh stays in the
Parquet file only (it would make the CSV unreadable).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from fer_prep.cache import atomic_path

PARQUET = "manifest.parquet"
CSV = "manifest.csv"
CSV_LEAVES_OUT = ("landmarks478",)

#: columns every face manifest has, in order (stages may add more after them)
FACE_COLUMNS = (
    "sample_id", "dataset", "subject", "sequence", "frame", "role", "label", "label_code",
    "source_path", "face_path", "status", "message", "box", "landmarks68", "backend",
)


def _csv_cell(value: object) -> object:
    if isinstance(value, np.ndarray | list | tuple):
        return json.dumps(np.round(np.asarray(value, dtype=float), 2).tolist())
    return value


def write_manifest(df: pd.DataFrame, folder: Path) -> None:
    """Write `folder/manifest.parquet` and its CSV copy, each atomically."""
    with atomic_path(folder / PARQUET) as tmp:
        df.to_parquet(tmp, index=False)
    readable = df.drop(columns=[c for c in CSV_LEAVES_OUT if c in df.columns])
    for col in readable.columns:
        if readable[col].dtype == object:
            readable[col] = readable[col].map(_csv_cell)
    with atomic_path(folder / CSV) as tmp:
        readable.to_csv(tmp, index=False)


def read_manifest(folder: Path) -> pd.DataFrame:
    """The manifest of a stage folder; FileNotFoundError naming the stage otherwise."""
    path = Path(folder) / PARQUET
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no manifest here; run that stage first")
    return pd.read_parquet(path)

