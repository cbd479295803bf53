"""FER+ (Barsoum et al. 2016): FER2013's faces with the votes of 10 taggers, in its layout.

    fer2013.csv        FER2013 (or icml_face_data.csv), read as `fer2013` reads it
    fer2013new.csv     Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,
                       contempt,unknown,NF: one row per FER2013 row, in the same order

FERPlus joins the two files by row (`generate_training_data.py` walks them together). So does
this module, but never silently: the Usage of every row must agree, and a fer2013.csv shorter
than fer2013new.csv (a partial copy) is joined over its rows with a warning. A row FER+ gives
no image name, or whose votes FERPlus's label mode drops (no majority, unknown or NF on top),
is an item with status `dropped` and FERPlus's reason. `--label-mode` is FERPlus's
`--training_mode`, applied as `fer_prep.ferplus_votes` does (exactly FERPlus's arithmetic) to
Training; PublicTest and PrivateTest are always majority, as FERPlus evaluates them. Every item
keeps its 10 `votes` and its `target` distribution over the 8 emotions, for soft-label training.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fer_prep.datasets import DATASETS, find_file
from fer_prep.datasets.fer2013 import (
    FER2013,
    FILES,
    FER2013Options,
    csv_files,
    image_folders,
    read_rows,
)
from fer_prep.errors import InputError
from fer_prep.ferplus_votes import EMOTIONS, MODES, VOTE_COLUMNS, label, target
from fer_prep.params import option

LABELS = "fer2013new.csv"


@dataclass(frozen=True)
class FERPlusOptions(FER2013Options):
    """FERPlus's label mode for the Training rows, and where a partial fer2013.csv starts."""

    label_mode: str = option("majority", "FERPlus's --training_mode for Training (PublicTest "
                             "and PrivateTest are always majority).", choices=MODES)


@DATASETS.register("ferplus")
class FERPlus(FER2013):
    name = "ferplus"
    title = "FER+ : FER2013's faces with the votes of 10 taggers (fer2013new.csv)."
    root_help = "Folder holding fer2013.csv (or icml_face_data.csv) and fer2013new.csv."
    codes = dict(enumerate(EMOTIONS))  # FERPlus's target index
    class_orders = {"ferplus": EMOTIONS}
    Options = FERPlusOptions
    quiet = frozenset({"dropped"})
    protocol = "ferplus"
    extra_columns = {
        **FER2013.extra_columns,
        "ferplus_name": "the image's name in fer2013new.csv (fer0000000.png), FERPlus's file name",
        "votes": "the 10 vote counts of fer2013new.csv, in its column order",
        "target": "FERPlus's target over its 8 emotions (neutral … contempt) in the label mode",
    }

    def read(self, root: Path, options: FERPlusOptions) -> list[dict[str, Any]]:
        (faces,) = _one_table(root)
        first = options.first_row
        return join(read_rows(faces, self.name, first or 0), _votes_file(root),
                    options.label_mode, first)

    def write_sample(self, out: Path) -> Path:
        from fer_prep.sample import write_fer2013_sample

        root = write_fer2013_sample(out, self.name)
        write_ferplus_votes(root / "fer2013.csv", root)
        return root


def _one_table(root: Path) -> list[Path]:
    if not any(find_file(root, name) for name in FILES) and image_folders(root) is not None:
        raise InputError(f"{root}: Kaggle's FER2013 images; FER+ cannot be joined to them "
                         "(their numbers are not fer2013.csv's row numbers, which "
                         "fer2013new.csv follows): give the folder holding fer2013.csv")
    files = csv_files(root)
    if len(files) != 1:
        raise InputError(f"{root}: FER+ joins fer2013new.csv to fer2013.csv (or "
                         "icml_face_data.csv) row by row; Kaggle's train.csv/test.csv lack the "
                         "Usage column that checks the join")
    return files


def _votes_file(root: Path) -> Path:
    """fer2013new.csv at the root or up to two levels below (FERPlus's repository: data/)."""
    found = find_file(root, LABELS)
    if found is not None:
        return found
    raise InputError(f"{root}: no {LABELS} (FER+'s votes) beside the FER2013 CSV")


