"""`fer-prep masks` on the real CK+ sequences in ../shared: FMPN's pseudo facial-motion masks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from skimage.transform import PiecewiseAffineTransform, warp

from fer_prep.align import dlib_mean_face, transform_points
from fer_prep.cli import main
from fer_prep.datasets import get_dataset
from fer_prep.errors import InputError, StageNotReady
from fer_prep.exports import export
from fer_prep.images import read_image
from fer_prep.manifest import read_manifest, read_table, schema
from fer_prep.motion import anchors, warp_onto
from fer_prep.runner import run

CLASSES = get_dataset("ckplus").class_orders["fmpn"]
PADDING, SIDE = 0.11, 320  # the fmpn preset
FMPN_SPLIT = "ckplus-fmpn-10fold-v1"  # FMPN's published CK+ folds


def _cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def masks(work: Path, **options):
    """The masks stage of CK+ under `work` (the runner, as `fer-prep masks` calls it)."""
    return run("ckplus", "masks", work, **options)


def _diffs(folder: Path):
    """The difference-map rows of a masks folder: one per peak face."""
    return read_table(folder / "rows.parquet")


@pytest.fixture(scope="module")
def work(shared: Path, tmp_path_factory) -> Path:
    """CK+ aligned with the fmpn preset (dlib HOG), FMPN's folds, masks with per-sample maps."""
    work = tmp_path_factory.mktemp("work")
    _cli("ckplus", "align", "--root", str(shared / "data/ckplus"), "--preset", "fmpn",
         "--work", str(work), "--jobs", "2")
    _cli("folds", "--dataset", "ckplus", "--work", str(work), "--split", FMPN_SPLIT)
    _cli("masks", "--dataset", "ckplus", "--work", str(work), "--folds", "fmpn", "--per-sample",
         "--jobs", "2")
    return work


def _published_fold(shared: Path) -> dict[str, int]:
    """Subject → the fold whose test part FMPN's test_ids_K.csv put it in."""
    fold = {}
    for k in range(10):
        text = (shared / f"reference/fmpn/CKPlus/test_ids_{k}.csv").read_text()
        fold.update({name[:4]: k for name in text.split()})
    return fold


def _snapshot(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")
            if p.is_file()}


def test_a_mask_for_every_fold_and_class_present(work: Path, shared: Path) -> None:
    folder = work / "ckplus/masks"
    folds = read_manifest(work / "ckplus/folds")
    ok = folds[folds["status"] == "ok"]
    published = _published_fold(shared)
    assert (ok["fold"] == ok["subject"].map(published)).all()  # --folds fmpn: FMPN's own folds
    table = read_manifest(folder)
    classes = table[table["kind"] == "class"].set_index(["fold", "class_index"])
    for fold in range(10):
        present = set(ok.loc[ok["fold"] != fold, "label"])
        for c, label in enumerate(CLASSES):
            path = folder / f"{fold}/{c}.png"
            row = classes.loc[(fold, c)]
            if label not in present:  # contempt everywhere; sadness (S106 only) in fold 4
                assert not path.exists() and row["status"] == "absent", (fold, label)
                continue
            mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            assert mask.dtype == np.uint8 and mask.shape == (SIDE, SIDE), path
            assert mask.min() == 0 and mask.max() == 255, path
            assert row["status"] == "ok" and row["n_samples"] == 3 * row["n_sequences"]
    assert classes.loc[(4, 5), "status"] == "absent" and classes.loc[(3, 5), "status"] == "ok"
    record = json.loads((folder / "stage.json").read_text())
    assert record["classes"] == {str(i): c for i, c in enumerate(CLASSES)}
    assert record["params"]["size"] is None  # not given: the chips' side, resolved below
    assert record["finishing"] == {"size": SIDE, "blur": pytest.approx(1.5 * SIDE / 70, abs=1e-3),
                                   "equalize": True}  # FMPN's blur: 1.5 per 70 px
    assert record["params"]["warp"] == "similarity" and record["params"]["folds"] == "fmpn"
    assert record["n_folds"] == 10 and record["samples_used"] == 18 * 3
    assert record["align"] == {"backend": "dlib-hog", "template": "dlib-chip", "size": SIDE,
                               "padding": PADDING, "grey": True}
    assert record["folds"]["split"] == FMPN_SPLIT and record["folds"]["scheme"] == "file"
    picture = read_image(folder / "panel.png")
    assert picture.shape[1] > 7 * 64 and picture.shape[0] > 10 * 64  # a cell per fold × class
    samples = table[table["kind"] == "sample"]
    assert len(samples) == 18 * 3 and all((folder / p).is_file() for p in samples["mask_path"])
    assert list(table.columns) == [c["column"] for c in schema("masks")]


