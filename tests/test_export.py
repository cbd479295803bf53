"""`fer-prep export`: the seeds' own files reproduced, and every export read as the seed reads it.

The `*_reads` helpers below follow the seeds' loaders line by line (FMPN-FER `data/base_dataset.py`
+ `data/ckplus_res.py`, Emotion-FAN `basic_code/data_generator.py`, torchvision's ImageFolder,
Landmark-Driven FER `datagen.py`), so a layout they cannot read fails here.
"""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from fer_prep.align import TEMPLATES
from fer_prep.cache import read_record, write_record
from fer_prep.cli import main
from fer_prep.datasets import get_dataset
from fer_prep.datasets.ckplus import CODES
from fer_prep.errors import FerPrepError, InputError, StageNotReady
from fer_prep.exports import EXPORTS, MARKER, export
from fer_prep.exports.emotion_fan import CKPLUS_LIST
from fer_prep.exports.fmpn import seed_codes
from fer_prep.exports.landmark_driven import chip_points
from fer_prep.manifest import read_manifest
from fer_prep.runner import run

EFAN_LIST = "txt/CK+_10-fold_sample_IDascendorder_step10.txt"
#: Emotion-FAN basic_code/load.py cate2label
CATE2LABEL = {
    "CK+": {"Angry": 1, "Disgust": 2, "Fear": 3, "Happy": 0, "Contempt": 5, "Sad": 4,
            "Surprise": 6},
    "AFEW": {"Angry": 1, "Disgust": 2, "Fear": 3, "Happy": 0, "Neutral": 5, "Sad": 4,
             "Surprise": 6},
}
K = 5  # the shared CK+ has 5 subjects


# --- the seeds' loaders, as they read files ---------------------------------------------------

def fmpn_reads(root: Path, csv_name: str) -> tuple[str, list[tuple[Path, int]]]:
    """FMPN-FER: the fold from the CSV name; (image, class) per line; asserts every file opens."""
    fold = os.path.splitext(csv_name)[0].split("_")[-1]
    with open(root / csv_name) as f:
        imgs = sorted(os.path.join(root, "imgs", line.strip()) for line in f.readlines())
    with open(root / "emotion_labels.pkl", "rb") as f:
        cls_dict = pickle.load(f, encoding="latin1")
    items = []
    for img in imgs:
        assert os.path.isfile(img), img
        Image.open(img).convert("RGB")
        sub_seq = "_".join(os.path.splitext(os.path.basename(img))[0].split("_")[:2])
        items.append((Path(img), int(cls_dict[sub_seq] - 1)))
    return fold, items


def emotion_fan_ckplus_reads(root: Path, fold: int, run_type: str) -> list[tuple[str, int]]:
    """Emotion-FAN `load_imgs_tenfold_totalframe`: (frame path, class) of a fold's part."""
    with open(root / EFAN_LIST) as imf:
        imf = imf.readlines()
    folds_ = [i for i in range(1, 11) if i != fold] if run_type == "train" else [fold]
    new_imf = []
    for i in folds_:
        for index, item in enumerate(imf):
            if f"{i}-fold" in item:  # the seed's substring test ("1-fold" is in "10-fold")
                new_imf += imf[index + 1 : index + int(item.split()[1]) + 1]
    frames = []
    for line in new_imf:
        video_name, word = line.strip().split()
        video_path = os.path.join(root, "face/ck_face", video_name)
        frames += [(os.path.join(video_path, f), CATE2LABEL["CK+"][word])
                   for f in sorted(os.listdir(video_path))]
    return frames


def emotion_fan_afew_reads(video_root: Path, video_list: Path) -> list[tuple[str, int]]:
    """Emotion-FAN `load_imgs_total_frame`: (frame path, class) of every listed clip."""
    frames = []
    with open(video_list) as imf:
        for line in imf:
            video_name, word = line.strip().split()
            video_path = os.path.join(video_root, video_name)
            img_lists = sorted(os.listdir(video_path))
            assert img_lists, video_path
            frames += [(os.path.join(video_path, f), CATE2LABEL["AFEW"][word]) for f in img_lists]
    return frames


