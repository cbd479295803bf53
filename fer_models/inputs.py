"""What fer-train reads, and only that: the faces, folds and masks stages of `WORK/<dataset>/`.

    WORK/<dataset>/align/manifest.parquet  chips (face_path), frame landmarks, frame → chip matrix
    WORK/<dataset>/folds/manifest.parquet  the fold of every row; train of fold K = ok rows not in
                                           K's test part (train-only rows, fold −1, included)
    WORK/<dataset>/masks/<K>/<i>.png       FMPN's pseudo masks, class i in the order stage.json
                                           records (only for models that need them)

Never a dataset folder. Every problem is an `InputError` naming the file and the command that
makes it, which the CLI shows as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fer_prep.cache import digest, read_record, ready_record
from fer_prep.datasets import Dataset, get_dataset
from fer_prep.errors import InputError as PrepInputError
from fer_prep.images import UnreadableImage, read_image
from fer_prep.labels import CANONICAL
from fer_prep.manifest import PARQUET, read_manifest

ALIGN, FOLDS, MASKS = "align", "folds", "masks"
N_POINTS = 68
#: the expression input: MediaPipe's 52 blendshape scores, then yaw, pitch and roll / 90°
N_SHAPES = 52
EXPRESSION = N_SHAPES + 3
VALIDATION = -2  # the fold number of the rows of a dataset's validation split


class InputError(PrepInputError):
    """A missing, stale or inconsistent input; the message says which file and what to run."""


@dataclass
class Inputs:
    """The ok rows of the folds with what training needs of each, for one dataset.

    `rows`: the folds manifest's ok rows of the classes trained on (sample_id, subject,
    sequence, frame, label, face_path, fold, …) plus `target` (index into `classes`) and
    `has_landmarks` and `has_expression`; `landmarks` (len(rows), 68, 2): chip-space points
    scaled to [0, 1] across the chip (x = (column + 0.5) / side), zeros where a row has none;
    `expression` (len(rows), EXPRESSION): the face's blendshape scores and head pose / 90° as
    the mediapipe backend gave them, zeros where a row has none.
    """

    dataset: str
    work: Path
    align_dir: Path
    chip_size: int
    n_folds: int
    folds_params: dict
    classes: list[str]
    rows: pd.DataFrame
    landmarks: np.ndarray
    expression: np.ndarray
    left_out: dict[str, int] = field(default_factory=dict)  # label → rows not trained on
    #: (len(rows), len(classes)) vote distributions over `classes` (FER+'s), where given
    soft: np.ndarray | None = None
    #: the output fingerprints of the align and folds stages read (what a fold was trained on)
    key: str = ""

    def part(self, fold: int, which: str) -> pd.DataFrame:
        """The rows of fold `fold`'s `train`, `test` or `validation` part (their index is the
        row's position); the validation split (fold `VALIDATION`) is in no train part."""
        folds = self.rows["fold"].to_numpy()
        if which == "validation":
            return self.rows[folds == VALIDATION]
        in_test = folds == fold
        return self.rows[in_test if which == "test" else ~in_test & (folds != VALIDATION)]


def read_inputs(dataset: str, work: str | Path, classes_from: tuple[str, ...] | None = None
                ) -> Inputs:
    """Join the folds' ok rows with the faces manifest; classes in canonical order.

    `classes_from`: train only on these labels (FMPN: the classes it has masks for); the rows
    of other labels are counted in `left_out`.
    """
    work = Path(work)
    align_dir = work / dataset / ALIGN
    folds_dir = work / dataset / FOLDS
    faces = _manifest(align_dir, f"run `fer-prep {dataset} align`")  # every chip whole, too
    folds = _manifest(folds_dir, f"run `fer-prep folds --dataset {dataset}`")
    folds_record = ready_record(folds_dir, f"run `fer-prep folds --dataset {dataset}`")
    ok = folds[folds["status"] == "ok"]
    if ok.empty:
        raise InputError(f"{folds_dir / PARQUET}: no row is in the folds (status ok); see its "
                         "messages")
    info = get_dataset(dataset, work)
    ok = pd.concat([ok, _validation(folds, info.official_validation)])
    present = set(ok["label"])
    wanted = [c for c in CANONICAL if c in present and (classes_from is None or c in classes_from)]
    left_out = {str(k): int(v) for k, v in ok.loc[~ok["label"].isin(wanted), "label"]
                .value_counts().sort_index().items()}
    rows = ok[ok["label"].isin(wanted)].reset_index(drop=True)
    if len(wanted) < 2:
        raise InputError(f"{folds_dir / PARQUET}: {len(wanted)} class(es) to train on "
                         f"({', '.join(wanted) or 'none'}); a classifier needs two or more")
    rows["target"] = rows["label"].map({c: i for i, c in enumerate(wanted)}).astype("int64")
    _check_chips(rows, align_dir, dataset)

    align_record = read_record(align_dir) or {}
    chip_size = int(align_record.get("params", {}).get("size") or 0) or _chip_side(rows, align_dir)
    points, has = _landmarks(rows, faces, chip_size)
    rows["has_landmarks"] = has
    expression, rows["has_expression"] = _expression(rows, faces)
    return Inputs(dataset=dataset, work=work, align_dir=align_dir, chip_size=chip_size,
                  n_folds=int(folds_record["n_folds"]), folds_params=folds_record.get("params", {}),
                  classes=wanted, rows=rows, landmarks=points, expression=expression,
                  left_out=left_out,
                  soft=_soft(rows, faces, wanted, info),
                  key=digest([align_record.get("output_fingerprint"),
                              folds_record.get("output_fingerprint")]))


