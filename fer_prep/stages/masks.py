"""The masks stage: aligned faces + folds → FMPN-FER's pseudo facial-motion masks.

    WORK/<dataset>/masks/
      stage.json                 params (warp, size, blur, equalize), class order, the folds used
                                 and the align parameters the faces were cut with, counts
      manifest.parquet, .csv     one row per class mask (ok, or absent: the class has no training
                                 sample in that fold) and, with per_sample, per per-sample map
      rows.parquet               the map's rows: one per peak face and its difference map
      <fold>/<class_index>.png   8-bit, min-max scaled to 0…255, class_index in FMPN's order
      panel.png                  every mask: a row per fold, a column per class
      samples/<S>/<seq>/<id>.png per_sample: each peak's own map, finished as the class masks are
      diffs/<S>/<seq>/<id>.png   |peak − neutral| of every peak face, unscaled: the map's output,
                                 the expensive part, reused when only the finishing changes

The map makes one difference map per labelled peak face; the reduce averages them per fold and
class. A class mask of fold K averages the maps of the peak faces in K's training part (every
fold but K, and the train-only rows). It reads the folds as they stand: making them is the
user's step (`fer-prep folds`). The arithmetic is in `fer_prep.motion`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fer_prep.datasets import Dataset
from fer_prep.errors import InputError
from fer_prep.params import Params, option
from fer_prep.stages import STAGES, Job, Reduced, Stage

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from fer_prep.stages.base import Context

DIFFS = "diffs"
PANEL = "panel.png"
SAMPLES = "samples"
WARPS = ("similarity", "dense")
#: what a difference map's row carries over from its peak face's row
_FROM_FACES = (
    "sample_id", "dataset", "subject", "sequence", "frame", "label", "label_code", "face_path",
)
#: the map's rows, in order (face_path, neutral_path: relative to WORK/<dataset>/align/,
#: diff_path to the masks folder; mean_diff: mean |peak − neutral| in grey levels)
DIFF_COLUMNS = (
    *_FROM_FACES, "neutral_id", "neutral_path", "diff_path", "mean_diff", "status", "message",
)
#: the masks manifest, in order (see manifests/masks.schema.csv)
COLUMNS = (
    "kind", "fold", "class_index", "label", "n_sequences", "n_samples", "sample_id", "sequence",
    "subject", "mask_path", "status", "message",
)
_INTERNAL = ("peak_chip", "neutral_chip", "peak_points", "neutral_points", "grey")


def _schemes() -> list[str]:
    from fer_prep.folds import SCHEMES

    return [s for s in SCHEMES.names() if s != "file"]


@dataclass(frozen=True)
class MasksParams(Params):
    """How the masks are made from the faces and folds."""

    folds: str | None = option(None, "Check that the folds were made by this scheme (fmpn: "
                               "FMPN's published ones where shipped) [the folds as they stand].",
                               choices=_schemes)
    per_sample: bool = option(False, "Also write each peak face's own map.")
    size: int | None = option(None, "Mask side in pixels [the chips'].", low=8, high=2048)
    blur: float | None = option(None, "Gaussian σ in mask pixels, 0 = none [FMPN's: 1.5 per "
                                "70 px].", low=0)
    warp: str = option("similarity", "similarity: the chips as aligned; dense: each neutral "
                       "warped onto its peak over the 68 landmarks first.", choices=WARPS)
    equalize: bool = option(True, "Histogram-equalise the masks, as FMPN's are.")


def fold_source(dataset: str, name: str) -> tuple[str, str | None]:
    """(scheme, split) of the folds `name` stands for: a seed's scheme (`fmpn`, `emotion-fan`)
    means its published assignment where one is shipped for the dataset, since computing the
    blocks from a partial copy would place subjects elsewhere; any other scheme is itself."""
    from fer_prep.splits import list_splits

    shipped = [s for s in list_splits() if s.startswith(f"{dataset}-{name}-")]
    return ("file", shipped[-1]) if shipped else (name, None)


def _chip_points(row: pd.Series) -> list[float] | None:
    """The 68 landmarks in chip pixels (frame landmarks through the frame → chip matrix)."""
    import numpy as np

    from fer_prep.align import transform_points

    lm, matrix = row.get("landmarks68"), row.get("matrix")
    if lm is None or matrix is None or len(lm) != 136 or len(matrix) != 6:
        return None
    return transform_points(np.reshape(lm, (68, 2)), np.reshape(matrix, (2, 3))).ravel().tolist()


def diff_items(faces: pd.DataFrame, align_dir: Path, dense: bool, grey: bool) -> pd.DataFrame:
    """One item per labelled peak face, paired with its sequence's neutral face (first frame).

    A peak without a usable face keeps the faces manifest's status; a peak whose sequence has no
    usable neutral face gets `no_neutral` and a message naming the sequence.
    """
    import pandas as pd

    faces = faces[faces["role"].isin(["neutral", "peak"])].sort_values(["sequence", "frame"])
    items = []
    for sequence, rows in faces.groupby("sequence", sort=True):
        neutrals = rows[rows["role"] == "neutral"]
        neutral = neutrals.iloc[0] if len(neutrals) else None
        for _, peak in rows[(rows["role"] == "peak") & rows["label"].notna()].iterrows():
            item = {c: peak.get(c) for c in _FROM_FACES}
            item.update(source_path=peak["source_path"], status=peak["status"],
                        message=peak["message"], neutral_id=None, neutral_path=None,
                        peak_chip=None, neutral_chip=None, peak_points=None,
                        neutral_points=None, grey=grey, fingerprint="")
            if peak["status"] == "ok":
                _pair(item, peak, neutral, sequence, align_dir, dense)
            items.append(item)
    return pd.DataFrame(items, columns=[*_FROM_FACES, "neutral_id", "neutral_path", "source_path",
                                        "status", "message", *_INTERNAL, "fingerprint"])


def _pair(item: dict, peak: pd.Series, neutral: pd.Series | None, sequence: str,
          align_dir: Path, dense: bool) -> None:
    """Fill a peak's item with its neutral partner, or say why it has none."""
    from fer_prep.cache import digest, file_hash

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
    item["fingerprint"] = digest([file_hash(peak_chip), file_hash(neutral_chip), points,
                                  item["grey"]])