def landmark_driven_reads(image_path: str, label_path: str, width: int) -> list[tuple]:
    """Landmark-Driven FER TrainSet + ValidationSet on the same lists (cwd = the export)."""
    with open(image_path) as file:
        names = [k.strip("\n") for k in file.readlines()]
    labels = np.atleast_1d(np.loadtxt(label_path, np.int64))
    assert len(names) == labels.shape[0]
    items = []
    for name, label in zip(names, labels, strict=True):
        landmark = np.loadtxt(name[:-3] + "txt", np.float32).reshape(-1, 2)
        image = cv2.imread(name, cv2.IMREAD_GRAYSCALE)
        assert image.shape[0] == width, name
        array = np.array(Image.open(name)).astype(np.uint8)[:, :, None]  # ValidationSet
        assert np.concatenate((array, array, array), axis=2).shape == (width, width, 3), name
        items.append((name, int(label), landmark))
    return items


# --- fixtures ----------------------------------------------------------------------------------

def _folds_from_labels(shared: Path, work: Path, scheme: str):
    return run("ckplus", "folds", work, root=shared / "reference/ckplus_emotion_tree",
               scheme=scheme)


@pytest.fixture(scope="module")
def ckplus_work(shared: Path, tmp_path_factory) -> Path:
    """Real `ckplus align --include-unlabelled` (MediaPipe) on the shared CK+ plus one
    unlabelled sequence (a copy of S052/001's frames as S052/009), then folds (FMPN, k = 5)."""
    source = shared / "data/ckplus"
    root = tmp_path_factory.mktemp("ckplus")
    (root / "Emotion").symlink_to(source / "Emotion")
    for sequence in sorted(source.glob("cohn-kanade-images/S*/*")):
        target = root / sequence.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(sequence)
    unlabelled = root / "cohn-kanade-images/S052/009"
    unlabelled.mkdir()
    for frame in sorted((source / "cohn-kanade-images/S052/001").iterdir()):
        shutil.copy(frame, unlabelled / frame.name.replace("S052_001", "S052_009"))
    work = tmp_path_factory.mktemp("work")
    aligned = run("ckplus", "align", work, root=root, include_unlabelled=True, jobs=2)
    assert aligned.record["params"]["backend"] == "mediapipe"  # the default preset's
    assert aligned.counts.get("ok", 0) > 0
    run("ckplus", "folds", work, scheme="fmpn", k=K)
    return work


#: what CK+ exports to (mafer: MAFER's Oulu-CASIA folder takes any faces of its six classes)
CKPLUS_EXPORTS = ("emotion-fan", "fmpn", "hf", "imagefolder", "landmark-driven", "mafer")


@pytest.fixture(scope="module")
def exported(ckplus_work: Path, tmp_path_factory) -> dict[str, tuple[Path, object]]:
    """Every export that takes CK+, written from the real CK+ faces (FMPN's loader would fail
    on this 5-subject copy's empty folds: written anyway)."""
    out = tmp_path_factory.mktemp("out")
    return {name: (out / name, export(name, "ckplus", ckplus_work, out / name,
                                      allow_empty=True)) for name in CKPLUS_EXPORTS}


def test_the_other_exports_refuse_ckplus_by_name(ckplus_work: Path, tmp_path: Path) -> None:
    for name in sorted(set(EXPORTS.names()) - set(CKPLUS_EXPORTS)):
        with pytest.raises(FerPrepError, match="ckplus"):
            export(name, "ckplus", ckplus_work, tmp_path / name)


def _faces(work: Path) -> pd.DataFrame:
    table = read_manifest(work / "ckplus/folds")
    return table[table["status"] == "ok"]


# --- the seeds' shipped files, reproduced --------------------------------------------------------

def test_fmpn_lists_are_the_seeds_byte_for_byte(shared: Path, tmp_path: Path) -> None:
    _folds_from_labels(shared, tmp_path / "work", "fmpn")
    result = export("fmpn", "ckplus", tmp_path / "work", tmp_path / "CKPlus")
    ref = shared / "reference/fmpn/CKPlus"
    for k in range(10):
        for part in ("train", "test"):
            name = f"{part}_ids_{k}.csv"
            assert (tmp_path / "CKPlus" / name).read_bytes() == (ref / name).read_bytes(), name
    assert not (tmp_path / "CKPlus/imgs").exists()  # no faces: lists and labels only
    assert any("imgs/ not written" in n for n in result.notes)
    assert any("imgs_res/ not written" in n for n in result.notes)
    assert result.counts["lists"] == 20


