"""The folds stage: faces (or a dataset's labels alone) → the fold of every row, and per fold
the lists.

    WORK/<dataset>/folds/
      stage.json                     params (scheme, k, seed, split), n_folds, test_rows,
                                     subject_independent, fingerprints, counts
      manifest.parquet, manifest.csv one row per input row, `fold` = the fold whose test part
                                     holds it (−1: none), `status` ok / excluded, `message` why
      fold_<K>/train.csv, test.csv   the ok rows of each part: sample_id, subject, sequence,
                                     frame, label, face_path (relative to WORK/<dataset>/align/)

The schemes are in `fer_prep.folds`; this stage reads their input and writes their result.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from fer_prep.cache import file_hash
from fer_prep.errors import InputError
from fer_prep.params import Params, option
from fer_prep.stages import STAGES, Reduced, Stage

if TYPE_CHECKING:
    import pandas as pd

    from fer_prep.datasets import Dataset
    from fer_prep.stages.base import Context

#: the folds manifest, in order (see manifests/folds.schema.csv)
COLUMNS = (
    "sample_id", "dataset", "subject", "sequence", "frame", "role", "label", "label_code",
    "sequence_label", "split", "face_path", "fold", "status", "message",
)
#: the columns of fold_<K>/train.csv and test.csv
LIST_COLUMNS = ("sample_id", "subject", "sequence", "frame", "label", "face_path")


def _schemes() -> list[str]:
    from fer_prep.folds import SCHEMES

    return SCHEMES.names()


@dataclass(frozen=True)
class FoldsParams(Params):
    """The fold scheme and what it takes."""

    scheme: str | None = option(None, "Fold scheme [the dataset's: subject-kfold, AFEW "
                                "official; file when --split is given].", choices=_schemes)
    k: int = option(10, "Number of folds (k-fold schemes).", low=2)
    seed: int | None = option(None, "Seed of the seeded schemes (subject-kfold, image-kfold, "
                              "mafer) [0; mafer: 17, MAFER's].")
    split: str | None = option(None, "Scheme file: a shipped split's name or a split CSV.")

    def resolved(self) -> FoldsParams:
        from fer_prep.folds import SCHEMES
        from fer_prep.splits import resolve_split

        scheme = self.scheme or ("file" if self.split else None)
        if scheme is None:  # the dataset's own default, filled in by the stage
            return self
        if (self.split is None) == (scheme == "file"):
            raise InputError("a split file goes with scheme 'file', and only with it")
        chosen = SCHEMES.get(scheme)
        split = None if self.split is None else resolve_split(self.split)[1]
        return replace(self, scheme=scheme, split=split, k=self.k if chosen.k_folds else None,
                       seed=(chosen.default_seed if self.seed is None else self.seed)
                       if chosen.seeded else None)


def _warn_about_split(table: pd.DataFrame | None, rows: pd.DataFrame, ok: pd.DataFrame,
                      n_folds: int, name: str | None) -> None:
    """Say so when a split lists items these rows lack, and when a fold has no test rows."""
    import logging

    from fer_prep.splits import KEYS

    log = logging.getLogger("fer_prep")
    if table is not None:
        key = next(c for c in KEYS if c in table)
        absent = sorted(set(table[key]) - set(rows[key].astype(str)))
        if absent:
            log.warning(f"{name}: {len(absent)} of its {len(table)} {key}s are not in these rows "
                        f"(e.g. {absent[0]}): a partial copy of the dataset?")
    for fold in range(n_folds):
        if not (ok["fold"] == fold).any():
            log.warning(f"fold {fold} has no test rows: a model cannot be tested on it")


def _typed(table: pd.DataFrame) -> pd.DataFrame:
    """The folds manifest's column types (as Parquet gives them back): text, or whole numbers."""
    types = {"frame": "Int64", "label_code": "Int64", "fold": "int64"}
    return table.astype({c: types.get(c, "str") for c in table.columns})