def _validation(folds: pd.DataFrame, split: str | None) -> pd.DataFrame:
    """The rows of the dataset's validation split with a face (the folds leave them out), as
    fold `VALIDATION`."""
    if split is None or "split" not in folds:
        return folds.iloc[:0]
    rows = folds[(folds["status"] != "ok") & folds["face_path"].fillna("").ne("")
                 & folds["split"].astype("string").str.lower().eq(split.lower())
                 & folds["label"].notna()]
    return rows.assign(fold=VALIDATION, status="ok", message="")


def _soft(rows: pd.DataFrame, faces: pd.DataFrame, classes: list[str], dataset: Dataset
          ) -> np.ndarray | None:
    """FER+'s vote distribution of each row over `classes`, renormalised: FERPlus's
    `crossentropy` target of the row's 10 votes (`fer_prep.ferplus_votes.target`: outliers
    removed, the top classes kept), whatever label mode the data was prepared in; the one-hot
    label where FERPlus would drop the row in that mode. None for datasets without votes."""
    from fer_prep.ferplus_votes import EMOTIONS, target

    if "votes" not in faces or dataset.protocol != "ferplus":
        return None
    votes = faces.drop_duplicates("sample_id").set_index("sample_id")["votes"] \
        .reindex(rows["sample_id"]).to_numpy()
    where = [EMOTIONS.index(c) for c in classes]
    soft = np.zeros((len(rows), len(classes)), np.float32)
    for i, cell in enumerate(votes):
        dist = target(list(cell), "crossentropy", True)[0] if _sized(cell, 10) else None
        if dist is not None:
            soft[i] = np.asarray(dist, np.float32)[where]
    total = soft.sum(1, keepdims=True)
    one_hot = np.eye(len(classes), dtype=np.float32)[rows["target"].to_numpy()]
    return np.where(total > 0, soft / np.maximum(total, 1e-12), one_hot)


def _manifest(folder: Path, remedy: str) -> pd.DataFrame:
    """The manifest of a stage that is complete, fresh and whole; InputError naming the file
    (or what is wrong with the stage) and `remedy` otherwise."""
    if not (folder / PARQUET).is_file():
        raise InputError(f"{folder / PARQUET}: no manifest here; {remedy}")
    ready_record(folder, remedy)
    return read_manifest(folder)


def _check_chips(rows: pd.DataFrame, align_dir: Path, dataset: str) -> None:
    missing = [p for p in rows["face_path"] if not (align_dir / p).is_file()]
    if missing:
        raise InputError(f"{align_dir / missing[0]}: chip missing ({len(missing)} of "
                         f"{len(rows)} listed by the folds); run `fer-prep {dataset} align` and "
                         f"`fer-prep folds --dataset {dataset}` again")


def _chip_side(rows: pd.DataFrame, align_dir: Path) -> int:
    """The chip side from the first chip, for an align record without a size."""
    try:
        return int(read_image(align_dir / rows["face_path"].iloc[0]).shape[1])
    except UnreadableImage as exc:
        raise InputError(str(exc)) from None


