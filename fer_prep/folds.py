"""Fold schemes by name: which fold's test part holds each row of a samples or faces table.

A scheme gets the rows it may use and returns each one's fold: 0…k−1, the fold whose test part
holds it, or −1 for a row that is only ever trained on (an official train split); a row a scheme
leaves out (not in a split file) gets NA and a reason. Train of fold K is every used row not in
test K. `assign` applies a scheme to a whole table and refuses a subject in train and test of one
fold, whatever the scheme; `fold_count` says how many folds it made, and `subject_independent`
whether the placement is known to keep every person on one side (rows without subject ids, as
`image-kfold` places them, are not).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fer_prep.datasets import Dataset
from fer_prep.errors import FoldError
from fer_prep.registry import Registry
from fer_prep.splits import KEYS

if TYPE_CHECKING:  # pandas and numpy load when folds are made, not when schemes are listed
    import pandas as pd

#: faces-manifest statuses whose rows hold a usable chip (borrowed: a video frame cut with the
#: nearest detected frame's landmarks)
USABLE = ("ok", "borrowed")


@dataclass(frozen=True)
class Options:
    """What a scheme may read besides the rows: the dataset object (its official split)."""

    dataset: Dataset
    k: int = 10
    seed: int = 0
    split: pd.DataFrame | None = None  # scheme `file`: the table manifests.read_split gives
    split_name: str = ""  # its shipped name or path, for messages


@dataclass(frozen=True)
class Scheme:
    """A registered fold scheme and what it needs."""

    assign: Callable[[pd.DataFrame, Options], pd.DataFrame]
    doc: str
    peaks_only: bool = False  # FMPN's protocol: only the peak frames of labelled sequences
    by_subject: bool = False  # places whole subjects: needs subject ids, at least k of them
    seeded: bool = False  # the seed changes the result
    k_folds: bool = True  # k sets the number of folds (else the split or the rows do)
    split_file: bool = False  # reads a split file (Options.split), which sets the folds
    default_seed: int = 0  # the seed when none is given (a seed paper's own)
    mixes_subjects: bool = False  # a seed's own folds that put a subject in train and test


SCHEMES: Registry[Scheme] = Registry("fold scheme")


def _scheme(name: str, **traits: bool | int) -> Callable:
    """Decorator: register a scheme function under `name`, its docstring's first line as doc."""

    def add(fn: Callable[[pd.DataFrame, Options], pd.DataFrame]) -> Callable:
        SCHEMES.add(name, Scheme(fn, fn.__doc__.strip().splitlines()[0], **traits))
        return fn

    return add


def _placed(fold: pd.Series, why_not: str | pd.Series = "") -> pd.DataFrame:
    """A scheme's answer: `fold` (Int64, NA = left out) and `message` (why left out)."""
    import numpy as np
    import pandas as pd

    fold = fold.astype("Int64")
    return pd.DataFrame({"fold": fold, "message": np.where(fold.isna(), why_not, "")},
                        index=fold.index)


def stratified_group_folds(groups: pd.Series, classes: pd.Series, k: int, seed: int
                           ) -> dict[str, int]:
    """Group → fold by scikit-learn's `StratifiedGroupKFold` (shuffled by `seed`): each group
    whole, the classes spread as evenly as the groups allow. Rows are sorted by group first, so
    the input's row order does not matter. (Its `shuffle=True` used to mix up the groups,
    scikit-learn PR #32540; pyproject requires a release with the fix.)
    """
    import pandas as pd
    from sklearn.model_selection import StratifiedGroupKFold

    table = pd.DataFrame({"group": groups.astype(str).to_numpy(),
                          "label": classes.astype(str).to_numpy()}).sort_values(["group", "label"])
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    fold_of = {}
    for fold, (_, test) in enumerate(splitter.split(table, table["label"], table["group"])):
        fold_of.update(dict.fromkeys(table["group"].iloc[test], fold))
    return fold_of


@_scheme("subject-kfold", by_subject=True, seeded=True)
def subject_kfold(rows: pd.DataFrame, opts: Options) -> pd.DataFrame:
    """Subject-independent k folds, stratified by label as far as subjects allow (seeded)."""
    per_sequence = rows.drop_duplicates(["subject", "sequence", "label"])  # a clip counts once
    fold = stratified_group_folds(per_sequence["subject"], per_sequence["label"], opts.k,
                                  opts.seed)
    return _placed(rows["subject"].map(fold))