def test_fmpn_labels_load_to_the_seeds(shared: Path, tmp_path: Path) -> None:
    """The seed's pickle holds floats for labelled sequences and −1 for unlabelled ones; the
    label tree has only the 327 labelled ones, which must come back exactly, as floats."""
    _folds_from_labels(shared, tmp_path / "work", "fmpn")
    export("fmpn", "ckplus", tmp_path / "work", tmp_path / "CKPlus")
    with open(tmp_path / "CKPlus/emotion_labels.pkl", "rb") as f:
        ours = pickle.load(f, encoding="latin1")
    ref = pd.read_csv(shared / "reference/fmpn/CKPlus/emotion_labels.csv", dtype=str)
    assert len(ref) == 582 and (ref["label"] == "-1").sum() == 255  # the seed keeps unlabelled
    labelled = {s: float(v) for s, v in zip(ref["sequence"], ref["label"], strict=True)
                if v != "-1"}
    assert ours == labelled
    assert {type(v) for v in ours.values()} == {float}
    assert all(type(k) is str for k in ours)


def test_emotion_fan_ckplus_list_is_the_seeds(shared: Path, tmp_path: Path) -> None:
    _folds_from_labels(shared, tmp_path / "work", "emotion-fan")
    export("emotion-fan", "ckplus", tmp_path / "work", tmp_path / "data")
    ours = (tmp_path / "data" / EFAN_LIST).read_text()
    ref = (shared / "reference/emotion_fan" / Path(EFAN_LIST).name).read_text()
    assert ours == ref
    parsed = {}
    for text in (ours, ref):  # headers: `K-fold N Word n …`, N lines follow, counts add up
        lines, fold_lines = text.splitlines(), {}
        for i, line in enumerate(lines):
            if line.split()[0].endswith("-fold"):
                head = line.split()
                body = lines[i + 1 : i + 1 + int(head[1])]
                counts = dict(zip(head[2::2], map(int, head[3::2]), strict=True))
                assert pd.Series([b.split()[1] for b in body]).value_counts().to_dict() == counts
                fold_lines[head[0]] = body
        parsed[text is ours] = fold_lines
    assert parsed[True] == parsed[False] and len(parsed[True]) == 10


# --- end to end from real faces, read as each seed reads them ------------------------------------

def test_fmpn_export_reads_as_fmpn_reads_it(exported, ckplus_work: Path, shared: Path) -> None:
    root, result = exported["fmpn"]
    faces = _faces(ckplus_work)
    peaks = faces[faces["role"] == "peak"]
    names = set()
    for k in range(K):
        fold, train = fmpn_reads(root, f"train_ids_{k}.csv")
        _, test = fmpn_reads(root, f"test_ids_{k}.csv")
        assert fold == str(k)
        expected = peaks[peaks["fold"] == k]
        assert sorted(p.stem for p, _ in test) == sorted(expected["sample_id"])
        assert len(train) + len(test) == len(peaks)
        by_id = dict(zip(peaks["sample_id"], peaks["label_code"], strict=True))
        assert all(cls == by_id[p.stem] - 1 for p, cls in train + test)  # CK+ code − 1
        assert {p.parent.name for p, _ in train + test} == {"imgs"}
        names |= {p.name for p, _ in train + test}
    assert sorted(os.listdir(root / "imgs")) == sorted(names)
    chip = ckplus_work / "ckplus/align" / peaks["face_path"].iloc[0]
    assert os.path.samefile(root / "imgs" / Path(chip).name, chip)  # a hard link, no copy
    assert result.counts["faces"] == len(peaks) and result.placed == {"hard links": len(peaks)}
    with open(root / "emotion_labels.pkl", "rb") as f:
        table = pickle.load(f, encoding="latin1")
    codes = {path.parts[-3] + "_" + path.parts[-2]: float(path.read_text())
             for path in (shared / "data/ckplus/Emotion").glob("S*/*/*_emotion.txt")}
    assert table == {**codes, "S052_009": -1}  # unlabelled: in the pickle, in no list
    assert type(table["S052_009"]) is int and {type(table[s]) for s in codes} == {float}


