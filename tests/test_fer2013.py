"""FER2013 and FER+ from their own files (../shared/data/fer2013: the first 400 rows of
fer2013.csv, and FER+'s fer2013new.csv for all 35,887 rows): every row an image and a row, the
pixels and labels as the CSV has them, the re-release and Kaggle layouts, bad rows, the checked
join of FER+ and its label modes, faces on 48-px images, and Landmark-Driven FER's export."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from fer_prep.cli import main
from fer_prep.datasets import get_dataset
from fer_prep.errors import InputError
from fer_prep.exports import export
from fer_prep.ferplus_votes import label, target
from fer_prep.manifest import read_manifest
from fer_prep.runner import run

CODES = {0: "anger", 1: "disgust", 2: "fear", 3: "happiness", 4: "sadness", 5: "surprise",
         6: "neutral"}


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as fh:
        return list(csv.reader(fh))[1:]


@pytest.fixture(scope="module")
def fer(shared: Path) -> Path:
    return shared / "data/fer2013"


@pytest.fixture(scope="module")
def aligned(fer: Path, tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("work")
    run("fer2013", "align", work, root=fer, jobs=2)
    return work


def test_every_row_is_an_image_with_the_csvs_pixels_label_and_split(fer, aligned) -> None:
    rows = _rows(fer / "fer2013.csv")
    faces = read_manifest(aligned / "fer2013/align")
    assert len(faces) == len(rows) == 400 and (faces["status"] == "ok").all()
    assert (faces["detector"] == "whole-image+dlib68").all()  # the given path, every face
    for i, (code, pixels, usage) in enumerate(rows):
        face = faces.iloc[i]
        assert face.sample_id == f"fer{i:07d}" and face.source_line == i + 2
        assert face.label == CODES[int(code)] and face.label_code == int(code)
        assert face.split == usage
        chip = cv2.imread(str(aligned / "fer2013/align" / face.face_path), cv2.IMREAD_UNCHANGED)
        assert chip.shape == (48, 48)  # the 48-px face as it is, not resampled
        assert (chip == np.array(pixels.split(), np.uint8).reshape(48, 48)).all(), i
        assert np.asarray(face.landmarks68).shape == (136,)


def test_the_rerelease_and_kaggles_layouts_read_the_same_rows(fer, tmp_path) -> None:
    rows = _rows(fer / "fer2013.csv")[:30]
    icml = tmp_path / "icml"
    icml.mkdir()
    with open(icml / "icml_face_data.csv", "w", newline="") as fh:
        fh.write("emotion, Usage, pixels\n")
        csv.writer(fh, lineterminator="\n").writerows([[c, u, p] for c, p, u in rows])
    kaggle = tmp_path / "kaggle"
    kaggle.mkdir()
    with open(kaggle / "train.csv", "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows([["emotion", "pixels"],
                                                      *[[c, p] for c, p, _ in rows[:20]]])
    with open(kaggle / "test.csv", "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows([["pixels"], *[[p] for _, p, _ in
                                                                     rows[20:]]])
    ds = get_dataset("fer2013")
    original = ds.read(fer, ds.options())[:30]
    rerelease = ds.read(icml, ds.options())
    assert [(i["label"], i["split"], i["content"] is not None) for i in rerelease] == [
        (i["label"], i["split"], True) for i in original]
    assert all((ds.load_image(a) == ds.load_image(b)).all() for a, b in zip(original, rerelease,
                                                                             strict=True))
    both = ds.read(kaggle, ds.options())
    assert [i["sample_id"] for i in both] == [*(f"train{i:07d}" for i in range(20)),
                                             *(f"test{i:07d}" for i in range(10))]
    assert {i["split"] for i in both[:20]} == {"Training"}
    assert all(i["label"] is None and i["split"] == "Test" for i in both[20:])
    assert (ds.load_image(both[25]) == ds.load_image(original[25])).all()


def test_bad_rows_are_rows_naming_the_file_and_line(fer, tmp_path) -> None:
    rows = _rows(fer / "fer2013.csv")[:12]
    rows[2][1] = " ".join(rows[2][1].split()[:-1])  # 2,303 values
    rows[4][1] = " ".join(["x", *rows[4][1].split()[1:]])  # a value that is no number
    rows[6][0] = "7"  # not a FER2013 code
    rows[8][1] = " ".join(["300", *rows[8][1].split()[1:]])  # above 255
    root = tmp_path / "bad"
    root.mkdir()
    with open(root / "fer2013.csv", "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows([["emotion", "pixels", "Usage"], *rows])
    result = CliRunner().invoke(main, ["fer2013", "align", "--root", str(root), "--work",
                                       str(tmp_path / "work"), "--jobs", "1"])
    assert result.exit_code == 0, result.output
    faces = read_manifest(tmp_path / "work/fer2013/align").set_index("sample_id")
    csv_path = root / "fer2013.csv"
    expected = {"fer0000002": ("bad_pixels", f"{csv_path}:4: 2303 pixel values"),
                "fer0000004": ("bad_pixels", f"{csv_path}:6: pixel value 'x' is not a number"),
                "fer0000006": ("bad_label", f"{csv_path}:8: emotion '7'"),
                "fer0000008": ("unreadable", f"{csv_path}:10: pixel value 300 is above 255")}
    for sample_id, (status, message) in expected.items():
        assert faces.loc[sample_id, "status"] == status, sample_id
        assert faces.loc[sample_id, "message"].startswith(message), faces.loc[sample_id]
        assert message.split(": ")[0] in result.output  # said on the console, file and line
    assert (faces.drop(index=list(expected))["status"] == "ok").all()


def test_faces_on_48_px_images_with_a_detector_with_and_without_upscaling(fer, tmp_path):
    """MediaPipe detection on 48-px faces (the counts go in the README) next to the given box."""
    counts = {}
    for label_, extra in (("plain", {}), ("upscaled", {"upscale": 192})):
        result = run("fer2013", "align", tmp_path / label_, root=fer, backend="mediapipe",
                     template="eyes", jobs=2, **extra)
        assert sum(result.counts.values()) == 400  # a face never dropped: a row either way
        counts[label_] = result.counts.get("ok", 0)
        faces = read_manifest(result.folder)
        if extra:
            assert faces.loc[faces.status == "ok", "detector"].str.endswith("+upscale×4").all()
    assert 0 < counts["plain"] < 400 and 0 < counts["upscaled"] < 400, counts


def test_ferplus_is_joined_by_row_and_checked_by_usage(fer, tmp_path) -> None:
    votes = _rows(fer / "fer2013new.csv")
    result = run("ferplus", "align", tmp_path / "work", root=fer, jobs=2, first_row=0)
    faces = read_manifest(result.folder)
    assert len(faces) == 400
    for i, face in enumerate(faces.itertuples()):
        usage, name, *counts = votes[i]
        assert face.split == usage and list(face.votes) == [int(c) for c in counts]
        dist, why = target([int(c) for c in counts], "majority", usage == "Training")
        if not name:
            assert face.status == "dropped" and face.message.endswith("leaves the row out)")
        elif dist is None:
            assert face.status == "dropped" and face.message.endswith(f"majority: {why}")
        else:
            assert face.status == "ok" and face.label == label(dist)
            assert face.ferplus_name == name and np.allclose(face.target, dist)

    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.copy(fer / "fer2013.csv", moved)
    text = (fer / "fer2013new.csv").read_text().splitlines()
    text[11] = text[11].replace("Training", "PublicTest", 1)  # row 11 in another split
    (moved / "fer2013new.csv").write_text("\n".join(text) + "\n")
    with pytest.raises(InputError, match=r"fer2013new.csv:12: Usage 'PublicTest'.*not in the "
                       "same order"):
        run("ferplus", "align", tmp_path / "w2", root=moved, first_row=0)


@pytest.mark.parametrize("mode", ["majority", "probability", "crossentropy", "multi_target"])
def test_ferplus_label_modes(fer, tmp_path, mode: str) -> None:
    result = run("ferplus", "align", tmp_path, root=fer, label_mode=mode, jobs=2, first_row=0)
    faces = read_manifest(result.folder)
    kept = faces[faces.status == "ok"]
    expected = [target([int(c) for c in r[2:]], mode, r[0] == "Training")
                for r in _rows(fer / "fer2013new.csv")[:400]]
    names = [r[1] for r in _rows(fer / "fer2013new.csv")[:400]]
    assert len(kept) == sum(d is not None and bool(n) for (d, _), n in
                            zip(expected, names, strict=True))
    assert pd.Series([len(t) for t in kept.target]).eq(8).all()


def test_fer2013_folds_and_landmark_driven_export(aligned, tmp_path) -> None:
    folds = run("fer2013", "folds", aligned)
    assert folds.record["params"]["scheme"] == "official"  # FER2013's own split by default
    out = tmp_path / "ldfer"
    # these 400 rows are all Training: the official test part is empty, and the seed's
    # validation() divides by its length
    with pytest.raises(InputError, match=r"fold_0/validation_images\.txt lists no image"):
        export("landmark-driven", "fer2013", aligned, out)
    assert not out.exists()
    result = export("landmark-driven", "fer2013", aligned, out, allow_empty=True)
    assert any("--allow-empty" in note for note in result.notes)
    assert (out / "fold_0/validation_images.txt").read_text() == ""
    assert result.counts["images"] == 400
    listed = (out / "fold_0/train_images.txt").read_text().split()
    labels = np.loadtxt(out / "fold_0/train_labels.txt")
    assert len(listed) == len(labels) == 400  # every row is Training in these 400
    for path in listed[:20]:  # as datagen.py reads them
        image = cv2.imread(str(out / path), cv2.IMREAD_GRAYSCALE)
        points = np.loadtxt(str(out / path)[:-3] + "txt").reshape(68, 2)
        assert image.shape == (48, 48) and ((points > -5) & (points < 53)).all()


KAGGLE = {"train": ("angry", "happy", "surprise"), "test": ("sad", "neutral")}


@pytest.fixture(scope="module")
def kaggle(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Kaggle's image layout from the shared copy: 4 faces of 3 training classes, 4 of 2 test
    classes of which 2 renamed PrivateTest_<n> (the shared copy keeps that part back), both of
    the two training names that Kaggle gives two faces of two classes, a file of another
    name and a folder that is no class."""
    src = shared / "data/fer2013_kaggle"
    root = tmp_path_factory.mktemp("kaggle") / "fer2013"
    for part, classes in KAGGLE.items():
        for name in classes:
            (root / part / name).mkdir(parents=True)
            for i, f in enumerate(sorted((src / part / name).glob("*.jpg"))[:4]):
                stem = f.stem.replace("PublicTest", "PrivateTest") if i >= 2 else f.stem
                shutil.copy(f, root / part / name / f"{stem}.jpg")
    for folder in ("angry", "surprise"):
        (root / "train" / folder).mkdir(exist_ok=True)
        shutil.copy(src / "train" / folder / "Training_8475486.jpg", root / "train" / folder)
    (root / "train/happy/notes.jpg").write_bytes(b"not a face")
    (root / "train/contempt").mkdir()
    shutil.copy(next((src / "train/happy").glob("*.jpg")), root / "train/contempt/Training_1.jpg")
    return root


