"""The published benchmark splits shipped in `manifests/splits/`, and the split file format.

Split files (`splits/<name>.csv`, name = `<dataset>-<seed paper>-<folds>-v<version>`; a changed
split gets a new version, never an edit) are made from the seeds' own files by `manifests/build.py`.
The same format is what `fer-prep folds --scheme file --split PATH` reads from a user:

    # ckplus-fmpn-10fold-v1: one line of provenance per '#' line (optional)
    sample_id,fold,label
    S005_001_00000009,9,disgust

- the key column is `sample_id` (one frame, as in the faces manifest) or `sequence` (every frame
  of a sequence or clip, e.g. CK+ `S005_001`, AFEW `train_013736360`);
- `fold` is the fold whose test part holds the item, 0…k−1, or −1 for train-only items (an
  official train/test split is fold −1 = train, fold 0 = test); train lists are the complement;
- `label` (optional) is the canonical label, checked against the dataset's own on use.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fer_prep.errors import InputError
from fer_prep.shipped import MANIFESTS

if TYPE_CHECKING:
    import pandas as pd

SPLITS = MANIFESTS / "splits"
KEYS = ("sample_id", "sequence")


class SplitFileError(InputError):
    """A split file that does not follow the format above; the message names the file."""


def list_splits() -> list[str]:
    """Names of the shipped splits."""
    return sorted(p.stem for p in SPLITS.glob("*.csv"))


def split_path(name: str) -> Path:
    """The file of the shipped split `name`; InputError listing the shipped splits otherwise."""
    if name not in list_splits():
        raise InputError(f"unknown split {name!r}; shipped splits: {', '.join(list_splits())}")
    return SPLITS / f"{name}.csv"


def resolve_split(split: str | Path) -> tuple[Path, str]:
    """(file, name) of a split: a user's CSV (named by its path) or a shipped one by name."""
    path = Path(split).expanduser()
    if path.is_file():
        return path.resolve(), str(path.resolve())
    if str(split) in list_splits():
        return split_path(str(split)), str(split)
    raise InputError(f"{split}: neither a split file nor a shipped split "
                     f"({', '.join(list_splits())})")


def load_split(name: str) -> pd.DataFrame:
    """The shipped split `name` as a table (key column, `fold`, maybe `label`)."""
    return read_split(split_path(name))


def read_split(path: str | Path) -> pd.DataFrame:
    """A split file in the format above; SplitFileError naming the file and the problem."""
    import pandas as pd

    path = Path(path)
    try:
        table = pd.read_csv(path, dtype=str, comment="#", keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise SplitFileError(f"{path}: not a readable split CSV ({exc})") from None
    keys = [c for c in KEYS if c in table.columns]
    if len(keys) != 1 or "fold" not in table.columns:
        raise SplitFileError(f"{path}: expected a header with one of {' or '.join(KEYS)} and "
                             f"'fold', found {list(table.columns)}")
    key = keys[0]
    folds = pd.to_numeric(table["fold"], errors="coerce")
    bad = table[folds.isna() | (folds < -1) | (folds % 1 != 0) | (table[key] == "")]
    if len(bad):
        line = bad.index[0] + 2  # header is line 1 (not counting '#' lines)
        raise SplitFileError(f"{path}: row {line} ({', '.join(bad.iloc[0])}): needs a {key} and "
                             "a whole-number fold ≥ −1")
    table["fold"] = folds.astype(int)
    twice = table[table[key].duplicated(keep=False)]
    if len(twice):
        raise SplitFileError(f"{path}: {key} {twice[key].iloc[0]!r} is listed more than once")
    present = set(table["fold"]) - {-1}
    missing = sorted(set(range(max(present, default=-1) + 1)) - present)
    if not present or missing:
        raise SplitFileError(f"{path}: no test items in fold(s) {missing or [0]}; folds must be "
                             "numbered 0…k−1, each with a test part")
    return table
