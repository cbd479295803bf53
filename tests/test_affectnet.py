"""AffectNet from its own layouts, built here from real faces of ../shared (CK+ frames and media
photos, their boxes and 68 points found by dlib's HOG detector and predictor): the file lists
(training.csv with its header, validation.csv without) and the newer train_set/val_set with .npy
annotations. Labels, splits, valence and arousal as the files give them; the box read as x, y,
width, height on a non-square image; --classes 7 and 8; codes 8–10; every bad input a row with
its reason while the rest completes; the CLI; official folds."""

from __future__ import annotations

import csv
import hashlib
import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from fer_prep.align import TEMPLATES
from fer_prep.cli import main
from fer_prep.datasets import get_dataset
from fer_prep.datasets.affectnet import COLUMNS, write_affectnet_sample
from fer_prep.errors import InputError, OptionError
from fer_prep.faces import create_backend
from fer_prep.manifest import read_manifest
from fer_prep.runner import run
from fer_prep.splits import load_split

LISTS, IMAGES = "Manually_Annotated_file_lists", "Manually_Annotated_Images"
CK_CODES = {1: 6, 2: 7, 3: 5, 4: 4, 5: 1, 6: 2, 7: 3}  # CK+ code → AffectNet code
MEDIA = {"0-f1-su-ph.jpg": 3, "15-f13-anc-ph.jpg": 6, "45-m7-di-ph.jpg": 5,
         "single_face.jpg": 7}  # photo → the AffectNet code the fixture gives it (7: contempt)
LABELS = {0: "neutral", 1: "happiness", 2: "sadness", 3: "surprise", 4: "fear", 5: "disgust",
          6: "anger", 7: "contempt"}
VALIDATION_SUBJECTS = ("S106", "S111")
WIDE = "wide"  # the record of the face on a non-square canvas


def _detect(backend, image: np.ndarray) -> tuple[list[int], np.ndarray]:
    """The largest face's detector box (x, y, w, h, whole pixels) and 68 points."""
    face = max(backend.faces(image), key=lambda f: f.detector_box[2] * f.detector_box[3])
    return [int(v) for v in face.detector_box], face.landmarks68.astype(float)


def _affect(i: int, code: int) -> tuple[float, float]:
    if code in (9, 10):
        return -2.0, -2.0  # AffectNet's "not applicable"
    return round((i * 37 % 200 - 100) / 101, 6), round((i * 53 % 200 - 100) / 103, 6)