def test_kaggles_image_download_is_read_with_its_splits(kaggle: Path) -> None:
    ds = get_dataset("fer2013")
    items = {i["sample_id"]: i for i in ds.read(kaggle, ds.options())}
    ok = [i for i in items.values() if i["status"] == "ok"]
    assert {i["split"] for i in ok} == {"Training", "PublicTest", "PrivateTest"}
    assert all(i["sample_id"].split("_")[0] == i["split"] for i in ok)
    assert sum(i["split"] == "PrivateTest" for i in ok) == 4
    assert {i["label"] for i in ok} == {"anger", "happiness", "surprise", "sadness", "neutral"}
    sad = next(i for i in ok if "/sad/" in i["source_path"])
    assert sad["label_code"] == 4 and sad["label"] == "sadness"
    assert items["Training_8475486_angry"]["label"] == "anger"  # one name, two faces
    assert items["Training_8475486_surprise"]["label"] == "surprise"
    assert items["notes"]["status"] == "bad_name" and "notes.jpg" in items["notes"]["message"]
    assert items["Training_1"]["status"] == "bad_label"
    assert "'contempt'" in items["Training_1"]["message"]


def test_kaggles_images_align_fold_officially_and_refuse_ferplus(kaggle: Path,
                                                                tmp_path: Path) -> None:
    """The CSV's defaults (given, whole, grey): each chip is the JPEG's own 48 px; the
    official folds test on PrivateTest; FER+ is one line saying why it cannot join them."""
    from fer_prep.images import read_image

    work = tmp_path / "work"
    result = CliRunner().invoke(main, ["fer2013", "align", "--root", str(kaggle), "--work",
                                       str(work), "--jobs", "1"])
    assert result.exit_code == 0, result.output
    faces = read_manifest(work / "fer2013/align")
    ok = faces[faces["status"] == "ok"]
    assert len(ok) == 22 and (ok["backend"] == "given").all()
    for _, row in ok.head(4).iterrows():
        chip = read_image(work / "fer2013/align" / row["face_path"])
        assert chip.shape == (48, 48)
        assert np.abs(chip.astype(int) - cv2.imread(row["source_path"], 0)).max() <= 1
    folds = run("fer2013", "folds", work)
    assert folds.record["params"]["scheme"] == "official"
    table = read_manifest(folds.folder)
    test = table[(table["status"] == "ok") & (table["fold"] == 0)]
    assert set(test["split"]) == {"PrivateTest"} and len(test) == 4
    result = CliRunner().invoke(main, ["ferplus", "align", "--root", str(kaggle), "--work",
                                       str(tmp_path / "fp")])
    assert result.exit_code == 1 and "FER+ cannot be joined to them" in result.output
    assert "Traceback" not in result.output


