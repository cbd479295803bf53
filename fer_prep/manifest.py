"""Manifests: one row per output item, as Parquet (for code) and CSV (for people).

Paths inside a manifest are relative to its stage folder. Array columns (box, landmarks, matrix)
are lists of floats in Parquet and JSON arrays in the CSV copy; the 478-point mesh stays in the
Parquet file only (it would make the CSV unreadable). pandas is imported on first use, so the
stages that name these columns stay cheap to import. Every manifest a stage writes is checked
against its schema in `manifests/<name>.schema.csv` first: a column it lacks or does not document
is a bug of the stage, never written.
"""

from __future__ import annotations

import csv
import json
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from fer_prep.cache import atomic_path
from fer_prep.errors import InputError
from fer_prep.shipped import MANIFESTS

if TYPE_CHECKING:
    import pandas as pd

PARQUET = "manifest.parquet"
CSV = "manifest.csv"
CSV_LEAVES_OUT = ("landmarks478",)

#: columns every face manifest has, in order (stages may add more after them)
FACE_COLUMNS = (
    "sample_id", "dataset", "subject", "sequence", "frame", "role", "label", "label_code",
    "source_path", "face_path", "status", "message", "box", "landmarks68", "backend",
)


class SchemaError(RuntimeError):
    """A stage made a manifest its schema does not describe: a bug of the stage."""


def _csv_cell(value: object) -> object:
    import numpy as np

    if isinstance(value, np.ndarray | list | tuple):
        return json.dumps(np.round(np.asarray(value, dtype=float), 2).tolist())
    return value


def write_table(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def read_table(path: Path) -> pd.DataFrame:
    import pandas as pd

    return pd.read_parquet(path)


def write_manifest(df: pd.DataFrame, folder: Path) -> None:
    """Write `folder/manifest.parquet` and its CSV copy, each atomically."""
    write_table(df, folder / PARQUET)
    readable = df.drop(columns=[c for c in CSV_LEAVES_OUT if c in df.columns])
    for col in readable.columns:
        if readable[col].dtype == object:
            readable[col] = readable[col].map(_csv_cell)
    with atomic_path(folder / CSV) as tmp:
        readable.to_csv(tmp, index=False)


def read_manifest(folder: str | Path) -> pd.DataFrame:
    """The manifest of a stage folder; InputError naming the stage otherwise."""
    path = Path(folder) / PARQUET
    if not path.is_file():
        raise InputError(f"{path}: no manifest here; run that stage first")
    return read_table(path)


@cache
def schema(name: str) -> tuple[dict[str, str], ...]:
    """The schema `name` (e.g. `faces`): one dict per column (column, type, required, meaning)."""
    path = MANIFESTS / f"{name}.schema.csv"
    with open(path, newline="", encoding="utf-8") as fh:
        return tuple(csv.DictReader(fh))


def check_schema(df: pd.DataFrame, name: str, extra: dict[str, str]) -> None:
    """SchemaError unless `df` has every required column of schema `name` and documents every
    column it has (in the schema, or in the dataset's `extra_columns`)."""
    columns = schema(name)
    documented = {c["column"] for c in columns} | set(extra)
    missing = [c["column"] for c in columns if c["required"] == "yes" and c["column"] not in df]
    undocumented = [c for c in df.columns if c not in documented]
    whole = {c["column"] for c in columns if c["type"] == "int"}
    fractional = [c for c in whole & set(df.columns) if df[c].dtype.kind == "f"]
    if missing or undocumented or fractional:
        raise SchemaError(f"manifest {name}: missing {missing}, undocumented {undocumented}, "
                          f"int columns stored as floats {fractional} "
                          f"(see {MANIFESTS / f'{name}.schema.csv'})")
