"""AffectNet exports, read back as the seeds read them: FMPN-FER's AffectNet lists (its own file
names, byte for byte) and ESR's `Training_Labeled/` / `Validation/` with the labels in the names.

The fixture is AffectNet's list layout (test_affectnet.py's `write_lists`) built from real faces
of ../shared (CK+ frames and media photos, dlib's box and 68 points), named by ids taken from
FMPN-FER's shipped AffectNet lists (and two of our own, in neither list). `*_reads` follow the
seeds' loaders line by line: FMPN-FER `data/base_dataset.py` + `data/affectnet.py`, ESR
`model/utils/udata.py` `AffectNetCategorical` / `AffectNetDimensional`.
"""

from __future__ import annotations

import hashlib
import math
import os
import pickle
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from test_affectnet import _detect, write_lists

from fer_prep.cli import main
from fer_prep.datasets import get_dataset
from fer_prep.errors import InputError
from fer_prep.exports import export
from fer_prep.faces import create_backend
from fer_prep.manifest import read_manifest
from fer_prep.runner import run

CK_CODES = {1: 6, 2: 7, 3: 5, 4: 4, 5: 1, 6: 2, 7: 3}  # CK+ code → AffectNet code
#: valence / arousal pairs: truncation toward zero, 0.57 (binary 569.999…), the ends of [−1, 1]
AFFECT = [(0.785714, 0.412698), (-0.634921, -0.253968), (0.57, -0.57), (1.0, -1.0),
          (0.0, 0.001), (-0.0005, 0.9999), (0.206349, 0.849206), (-0.31746, 0.5)]
FMPN_CLASSES = 7  # FMPN's --cls_nc: AffectNet's codes 0–6
ESR_SIZE = 96


# --- the seeds' loaders, as they read files ---------------------------------------------------

def fmpn_affectnet_reads(root: Path, csv_name: str) -> list[tuple[str, int]]:
    """FMPN-FER's AffectNetDataset: `imgs/<line>` per list line, sorted; class `cls_dict[<image
    file name>] - 1`; every image opens as RGB. Asserts data_loader.py would pick it."""
    assert "Affect" in os.path.basename(str(root).strip("/"))  # create_datase
    imgs_dir = os.path.join(root, "imgs")
    imgs_name_file = os.path.join(root, csv_name)
    assert os.path.isfile(imgs_name_file)
    with open(imgs_name_file) as f:
        lines = f.readlines()
        imgs = sorted(os.path.join(imgs_dir, line.strip()) for line in lines)
    with open(os.path.join(root, "emotion_labels.pkl"), "rb") as f:
        cls_dict = pickle.load(f, encoding="latin1")
    items = []
    for img_path in imgs:
        assert os.path.isfile(img_path), img_path
        Image.open(img_path).convert("RGB")
        img_name = os.path.basename(img_path)
        items.append((img_name, cls_dict[img_name] - 1))
    return items


def sort_numeric_directories(dir_names: list[str]) -> list[str]:
    return sorted(dir_names, key=lambda x: (int(re.sub(r"\D", "", x)), x))


def esr_reads(base: Path, idx_set: int) -> list[dict]:
    """ESR's `_load` without its shuffles (idx_set 0 Training_Labeled, 2 Validation): numeric
    folders, every file of each, the name split at 's' (`_parse_to_label` of both classes),
    `cv2.imread(…, IMREAD_COLOR)`; the images stacked as `np.array(data_affect_net)` does."""
    sets = {0: "Training_Labeled/", 2: "Validation/"}
    path_folders = os.path.join(base, sets[idx_set])
    items, data = [], []
    for f_af in sort_numeric_directories(os.listdir(path_folders)):
        path_images = os.path.join(path_folders, f_af)
        for name in np.sort(np.array(os.listdir(path_images))):
            label_info = name.split("s")
            discrete_label = int(label_info[1])
            valence = np.float32(label_info[2]) / 1000.0
            arousal = np.float32(label_info[-1].split(".")[0]) / 1000.0
            img = cv2.imread(os.path.join(path_images, name), cv2.IMREAD_COLOR)
            assert img is not None, name
            data.append(np.array(img, np.uint8))
            items.append({"file": f"{sets[idx_set]}{f_af}/{name}", "folder": f_af,
                          "number": int(label_info[0]),
                          "label": discrete_label if discrete_label < 8 else -1,
                          "valence": valence, "arousal": arousal})
    stacked = np.array(data)
    assert stacked.ndim == 4 and stacked.shape[1:] == (ESR_SIZE, ESR_SIZE, 3), stacked.shape
    return items