def _region(x0: float, x1: float, y0: float, y1: float) -> tuple[slice, slice]:
    """Chip pixels of a box given in the template's unit square (dlib's padding convention)."""
    (a, b), (c, d) = ((np.array(v) + PADDING) / (1 + 2 * PADDING) * SIDE
                      for v in ((x0, x1), (y0, y1)))
    return slice(int(c), int(d)), slice(int(a), int(b))


def test_masks_light_up_where_the_expression_moves(work: Path) -> None:
    face = dlib_mean_face()
    brows_y = face[17:27, 1]
    lips = face[48:60]
    mouth = _region(lips[:, 0].min(), lips[:, 0].max(), lips[:, 1].min(), lips[:, 1].max())
    brows = _region(face[17, 0], face[26, 0], brows_y.min() - 0.03, brows_y.max() + 0.03)
    forehead = _region(face[19, 0], face[24, 0], brows_y.min() - 0.10, brows_y.min() - 0.02)
    cheeks = [_region(0.10, 0.30, 0.40, 0.62), _region(0.70, 0.90, 0.40, 0.62)]
    for fold in range(10):
        happy = read_image(work / f"ckplus/masks/{fold}/4.png").astype(float)
        assert happy[mouth].mean() > happy[forehead].mean() + 50, fold
        surprise = read_image(work / f"ckplus/masks/{fold}/6.png").astype(float)
        cheek = np.mean([surprise[r].mean() for r in cheeks])
        assert surprise[brows].mean() > cheek + 30 and surprise[mouth].mean() > cheek + 30, fold


def test_a_rerun_writes_nothing(work: Path) -> None:
    before = _snapshot(work)
    result = masks(work, folds="fmpn", per_sample=True, jobs=2)
    assert result.skipped and result.computed == 0 and result.reused == 0
    assert _snapshot(work) == before  # faces, folds, maps, masks: not one file rewritten
    out = _cli("masks", "--dataset", "ckplus", "--work", str(work), "--folds", "fmpn",
               "--per-sample", "--jobs", "2")
    assert "unchanged, skipped" in out and _snapshot(work) == before


def test_a_run_resumes_after_part_of_its_output_is_lost(work: Path, tmp_path: Path) -> None:
    copy = tmp_path / "work"
    shutil.copytree(work, copy)
    folder = copy / "ckplus/masks"
    maps = sorted((folder / "diffs").rglob("*.png"))[:10]
    lost = [*maps, folder / "3/6.png", folder / "panel.png", folder / "samples/S074/001"]
    kept = {p: p.read_bytes() for p in folder.rglob("*.png")}
    shutil.rmtree(lost.pop())  # a sequence's per-sample maps
    for path in lost:
        path.unlink()
    lost_names = {str(p.relative_to(folder)) for p in kept if not p.exists()}
    assert len(lost_names) == 10 + 2 + 3  # maps, 3/6.png, the panel, S074_001's 3 samples
    before = _snapshot(folder)
    result = masks(copy, folds="fmpn", per_sample=True, jobs=2)
    assert not result.skipped and result.computed == 10 and result.reused == 44
    assert {p: p.read_bytes() for p in folder.rglob("*.png")} == kept
    after = _snapshot(folder)
    written = {p for p in after if p.endswith(".png") and before.get(p) != after[p]}
    assert written == lost_names  # only lost images were written, every one of them


def test_dense_warp_changes_the_masks_and_stays_finite(work: Path, tmp_path: Path) -> None:
    copy = tmp_path / "work"
    shutil.copytree(work, copy)
    similar = {p.relative_to(copy): read_image(p).astype(float)
               for p in (copy / "ckplus/masks").glob("[0-9]/*.png")}
    result = masks(copy, folds="fmpn", warp="dense", jobs=2)
    assert not result.skipped and result.computed == 54 and result.reused == 0
    diffs = _diffs(result.folder)
    assert len(diffs) == 54
    assert (diffs["status"] == "ok").all() and np.isfinite(diffs["mean_diff"]).all()
    change = [np.abs(read_image(copy / rel).astype(float) - mask).mean()
              for rel, mask in similar.items()]
    assert len(change) == 59 and np.mean(change) > 10  # grey levels
    assert json.loads((copy / "ckplus/masks/stage.json").read_text())["params"]["warp"] == "dense"