@_scheme("fmpn", peaks_only=True, by_subject=True)
def fmpn(rows: pd.DataFrame, opts: Options) -> pd.DataFrame:
    """FMPN-FER: contiguous blocks of subjects, fold 0 the highest ids (CK+ and MMI as shipped).

    Subjects sorted ascending are cut at round(i·n/k), i = 0…k (numpy's round(linspace(0, n,
    k + 1))), and block i is fold k−1−i. This is the one rule that gives both published splits:
    CK+'s 118 subjects as 12 12 11 12 12 12 12 11 12 12 (fold 0 = S156…S999) and MMI's 31 as
    3 3 3 3 4 3 3 3 3 3 (the 4 in fold 5); plain array_split would put the larger blocks first.
    """
    subjects = sorted(rows["subject"].unique())
    n, k = len(subjects), opts.k
    cuts = [round(i * n / k) for i in range(k + 1)]
    fold = {s: k - 1 - b for b in range(k) for s in subjects[cuts[b] : cuts[b + 1]]}
    return _placed(rows["subject"].map(fold))


@_scheme("emotion-fan", by_subject=True)
def emotion_fan(rows: pd.DataFrame, opts: Options) -> pd.DataFrame:
    """Emotion-FAN: subjects sorted ascending, dealt round robin (the i-th to fold i mod k).

    Every frame with a face is used: Emotion-FAN trains on whole sequences (its loader reads
    every file of a sequence's folder), so the frames `ckplus align --frames` selected are kept.
    """
    fold = {s: i % opts.k for i, s in enumerate(sorted(rows["subject"].unique()))}
    return _placed(rows["subject"].map(fold))


@_scheme("loso", by_subject=True, k_folds=False)
def loso(rows: pd.DataFrame, opts: Options) -> pd.DataFrame:
    """Leave one subject out: one fold per subject (sorted ascending: the i-th is fold i).

    The number of folds is the number of subjects used, whatever --k says (JAFFE: 10).
    """
    fold = {s: i for i, s in enumerate(sorted(rows["subject"].unique()))}
    return _placed(rows["subject"].map(fold))


@_scheme("image-kfold", seeded=True)
def image_kfold(rows: pd.DataFrame, opts: Options) -> pd.DataFrame:
    """Stratified k folds of images (seeded), NOT subject-independent: sets without subjects.

    scikit-learn's `StratifiedKFold` (shuffled by the seed) over the sequences sorted by id, each
    with its most frequent label (a still is its own sequence; a clip's frames stay together):
    every class is split as evenly as its count allows (per fold within one of count / k).
    Without subject ids one person's images may lie in train and test, so the folds record says
    `subject_independent: false`. Rows with subject ids are refused: their schemes keep each
    subject on one side (subject-kfold, loso).
    """
    import logging
    import warnings

    import pandas as pd
    from sklearn.model_selection import StratifiedKFold

    subjects = rows["subject"].dropna() if "subject" in rows else pd.Series(dtype=object)
    if len(subjects):
        raise FoldError(f"scheme image-kfold is for datasets without subject ids, and "
                        f"{opts.dataset.name} rows have them (e.g. {subjects.iloc[0]}): it would "
                        "put a subject's images in train and test; use --scheme subject-kfold "
                        "or loso")
    sequence = rows["sequence"].astype(str)
    labels = rows["label"].astype(str).groupby(sequence).agg(lambda s: s.mode().iloc[0])
    labels = labels.sort_index()  # the input's row order does not matter
    counts = labels.value_counts()
    if len(labels) < opts.k:
        raise FoldError(f"{len(labels)} sequences cannot fill {opts.k} folds for scheme "
                        "image-kfold; lower --k")
    if (counts < opts.k).any():
        few = ", ".join(f"{n} {c}" for c, n in counts[counts < opts.k].sort_index().items())
        logging.getLogger("fer_prep").warning(f"image-kfold: only {few} (fewer than k = "
                                              f"{opts.k}): some folds test none of them")
    splitter = StratifiedKFold(n_splits=opts.k, shuffle=True, random_state=opts.seed)
    with warnings.catch_warnings():  # scikit-learn's own warning of the above, less clearly
        warnings.simplefilter("ignore", UserWarning)
        try:
            parts = list(splitter.split(labels.to_numpy(), labels.to_numpy()))
        except ValueError:  # every class smaller than k
            sizes = ", ".join(f"{n} {c}" for c, n in counts.sort_index().items())
            raise FoldError(f"no class has {opts.k} sequences ({sizes}): scheme image-kfold "
                            f"cannot stratify {opts.k} folds; lower --k") from None
    fold = {seq: k for k, (_, test) in enumerate(parts) for seq in labels.index[test]}
    return _placed(sequence.map(fold))