def diff_path(face_path: str) -> str:
    """Where a peak's difference map goes, relative to the masks folder: diffs/<S>/<seq>/<id>.png.
    """
    return Path(DIFFS, *Path(face_path).parts[1:]).with_suffix(".png").as_posix()


def diff_batch(items: list[dict[str, Any]], job: Job) -> list[dict[str, Any]]:
    """Worker: write |peak − neutral| (the neutral first warped onto the peak for `dense`)."""
    import cv2

    cv2.setNumThreads(1)
    return [_diff_one(item, job.params, job.folder) for item in items]


def _diff_one(item: dict[str, Any], params: MasksParams, folder: Path) -> dict[str, Any]:
    import numpy as np

    from fer_prep.images import UnreadableImage
    from fer_prep.motion import difference, warp_onto

    row = dict(item)
    try:
        peak, neutral = (_grey_chip(item[key], item["grey"]) for key in ("peak_chip",
                                                                          "neutral_chip"))
    except (UnreadableImage, ValueError) as exc:
        return {**row, "status": "bad_face", "message": str(exc)}
    if peak.shape != neutral.shape:
        return {**row, "status": "bad_face", "message": f"{item['peak_chip']}: {peak.shape} "
                f"chip, but its neutral {item['neutral_chip']} is {neutral.shape}"}
    if params.warp == "dense":
        try:
            neutral = warp_onto(neutral, np.reshape(item["neutral_points"], (68, 2)),
                                np.reshape(item["peak_points"], (68, 2)))
        except ValueError as exc:
            return {**row, "status": "bad_face", "message": f"sequence {item['sequence']}: "
                                                            f"dense warp failed: {exc}"}
    diff = difference(peak, neutral)
    rel = diff_path(item["face_path"])
    write_png(folder / rel, diff)
    return {**row, "diff_path": rel, "mean_diff": float(diff.mean())}


def _grey_chip(path: str, grey_faces: bool) -> np.ndarray:
    """A chip as grey; ValueError when it is colour though the align stage says it cut grey."""
    from fer_prep.images import read_image
    from fer_prep.motion import grey

    chip = read_image(path)
    if grey_faces and chip.ndim == 3:
        raise ValueError(f"{path}: a colour chip, but the align stage recorded grey faces; the "
                         "faces folder mixes runs: run align again")
    return grey(chip)