def test_the_shared_kaggle_copy_is_read_whole(shared: Path) -> None:
    ds = get_dataset("fer2013")
    items = ds.read(shared / "data/fer2013_kaggle", ds.options())
    splits = pd.Series([i["split"] for i in items]).value_counts().to_dict()
    assert len(items) == 32_298 and splits == {"Training": 28_709, "PublicTest": 3_589}
    assert all(i["status"] == "ok" for i in items)
    assert len({i["sample_id"] for i in items}) == 32_298


def test_a_partial_fer2013_csv_joins_ferplus_only_from_its_place(fer, tmp_path) -> None:
    """Rows 100–299 of the full file: without --first-row FER+ is refused in one line; with it
    the ids are the full file's row numbers and each row gets its own votes (the FER+ majority
    agrees with FER2013's label about as often as on the whole 400; joined from row 0 it
    would not)."""
    lines = (fer / "fer2013.csv").read_text().splitlines()
    cut = tmp_path / "cut"
    cut.mkdir()
    (cut / "fer2013.csv").write_text("\n".join([lines[0], *lines[101:301]]) + "\n")
    shutil.copy(fer / "fer2013new.csv", cut)
    result = CliRunner().invoke(main, ["ferplus", "align", "--root", str(cut), "--work",
                                       str(tmp_path / "w0")])
    assert result.exit_code == 1 and "--first-row N" in result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output

    def agreement(first: int) -> tuple[float, list[str]]:
        items = get_dataset("ferplus").read(cut, get_dataset("ferplus").options(first_row=first))
        own = {i["sample_id"]: i["label_code"] for i in
               get_dataset("fer2013").read(cut, get_dataset("fer2013").options(first_row=first))}
        fer_names = {0: "anger", 1: "disgust", 2: "fear", 3: "happiness", 4: "sadness",
                     5: "surprise", 6: "neutral"}
        ok = [i for i in items if i["status"] == "ok"]
        same = sum(i["label"] == fer_names[own[i["sample_id"]]] for i in ok)
        return same / len(ok), [i["sample_id"] for i in items]

    right, ids = agreement(100)
    wrong, _ = agreement(0)
    assert ids[0] == "fer0000100" and ids[-1] == "fer0000299"
    assert right > 0.5 and wrong < 0.3, (right, wrong)
    faces = read_manifest(run("fer2013", "align", tmp_path / "w1", root=cut, first_row=100)
                          .folder)
    assert faces["sample_id"].iloc[0] == "fer0000100"