#: MAFER's Oulu-CASIA class folders (datasets/oulucasia.py), whose order its database follows
MAFER_FOLDERS = {"surprise": "Surprise", "happiness": "Happiness", "sadness": "Sadness",
                 "anger": "Anger", "fear": "Fear", "disgust": "Disgust"}


@_scheme("mafer", seeded=True, default_seed=17, mixes_subjects=True)
def mafer(rows: pd.DataFrame, opts: Options) -> pd.DataFrame:
    """MAFER's Oulu-CASIA folds: k folds of images (seed 17), NOT subject-independent.

    main_oulu.py splits its image database with scikit-learn's `KFold(n_splits=10,
    shuffle=True, random_state=17)`; the database lists `<Expression>/<image>` as os.listdir
    gives them (datasets/oulucasia.py). Here that order is the sorted one (class folder, then
    sample_id), which is os.listdir's on most file systems only by chance: these are MAFER's
    folds exactly where its listing was sorted. A subject's frames lie in train and test, as
    in MAFER (its 98.4 % is not a subject-independent figure; subject-kfold is the protocol).
    """
    import numpy as np
    from sklearn.model_selection import KFold

    folder = rows["label"].map(MAFER_FOLDERS)
    order = rows.assign(_folder=folder)[folder.notna()].sort_values(["_folder", "sample_id"])
    if len(order) < opts.k:
        raise FoldError(f"{len(order)} images of MAFER's six classes cannot fill {opts.k} "
                        "folds for scheme mafer; lower --k")
    fold = np.empty(len(order), dtype=int)
    splitter = KFold(n_splits=opts.k, shuffle=True, random_state=opts.seed)
    for k, (_, test) in enumerate(splitter.split(np.arange(len(order)))):
        fold[test] = k
    placed = rows["sample_id"].map(dict(zip(order["sample_id"], fold, strict=True)))
    return _placed(placed, "not one of MAFER's six classes (" + rows["label"].astype(str) + ")")


@_scheme("official", k_folds=False)
def official(rows: pd.DataFrame, opts: Options) -> pd.DataFrame:
    """The dataset's own train/test split as one fold (AFEW Train/Val, FER2013 Usage, …)."""
    import pandas as pd

    ds = opts.dataset
    if ds.official_test is None or "split" not in rows or rows["split"].isna().all():
        raise FoldError(f"{ds.name} has no official split; use --scheme subject-kfold, or file "
                        "with --split")
    split = rows["split"].astype("string").str.lower()
    fold = pd.Series(pd.NA, index=rows.index, dtype="Int64")
    fold[split.isin(ds.official_train)] = -1
    fold[split == ds.official_test.lower()] = 0
    parts = (f"' is neither {' nor '.join(ds.official_train)} nor {ds.official_test}, the parts "
             f"of {ds.name}'s official split")
    return _placed(fold, "split '" + rows["split"].astype(str) + parts)


@_scheme("file", k_folds=False, split_file=True)
def from_file(rows: pd.DataFrame, opts: Options) -> pd.DataFrame:
    """A split file (shipped by name, or the user's): fold per sample_id or per sequence."""
    split = opts.split
    if split is None:
        raise FoldError("scheme file needs a split: a shipped name or a CSV path (--split)")
    key = next(c for c in KEYS if c in split)
    fold = rows[key].astype(str).map(dict(zip(split[key], split["fold"], strict=True)))
    if "label" in split:
        labelled = split[split["label"] != ""]  # a label may be left empty
        listed = rows[key].astype(str).map(dict(zip(labelled[key], labelled["label"],
                                                    strict=True)))
        own = rows["label"]
        if key == "sequence" and "sequence_label" in rows:
            own = rows["sequence_label"].fillna(own)
        wrong = listed.notna() & (listed != own)
        if wrong.any():
            first = rows[wrong].index[0]
            raise FoldError(f"{opts.split_name}: {key} {rows.at[first, key]} is {listed[first]} "
                            f"there but {own[first]} in the {opts.dataset.name} manifest "
                            f"({wrong.sum()} rows disagree): is it the right split?")
    return _placed(fold, f"not in the split {opts.split_name}")