def test_dense_warp_is_piecewise_affine_over_the_landmarks(work: Path) -> None:
    faces = read_manifest(work / "ckplus/align")
    neutral, peak = faces.iloc[0], faces.iloc[3]  # S052_001 (surprise): the mouth opens
    assert neutral.role == "neutral" and peak.role == "peak"
    points = [transform_points(np.reshape(r.landmarks68, (68, 2)), np.reshape(r.matrix, (2, 3)))
              for r in (neutral, peak)]
    chip = read_image(work / "ckplus/align" / neutral.face_path)
    ours = warp_onto(chip, *points)
    mesh = PiecewiseAffineTransform.from_estimate(np.vstack([points[1], anchors(SIDE)]),
                                                  np.vstack([points[0], anchors(SIDE)]))
    theirs = warp(chip, mesh, order=1, mode="edge", preserve_range=True)
    assert np.isfinite(ours).all() and np.abs(ours - theirs).max() <= 2.0
    # the warped neutral's landmarks sit on the peak's: a dot at each neutral landmark moves
    inside = ((points[1] >= 2) & (points[1] < SIDE - 2)).all(axis=1)  # the chin may fall out
    inside[:48] = False  # the mouth's points, which move most
    dots = np.zeros_like(chip)
    for x, y in np.round(points[0][inside]).astype(int):
        dots[y - 1 : y + 2, x - 1 : x + 2] = 255
    moved = warp_onto(dots, *points)
    assert inside.sum() >= 15
    for x, y in np.round(points[1][inside]).astype(int):
        assert moved[y - 1 : y + 2, x - 1 : x + 2].max() >= 128, (x, y)


def test_the_fmpn_export_carries_the_masks(work: Path, tmp_path: Path) -> None:
    # 18 sequences in FMPN's 10 folds: 6 folds without a test face, and sadness (S106 alone,
    # fold 4's test) with no mask in fold 4: FMPN's loader fails on both, so the export refuses
    with pytest.raises(InputError, match=r"fold 0 has no test faces.*fold 4: no mask for its "
                       r"test class sadness \(masks/4/5.png\).*--allow-empty"):
        export("fmpn", "ckplus", work, tmp_path / "CKPlus", how="copy")
    assert not (tmp_path / "CKPlus").exists()
    result = export("fmpn", "ckplus", work, tmp_path / "CKPlus", how="copy", allow_empty=True)
    assert sum("--allow-empty" in note for note in result.notes) == 7
    for fold in range(10):
        ours = sorted(p.name for p in (work / f"ckplus/masks/{fold}").glob("*.png"))
        theirs = sorted(p.name for p in (tmp_path / f"CKPlus/imgs_res/{fold}").glob("*.png"))
        assert ours == theirs and "panel.png" not in theirs
    assert ((tmp_path / "CKPlus/imgs_res/3/6.png").read_bytes()
            == (work / "ckplus/masks/3/6.png").read_bytes())


@pytest.fixture(scope="module")
def broken_work(shared: Path, tmp_path_factory) -> tuple[Path, Path]:
    """CK+ with S074_004's neutral frame truncated, aligned fast (MediaPipe, 96 px chips), and
    FMPN's folds: its neutral and peak faces, and its peak faces alone."""
    root = tmp_path_factory.mktemp("ck")
    for part in ("cohn-kanade-images", "Emotion"):
        shutil.copytree(shared / "data/ckplus" / part, root / part)
    neutral = sorted((root / "cohn-kanade-images/S074/004").glob("*.png"))[0]
    neutral.write_bytes(neutral.read_bytes()[:2000])
    work = tmp_path_factory.mktemp("work")
    params = {"template": "dlib-chip", "size": 96, "padding": PADDING, "grey": True}
    run("ckplus", "align", work, root=root, jobs=2, **params)
    peaks_only = tmp_path_factory.mktemp("peaks")
    run("ckplus", "align", peaks_only, root=root, jobs=2, frames="peak", **params)
    for folder in (work, peaks_only):
        run("ckplus", "folds", folder, split=FMPN_SPLIT)
    return work, peaks_only