@pytest.fixture(scope="module")
def records(shared: Path, tmp_path_factory) -> list[dict]:
    """The fixture's faces: each a JPEG (as AffectNet ships them), its dlib box and points read
    off the decoded file, its code, split, valence and arousal."""
    dlib = create_backend("dlib-hog")
    pool = tmp_path_factory.mktemp("faces")
    out: list[dict] = []

    def add(image: np.ndarray, key: str, subdir: str, code: int, split: str,
            detect: bool = True) -> dict:
        path = pool / f"{len(out)}.jpg"
        path.write_bytes(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])[1])
        image = cv2.imread(str(path))
        box, points = _detect(dlib, image) if detect else ([300, 200, 400, 400], out[0]["points"])
        rel = f"{subdir}/{hashlib.sha224(key.encode()).hexdigest()}.jpg"
        valence, arousal = _affect(len(out), code)
        record = {"key": key, "file": path, "image": image, "rel": rel, "box": box,
                  "points": points, "code": code, "split": split, "valence": valence,
                  "arousal": arousal, "sample_id": f"{int(subdir):04d}_{rel[:-4].split('/')[1]}"}
        out.append(record)
        return record

    ck = shared / "data/ckplus"
    subjects = sorted(p.name for p in (ck / "Emotion").iterdir() if p.is_dir())
    for n, emotion in enumerate(sorted((ck / "Emotion").glob("S*/*/*_emotion.txt"))):
        subject, take = emotion.parent.parent.name, emotion.parent.name
        frames = sorted((ck / "cohn-kanade-images" / subject / take).glob("*.png"))
        split = "validation" if subject in VALIDATION_SUBJECTS else "training"
        subdir = str(1 + subjects.index(subject))
        code = CK_CODES[int(float(emotion.read_text()))]
        add(cv2.imread(str(frames[0])), f"{subject}/{take}/first", subdir, 0, split)
        add(cv2.imread(str(frames[-1])), f"{subject}/{take}/last", subdir, code, split)
        if n < 2:  # None, Uncertain: onset frames; Non-Face: the mountain below
            add(cv2.imread(str(frames[len(frames) // 2])), f"{subject}/{take}/mid", subdir,
                8 + n, split)
    for name, code in MEDIA.items():
        add(cv2.imread(str(shared / "data/media" / name)), name, "7", code, "training")
    photo = cv2.imread(str(shared / "data/media/0-f15-hao-ph.jpg"))
    canvas = np.full((520, 900, 3), 128, np.uint8)  # a wide image: x and y ranges differ
    canvas[4:516, 380:892] = photo
    add(canvas, WIDE, "8", 1, "validation")
    mountain = cv2.imread(str(shared / "data/media/free-mountain-vector-01.jpg"))
    add(mountain, "mountain", "8", 10, "training", detect=False)
    return out


def _fields(record: dict) -> list[str]:
    marks = ";".join(f"{v:.2f}" for v in record["points"].ravel())
    return [record["rel"], *map(str, record["box"]), marks, str(record["code"]),
            f"{record['valence']:g}", f"{record['arousal']:g}"]


def write_lists(root: Path, records: list[dict], edit=None) -> Path:
    """AffectNet's list layout: images under their sub-folders, training.csv (header) and
    validation.csv (no header). `edit(record, fields)` may change a row's fields."""
    lists = root / LISTS
    lists.mkdir(parents=True)
    rows: dict[str, list[list[str]]] = {"training": [list(COLUMNS)], "validation": []}
    for record in records:
        target = root / IMAGES / record["rel"]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(record["file"], target)
        fields = _fields(record)
        if edit is not None:
            fields = edit(record, fields)
        rows[record["split"]].append(fields)
    for split, table in rows.items():
        with open(lists / f"{split}.csv", "w", newline="") as fh:
            csv.writer(fh, lineterminator="\r\n").writerows(table)
    return root


def _crop(record: dict, side: int = 224) -> tuple[np.ndarray, np.ndarray]:
    """The newer release's kind of image: a square face crop, and the points in it."""
    x, y, w, h = record["box"]
    span = 1.5 * max(w, h)
    scale = side / span
    m = np.array([[scale, 0, -(x + w / 2 - span / 2) * scale],
                  [0, scale, -(y + h / 2 - span / 2) * scale]])
    crop = cv2.warpAffine(record["image"], m, (side, side), flags=cv2.INTER_AREA)
    return crop, record["points"] @ m[:, :2].T + m[:, 2]


def write_sets(root: Path, records: list[dict]) -> dict[str, dict]:
    """The newer layout: train_set/ and val_set/ with images/<id>.jpg and
    annotations/<id>_{exp,val,aro,lnd}.npy; ids restart at 0 in each set. Half the exp files
    hold text ('3', as AffectNet's do), half integers; half the lnd files are (136,), half
    (68, 2). Returns each item's expected values by sample_id."""
    expected: dict[str, dict] = {}
    counters = {"train_set": 0, "val_set": 0}
    for record in records:
        if record["key"] == "mountain":
            continue
        folder = "val_set" if record["split"] == "validation" else "train_set"
        ident = str(counters[folder])
        counters[folder] += 1
        images, notes = root / folder / "images", root / folder / "annotations"
        images.mkdir(parents=True, exist_ok=True)
        notes.mkdir(parents=True, exist_ok=True)
        crop, points = _crop(record)
        cv2.imwrite(str(images / f"{ident}.jpg"), crop, [cv2.IMWRITE_JPEG_QUALITY, 95])
        odd = int(ident) % 2
        np.save(notes / f"{ident}_exp.npy", np.array(str(record["code"])) if odd
                else np.array(record["code"], np.int64))
        np.save(notes / f"{ident}_val.npy", np.array(record["valence"]))
        np.save(notes / f"{ident}_aro.npy", np.array(record["arousal"]))
        np.save(notes / f"{ident}_lnd.npy", points.astype(np.float32) if odd
                else points.ravel().astype(np.float64))
        expected[f"{folder}_{ident}"] = {**record, "points": points, "crop": crop,
                                         "ident": ident, "folder": folder}
    return expected


@pytest.fixture(scope="module")
def lists_root(records, tmp_path_factory) -> Path:
    return write_lists(tmp_path_factory.mktemp("affectnet") / "AffectNet", records)


@pytest.fixture(scope="module")
def aligned(lists_root, tmp_path_factory) -> tuple[Path, str]:
    """`fer-prep affectnet align --root DIR` on the list layout (the CLI, AffectNet's own box
    and points by default), and what it printed."""
    work = tmp_path_factory.mktemp("work")
    result = CliRunner().invoke(main, ["affectnet", "align", "--root", str(lists_root),
                                       "--work", str(work), "--jobs", "2"])
    assert result.exit_code == 0, result.output
    return work, result.output


def _by_id(items) -> dict[str, dict]:
    return {item["sample_id"]: item for item in items}


def test_the_lists_read_labels_splits_affect_box_and_points(records, lists_root) -> None:
    ds = get_dataset("affectnet")
    items = _by_id(ds.read(lists_root, ds.options()))
    assert len(items) == len(records)
    lines = {"training": 1, "validation": 0}  # training.csv's header is line 1
    for record in records:
        item = items[record["sample_id"]]
        lines[record["split"]] += 1
        assert item["split"] == record["split"] and item["subject"] is None
        assert item["source_line"] == lines[record["split"]]
        assert item["source_path"] == str((lists_root / IMAGES / record["rel"]).absolute())
        assert item["label_code"] == record["code"]
        for name in ("valence", "arousal"):
            assert item[name] == (None if record[name] == -2 else pytest.approx(record[name]))
        if record["code"] >= 8:
            assert item["status"] == "left_out" and item["label"] is None
            where = f"{lists_root / LISTS / record['split']}.csv:{item['source_line']}"
            assert item["message"].startswith(f"{where}: expression {record['code']} (")
            continue
        assert item["status"] == "ok" and item["label"] == LABELS[record["code"]]
        assert item["given_box"] == record["box"]  # x, y, width, height, as listed
        assert np.allclose(item["given_landmarks68"], record["points"].ravel(), atol=0.006)
    assert sum(i["status"] == "left_out" for i in items.values()) == 3  # None, Uncertain, NF


def test_align_on_the_lists_by_the_cli_uses_affectnets_own_face(records, aligned) -> None:
    work, output = aligned
    faces = read_manifest(work / "affectnet/align").set_index("sample_id")
    assert len(faces) == len(records)
    assert faces["status"].value_counts().to_dict() == {"ok": len(records) - 3, "left_out": 3}
    ok = faces[faces["status"] == "ok"]
    assert (ok["detector"] == "given").all()  # AffectNet's own 68 points, no detector
    for record in records:
        face = faces.loc[record["sample_id"]]
        if face.status != "ok":
            assert face.message.split(": ")[0] not in output  # quiet: counted, not warned
            continue
        assert np.allclose(face.landmarks68, record["points"].ravel(), atol=0.006)
        assert list(face.detector_box) == record["box"]
        assert (work / "affectnet/align" / face.face_path).is_file()
        assert face.face_path == f"faces/{record['split']}/{record['sample_id']}.png"
    assert "left_out: 3" in output  # in the summary
    assert {"valence", "arousal", "source_line"} <= set(faces.columns)


def test_the_box_is_x_y_width_height_on_a_non_square_image(records, aligned, tmp_path) -> None:
    """The wide image's face is at x ≈ 490, y ≈ 175: read as x, y the chip is the face; ESR's
    swapped reading (rows x…x+w, columns y…y+h) would cut the grey canvas and the chin."""
    record = next(r for r in records if r["key"] == WIDE)
    image, (x, y, w, h) = record["image"], record["box"]
    assert image.shape[:2] == (520, 900) and x > 400 and y < 200
    work, _ = aligned
    face = read_manifest(work / "affectnet/align").set_index("sample_id").loc[record["sample_id"]]
    chip = cv2.imread(str(work / "affectnet/align" / face.face_path))
    tpl = TEMPLATES.get("eyes")
    target = tpl.eye_centres(224, 0.25)
    points = np.asarray(face.landmarks68).reshape(68, 2)
    eyes = np.stack([points[36:42].mean(0), points[42:48].mean(0)])
    matrix = np.asarray(face.matrix).reshape(2, 3)
    assert np.abs(eyes @ matrix[:, :2].T + matrix[:, 2] - target).max() < 1
    _, found = _detect(create_backend("dlib-hog"), chip)  # the chip shows the face, in place
    seen = np.stack([found[36:42].mean(0), found[42:48].mean(0)])
    assert np.abs(seen - target).max() < 5, (seen, target)

    # `whole` at the box's own size: the chip is the box's pixels, exactly image[y:y+h, x:x+w]
    h = w  # a square box, so one chip size fits it
    record = {**record, "box": [x, y, w, h]}
    root = write_lists(tmp_path / "wide", [record])
    blank = {**record, "rel": "8/boxonly.jpg", "sample_id": "0008_boxonly"}
    (root / IMAGES / blank["rel"]).write_bytes(record["file"].read_bytes())
    with open(root / LISTS / "validation.csv", "a", newline="") as fh:
        fields = _fields(blank)
        fields[5] = ""  # no points: dlib's 68 inside AffectNet's box
        csv.writer(fh, lineterminator="\r\n").writerow(fields)
    result = run("affectnet", "align", tmp_path / "work", root=root, template="whole", size=w,
                 jobs=1)
    whole = read_manifest(result.folder).set_index("sample_id")
    chip = cv2.imread(str(result.folder / whole.loc[record["sample_id"], "face_path"]))
    crop = image[y:y + h, x:x + w]
    assert np.abs(chip.astype(int) - crop).mean() < 1.5
    swapped = image[x:x + w, y:y + h]  # ESR's reading: another region, cut short by the height
    assert swapped.shape != crop.shape
    boxed = whole.loc["0008_boxonly"]
    assert boxed.status == "ok" and boxed.detector == "given-box+dlib68"
    error = np.abs(np.asarray(boxed.landmarks68) - record["points"].ravel())
    assert error.max() <= 3 and error.mean() < 1  # dlib's own points (its box 1 px taller)


class _Warnings(logging.Handler):
    """The fer_prep logger's warnings, caught on the logger itself (the CLI stops it
    propagating to the root, where caplog listens)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_classes_7_leaves_contempt_out_quietly_and_8_keeps_it(records, lists_root,
                                                              tmp_path) -> None:
    ds = get_dataset("affectnet")
    contempt = next(r for r in records if r["code"] == 7)["sample_id"]
    eight = _by_id(ds.read(lists_root, ds.options()))
    seven = _by_id(ds.read(lists_root, ds.options(classes=7)))
    assert eight[contempt]["status"] == "ok" and eight[contempt]["label"] == "contempt"
    assert seven[contempt]["status"] == "not_in_classes"
    assert seven[contempt]["label"] == "contempt" and seven[contempt]["label_code"] == 7
    assert "not one of the 7 classes (--classes 7)" in seven[contempt]["message"]
    others = [k for k in eight if k != contempt]
    assert all(seven[k]["status"] == eight[k]["status"] for k in others)
    warnings, logger = _Warnings(), logging.getLogger("fer_prep")
    logger.addHandler(warnings)
    try:
        result = run("affectnet", "align", tmp_path, root=lists_root, classes=7, jobs=2)
    finally:
        logger.removeHandler(warnings)
    assert result.counts["not_in_classes"] == 1 and result.counts["left_out"] == 3
    assert warnings.messages == []  # 3,750 contempt rows would flood the console
    with pytest.raises(OptionError, match="--classes 6 is out of range 7…8"):
        run("affectnet", "align", tmp_path / "w6", root=lists_root, classes=6)


def test_folds_official_are_training_and_validation(records, aligned) -> None:
    work, _ = aligned
    out = CliRunner().invoke(main, ["folds", "--dataset", "affectnet", "--work", str(work)])
    assert out.exit_code == 0, out.output
    folds = read_manifest(work / "affectnet/folds").set_index("sample_id")
    assert len(folds) == len(records)
    for record in records:
        row = folds.loc[record["sample_id"]]
        if record["code"] >= 8:
            assert row.status == "excluded" and "left_out" in row.message
        else:
            assert row.status == "ok" and row.fold == (0 if record["split"] == "validation"
                                                       else -1)
    test = (work / "affectnet/folds/fold_0/test.csv").read_text().splitlines()[1:]
    assert len(test) == sum(r["split"] == "validation" and r["code"] < 8 for r in records)


def test_folds_from_the_lists_alone(records, lists_root, tmp_path) -> None:
    root = tmp_path / "lists-only"
    shutil.copytree(lists_root / LISTS, root / LISTS)  # no images
    with pytest.raises(InputError, match=f"no {IMAGES}/ folder"):
        run("affectnet", "align", tmp_path / "w", root=root)
    result = run("affectnet", "folds", tmp_path / "w", root=root)
    folds = read_manifest(result.folder).set_index("sample_id")
    assert folds.loc[[r["sample_id"] for r in records if r["code"] < 8], "fold"].tolist() == [
        0 if r["split"] == "validation" else -1 for r in records if r["code"] < 8]


def test_fmpns_shipped_split_keys_the_images(records, tmp_path) -> None:
    """affectnet-fmpn-v1 names images 0001_<hash>; the lists write 1/<hash>.jpg."""
    split = load_split("affectnet-fmpn-v1")
    ids = {-1: split.loc[split["fold"] == -1, "sample_id"].iloc[:2].tolist(),
           0: split.loc[split["fold"] == 0, "sample_id"].iloc[:2].tolist()}
    chosen = [r for r in records if r["code"] < 8][:4]
    renamed = []
    for record, fold in zip(chosen, [-1, -1, 0, 0], strict=True):
        sample_id = ids[fold].pop()
        subdir, stem = sample_id.split("_")
        renamed.append({**record, "rel": f"{int(subdir)}/{stem}.jpg", "sample_id": sample_id,
                        "fold": fold})
    root = write_lists(tmp_path / "fmpn", renamed)
    work = tmp_path / "work"
    run("affectnet", "align", work, root=root, jobs=1)
    result = run("affectnet", "folds", work, split="affectnet-fmpn-v1")
    folds = read_manifest(result.folder).set_index("sample_id")
    for record in renamed:
        assert folds.loc[record["sample_id"], "status"] == "ok"
        assert folds.loc[record["sample_id"], "fold"] == record["fold"]


def test_bad_list_rows_are_rows_naming_the_file_and_line(records, tmp_path) -> None:
    ok = [r for r in records if r["code"] < 8]
    broken = {ok[1]["sample_id"]: "missing", ok[2]["sample_id"]: "outside",
              ok[3]["sample_id"]: "135", ok[4]["sample_id"]: "label"}

    def edit(record: dict, fields: list[str]) -> list[str]:
        what = broken.get(record["sample_id"])
        if what == "missing":
            fields[0] = fields[0].replace(".jpg", "0.jpg")
        elif what == "outside":
            fields[1] = str(record["image"].shape[1] + 40)
        elif what == "135":
            fields[5] = fields[5].rsplit(";", 1)[0]
        elif what == "label":
            fields[6] = "11"
        return fields

    root = write_lists(tmp_path / "bad", records, edit)
    out = CliRunner().invoke(main, ["affectnet", "align", "--root", str(root), "--work",
                                    str(tmp_path / "work"), "--jobs", "1"])
    assert out.exit_code == 0, out.output
    faces = read_manifest(tmp_path / "work/affectnet/align").set_index("sample_id")
    lines = {r["sample_id"]: i for split in ("training", "validation")
             for i, r in enumerate([r for r in records if r["split"] == split],
                                   start=2 if split == "training" else 1)}
    missing_id = f"{ok[1]['sample_id']}0"
    h, w = ok[2]["image"].shape[:2]
    expected = {
        missing_id: ("missing_image", f"{ok[1]['split']}.csv:{lines[ok[1]['sample_id']]}: "
                     f"names {ok[1]['rel'][:-4]}0.jpg, which is not in"),
        ok[2]["sample_id"]: ("no_landmarks", f"{root / IMAGES / ok[2]['rel']}: the given box "
                             f"({w + 40}, {ok[2]['box'][1]}"),
        ok[3]["sample_id"]: ("bad_landmarks", f"{ok[3]['split']}.csv:{lines[ok[3]['sample_id']]}"
                             ": facial_landmarks holds 135 values, expected 136"),
        ok[4]["sample_id"]: ("bad_label", f"{ok[4]['split']}.csv:{lines[ok[4]['sample_id']]}: "
                             "expression '11' is not one of AffectNet's codes 0…10"),
    }
    assert f"lies outside the {w}x{h} image" in faces.loc[ok[2]["sample_id"], "message"]
    for sample_id, (status, message) in expected.items():
        assert faces.loc[sample_id, "status"] == status, faces.loc[sample_id]
        assert message in faces.loc[sample_id, "message"], faces.loc[sample_id, "message"]
        assert faces.loc[sample_id, "message"] in out.output  # said on the console
    rest = faces.drop(index=list(expected))
    assert set(rest["status"]) == {"ok", "left_out"}
    assert (rest["status"] == "ok").sum() == len(ok) - 4


def test_the_newer_layout_with_npy_annotations(records, tmp_path) -> None:
    root = tmp_path / "AffectNet"
    expected = write_sets(root, records)
    ds = get_dataset("affectnet")
    items = _by_id(ds.read(root, ds.options()))
    assert set(items) == set(expected)  # ids restart in each set, sample ids do not clash
    assert {"train_set_0", "val_set_0"} <= set(items)
    for sample_id, want in expected.items():
        item = items[sample_id]
        assert item["split"] == want["split"] and item["label_code"] == want["code"]
        assert item["source_path"] == str(root / want["folder"] / "images" / f"{want['ident']}.jpg")
        for name in ("valence", "arousal"):
            assert item[name] == (None if want[name] == -2 else pytest.approx(want[name]))
        if want["code"] >= 8:
            assert item["status"] == "left_out"
            continue
        assert item["status"] == "ok" and item["label"] == LABELS[want["code"]]
        assert item["given_box"] is None  # a crop: the whole image, AffectNet's points
        assert np.allclose(item["given_landmarks68"], want["points"].ravel(), atol=1e-4)

    result = run("affectnet", "align", tmp_path / "work", root=root, jobs=2)
    faces = read_manifest(result.folder).set_index("sample_id")
    assert result.counts == {"ok": len(expected) - 2, "left_out": 2}
    dlib, target = create_backend("dlib-hog"), TEMPLATES.get("eyes").eye_centres(224, 0.25)
    for sample_id in [s for s in expected if expected[s]["code"] < 8][::4]:
        chip = cv2.imread(str(result.folder / faces.loc[sample_id, "face_path"]))
        _, found = _detect(dlib, chip)  # AffectNet's points put the real face's eyes in place
        seen = np.stack([found[36:42].mean(0), found[42:48].mean(0)])
        assert np.abs(seen - target).max() < 6, (sample_id, seen, target)


def test_bad_npy_annotations_are_rows_naming_the_file(records, tmp_path) -> None:
    root = tmp_path / "AffectNet"
    expected = write_sets(root, records)
    notes = root / "train_set/annotations"
    (notes / "2_val.npy").unlink()  # a missing annotation file
    np.save(notes / "4_exp.npy", np.array("12"))  # an unknown label
    np.save(notes / "6_lnd.npy", np.zeros(135))  # 135 values
    (root / "train_set/images/8.jpg").unlink()  # annotations without their image
    (notes / "10_exp.npy").write_bytes(b"not a numpy file")
    out = CliRunner().invoke(main, ["affectnet", "align", "--root", str(root), "--work",
                                    str(tmp_path / "work"), "--jobs", "1"])
    assert out.exit_code == 0, out.output
    faces = read_manifest(tmp_path / "work/affectnet/align").set_index("sample_id")
    bad = {
        "train_set_2": ("missing_annotation", f"{root}/train_set/images/2.jpg: no 2_val.npy in "
                        f"{notes}"),
        "train_set_4": ("bad_label", f"{notes}/4_exp.npy: expression '12' is not one of "
                        "AffectNet's codes"),
        "train_set_6": ("bad_landmarks", f"{notes}/6_lnd.npy: shape (135,), expected 136"),
        "train_set_8": ("missing_image", f"{notes}/8_exp.npy: annotated, but"),
        "train_set_10": ("bad_annotation", f"{notes}/10_exp.npy: not a NumPy .npy array"),
    }
    for sample_id, (status, message) in bad.items():
        assert faces.loc[sample_id, "status"] == status, faces.loc[sample_id]
        assert faces.loc[sample_id, "message"].startswith(message), faces.loc[sample_id]
        assert message in out.output
    rest = faces.drop(index=list(bad))
    assert len(rest) == len(expected) - len(bad)
    assert set(rest["status"]) == {"ok", "left_out"}


def test_a_root_that_is_not_affectnet(tmp_path) -> None:
    with pytest.raises(InputError, match=r"no Manually_Annotated_file_lists/.*AffectNet root"):
        run("affectnet", "align", tmp_path / "w", root=tmp_path)
    (tmp_path / "train_set/images").mkdir(parents=True)
    with pytest.raises(InputError, match="train_set: no annotations/ folder"):
        run("affectnet", "align", tmp_path / "w", root=tmp_path)


def test_the_sample_is_in_the_published_layout(tmp_path) -> None:
    root = write_affectnet_sample(tmp_path)
    training = (root / LISTS / "training.csv").read_text().splitlines()
    validation = (root / LISTS / "validation.csv").read_text().splitlines()
    assert training[0] == ",".join(COLUMNS) and not validation[0].startswith("subDirectory")
    for line in training[1:] + validation:
        fields = line.split(",")
        assert len(fields) == 9 and len(fields[5].split(";")) == 136
        assert (root / IMAGES / fields[0]).is_file()
    codes = [int(line.split(",")[6]) for line in training[1:] + validation]
    assert {8, 9, 10} <= set(codes)
    again = write_affectnet_sample(tmp_path / "again")
    for path in root.rglob("*"):
        if path.is_file():
            assert path.read_bytes() == (again / path.relative_to(root)).read_bytes()