def write_png(path: Path, image: np.ndarray) -> bool:
    """Write `image` as PNG atomically unless the file already holds exactly these bytes."""
    import cv2

    from fer_prep.cache import atomic_path

    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise ValueError(f"{path}: OpenCV could not encode a {image.shape} image")
    data = buf.tobytes()
    if path.is_file() and path.read_bytes() == data:
        return False
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return True


@STAGES.register("masks")
class Masks(Stage):
    """Make FMPN-FER's pseudo facial-motion masks per fold and class.

    A mask is the mean |peak − neutral| of the aligned faces of the fold's training part.
    Writes WORK/<dataset>/masks/<fold>/<class>.png (FMPN's class order), panel.png (all masks
    in one picture) and a manifest. Needs a neutral and a peak face of each sequence, and the
    folds (`fer-prep folds` makes them).
    """

    name = "masks"
    command = "masks"
    cross = True
    folder = "masks"
    version = 1
    Params = MasksParams
    kinds = frozenset({"sequences", "videos"})
    schema = "masks"
    inputs = ("align", "folds")
    root = "none"
    reader_options = False
    outputs = ("diff_path",)
    columns = DIFF_COLUMNS
    internal = _INTERNAL
    integers = ("frame",)
    map = staticmethod(diff_batch)
    shows = {"masks": "<fold>/<class>.png", "picture": PANEL}

    @classmethod
    def applies_to(cls, dataset: Dataset) -> bool:
        """Sequences, and videos whose dataset picks neutral and peak frames (MMI, not AFEW)."""
        picks = type(dataset).frame_selection is not Dataset.frame_selection
        return dataset.kind == "sequences" or (dataset.kind == "videos" and picks)

    def notes(self, record: dict[str, Any]) -> list[str]:
        counts = record.get("counts", {})
        return [f"{counts.get('ok', 0)} masks or maps, {counts.get('absent', 0)} absent (a class "
                "with no training sample in a fold)"]

    def map_params(self, params: MasksParams) -> dict[str, Any]:
        return {"warp": params.warp}

    def items(self, ctx: Context, params: MasksParams) -> pd.DataFrame:
        self._check_folds(ctx, params, ctx.upstream_record("folds"))  # before any map is made
        faces = ctx.upstream_manifest("align")
        roles = set(faces["role"].dropna()) if "role" in faces else set()
        if not {"neutral", "peak"} <= roles:
            found = ", ".join(sorted(roles)) or "none"
            raise InputError(f"{ctx.upstream_folder('align')}: masks need a neutral and a peak "
                             f"face of each sequence, but the {ctx.dataset.name} faces have "
                             f"roles: {found} (align with --frames neutral-peak)")
        grey = bool(ctx.upstream_record("align")["params"].get("grey"))
        items = diff_items(faces, ctx.upstream_folder("align"), params.warp == "dense", grey)
        if items.empty:
            raise InputError(f"{ctx.dataset.name}: no labelled peak face in the faces manifest, "
                             "nothing to make masks from")
        return items

    def reduce(self, ctx: Context, params: MasksParams, rows: pd.DataFrame) -> Reduced:
        import pandas as pd

        from fer_prep.motion import default_blur, panel

        record = ctx.upstream_record("folds")  # checked against params.folds in items()
        fold_rows = ctx.upstream_manifest("folds")
        used = _used(rows, fold_rows)
        if used.empty:
            raise InputError(f"{ctx.dataset.name}: none of the peak faces with a difference map "
                             "is in the folds (see the folds manifest and masks/rows.parquet)")
        align = ctx.upstream_record("align")["params"]
        classes = ctx.dataset.class_order("fmpn", used["label"])
        side = int(params.size or align["size"])
        finishing = {"size": side, "blur": default_blur(side) if params.blur is None
                     else float(params.blur), "equalize": params.equalize}
        n_folds = int(record["n_folds"])
        out, pictures, files = _class_masks(used, classes, n_folds, finishing, ctx.folder)
        if params.per_sample:
            sample_rows, sample_files = _sample_maps(used, finishing, ctx.folder)
            out += sample_rows
            files += sample_files
        write_png(ctx.folder / PANEL, panel(pictures, range(n_folds), classes))
        files.append(PANEL)
        manifest = pd.DataFrame(out, columns=list(COLUMNS)).astype(
            {"fold": "Int64", "class_index": "Int64", "n_sequences": "Int64",
             "n_samples": "Int64"})
        skipped = rows[rows["status"] != "ok"]
        facts = {
            "classes": {str(i): c for i, c in enumerate(classes)}, "n_folds": n_folds,
            "finishing": finishing,
            "align": {k: align.get(k) for k in ("backend", "template", "size", "padding",
                                                "grey")},
            "folds": record["params"], "samples_used": len(used),
            "peaks_without_map": {s: int(n) for s, n in skipped["status"].value_counts()
                                  .sort_index().items()},
        }
        return Reduced(manifest, files, facts)

    def _check_folds(self, ctx: Context, params: MasksParams, record: dict[str, Any]) -> None:
        """InputError when the folds were not made as `params.folds` asks, with the command."""
        if params.folds is None:
            return
        scheme, split = fold_source(ctx.dataset.name, params.folds)
        made = record.get("params", {})
        if (made.get("scheme"), made.get("split")) != (scheme, split):
            how = f"--split {split}" if split else f"--scheme {scheme}"
            was = (f"--split {made['split']}" if made.get("split")
                   else f"--scheme {made.get('scheme')}")
            raise InputError(f"the {ctx.dataset.name} folds were made with {was}, and --folds "
                             f"{params.folds} asks for {how}: run `fer-prep folds --dataset "
                             f"{ctx.dataset.name} {how}` first")