def join(items: list[dict[str, Any]], path: Path, mode: str, first: int | None = None
         ) -> list[dict[str, Any]]:
    """FER2013's items with their FER+ votes, joined by row and checked by Usage. A FER2013 CSV
    shorter than fer2013new.csv (a partial copy) is refused unless `first` says where its
    first row is in the full file: joined from the start, its rows would get other rows' votes
    (rows 100–299 of FER2013: FER+'s majority agrees with FER2013's label on 24 % of them
    joined from row 0, 62 % from row 100), and the Usage check cannot see it where both are
    Training."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh))
    header = [c.strip() for c in rows[0]]
    expected = ["Usage", "Image name", *VOTE_COLUMNS]
    if header != expected:
        raise InputError(f"{path}: header {header} is not FER+'s {expected}")
    votes = rows[1:]
    if first is None and len(votes) > len(items):
        raise InputError(f"{path}: {len(votes)} rows, the FER2013 CSV {len(items)}: a partial "
                         "copy, which cannot be joined by row without its place in the full "
                         "file; give it with --first-row N (N = its first row's 0-based place)")
    start = first or 0
    if len(votes) < start + len(items):
        raise InputError(f"{path}: {len(votes)} rows, but the FER2013 CSV's {len(items)} rows "
                         f"from row {start} need {start + len(items)}: they cannot be the same "
                         "rows")
    votes = votes[start:start + len(items)]
    out = []
    for n, (item, row) in enumerate(zip(items, votes, strict=True)):
        line, own = start + n + 2, item["source_line"]  # the votes' line, the faces' line
        if item["split"] is not None and row[0].strip() != item["split"]:
            raise InputError(f"{path}:{line}: Usage {row[0].strip()!r}, but line {own} of "
                             f"{item['source_path']} is {item['split']!r}: the files are not "
                             "in the same order, so they cannot be joined by row")
        out.append(_with_votes(item, row, f"{path}:{line}", mode))
    return out


def _with_votes(item: dict[str, Any], row: list[str], where: str, mode: str
                ) -> dict[str, Any]:
    name = row[1].strip()
    item = {**item, "ferplus_name": name or None, "label": None, "label_code": None,
            "votes": None, "target": None}
    if item["status"] != "ok":
        return item
    try:
        votes = [int(v) for v in row[2:12]]
    except ValueError:
        return {**item, "status": "bad_label", "message": f"{where}: votes {row[2:12]} are "
                "not 10 whole numbers"}
    item["votes"] = votes
    if not name:
        return {**item, "status": "dropped", "message": f"{where}: no FER+ image name "
                "(FERPlus leaves the row out)"}
    training = item["split"] == "Training"
    dist, why = target(votes, mode if training else "majority", training)
    if dist is None:
        used = mode if training else "majority"
        return {**item, "status": "dropped", "message": f"{where}: FER+ {used}: {why}"}
    best = label(dist)
    return {**item, "target": dist, "label": best, "label_code": EMOTIONS.index(best)}


def write_ferplus_votes(faces: Path, out: Path) -> Path:
    """fer2013new.csv for a FER2013 CSV: 10 votes per row, 7 for its own label (FER2013's codes
    mapped to FER+'s emotions), 3 spread over others; the sample's FER+ file."""
    fer_codes = {0: "anger", 1: "disgust", 2: "fear", 3: "happiness", 4: "sadness",
                 5: "surprise", 6: "neutral"}
    lines = [",".join(["Usage", "Image name", *VOTE_COLUMNS])]
    with open(faces, newline="", encoding="ascii") as fh:
        for i, row in enumerate(csv.DictReader(fh)):
            votes = [0] * len(VOTE_COLUMNS)
            own = VOTE_COLUMNS.index(fer_codes[int(row["emotion"])])
            votes[own] = 7 if i % 5 else 4  # every fifth row without a majority
            votes[(own + 1) % 8] += 3 if i % 5 else 4
            votes[(own + 2) % 8] += 0 if i % 5 else 2
            lines.append(",".join([row["Usage"], f"fer{i:07d}.png", *map(str, votes)]))
    path = out / LABELS
    path.write_text("\n".join(lines) + "\n", encoding="ascii", newline="\n")
    return path