def exclusion(rows: pd.DataFrame, name: str) -> pd.Series:
    """Why each row cannot be used by scheme `name` ("" where it can)."""
    import pandas as pd

    why = pd.Series("", index=rows.index, dtype=object)
    if SCHEMES.get(name).peaks_only:
        role = rows.get("role", pd.Series(pd.NA, index=rows.index)).astype("string")
        note = f" frame: scheme {name} uses the peak frames only (CK+: the last 3)"
        why = why.where(role == "peak", role.fillna("no role") + note)
    why = why.where(rows["label"].notna(), "no label")
    failed = rows["status"] + ": " + rows["message"].fillna("").astype(str)
    return why.where(rows["status"].isin(USABLE), failed.str.removesuffix(": "))


def assign(rows: pd.DataFrame, name: str, opts: Options) -> pd.DataFrame:
    """`rows` (index reset) with `fold` (−1 when in no test part), `status` (ok / excluded) and
    `message`, by scheme `name`; FoldError when the scheme cannot make folds from them."""
    scheme = SCHEMES.get(name)
    if scheme.k_folds and opts.k < 2:
        raise FoldError(f"k = {opts.k}: scheme {name} needs at least 2 folds")
    rows = rows.reset_index(drop=True)
    why = exclusion(rows, name)
    used = rows[why == ""]
    if scheme.by_subject:
        if "subject" not in used or used["subject"].isna().any():
            raise FoldError(f"scheme {name} places subjects, and {opts.dataset.name} rows have no "
                            "subject id; use --scheme image-kfold (not subject-independent), "
                            "official or file")
        subjects = used["subject"].unique()
        needed = opts.k if scheme.k_folds else 2
        if len(subjects) < needed:
            fix = "; lower --k" if scheme.k_folds else ""
            raise FoldError(f"{len(subjects)} subjects cannot fill {needed} folds for scheme "
                            f"{name}{fix}")
    placed = scheme.assign(used, opts)
    out = rows.assign(fold=-1, status="excluded", message=why)
    out.loc[placed.index, "message"] = placed["message"]
    ok = placed.index[placed["fold"].notna()]
    out.loc[ok, "fold"] = placed.loc[ok, "fold"].astype(int)
    out.loc[ok, "status"] = "ok"
    if not len(ok):
        reasons = out["message"].value_counts()
        fix = ("; rows without the dataset's own split: use --scheme image-kfold (or "
               "subject-kfold where they have subjects)") if name in ("official", "file") else ""
        raise FoldError(f"scheme {name} can use none of the {len(out)} {opts.dataset.name} rows; "
                        f"most are excluded as: {reasons.index[0]} ({reasons.iloc[0]} rows)"
                        f"{fix}")
    if not scheme.mixes_subjects:
        check_subjects(out)
    return out


def fold_count(name: str, placed: pd.DataFrame, opts: Options) -> int:
    """How many folds scheme `name` made of `placed` (what `assign` gives): k for a k-fold
    scheme, a split file's folds for `file`, else one past the highest fold placed (loso: one
    per subject; official: one)."""
    scheme = SCHEMES.get(name)
    if scheme.k_folds:
        return opts.k
    if scheme.split_file and opts.split is not None:
        return int(opts.split["fold"].max()) + 1
    return max(int(placed.loc[placed["status"] == "ok", "fold"].max()), 0) + 1


def subject_independent(placed: pd.DataFrame, name: str) -> bool:
    """Whether the folds are known to keep every person on one side: every used row has a
    subject id (`assign` then refused any subject in two folds). Rows without ids (FER2013,
    AFEW, `image-kfold`) may hold one person in train and test; `mafer` does so by design."""
    if SCHEMES.get(name).mixes_subjects:
        return False
    used = placed[placed["status"] == "ok"]
    return "subject" in used and bool(used["subject"].notna().all())


def check_subjects(table: pd.DataFrame) -> None:
    """FoldError if a subject's used rows lie in more than one fold (so in train and test)."""
    if "subject" not in table:
        return
    used = table[(table["status"] == "ok") & table["subject"].notna()]
    spread = used.groupby("subject")["fold"].unique()
    leaks = spread[spread.map(len) > 1]
    if len(leaks):
        subject, folds = leaks.index[0], sorted(int(f) for f in leaks.iloc[0])
        test = next(f for f in folds if f >= 0)
        raise FoldError(f"subject {subject} has rows in folds {folds}, so it would be in train "
                        f"and test of fold {test} ({len(leaks)} subjects leak); folds must keep "
                        "each subject on one side")