def test_emotion_fan_export_reads_as_emotion_fan_reads_it(exported, ckplus_work: Path) -> None:
    root, _ = exported["emotion-fan"]
    faces = _faces(ckplus_work)
    words = {v: k for k, v in CATE2LABEL["CK+"].items()}
    canonical = {"Angry": "anger", "Contempt": "contempt", "Disgust": "disgust", "Fear": "fear",
                 "Happy": "happiness", "Sad": "sadness", "Surprise": "surprise"}
    seen = set()
    for fold in range(1, K + 1):
        test = emotion_fan_ckplus_reads(root, fold, "test")
        train = emotion_fan_ckplus_reads(root, fold, "train")
        expected = faces[faces["fold"] == fold - 1]
        assert sorted(Path(p).stem for p, _ in test) == sorted(expected["sample_id"])
        assert len(train) == len(faces) - len(test)
        for path, cls in test:
            row = expected.set_index("sample_id").loc[Path(path).stem]
            assert Path(path).parent.relative_to(root / "face/ck_face").as_posix() == \
                f"{row.subject}/{row.sequence.split('_')[1]}"
            assert canonical[words[cls]] == row.sequence_label
            seen.add(Path(path).stem)
    assert seen == set(faces["sample_id"])


def test_imagefolder_export_reads_as_imagefolder_reads_it(exported, ckplus_work: Path) -> None:
    root, result = exported["imagefolder"]
    faces = _faces(ckplus_work).set_index("sample_id")
    ma_net = {"0": "neutral", "1": "happiness", "2": "sadness", "3": "surprise", "4": "fear",
              "5": "disgust", "6": "anger", "7": "contempt"}
    from torchvision.datasets import ImageFolder  # the seed's own loader

    left_out = 0
    for k in range(K):
        train, test = (ImageFolder(str(root / f"fold_{k}" / part)) for part in ("train", "test"))
        assert train.class_to_idx == test.class_to_idx, k  # the same label for the same index
        listed = {part: pd.read_csv(ckplus_work / f"ckplus/folds/fold_{k}/{part}.csv")
                  for part in ("train", "test")}
        shared = set(listed["train"]["label"]) & set(listed["test"]["label"])
        for part, dataset in (("train", train), ("test", test)):
            kept = listed[part][listed[part]["label"].isin(shared)]
            left_out += len(listed[part]) - len(kept)
            assert sorted(Path(p).stem for p, _ in dataset.samples) == sorted(kept["sample_id"])
            for path, index in dataset.samples:
                assert ma_net[dataset.classes[index]] == faces.loc[Path(path).stem, "label"]
                chip = ckplus_work / "ckplus/align" / faces.loc[Path(path).stem, "face_path"]
                assert os.path.samefile(path, chip)
        written = (root / f"fold_{k}/classes.txt").read_text().split("\n")[:-1]
        assert written == [f"{i} {d} {ma_net[d]}" for d, i in train.class_to_idx.items()]
    assert result.placed == {"hard links": result.counts["files"]}
    assert left_out > 0  # 10 folds of 5 subjects: some fold parts lack a class, said per class
    assert sum("ImageFolder would number" in note for note in result.notes) > 0


def test_hf_export_holds_each_folds_faces_landmarks_and_expression(exported, ckplus_work):
    """A DatasetDict per fold (load_from_disk): each part the folds' rows, each image the chip,
    landmarks in its pixels, MediaPipe's blendshapes and pose as align wrote them."""
    import datasets

    from fer_prep.align import transform_points

    root, result = exported["hf"]
    faces = read_manifest(ckplus_work / "ckplus/align").set_index("sample_id")
    assert result.counts["folds"] == K
    for k in range(K):
        fold = datasets.load_from_disk(str(root / f"fold_{k}"))
        assert set(fold) == {"train", "test"}  # CK+ has no validation split
        names = fold["train"].features["label"].names
        for part in ("train", "test"):
            listed = pd.read_csv(ckplus_work / f"ckplus/folds/fold_{k}/{part}.csv")
            assert sorted(fold[part]["sample_id"]) == sorted(listed["sample_id"])
        for row in fold["test"]:
            face = faces.loc[row["sample_id"]]
            assert names[row["label"]] == face["label"]
            chip = cv2.imread(str(ckplus_work / "ckplus/align" / face["face_path"]))
            assert np.array_equal(np.asarray(row["image"].convert("RGB"))[..., ::-1], chip)
            points = transform_points(np.reshape(face["landmarks68"], (68, 2)),
                                      np.reshape(face["matrix"], (2, 3)))
            assert np.allclose(row["landmarks"], points, atol=1e-3)
            assert np.allclose(row["blendshapes"], face["blendshapes"], atol=1e-6)
            assert abs(row["yaw"] - face["yaw"]) < 1e-3 and abs(row["roll"] - face["roll"]) < 1e-3