# --- the fixture -------------------------------------------------------------------------------

def _fmpn_lists(shared: Path) -> dict[str, list[str]]:
    folder = shared / "reference/fmpn/AffectNet"
    return {which: (folder / f"{which}_ids.csv").read_text().split("\n")
            for which in ("train", "test")}


@pytest.fixture(scope="module")
def records(shared: Path, tmp_path_factory) -> list[dict]:
    """Real faces named by FMPN's ids: CK+ first (neutral) and last frames, a contempt photo (in
    ESR's 8 classes, not FMPN's 7), an Uncertain row (no class), two images in neither list.
    Every third is in AffectNet's validation.csv, the rest in training.csv."""
    dlib = create_backend("dlib-hog")
    pool = tmp_path_factory.mktemp("faces")
    lists = _fmpn_lists(shared)
    names = {"train": lists["train"][::1500], "test": lists["test"][::150]}
    images: list[tuple[np.ndarray, int]] = []
    ck = shared / "data/ckplus"
    for emotion in sorted((ck / "Emotion").glob("S*/*/*_emotion.txt"))[:8]:
        frames = sorted((ck / "cohn-kanade-images" / emotion.parent.relative_to(ck / "Emotion"))
                        .glob("*.png"))
        images.append((cv2.imread(str(frames[0])), 0))
        images.append((cv2.imread(str(frames[-1])), CK_CODES[int(float(emotion.read_text()))]))
    images.append((cv2.imread(str(shared / "data/media/single_face.jpg")), 7))
    images.append((cv2.imread(str(shared / "data/media/0-f1-su-ph.jpg")), 3))
    images.append((cv2.imread(str(frames[len(frames) // 2])), 9))  # Uncertain
    out = []
    for i, (image, code) in enumerate(images):
        if i in (3, 8):  # in neither FMPN list
            stem = hashlib.sha224(f"ours{i}".encode()).hexdigest()
            name, subdir = f"0001_{stem}.jpg", "1"
        else:
            name = names["test" if i % 4 == 1 else "train"].pop(0)
            subdir, stem = name[:-4].split("_")
        path = pool / f"{i}.jpg"
        path.write_bytes(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])[1])
        image = cv2.imread(str(path))
        box, points = _detect(dlib, image)
        valence, arousal = (-2.0, -2.0) if code == 9 else AFFECT[i % len(AFFECT)]
        out.append({"file": path, "image": image, "rel": f"{int(subdir)}/{stem}.jpg",
                    "sample_id": name[:-4], "name": name, "box": box, "points": points,
                    "code": code, "split": "validation" if i % 3 == 2 else "training",
                    "valence": valence, "arousal": arousal})
    return out


def _cli(*args: str) -> None:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def exported(records, tmp_path_factory) -> dict:
    """align --format jpg; official folds → esr-affectnet; FMPN's split → fmpn, esr-affectnet."""
    base = tmp_path_factory.mktemp("affectnet-export")
    root = write_lists(base / "AffectNet", records)
    work = base / "work"
    _cli("affectnet", "align", "--root", root, "--work", work, "--format", "jpg", "--jobs", "2")
    _cli("folds", "--dataset", "affectnet", "--work", work)
    _cli("export", "esr-affectnet", "--dataset", "affectnet", "--work", work, "--out",
         base / "esr-official")
    official = read_manifest(work / "affectnet/folds")
    _cli("folds", "--dataset", "affectnet", "--work", work, "--split", "affectnet-fmpn-v1")
    _cli("export", "fmpn", "--dataset", "affectnet", "--work", work, "--out",
         base / "fmpn/AffectNet")
    _cli("export", "esr-affectnet", "--dataset", "affectnet", "--work", work, "--out",
         base / "esr-fmpn")
    return {"work": work, "base": base, "official": official,
            "fmpn_folds": read_manifest(work / "affectnet/folds"),
            "faces": read_manifest(work / "affectnet/align").set_index("sample_id")}


# --- FMPN-FER ---------------------------------------------------------------------------------

def test_fmpn_lists_are_fmpns_own_restricted_to_the_fixture(records, exported, shared) -> None:
    root = exported["base"] / "fmpn/AffectNet"
    ours = {r["name"] for r in records if r["code"] < FMPN_CLASSES}
    for which, names in _fmpn_lists(shared).items():
        data = (root / f"{which}_ids.csv").read_bytes()
        expected = "\n".join(n for n in names if n in ours)  # FMPN's order: sorted
        assert data == expected.encode() and data and not data.endswith(b"\n")
    assert not list(root.glob("*_ids_*.csv"))  # one split: no fold number
    assert not (root / "imgs_res").exists()  # FMPN's AffectNet loader reads no masks
    faces = exported["faces"]
    for path in (root / "imgs").iterdir():  # our aligned chips, as they are
        face = faces.loc[path.stem]
        assert path.read_bytes() == (exported["work"] / "affectnet/align" /
                                     face.face_path).read_bytes()


def test_fmpn_export_reads_as_fmpns_affectnet_loader_reads_it(records, exported) -> None:
    root = exported["base"] / "fmpn/AffectNet"
    by_name = {r["name"]: r for r in records}
    folds = exported["fmpn_folds"].set_index("sample_id")
    seen = []
    for which, fold in (("train", -1), ("test", 0)):
        items = fmpn_affectnet_reads(root, f"{which}_ids.csv")
        assert items
        for name, cls in items:
            record = by_name[name]
            assert cls == record["code"] and 0 <= cls < FMPN_CLASSES  # AffectNet's code
            assert folds.loc[record["sample_id"], "fold"] == fold
            seen.append(name)
    in_lists = [r["name"] for r in records if folds.loc[r["sample_id"], "status"] == "ok"
                and r["code"] < FMPN_CLASSES]
    assert sorted(seen) == sorted(in_lists)
    contempt = next(r for r in records if r["code"] == 7)
    assert folds.loc[contempt["sample_id"], "status"] == "ok"  # in the folds, not in FMPN's
    assert contempt["name"] not in seen


def test_fmpn_names_are_the_chips_own_and_a_note_says_jpg(records, exported, tmp_path) -> None:
    """PNG chips keep their suffix (no re-encoding); the lists and pickle say .png, consistently,
    and a note names FMPN's .jpg."""
    work = tmp_path / "work"
    root = write_lists(tmp_path / "AffectNet", records[:6])
    _cli("affectnet", "align", "--root", root, "--work", work, "--jobs", "2")
    _cli("folds", "--dataset", "affectnet", "--work", work, "--split", "affectnet-fmpn-v1")
    result = export("fmpn", "affectnet", work, tmp_path / "AffectNetPng")
    assert any("--format jpg" in note for note in result.notes)
    names = [n for which in ("train", "test") for n, _ in
             fmpn_affectnet_reads(tmp_path / "AffectNetPng", f"{which}_ids.csv")]
    assert names and all(n.endswith(".png") for n in names)


# --- ESR ----------------------------------------------------------------------------------------

def _esr_matches(records, exported, out: Path, folds) -> None:
    """Every usable row of the folds, in its part's folder, with its class, valence, arousal."""
    faces = exported["faces"]
    folds = folds.set_index("sample_id")
    ids = dict(line.split(",") for line in
               (out / "esr_ids.csv").read_text().splitlines()[1:])
    by_id = {r["sample_id"]: r for r in records}
    for idx_set, fold in ((0, -1), (2, 0)):
        items = esr_reads(out, idx_set)
        assert [i["number"] for i in items] == list(range(len(items)))  # ESR's numbering
        assert all(i["folder"] == str(i["number"] // 500) for i in items)
        expected = [r for r in records if r["code"] < 8
                    and folds.loc[r["sample_id"], "status"] == "ok"
                    and folds.loc[r["sample_id"], "fold"] == fold]
        assert sorted(ids[i["file"]] for i in items) == sorted(r["sample_id"] for r in expected)
        lines = []
        for item in items:
            record = by_id[ids[item["file"]]]
            face = faces.loc[record["sample_id"]]
            assert item["label"] == record["code"] == face.label_code
            for name in ("valence", "arousal"):
                value = getattr(face, name)
                assert value == pytest.approx(record[name])
                assert item[name] == np.float32(math.trunc(round(value * 1000, 6))) / 1000
                assert abs(item[name] - value) < 1e-3
            chip = cv2.imread(str(exported["work"] / "affectnet/align" / face.face_path))
            small = cv2.resize(chip, (ESR_SIZE, ESR_SIZE), interpolation=cv2.INTER_AREA)
            image = cv2.imread(str(out / item["file"]))
            assert np.abs(image.astype(int) - small).mean() < 3  # the chip, resized
            lines.append((record["split"], face.source_line))
        assert lines == sorted(lines)  # AffectNet's list order, as ESR numbers the rows


def test_esr_official_split_is_affectnets_training_and_validation(records, exported) -> None:
    out = exported["base"] / "esr-official"
    assert sorted(p.name for p in out.iterdir()) == ["Training_Labeled", "Validation",
                                                     "esr_ids.csv", "fer-prep-export.json"]
    _esr_matches(records, exported, out, exported["official"])
    folds = exported["official"].set_index("sample_id")
    for record in records:
        if record["code"] < 8:
            assert folds.loc[record["sample_id"], "fold"] == (
                0 if record["split"] == "validation" else -1)


def test_esr_follows_the_folds_fmpns_split(records, exported) -> None:
    out = exported["base"] / "esr-fmpn"
    _esr_matches(records, exported, out, exported["fmpn_folds"])
    contempt = next(r for r in records if r["code"] == 7)
    ids = (out / "esr_ids.csv").read_text()
    assert contempt["sample_id"] in ids  # ESR's 8 classes keep contempt


def test_esr_refuses_what_its_loader_cannot_read(tmp_path) -> None:
    """On the embedded sample: an empty Validation/ (refused unless allowed), k folds, CK+."""
    root = get_dataset("affectnet").write_sample(tmp_path / "samples")
    work = tmp_path / "work"
    faces = run("affectnet", "align", work, root=root, jobs=2).manifest
    train_only = tmp_path / "train-only.csv"
    train_only.write_text("sample_id,fold\n" + "".join(f"{s},-1\n" for s in faces["sample_id"])
                          + "0001_absent,0\n")
    run("affectnet", "folds", work, split=str(train_only))
    out = tmp_path / "esr"
    with pytest.raises(InputError, match="Validation/ would hold no image"):
        export("esr-affectnet", "affectnet", work, out)
    assert not out.exists()
    result = export("esr-affectnet", "affectnet", work, out, allow_empty=True)
    assert result.counts["Validation images"] == 0 and result.counts["Training_Labeled images"]
    assert not (out / "Validation").exists()
    run("affectnet", "folds", work, scheme="image-kfold", k=2)
    with pytest.raises(InputError, match="2 test parts; ESR trains on one"):
        export("esr-affectnet", "affectnet", work, tmp_path / "esr-k")
    ck = run("ckplus", "align", tmp_path / "ck", root=get_dataset("ckplus").write_sample(
        tmp_path / "samples"), jobs=2).folder.parent.parent
    run("ckplus", "folds", ck, k=2)
    with pytest.raises(InputError, match="ckplus is not AffectNet"):
        export("esr-affectnet", "ckplus", ck, tmp_path / "esr-ck")