def test_a_sequence_without_its_neutral_face_is_skipped(broken_work) -> None:
    result = masks(broken_work[0], jobs=2)  # the folds as they stand: FMPN's
    diffs = _diffs(result.folder)
    assert len(diffs) == 18 * 3
    skipped = diffs[diffs["status"] != "ok"]
    assert sorted(skipped["sequence"]) == ["S074_004"] * 3
    assert (skipped["status"] == "no_neutral").all()
    assert skipped["message"].str.contains("sequence S074_004 has no neutral face").all()
    table = result.manifest
    assert (table["status"] == "ok").sum() == 59  # S074_004 was disgust, which 4 others show
    record = json.loads((result.folder / "stage.json").read_text())
    assert record["peaks_without_map"] == {"no_neutral": 3}
    assert record["samples_used"] == 18 * 3 - 3 and record["finishing"]["size"] == 96


def test_a_dataset_without_neutral_faces_is_a_clear_error(broken_work) -> None:
    peaks_only = broken_work[1]
    with pytest.raises(InputError, match=r"need a neutral and a peak face.*roles: peak"):
        masks(peaks_only)
    out = CliRunner().invoke(main, ["masks", "--dataset", "ckplus", "--work", str(peaks_only)])
    assert out.exit_code == 1 and "neutral-peak" in out.output and "Traceback" not in out.output
    assert not (peaks_only / "ckplus/masks/manifest.parquet").exists()
    out = CliRunner().invoke(main, ["masks", "--dataset", "afew", "--work", str(peaks_only)])
    assert out.exit_code == 1 and "Traceback" not in out.output
    assert "stage masks does not apply to afew" in out.output  # AFEW has clips, no neutral frame


def _fails(*args: str) -> str:
    """The one `Error: …` line of a command that must fail as a user mistake (exit 1)."""
    out = CliRunner().invoke(main, list(args))
    assert out.exit_code == 1, out.output
    lines = [line for line in out.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), out.output
    return lines[0]


def test_masks_check_the_folds_and_name_the_command_that_makes_them(broken_work,
                                                                      tmp_path: Path) -> None:
    work = tmp_path / "work"
    shutil.copytree(broken_work[0], work)
    shutil.rmtree(work / "ckplus/masks", ignore_errors=True)
    shutil.rmtree(work / "ckplus/folds")
    args = ("masks", "--dataset", "ckplus", "--work", str(work), "--jobs", "2")
    with pytest.raises(StageNotReady, match=r"ckplus/folds: the folds stage has not completed; "
                       r"run `fer-prep folds --dataset ckplus` first"):
        masks(work, folds="fmpn")  # masks never make folds

    asks = f"--folds fmpn asks for --split {FMPN_SPLIT}"
    remedy = f"run `fer-prep folds --dataset ckplus --split {FMPN_SPLIT}` first"
    # subject-kfold, and FMPN's rule recomputed on this partial copy (other subject blocks than
    # the published folds): neither is what --folds fmpn asks for
    for scheme, made in (("subject-kfold", "subject-kfold"), ("fmpn", "fmpn")):
        _cli("folds", "--dataset", "ckplus", "--work", str(work), "--scheme", scheme, "--k", "5")
        line = _fails(*args, "--folds", "fmpn")
        assert line == f"Error: the ckplus folds were made with --scheme {made}, and {asks}: " \
            f"{remedy}"
        assert not (work / "ckplus/masks/manifest.parquet").exists()
        assert not (work / "ckplus/masks/diffs").exists()  # said before any map was made
    unchecked = masks(work, jobs=2)  # without --folds: the folds as they stand
    assert unchecked.record["n_folds"] == 5 and unchecked.record["folds"]["scheme"] == "fmpn"

    _cli("folds", "--dataset", "ckplus", "--work", str(work), "--split", FMPN_SPLIT)
    line = _fails(*args, "--folds", "emotion-fan")
    assert "made with --split ckplus-fmpn-10fold-v1, and --folds emotion-fan asks for --split " \
        "ckplus-emotion-fan-10fold-v1" in line
    assert "--split ckplus-emotion-fan-10fold-v1` first" in line
    result = masks(work, folds="fmpn", jobs=2)  # the command it named makes them right
    assert result.record["n_folds"] == 10 and result.record["folds"]["split"] == FMPN_SPLIT
    assert result.computed == 0  # the difference maps did not depend on the folds
    assert (result.manifest["status"] == "ok").sum() == 59