def test_landmark_driven_export_reads_as_the_seed_reads_it(exported, ckplus_work, monkeypatch):
    root, _ = exported["landmark-driven"]
    faces = _faces(ckplus_work)
    fer2013 = {"anger": 0, "disgust": 1, "fear": 2, "happiness": 3, "sadness": 4,
               "surprise": 5, "neutral": 6}
    target = TEMPLATES.get("eyes").eye_centres(224, 0.25)
    target = (target + 0.5) * 48 / 224 - 0.5
    monkeypatch.chdir(root)  # the seed's lists are relative to where it runs
    for k in range(K):
        for part, which in (("train", "train"), ("validation", "test")):
            items = landmark_driven_reads(f"fold_{k}/{part}_images.txt",
                                          f"fold_{k}/{part}_labels.txt", 48)
            listed = pd.read_csv(ckplus_work / f"ckplus/folds/fold_{k}/{which}.csv")
            assert sorted(Path(n).stem for n, _, _ in items) == sorted(listed["sample_id"])
            for name, label, landmark in items:
                assert label == fer2013[faces.set_index("sample_id").loc[Path(name).stem,
                                                                         "label"]]
                eyes = np.stack([landmark[36:42].mean(0), landmark[42:48].mean(0)])
                assert np.abs(eyes - target).max() <= 0.5, name  # in the 48-pixel image
                assert len(Path(name[:-3] + "txt").read_text().splitlines()) == 136


def test_landmarks_follow_the_resize() -> None:
    """A dot at a chip point lands, after cv2.resize, where chip_points puts it."""
    chip = np.zeros((224, 224), np.uint8)
    cv2.circle(chip, (150, 70), 9, 255, -1)
    small = cv2.resize(chip, (48, 48), interpolation=cv2.INTER_AREA).astype(float)
    ys, xs = np.mgrid[:48, :48]
    centroid = np.array([(xs * small).sum(), (ys * small).sum()]) / small.sum()
    points = np.tile([150.0, 70.0], (68, 1))
    mapped = chip_points(points.ravel(), [1, 0, 0, 0, 1, 0], 224, 48)
    assert np.abs(mapped[0] - centroid).max() <= 0.05, (mapped[0], centroid)


def test_afew_export_reads_as_emotion_fan_reads_it(shared: Path, tmp_path: Path) -> None:
    """Official split: Train → afew_train.txt, Val → afew_eval.txt; a clip with no face or with
    white space in its name (which the seed's lists split on) is left out, the latter named."""
    root = tmp_path / "afew"
    media = shared / "data/media"
    for rel, src in {"Train_AFEW/Neutral/single_face.mp4": "single_face.mp4",
                     "Val_AFEW/Sad/face_noface.mov": "face_noface.mov",
                     "Val_AFEW/Angry/clip with spaces.mp4": "single_face.mp4",
                     "Val_AFEW/Neutral/no_face.mp4": "no_face.mp4"}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(media / src, root / rel)
    work = tmp_path / "work"
    run("afew", "align-video", work, root=root, from_video=True, fps=4, jobs=2)
    run("afew", "folds", work, scheme="official")
    result = export("emotion-fan", "afew", work, tmp_path / "data")
    data = tmp_path / "data"
    train = emotion_fan_afew_reads(data / "face/train_afew", data / "txt/afew_train.txt")
    val = emotion_fan_afew_reads(data / "face/val_afew", data / "txt/afew_eval.txt")
    assert (data / "txt/afew_train.txt").read_text() == "Neutral/single_face Neutral\n"
    assert (data / "txt/afew_eval.txt").read_text() == "Sad/face_noface Sad\n"
    rows = read_manifest(work / "afew/folds")
    ok = rows[rows["status"] == "ok"]
    assert len(train) == (ok["sequence"] == "train_single_face").sum()
    assert len(val) == (ok["sequence"] == "val_face_noface").sum() > 0
    assert {c for _, c in train} == {5} and {c for _, c in val} == {4}  # Neutral, Sad
    assert Path(train[0][0]).name == "0000001.jpg"  # the default preset's video chips: JPEG
    assert any("val_clip with spaces" in m for m in result.skipped)