def test_hf_export_is_a_datasetdict_per_fold_with_publictest_as_validation(
        kaggle: Path, tmp_path: Path) -> None:
    """`export hf` on Kaggle's images: train (Training), test (PrivateTest) and validation
    (PublicTest), read back by `datasets.load_from_disk` and through a torch DataLoader; every
    image the chip's own pixels, every label the manifest's."""
    import datasets
    import torch

    work, out = tmp_path / "work", tmp_path / "hf"
    run("fer2013", "align", work, root=kaggle, jobs=1)
    run("fer2013", "folds", work)
    result = CliRunner().invoke(main, ["export", "hf", "--dataset", "fer2013", "--work",
                                       str(work), "--out", str(out)])
    assert result.exit_code == 0, result.output
    moved = tmp_path / "moved"
    out.rename(moved)  # the images are inside: the export reads the same anywhere
    shutil.rmtree(work / "fer2013/align/faces")
    fold = datasets.load_from_disk(str(moved / "fold_0"))
    assert set(fold) == {"train", "test", "validation"}
    splits = {part: set(fold[part]["split"]) for part in fold}
    assert splits == {"train": {"Training"}, "test": {"PrivateTest"},
                      "validation": {"PublicTest"}}
    folds = read_manifest(work / "fer2013/folds").set_index("sample_id")
    names = fold["train"].features["label"].names
    assert names == ["neutral", "anger", "happiness", "sadness", "surprise"]
    sources = read_manifest(work / "fer2013/align").set_index("sample_id")["source_path"]
    for part in fold.values():
        for row in part:
            assert names[row["label"]] == folds.loc[row["sample_id"], "label"]
            source = sources[row["sample_id"]]  # Kaggle's JPEG
            pixels = np.asarray(row["image"])
            assert pixels.shape == (48, 48)
            assert np.abs(pixels.astype(int) - cv2.imread(str(source), 0)).max() <= 1
            points = np.asarray(row["landmarks"])
            assert points.shape == (68, 2) and (points > -5).all() and (points < 53).all()
    assert len(fold["train"]) + len(fold["test"]) == (folds["status"] == "ok").sum()

    def collate(batch: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
        images = [torch.from_numpy(np.asarray(b["image"]).copy()) for b in batch]
        return torch.stack(images), torch.tensor([b["label"] for b in batch])

    images, labels = next(iter(torch.utils.data.DataLoader(fold["train"], batch_size=4,
                                                           collate_fn=collate)))
    assert images.shape == (4, 48, 48) and images.dtype == torch.uint8 and len(labels) == 4


def _csv_lines(fer: Path, n: int) -> list[bytes]:
    with open(fer / "fer2013.csv", "rb") as fh:
        return [fh.readline() for _ in range(n + 1)]  # the header and n rows


def test_a_gzipped_or_empty_csv_is_one_line_and_nothing_is_written(fer, tmp_path) -> None:
    """The catalogue's fer-5 and fer-9: Kaggle's fer2013.csv still gzip'ed, and one with its
    header only, are each one `Error:` line naming the file, and no manifest is written."""
    import gzip

    lines = _csv_lines(fer, 3)
    cases = {"gz": (gzip.compress(b"".join(lines)), "gzip-compressed, not a CSV"),
             "header": (lines[0], "a header and no rows")}
    for name, (data, message) in cases.items():
        root = tmp_path / name
        root.mkdir()
        (root / "fer2013.csv").write_bytes(data)
        work = tmp_path / f"work-{name}"
        result = CliRunner().invoke(main, ["fer2013", "align", "--root", str(root), "--work",
                                           str(work)])
        assert result.exit_code == 1, result.output
        said = result.output.strip().splitlines()
        assert len(said) == 1 and said[0].startswith(f"Error: {root / 'fer2013.csv'}: {message}")
        assert not (work / "fer2013/align/manifest.parquet").exists()


def test_a_csv_without_usage_says_so_and_folds_names_the_scheme(fer, tmp_path) -> None:
    """fer-11: rows without a Usage column align into split `unknown` with a warning, and the
    official folds refuse them naming the scheme that takes them."""
    root = tmp_path / "fer"
    root.mkdir()
    rows = [line.decode().rstrip("\r\n").rsplit(",", 1)[0] for line in _csv_lines(fer, 6)]
    (root / "fer2013.csv").write_text("\n".join(rows) + "\n")
    work = tmp_path / "work"
    result = CliRunner().invoke(main, ["fer2013", "align", "--root", str(root), "--work",
                                       str(work), "--jobs", "1"])
    assert result.exit_code == 0, result.output
    assert "no Usage column" in result.output and "'unknown'" in result.output
    faces = read_manifest(work / "fer2013/align")
    assert (faces["split"] == "unknown").all() and (faces["status"] == "ok").all()
    assert all(p.startswith("faces/unknown/") for p in faces["face_path"])
    folds = CliRunner().invoke(main, ["folds", "--dataset", "fer2013", "--work", str(work)])
    assert folds.exit_code == 1 and "use --scheme image-kfold" in folds.output
    ok = CliRunner().invoke(main, ["folds", "--dataset", "fer2013", "--work", str(work),
                                   "--scheme", "image-kfold", "--k", "2"])
    assert ok.exit_code == 0, ok.output
