"""Folds as Hugging Face `datasets`, where timm, transformers and Lightning code starts.

    fold_0/dataset_dict.json     `datasets.load_from_disk("OUT/fold_0")`: a DatasetDict of
    fold_0/train/…, test/…       train and test (and validation where the dataset has one:
    fold_0/validation/…          FER2013's PublicTest), written with `save_to_disk`

A row: `image` (an `Image` feature holding the chip's own PNG or JPEG bytes, so the export reads
the same anywhere and needs no other file), `label` (a `ClassLabel` of the canonical labels the
folds hold, in fer-prep's order: neutral, anger, contempt, disgust, fear, happiness, sadness,
surprise, as fer-train numbers them), `sample_id`, `subject` and `split` (None where the dataset
has none), `landmarks` (the 68 points, (x, y) in the chip's pixels) and, where align made them
(the mediapipe backend), `blendshapes` (MediaPipe's 52 scores, `fer_prep.faces.BLENDSHAPES`
order) and `yaw`, `pitch`, `roll` (degrees). A fold's parts are built by `Dataset.from_generator`
in a temporary folder inside the export (one face in memory at a time), then saved.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from typing import Any

from fer_prep.errors import InputError
from fer_prep.exports import Source, Staging
from fer_prep.labels import CANONICAL

POSE = ("yaw", "pitch", "roll")
VALIDATION = -2  # the fold of the dataset's validation rows here (the folds leave them out)


def write(source: Source, out: Staging) -> None:
    """Save one DatasetDict per fold into `out/fold_K/`."""
    datasets = _datasets()
    source.need_faces("hf")
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    rows = _rows(source, out)
    classes = [c for c in CANONICAL if c in set(rows["label"])]
    expression = "blendshapes" in rows and rows["blendshapes"].map(_has).any()
    features = datasets.Features({
        "image": datasets.Image(),
        "label": datasets.ClassLabel(names=classes),
        "sample_id": datasets.Value("string"),
        "subject": datasets.Value("string"),
        "split": datasets.Value("string"),
        "landmarks": datasets.Sequence(datasets.Sequence(datasets.Value("float32"), length=2)),
        **({"blendshapes": datasets.Sequence(datasets.Value("float32")),
            **{p: datasets.Value("float32") for p in POSE}} if expression else {}),
    })
    validation, folded = rows[rows["fold"] == VALIDATION], rows[rows["fold"] != VALIDATION]
    out.counts["folds"] = len(source.folds)
    parts_by_fold = {}
    for fold in source.folds:
        parts = {which: source.part(fold, which, folded) for which in ("train", "test")}
        if not validation.empty:
            parts["validation"] = validation
        parts_by_fold[fold] = parts
    out.loader_check("hf", [f"fold {fold} has no {which} rows"
                            for fold, parts in parts_by_fold.items()
                            for which, part in parts.items() if part.empty])
    with tempfile.TemporaryDirectory(dir=out.root, prefix=".hf-build-") as cache:
        for fold, parts in parts_by_fold.items():
            built = datasets.DatasetDict({
                which: datasets.Dataset.from_generator(
                    _examples, features=features, cache_dir=cache, keep_in_memory=False,
                    gen_kwargs={"records": part.to_dict("records"), "classes": tuple(classes),
                                "expression": expression})
                if len(part) else datasets.Dataset.from_dict(
                    {name: [] for name in features}, features=features)  # --allow-empty
                for which, part in parts.items()})
            built.save_to_disk(str(out.path(f"fold_{fold}")),  # an empty part: one shard
                               num_shards={w: 1 for w, part in built.items() if not len(part)})
            for which, part in built.items():
                out.counts[f"{which} rows"] += len(part)
            built.cleanup_cache_files()



def _rows(source: Source, out: Staging) -> Any:
    """The usable rows (and the validation split's) with their landmarks, chip matrix and, where
    align made them, blendshapes and pose; rows without a label left out, said."""
    frame = source.rows
    usable = frame["status"].eq("ok")
    split = source.info.official_validation
    if split is not None and "split" in frame:
        validation = (~usable & frame["face"].ne("") & frame["label"].notna()
                      & frame["split"].astype("string").str.lower().eq(split.lower()))
        gone = validation & ~frame["face"].map(os.path.isfile)
        for row in frame[gone].itertuples():
            out.skip(f"{row.sample_id}: face file {row.face} is missing; left out")
        validation &= ~gone
        frame = frame.assign(fold=frame["fold"].where(~validation, VALIDATION))
        usable |= validation
    rows = frame[usable]
    known = rows["label"].isin(CANONICAL)
    if n := int((~known).sum()):
        out.notes.append(f"{n} unlabelled rows left out")
    faces = source.with_alignment(rows[known], ("landmarks68", "matrix"))
    wanted = [c for c in ("blendshapes", *POSE) if c not in faces]
    if wanted:
        from fer_prep.manifest import read_manifest

        aligned = read_manifest(source.work / source.dataset / "align")
        wanted = [c for c in wanted if c in aligned]
        if wanted:
            faces = faces.merge(aligned[["sample_id", *wanted]], on="sample_id", how="left",
                                validate="many_to_one")
    return faces


def _examples(records: list[dict[str, Any]], classes: tuple[str, ...], expression: bool
              ) -> Iterator[dict[str, Any]]:
    """The rows of one part as examples: the chip's bytes, its label index, the rest."""
    import numpy as np

    from fer_prep.align import transform_points

    for row in records:
        points = None
        if _has(row.get("landmarks68")) and _has(row.get("matrix")):
            points = transform_points(np.reshape(row["landmarks68"], (68, 2)),
                                      np.reshape(row["matrix"], (2, 3))).astype("float32")
        with open(row["face"], "rb") as file:
            data = file.read()
        example = {"image": {"bytes": data, "path": None},
                   "label": classes.index(row["label"]), "sample_id": str(row["sample_id"]),
                   "subject": _text(row.get("subject")), "split": _text(row.get("split")),
                   "landmarks": None if points is None else points.tolist()}
        if expression:
            shapes = row.get("blendshapes")
            example["blendshapes"] = list(map(float, shapes)) if _has(shapes) else None
            example.update({p: _number(row.get(p)) for p in POSE})
        yield example


def _has(value: Any) -> bool:
    return value is not None and not isinstance(value, float | str) and len(value) > 0


def _text(value: Any) -> str | None:
    return None if value is None or value != value or value == "" else str(value)


def _number(value: Any) -> float | None:
    return None if value is None or value != value else float(value)


def _datasets() -> Any:
    """The `datasets` module; InputError when it is not installed (the `hf` extra)."""
    try:
        import datasets
    except ImportError:
        raise InputError("export hf needs Hugging Face `datasets`: pip install "
                         "'fer-prep[hf]'") from None
    return datasets