# --- behaviour: missing faces, --out protection, the CLI --------------------------------------

def test_a_missing_face_is_named_and_align_brings_it_back(ckplus_work: Path,
                                                           tmp_path: Path) -> None:
    """A chip deleted from the align folder: the export is one Error: line naming it and the
    command that makes it again; after that command, the export has every face."""
    work = tmp_path / "work"
    shutil.copytree(ckplus_work, work)
    faces = _faces(work)
    gone = work / "ckplus/align" / faces.iloc[0]["face_path"]
    gone.unlink()
    args = ["export", "imagefolder", "--dataset", "ckplus", "--work", str(work), "--out",
            str(tmp_path / "out"), "--copy"]
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 1 and out.output.strip().splitlines() == [
        f"Error: {gone}: missing; run `fer-prep ckplus align`"], out.output
    assert not (tmp_path / "out").exists()
    record = read_record(work / "ckplus/align")
    again = run("ckplus", "align", work, root=record["root"], include_unlabelled=True, jobs=2)
    assert again.computed == 1 and gone.stat().st_size > 0  # its sequence aligned again
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 0, out.output
    files = {p.stem for p in (tmp_path / "out").rglob("*.png")}
    expected = set()  # per fold, the classes both parts share (see the imagefolder test)
    for k in range(K):
        parts = [pd.read_csv(work / f"ckplus/folds/fold_{k}/{p}.csv") for p in ("train", "test")]
        shared = set(parts[0]["label"]) & set(parts[1]["label"])
        expected |= {s for part in parts for s in part.loc[part["label"].isin(shared),
                                                           "sample_id"]}
    assert files == expected and "0 skipped" in out.output


def test_out_with_other_files_is_refused_unless_forced(shared: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    _folds_from_labels(shared, work, "fmpn")
    out = tmp_path / "CKPlus"
    out.mkdir()
    (out / "bbox_landmark_mtcnn.pkl").write_bytes(b"the user's")
    with pytest.raises(InputError, match=r"bbox_landmark_mtcnn\.pkl"):
        export("fmpn", "ckplus", work, out)
    assert sorted(os.listdir(out)) == ["bbox_landmark_mtcnn.pkl"]  # nothing written
    export("fmpn", "ckplus", work, out, force=True)
    assert (out / "bbox_landmark_mtcnn.pkl").read_bytes() == b"the user's"
    assert (out / "train_ids_9.csv").is_file() and (out / MARKER).is_file()

    with pytest.raises(InputError):  # still the user's file beside ours
        export("fmpn", "ckplus", work, out)

    run("ckplus", "folds", work, root=shared / "reference/ckplus_emotion_tree", scheme="fmpn",
        k=5)
    export("fmpn", "ckplus", work, out, force=True)  # our stale lists go, the user's file stays
    assert not (out / "train_ids_9.csv").exists() and (out / "train_ids_4.csv").is_file()
    assert (out / "bbox_landmark_mtcnn.pkl").read_bytes() == b"the user's"
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]  # no staging left behind


