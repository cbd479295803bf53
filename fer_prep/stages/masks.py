"""The masks stage: aligned faces + folds → FMPN-FER's pseudo facial-motion masks.

    WORK/<dataset>/masks/
      stage.json                 params (warp, size, blur, equalize), class order, the folds used
                                 and the align parameters the faces were cut with, counts
      manifest.parquet, .csv     one row per class mask (ok, or absent: the class has no training
                                 sample in that fold) and, with per_sample, per per-sample map
      <fold>/<class_index>.png   8-bit, min-max scaled to 0…255, class_index in FMPN's order
      panel.png                  every mask: a row per fold, a column per class
      samples/<S>/<seq>/<id>.png per_sample: each peak's own map, finished as the class masks are
      diffs/                     |peak − neutral| of every peak face, unscaled (stage.json and
                                 manifest of its own): the expensive part, made by run_stage, so
                                 a re-run reuses it and a killed run resumes

`masks(...)` is the whole stage; the CLI calls it as a notebook would. The arithmetic is in
`fer_prep.motion`. A class mask of fold K averages the maps of the peak faces in K's training
part (every fold but K, and the train-only rows).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from fer_prep import __version__
from fer_prep.align import transform_points
from fer_prep.cache import (
    atomic_path,
    digest,
    file_hash,
    is_current,
    mark_downstream_stale,
    read_record,
    ready_record,
    remove_temporaries,
    stage_fingerprint,
    write_record,
)
from fer_prep.images import UnreadableImage, read_image
from fer_prep.labels import CANONICAL, CODES
from fer_prep.manifest import PARQUET, read_manifest, write_manifest
from fer_prep.motion import default_blur, difference, finish, grey, panel, warp_onto
from fer_prep.runner import StageResult, StageSpec, run_stage
from fer_prep.stages.folds import folds as make_folds
from fer_prep.stages.folds import read_folds
from manifests import list_splits

VERSION = 1
STAGE = "masks"
DIFFS = "diffs"  # sub-folder (and sub-stage) holding the per-sample difference maps
PANEL = "panel.png"
SAMPLES = "samples"
WARPS = ("similarity", "dense")

#: FMPN-FER's class order (its loader reads imgs_res/<fold>/<code − 1>.png): CK+ codes 1…7 and
#: MMI's 1…6 (Anger, Disgust, Fear, Happiness, Sadness, Surprise)
CLASS_ORDERS: dict[str, tuple[str, ...]] = {
    "ckplus": tuple(CODES["ckplus"][code] for code in range(1, 8)),
    "mmi": ("anger", "disgust", "fear", "happiness", "sadness", "surprise"),
}
#: what a difference map's row carries over from its peak face's row
_FROM_FACES = (
    "sample_id", "dataset", "subject", "sequence", "frame", "label", "label_code", "face_path",
)
#: the diffs manifest, in order (face_path, neutral_path: relative to WORK/<dataset>/align/,
#: diff_path to diffs/; mean_diff: mean |peak − neutral| in grey levels)
DIFF_COLUMNS = (
    *_FROM_FACES, "neutral_id", "neutral_path", "diff_path", "mean_diff", "status", "message",
)
#: the masks manifest, in order (see manifests/masks.schema.csv)
COLUMNS = (
    "kind", "fold", "class_index", "label", "n_sequences", "n_samples", "sample_id", "sequence",
    "subject", "mask_path", "status", "message",
)
_INTERNAL = ("peak_chip", "neutral_chip", "peak_points", "neutral_points")


@dataclass
class MasksResult:
    folder: Path
    manifest: pd.DataFrame
    diffs: StageResult
    written: int  # images (re)written by this run; one already holding the same bytes is kept
    skipped: bool
    seconds: float

    def summary(self) -> str:
        classes = self.manifest[self.manifest["kind"] == "class"]
        ok = int((classes["status"] == "ok").sum())
        samples = int((self.manifest["kind"] == "sample").sum())
        verb = "unchanged, skipped" if self.skipped else f"{self.written} images written"
        per_sample = f", {samples} per-sample maps" if samples else ""
        return (f"{self.folder.parent.name} masks: {ok} masks, {len(classes) - ok} absent (a "
                f"class with no training sample in a fold){per_sample}; {verb}, "
                f"{self.seconds:.1f} s\n{self.diffs.summary()}\n"
                f"  masks:    {self.folder}/<fold>/<class>.png, picture: {self.folder / PANEL}")


def class_order(dataset: str, labels: pd.Series) -> tuple[str, ...]:
    """The classes, in FMPN-FER's order for the datasets it used, else the canonical order of the
    expression labels present."""
    if dataset in CLASS_ORDERS:
        return CLASS_ORDERS[dataset]
    present = set(labels.dropna())
    return tuple(c for c in CANONICAL if c != "neutral" and c in present)


def fold_source(dataset: str, name: str) -> tuple[str, str | None]:
    """(scheme, split) of the folds `name` stands for: a seed's scheme (`fmpn`, `emotion-fan`)
    means its published assignment where one is shipped for the dataset, since computing the
    blocks from a partial copy would place subjects elsewhere; any other scheme is itself."""
    shipped = [s for s in list_splits() if s.startswith(f"{dataset}-{name}-")]
    return ("file", shipped[-1]) if shipped else (name, None)


def _read_folds(dataset: str, work: Path, name: str | None) -> tuple[pd.DataFrame, dict]:
    """The folds manifest and record; made (or confirmed up to date) first when `name` is given
    or when there are none yet (then FMPN's)."""
    folder = work / dataset / "folds"
    if name is None and read_record(folder) is None:
        name = "fmpn"  # no folds yet: FMPN's, the folds its own masks come from
    if name is not None:
        scheme, split = fold_source(dataset, name)
        make_folds(dataset, work, scheme=scheme, split_file=split)
    record = ready_record(folder, f"run `fer-prep folds --dataset {dataset}`, or pass --folds "
                                  "(e.g. fmpn)")
    return read_folds(work, dataset), record


def _read_faces(dataset: str, work: Path) -> tuple[pd.DataFrame, dict]:
    """The faces manifest and the align record; errors name what is missing."""
    folder = work / dataset / "align"
    try:
        faces = read_manifest(folder)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{exc}: `fer-prep {dataset} align` makes it") from None
    record = read_record(folder)
    if record is None or not record.get("complete"):
        raise ValueError(f"{folder}: the align stage did not complete; run it again")
    roles = set(faces["role"].dropna()) if "role" in faces else set()
    if not {"neutral", "peak"} <= roles:
        found = ", ".join(sorted(roles)) or "none"
        raise ValueError(f"{folder / PARQUET}: masks need a neutral and a peak face of each "
                         f"sequence, but the {dataset} faces have roles: {found} (CK+: align with "
                         "--frames neutral-peak; a dataset of single images cannot make masks)")
    return faces, record


def _chip_points(row: pd.Series) -> list[float] | None:
    """The 68 landmarks in chip pixels (frame landmarks through the frame → chip matrix)."""
    lm, matrix = row.get("landmarks68"), row.get("matrix")
    if lm is None or matrix is None or len(lm) != 136 or len(matrix) != 6:
        return None
    return transform_points(np.reshape(lm, (68, 2)), np.reshape(matrix, (2, 3))).ravel().tolist()


def diff_items(faces: pd.DataFrame, align_dir: Path, dense: bool) -> pd.DataFrame:
    """One item per labelled peak face, paired with its sequence's neutral face (first frame).

    A peak without a usable face keeps the faces manifest's status; a peak whose sequence has no
    usable neutral face gets `no_neutral` and a message naming the sequence.
    """
    faces = faces[faces["role"].isin(["neutral", "peak"])].sort_values(["sequence", "frame"])
    items = []
    for sequence, rows in faces.groupby("sequence", sort=True):
        neutrals = rows[rows["role"] == "neutral"]
        neutral = neutrals.iloc[0] if len(neutrals) else None
        peaks = rows[(rows["role"] == "peak") & rows["label"].notna()]
        for _, peak in peaks.iterrows():
            item = {c: peak.get(c) for c in _FROM_FACES}
            item.update(source_path=peak["source_path"], status=peak["status"],
                        message=peak["message"], neutral_id=None, neutral_path=None,
                        peak_chip=None, neutral_chip=None, peak_points=None,
                        neutral_points=None, fingerprint="")
            if peak["status"] == "ok":
                _pair(item, peak, neutral, sequence, align_dir, dense)
            items.append(item)
    return pd.DataFrame(items, columns=[*_FROM_FACES, "neutral_id", "neutral_path", "source_path",
                                        "status", "message", *_INTERNAL, "fingerprint"])


def _pair(item: dict, peak: pd.Series, neutral: pd.Series | None, sequence: str,
          align_dir: Path, dense: bool) -> None:
    """Fill a peak's item with its neutral partner, or say why it has none."""
    if neutral is None or neutral["status"] != "ok":
        why = ("has no neutral frame in the faces manifest" if neutral is None else
               f"has no neutral face ({neutral['sample_id']}: {neutral['status']})")
        item.update(status="no_neutral", message=f"sequence {sequence} {why}: its peak faces "
                                                  "get no difference map")
        return
    peak_chip, neutral_chip = align_dir / peak["face_path"], align_dir / neutral["face_path"]
    missing = [str(p) for p in (peak_chip, neutral_chip) if not p.is_file()]
    if missing:
        item.update(status="missing_face", message=f"{missing[0]}: the faces manifest lists this "
                                                    "chip but the file is gone; run align again")
        return
    item.update(neutral_id=neutral["sample_id"], neutral_path=neutral["face_path"],
                peak_chip=str(peak_chip), neutral_chip=str(neutral_chip))
    points: list = []
    if dense:
        item.update(peak_points=_chip_points(peak), neutral_points=_chip_points(neutral))
        if item["peak_points"] is None or item["neutral_points"] is None:
            item.update(status="no_landmarks", message=f"sequence {sequence}: "
                                                        "--warp dense needs 68 landmarks")
            return
        points = [item["peak_points"], item["neutral_points"]]
    item["fingerprint"] = digest([file_hash(peak_chip), file_hash(neutral_chip), points])


def diff_path(face_path: str) -> str:
    """Where a peak's difference map goes, relative to the diffs folder: maps/<S>/<seq>/<id>.png."""
    return Path("maps", *Path(face_path).parts[1:]).with_suffix(".png").as_posix()


def diff_batch(items: list[dict[str, Any]], ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """Worker: write |peak − neutral| (the neutral first warped onto the peak for `dense`)."""
    cv2.setNumThreads(1)
    return [_diff_one(item, ctx) for item in items]


def _diff_one(item: dict[str, Any], ctx: dict[str, Any]) -> dict[str, Any]:
    row = dict(item)
    try:
        peak, neutral = (_grey_chip(item[key], ctx["grey"]) for key in ("peak_chip",
                                                                         "neutral_chip"))
    except (UnreadableImage, ValueError) as exc:
        return {**row, "status": "bad_face", "message": str(exc)}
    if peak.shape != neutral.shape:
        return {**row, "status": "bad_face", "message": f"{item['peak_chip']}: {peak.shape} "
                f"chip, but its neutral {item['neutral_chip']} is {neutral.shape}"}
    if ctx["warp"] == "dense":
        try:
            neutral = warp_onto(neutral, np.reshape(item["neutral_points"], (68, 2)),
                                np.reshape(item["peak_points"], (68, 2)))
        except ValueError as exc:
            return {**row, "status": "bad_face", "message": f"sequence {item['sequence']}: "
                                                            f"dense warp failed: {exc}"}
    diff = difference(peak, neutral)
    rel = diff_path(item["face_path"])
    _write_png(Path(ctx["folder"]) / rel, diff)
    return {**row, "diff_path": rel, "mean_diff": float(diff.mean())}


def _grey_chip(path: str, grey_faces: bool) -> np.ndarray:
    """A chip as grey; ValueError when it is colour though the align stage says it cut grey."""
    chip = read_image(path)
    if grey_faces and chip.ndim == 3:
        raise ValueError(f"{path}: a colour chip, but the align stage recorded grey faces; the "
                         "faces folder mixes runs: run align again")
    return grey(chip)


def _write_png(path: Path, image: np.ndarray) -> bool:
    """Write `image` as PNG atomically unless the file already holds exactly these bytes."""
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise ValueError(f"{path}: OpenCV could not encode a {image.shape} image")
    data = buf.tobytes()
    if path.is_file() and path.read_bytes() == data:
        return False
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return True


def masks(
    dataset: str,
    work: str | Path,
    folds: str | None = None,
    per_sample: bool = False,
    size: int | None = None,
    blur: float | None = None,
    warp: str = "similarity",
    equalize: bool = True,
    jobs: int | None = None,
    force: bool = False,
) -> MasksResult:
    """Pseudo facial-motion masks of `dataset` from `WORK/<dataset>/align/` and `folds/`.

    `folds`: a fold scheme to make (or confirm) first, `fmpn` being FMPN's published folds where
    shipped; None uses the folds stage as it stands. `size`: mask side (None: the chips' side).
    `blur`: Gaussian σ in mask pixels (None: FMPN's, 1.5 px per 70 px). `warp`: `similarity`
    differences the chips as aligned; `dense` first warps each neutral onto its peak over the 68
    landmarks. Same inputs and parameters as the last run: nothing is written. Raises
    FileNotFoundError / ValueError naming the missing input or the problem.
    """
    started = time.monotonic()
    work = Path(work)
    if warp not in WARPS:
        raise ValueError(f"unknown warp {warp!r}; choose one of: {', '.join(WARPS)}")
    faces, align_record = _read_faces(dataset, work)
    fold_rows, fold_record = _read_folds(dataset, work, folds)
    align = align_record["params"]

    spec = StageSpec(
        dataset=dataset, name=f"{STAGE}/{DIFFS}", version=VERSION,
        params={"warp": warp, "grey": bool(align.get("grey"))}, inputs=["align"],
        outputs=("diff_path",), columns=DIFF_COLUMNS, internal=_INTERNAL, integers=("frame",),
    )
    items = diff_items(faces, work / dataset / "align", dense=warp == "dense")
    if items.empty:
        raise ValueError(f"{dataset}: no labelled peak face in the faces manifest, nothing to "
                         "make masks from")
    diffs = run_stage(spec, items, diff_batch, work, jobs=jobs, force=force)

    used = _used(diffs.manifest, fold_rows)
    if used.empty:
        raise ValueError(f"{dataset}: none of the peak faces with a difference map is in the "
                         f"folds (see {diffs.folder / 'manifest.csv'} and the folds manifest)")
    classes = class_order(dataset, used["label"])
    side = int(size or align["size"])
    params = {
        "warp": warp, "size": side, "blur": default_blur(side) if blur is None else float(blur),
        "equalize": bool(equalize), "per_sample": bool(per_sample), "classes": list(classes),
    }
    n_folds = int(fold_record["n_folds"])
    fp, _ = stage_fingerprint(STAGE, VERSION, params, [])
    input_fp = digest([align_record["fingerprint"], fold_record["fingerprint"], n_folds,
                       used[["sample_id", "fold", "label", "fingerprint"]].astype(str)
                       .to_dict("list")])
    folder = work / dataset / STAGE
    record = read_record(folder)
    if not force and _up_to_date(record, fp, input_fp, folder):
        return MasksResult(folder, read_manifest(folder), diffs, 0, True,
                           time.monotonic() - started)

    if force or record is None or record.get("fingerprint") != fp:
        _clear(folder)
    remove_temporaries(folder)
    base = {
        "stage": STAGE, "version": VERSION, "package_version": __version__, "params": params,
        "fingerprint": fp, "inputs": ["align", "folds"], "input_fingerprint": input_fp,
        "classes": {str(i): c for i, c in enumerate(classes)}, "n_folds": n_folds,
        "align": {k: align.get(k) for k in ("backend", "template", "size", "padding", "grey")},
        "folds": fold_record["params"],
    }
    write_record(folder, {**base, "complete": False})
    old = read_manifest(folder) if (folder / PARQUET).is_file() else None
    rows, pictures, written = _class_masks(used, classes, n_folds, params, folder, diffs.folder)
    if per_sample:
        sample_rows, n = _sample_maps(used, params, folder, diffs.folder)
        rows += sample_rows
        written += n
    written += _write_png(folder / PANEL, panel(pictures, range(n_folds), classes))
    manifest = pd.DataFrame(rows, columns=list(COLUMNS)).astype(
        {"fold": "Int64", "class_index": "Int64", "n_sequences": "Int64", "n_samples": "Int64"})
    if old is not None:
        for rel in set(old["mask_path"].dropna()) - set(manifest["mask_path"].dropna()) - {""}:
            (folder / rel).unlink(missing_ok=True)
    write_manifest(manifest, folder)
    skipped_diffs = diffs.manifest[diffs.manifest["status"] != "ok"]
    counts = {
        "masks": int(((manifest["kind"] == "class") & (manifest["status"] == "ok")).sum()),
        "absent": int((manifest["status"] == "absent").sum()),
        "samples_used": len(used),
        "peaks_without_map": {s: int(n) for s, n in skipped_diffs["status"].value_counts()
                              .sort_index().items()},
    }
    write_record(folder, {**base, "complete": True, "counts": counts})
    mark_downstream_stale(folder.parent, STAGE)
    return MasksResult(folder, manifest, diffs, written, False, time.monotonic() - started)


def _used(diffs: pd.DataFrame, fold_rows: pd.DataFrame) -> pd.DataFrame:
    """The peak faces with a difference map that the folds place (status ok), with their fold."""
    placed = fold_rows.loc[fold_rows["status"] == "ok", ["sample_id", "fold", "label"]]
    ok = diffs.loc[diffs["status"] == "ok", ["sample_id", "subject", "sequence", "diff_path",
                                             "fingerprint"]]
    return ok.merge(placed, on="sample_id", how="inner").sort_values("sample_id",
                                                                     ignore_index=True)


def _class_masks(used: pd.DataFrame, classes: tuple[str, ...], n_folds: int,
                 params: dict[str, Any], folder: Path, diffs_dir: Path
                 ) -> tuple[list[dict], dict[tuple[int, int], np.ndarray], int]:
    """Per fold and class: the mean map over the fold's training part, finished and written.

    Sums are kept per (fold of the row, class), so fold K's training sum is the total less K's.
    """
    index = {c: i for i, c in enumerate(classes)}
    sums: dict[tuple[int, int], np.ndarray] = {}
    counts: dict[tuple[int, int], int] = {}
    sequences: dict[tuple[int, int], set[str]] = {}
    for row in used[used["label"].isin(classes)].itertuples():
        key = (int(row.fold), index[row.label])
        diff = read_image(diffs_dir / row.diff_path).astype(np.float64)
        sums[key] = sums[key] + diff if key in sums else diff
        counts[key] = counts.get(key, 0) + 1
        sequences.setdefault(key, set()).add(row.sequence)
    rows, pictures, written = [], {}, 0
    for fold in range(n_folds):
        for c, label in enumerate(classes):
            parts = [k for k in sums if k[1] == c and k[0] != fold]
            n = sum(counts[k] for k in parts)
            row = {"kind": "class", "fold": fold, "class_index": c, "label": label,
                   "n_samples": n, "n_sequences": len(set().union(*(sequences[k] for k in parts)))}
            if not n:
                rows.append({**row, "mask_path": "", "status": "absent", "message":
                             f"no {label} sample in the training part of fold {fold}: no mask"})
                continue
            mean = sum(sums[k] for k in parts) / n
            mask = finish(mean, params["size"], params["equalize"], params["blur"])
            rel = f"{fold}/{c}.png"
            written += _write_png(folder / rel, mask)
            pictures[fold, c] = mask
            rows.append({**row, "mask_path": rel, "status": "ok", "message": ""})
    return rows, pictures, written


def _sample_maps(used: pd.DataFrame, params: dict[str, Any], folder: Path, diffs_dir: Path
                 ) -> tuple[list[dict], int]:
    """Each used peak's own map, finished like the class masks, under samples/."""
    rows, written = [], 0
    for row in used.itertuples():
        mask = finish(read_image(diffs_dir / row.diff_path).astype(np.float32), params["size"],
                      params["equalize"], params["blur"])
        rel = f"{SAMPLES}/{Path(row.diff_path).relative_to('maps').as_posix()}"
        written += _write_png(folder / rel, mask)
        rows.append({"kind": "sample", "fold": int(row.fold), "label": row.label,
                     "sample_id": row.sample_id, "sequence": row.sequence,
                     "subject": row.subject, "mask_path": rel, "status": "ok", "message": ""})
    return rows, written


def _clear(folder: Path) -> None:
    """Remove an earlier run's outputs (not the diffs cache, which checks itself)."""
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        if entry.name == DIFFS:
            continue
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _up_to_date(record: dict | None, fp: str, input_fp: str, folder: Path) -> bool:
    if not is_current(record, fp, input_fp):
        return False
    if not (folder / PARQUET).is_file() or not (folder / PANEL).is_file():
        return False
    paths = read_manifest(folder)["mask_path"].dropna()
    return all((folder / p).is_file() for p in paths if p)