def _landmarks(rows: pd.DataFrame, faces: pd.DataFrame, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Chip-space landmarks in [0, 1] and whether each row has its own.

    A row has landmarks when the faces manifest says `ok` and gives 68 finite points and the
    matrix; a video frame that `borrowed` a neighbour's landmarks has none of its own.
    """
    cols = [c for c in ("sample_id", "status", "landmarks68", "matrix") if c in faces.columns]
    joined = faces[cols].drop_duplicates("sample_id").set_index("sample_id") \
        .reindex(rows["sample_id"])
    lms = joined.get("landmarks68", pd.Series(None, index=joined.index)).to_numpy()
    mats = joined.get("matrix", pd.Series(None, index=joined.index)).to_numpy()
    has = np.array([
        status == "ok" and _sized(lm, 2 * N_POINTS) and _sized(m, 6)
        and bool(np.isfinite(np.asarray(lm, float)).all())
        for status, lm, m in zip(joined["status"].to_numpy(), lms, mats, strict=True)
    ], dtype=bool)
    points = np.zeros((len(rows), N_POINTS, 2), np.float32)
    if has.any():
        frame = np.stack([np.asarray(lm, float).reshape(N_POINTS, 2) for lm in lms[has]])
        matrix = np.stack([np.asarray(m, float).reshape(2, 3) for m in mats[has]])
        chip = np.einsum("nij,npj->npi", matrix[:, :, :2], frame) + matrix[:, None, :, 2]
        points[has] = (chip + 0.5) / side
    return points, has


def _expression(rows: pd.DataFrame, faces: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Each row's blendshape scores and head pose (degrees / 90), and whether it has them: an
    `ok` face of the mediapipe backend (a `borrowed` frame's are its neighbour's)."""
    out = np.zeros((len(rows), EXPRESSION), np.float32)
    cols = ["sample_id", "status", "blendshapes", "yaw", "pitch", "roll"]
    if not set(cols) <= set(faces.columns):
        return out, np.zeros(len(rows), bool)
    joined = faces[cols].drop_duplicates("sample_id").set_index("sample_id") \
        .reindex(rows["sample_id"])
    shapes = joined["blendshapes"].to_numpy()
    pose = joined[["yaw", "pitch", "roll"]].to_numpy(dtype=float, na_value=np.nan)
    has = np.array([status == "ok" and _sized(b, N_SHAPES) for status, b in
                    zip(joined["status"].to_numpy(), shapes, strict=True)], dtype=bool)
    has &= np.isfinite(pose).all(1)
    if has.any():
        out[has, :N_SHAPES] = np.stack([np.asarray(b, np.float32) for b in shapes[has]])
        out[has, N_SHAPES:] = pose[has] / 90.0
    return out, has


def _sized(value: object, n: int) -> bool:
    """An array cell holding n values (a missing cell is None or NaN)."""
    return isinstance(value, list | tuple | np.ndarray) and len(value) == n


@dataclass(frozen=True)
class Masks:
    """One fold's pseudo masks in the order of the classes trained on.

    `images` (len(classes), m, m) uint8; `present[c]` False where the masks stage wrote none
    (no training sample of that class in the fold); `index[label]` = the mask file's class index.
    """

    images: np.ndarray
    present: np.ndarray
    index: dict[str, int]
    size: int


def masks_order(work: str | Path, dataset: str) -> tuple[str, ...]:
    """The class order of the masks stage (FMPN's), from its stage.json."""
    folder = Path(work) / dataset / MASKS
    record = ready_record(folder, f"FMPN trains against the masks: run `fer-prep masks "
                                  f"--dataset {dataset}`")
    order = record.get("classes") or {}
    return tuple(order[k] for k in sorted(order, key=int))


def read_masks(inputs: Inputs, fold: int) -> Masks:
    """Fold `fold`'s masks of `inputs.classes`; an error if the masks were made on other folds."""
    folder = inputs.work / inputs.dataset / MASKS
    record = read_record(folder) or {}
    order = masks_order(inputs.work, inputs.dataset)
    if record.get("folds") != inputs.folds_params or record.get("n_folds") != inputs.n_folds:
        raise InputError(f"{folder}: made on folds {record.get('folds')} but the folds stage now "
                         f"holds {inputs.folds_params}; run `fer-prep masks --dataset "
                         f"{inputs.dataset}` again")
    size = int(record["finishing"]["size"])
    images = np.zeros((len(inputs.classes), size, size), np.uint8)
    present = np.zeros(len(inputs.classes), bool)
    index = {label: order.index(label) for label in inputs.classes}
    for c, label in enumerate(inputs.classes):
        path = folder / str(fold) / f"{index[label]}.png"
        if not path.is_file():
            continue
        try:
            mask = read_image(path)
        except UnreadableImage as exc:
            raise InputError(f"{exc}; run `fer-prep masks --dataset {inputs.dataset} --force`") \
                from None
        if mask.shape != (size, size):
            raise InputError(f"{path}: {mask.shape} mask, but stage.json records {size}×{size}")
        images[c], present[c] = mask, True
    if not present.any():
        raise InputError(f"{folder / str(fold)}: no mask for fold {fold}; run `fer-prep masks "
                         f"--dataset {inputs.dataset}`")
    return Masks(images, present, index, size)