def test_an_earlier_export_is_replaced_without_force(shared: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    _folds_from_labels(shared, work, "emotion-fan")
    export("emotion-fan", "ckplus", work, tmp_path / "out")
    with pytest.raises(InputError):  # another format's export is not ours to replace
        export("fmpn", "ckplus", work, tmp_path / "out")
    record = read_record(work / "ckplus/folds")
    write_record(work / "ckplus/folds", {**record, "stale": True})  # as a re-run align leaves it
    with pytest.raises(StageNotReady, match=r"folds: stale.*`fer-prep folds --dataset ckplus`"):
        export("emotion-fan", "ckplus", work, tmp_path / "out")  # stale folds are not exported
    write_record(work / "ckplus/folds", record)
    (tmp_path / ".out.tmp-99999/txt").mkdir(parents=True)  # as a killed export leaves them
    (tmp_path / "out/.fer-prep-export.tmp-99999.json").write_text("{")
    export("emotion-fan", "ckplus", work, tmp_path / "out")  # only an export's files
    assert sorted(os.listdir(tmp_path / "out")) == [MARKER, "txt"]
    assert sorted(os.listdir(tmp_path)) == ["out", "work"]


def test_cli_export_prints_a_summary_and_checks_its_options(shared: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    _folds_from_labels(shared, work, "emotion-fan")
    runner = CliRunner()
    args = ["--dataset", "ckplus", "--work", str(work), "--out", str(tmp_path / "out")]
    result = runner.invoke(main, ["export", "emotion-fan", *args])
    assert result.exit_code == 0, result.output
    assert "export emotion-fan ckplus: 327 sequences listed; 0 skipped" in result.output
    result = runner.invoke(main, ["export", "fmpn", "--size", "48", *args, "--force"])
    # a usage mistake is a one-line error, exit 1, as every user mistake (2 is kept for bugs)
    assert result.exit_code == 1 and "Error: --size applies to landmark-driven only" in \
        result.output and "Traceback" not in result.output
    result = runner.invoke(main, ["export", "imagefolder", *args, "--force"])
    assert result.exit_code == 1 and "needs faces" in result.output
    result = runner.invoke(main, ["export", "fmpn", "--dataset", "afew", "--work", str(work),
                                  "--out", str(tmp_path / "o2")])
    assert result.exit_code == 1 and "fer-prep folds --dataset afew" in result.output


@pytest.mark.parametrize("name", CKPLUS_EXPORTS)
def test_every_export_records_what_it_wrote(exported, name: str) -> None:
    import json

    root, result = exported[name]
    marker = json.loads((root / MARKER).read_text())
    assert marker["format"] == name and marker["folds"] == list(range(K))
    assert set(marker["entries"]) == set(os.listdir(root)) - {MARKER}
    assert result.skipped == [] and f"export {name} ckplus:" in result.summary()


def test_fmpn_codes_are_ckplus_own() -> None:
    """FMPN's pickle codes (mask class + 1) are CK+'s own Emotion codes, neutral (0) aside."""
    codes = seed_codes(get_dataset("ckplus"))
    assert {v: k for k, v in codes.items()} == {c: label for c, label in CODES.items() if c}
    with pytest.raises(InputError, match="no FMPN class order"):
        seed_codes(get_dataset("afew"))


def test_a_users_file_inside_an_export_folder_stays(ckplus_work: Path, tmp_path: Path) -> None:
    out = tmp_path / "CKPlus"
    export("fmpn", "ckplus", ckplus_work, out)
    mine = out / "imgs" / "my_own_face.png"
    mine.write_bytes(b"the user's")
    export("fmpn", "ckplus", ckplus_work, out)  # imgs/ is the export's: no --force needed
    export("fmpn", "ckplus", ckplus_work, out, force=True)
    assert mine.read_bytes() == b"the user's"
    written = {p.name for p in (out / "imgs").iterdir()}
    assert len(written) == 1 + sum(1 for _ in (out / "imgs").glob("S*.png"))


def test_a_fold_without_test_sequences_is_refused_unless_allowed(shared: Path,
                                                                 tmp_path: Path) -> None:
    """The 5 shared subjects in Emotion-FAN's published 10 folds: the folds of the other subjects
    are empty here, and its loader fails on an `N-fold 0` header."""
    work = tmp_path / "work"
    root = tmp_path / "ck"
    shutil.copytree(shared / "data/ckplus/Emotion", root / "Emotion")
    run("ckplus", "folds", work, root=root, split="ckplus-emotion-fan-10fold-v1")
    result = CliRunner().invoke(main, ["export", "emotion-fan", "--dataset", "ckplus", "--work",
                                       str(work), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and "has no test sequence" in result.output
    assert "--allow-empty" in result.output and not (tmp_path / "out").exists()
    allowed = export("emotion-fan", "ckplus", work, tmp_path / "out", allow_empty=True)
    listed = (tmp_path / "out" / CKPLUS_LIST).read_text().splitlines()
    empty = [line for line in listed if line.endswith("-fold 0")]
    assert empty and len(empty) == sum("has no test sequence" in n for n in allowed.notes)