@STAGES.register("folds")
class Folds(Stage):
    """Put every sample in a cross-validation fold; write WORK/<dataset>/folds/.

    Reads WORK/<dataset>/align/ (or, with --root, the dataset's labels alone where its layout
    allows: CK+'s Emotion/ tree). Writes a manifest (sample → fold) and fold_<K>/train.csv,
    test.csv. Subject schemes never put one subject in train and test of a fold.
    """

    name = "folds"
    command = "folds"
    cross = True
    folder = "folds"
    version = 1
    Params = FoldsParams
    kinds = frozenset({"stills", "sequences", "videos"})
    schema = "folds"
    inputs = ("align",)
    root = "optional"
    reader_options = False
    columns = COLUMNS
    shows = {"folds": "fold_<K>/{train,test}.csv"}

    def for_dataset(self, params: FoldsParams, dataset: Dataset,
                    read: dict[str, Any] | None = None) -> FoldsParams:
        return replace(params, scheme=params.scheme or dataset.scheme_for(read or {})).resolved()

    def notes(self, record: dict[str, Any]) -> list[str]:
        sizes = " ".join(str(n) for n in record.get("test_rows", []))
        lines = [f"{record.get('n_folds')} fold(s); test rows per fold: {sizes}"]
        if record.get("subject_independent") is False:
            lines.append("not subject-independent: one person's faces may be in train and "
                         "test (rows without subject ids, or a scheme that mixes them)")
        return lines

    def reads_dataset(self, params: FoldsParams, ctx: Context) -> bool:
        return ctx.root is not None

    def read(self, ctx: Context) -> list[dict[str, Any]]:
        items = ctx.dataset.read_labels(ctx.root)
        if items is None:
            raise InputError(f"{ctx.dataset.name}: folds from a root without faces work only "
                             "where the labels and file names alone name the frames (CK+'s "
                             f"Emotion/, Oulu-CASIA, MMI's extracted frames); run "
                             f"{ctx.remedy('align')} and drop --root")
        return items

    def extra_key(self, ctx: Context, params: FoldsParams) -> Any:
        from fer_prep.splits import resolve_split

        return file_hash(resolve_split(params.split)[0]) if params.split else None

    def items(self, ctx: Context, params: FoldsParams) -> pd.DataFrame:
        import pandas as pd

        from fer_prep.cache import digest

        if ctx.root is not None:
            rows = pd.DataFrame(ctx.raw_items)
        else:
            rows = ctx.upstream_manifest("align")
        table = rows.reindex(columns=[c for c in COLUMNS if c != "fold"])
        for col in ("face_path", "message"):
            table[col] = table[col].fillna("")
        table = _typed(table)
        table["fingerprint"] = [digest(r) for r in table.astype(str).values.tolist()]
        return table

    def reduce(self, ctx: Context, params: FoldsParams, rows: pd.DataFrame) -> Reduced:
        from fer_prep.cache import atomic_path
        from fer_prep.folds import Options, assign, fold_count, subject_independent
        from fer_prep.splits import read_split, resolve_split

        table = read_split(resolve_split(params.split)[0]) if params.split else None
        opts = Options(ctx.dataset, params.k or 10, params.seed or 0, table, params.split or "")
        placed = _typed(assign(rows.drop(columns=["fingerprint"]), params.scheme, opts)
                        [list(COLUMNS)])
        n_folds = fold_count(params.scheme, placed, opts)
        ok = placed[placed["status"] == "ok"].sort_values("sample_id")
        _warn_about_split(table, rows, ok, n_folds, params.split)
        ctx.begin()
        wanted = {f"fold_{k}" for k in range(n_folds)}
        for old in ctx.folder.glob("fold_*"):  # an earlier run's folds beyond these (a split
            if old.is_dir() and old.name not in wanted:  # file now with fewer): not left empty
                shutil.rmtree(old)
        files = []
        for fold in range(n_folds):
            for part, members in (("train", ok[ok["fold"] != fold]),
                                  ("test", ok[ok["fold"] == fold])):
                rel = f"fold_{fold}/{part}.csv"
                with atomic_path(ctx.folder / rel) as tmp:
                    members[list(LIST_COLUMNS)].to_csv(tmp, index=False)
                files.append(rel)
        sizes = [int((ok["fold"] == k).sum()) for k in range(n_folds)]
        independent = subject_independent(placed, params.scheme)
        return Reduced(placed, files, {"n_folds": n_folds, "test_rows": sizes,
                                       "subject_independent": independent})