def _used(diffs: pd.DataFrame, fold_rows: pd.DataFrame) -> pd.DataFrame:
    """The peak faces with a difference map that the folds place (status ok), with their fold."""
    placed = fold_rows.loc[fold_rows["status"] == "ok", ["sample_id", "fold", "label"]]
    ok = diffs.loc[diffs["status"] == "ok", ["sample_id", "subject", "sequence", "diff_path",
                                             "fingerprint"]]
    return ok.merge(placed, on="sample_id", how="inner").sort_values("sample_id",
                                                                     ignore_index=True)


def _class_masks(used: pd.DataFrame, classes: tuple[str, ...], n_folds: int,
                 finishing: dict[str, Any], folder: Path
                 ) -> tuple[list[dict], dict[tuple[int, int], np.ndarray], list[str]]:
    """Per fold and class: the mean map over the fold's training part, finished and written.

    Sums are kept per (fold of the row, class), so fold K's training sum is the total less K's.
    """
    import numpy as np

    from fer_prep.images import read_image
    from fer_prep.motion import finish

    index = {c: i for i, c in enumerate(classes)}
    sums: dict[tuple[int, int], np.ndarray] = {}
    counts: dict[tuple[int, int], int] = {}
    sequences: dict[tuple[int, int], set[str]] = {}
    for row in used[used["label"].isin(classes)].itertuples():
        key = (int(row.fold), index[row.label])
        diff = read_image(folder / row.diff_path).astype(np.float64)
        sums[key] = sums[key] + diff if key in sums else diff
        counts[key] = counts.get(key, 0) + 1
        sequences.setdefault(key, set()).add(row.sequence)
    rows, pictures, files = [], {}, []
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
            mask = finish(sum(sums[k] for k in parts) / n, finishing["size"],
                          finishing["equalize"], finishing["blur"])
            rel = f"{fold}/{c}.png"
            write_png(folder / rel, mask)
            files.append(rel)
            pictures[fold, c] = mask
            rows.append({**row, "mask_path": rel, "status": "ok", "message": ""})
    return rows, pictures, files


def _sample_maps(used: pd.DataFrame, finishing: dict[str, Any], folder: Path
                 ) -> tuple[list[dict], list[str]]:
    """Each used peak's own map, finished like the class masks, under samples/."""
    import numpy as np

    from fer_prep.images import read_image
    from fer_prep.motion import finish

    rows, files = [], []
    for row in used.itertuples():
        mask = finish(read_image(folder / row.diff_path).astype(np.float32), finishing["size"],
                      finishing["equalize"], finishing["blur"])
        rel = f"{SAMPLES}/{Path(row.diff_path).relative_to(DIFFS).as_posix()}"
        write_png(folder / rel, mask)
        files.append(rel)
        rows.append({"kind": "sample", "fold": int(row.fold), "label": row.label,
                     "sample_id": row.sample_id, "sequence": row.sequence,
                     "subject": row.subject, "mask_path": rel, "status": "ok", "message": ""})
    return rows, files
