"""Class-folder trees from real faces: the last three frames of every labelled CK+ sequence of
../shared, cropped to the face by dlib and shrunk to 48×48 as CK+48 is, in CK+48's class
folders (anger/, disgust/, happy/ …) under CK+'s frame names; labels from the folder names,
subjects from the file names (--subject-pattern) kept on one side of every fold, --classes over
the common names, numbered folders refused until named, and every bad file a row."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from fer_prep.cli import main
from fer_prep.datasets import get_dataset
from fer_prep.datasets.ckplus import read_ckplus
from fer_prep.errors import FoldError, InputError
from fer_prep.faces import create_backend
from fer_prep.manifest import read_manifest
from fer_prep.runner import run

#: canonical label → CK+48's folder
CK48 = {"anger": "anger", "contempt": "contempt", "disgust": "disgust", "fear": "fear",
        "happiness": "happy", "sadness": "sadness", "surprise": "surprise"}
PATTERN = "^(S[0-9]+)_"
MA_NET = ("neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger")


def write_ck48(shared: Path, out: Path) -> dict[str, dict]:
    """A CK+48 tree of the real CK+ peak frames under `out`; {sample_id: facts}."""
    hog = create_backend("dlib-hog")
    facts = {}
    for item in read_ckplus(shared / "data/ckplus", "peak"):
        frame = cv2.imread(item["source_path"], cv2.IMREAD_GRAYSCALE)
        x, y, w, h = (round(v) for v in hog.faces(frame)[0].detector_box)
        face = cv2.resize(frame[max(y, 0):y + h, max(x, 0):x + w], (48, 48),
                          interpolation=cv2.INTER_AREA)
        folder = out / CK48[item["label"]]
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{item['sample_id']}.png"), face)
        facts[item["sample_id"]] = {"label": item["label"], "subject": item["subject"],
                                    "folder": CK48[item["label"]], "pixels": face}
    return facts


@pytest.fixture(scope="module")
def ck48(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("ck48")
    return root, write_ck48(shared, root)


@pytest.fixture(scope="module")
def aligned(ck48) -> Path:
    """The tree aligned through the CLI, subjects from the file names."""
    root, _ = ck48
    work = root.parent / (root.name + "-work")
    result = CliRunner().invoke(main, ["folders", "align", "--root", str(root), "--work",
                                       str(work), "--subject-pattern", PATTERN, "--jobs", "2"])
    assert result.exit_code == 0, result.output
    return work


def _align(root: Path, work: Path, *args: str):
    return CliRunner().invoke(main, ["folders", "align", "--root", str(root), "--work",
                                     str(work), "--jobs", "1", *args])


def test_labels_from_folders_subjects_from_names_faces_as_cropped(ck48, aligned) -> None:
    _, facts = ck48
    faces = read_manifest(aligned / "folders/align").set_index("sample_id")
    assert len(facts) == 54 and sorted(faces.index) == sorted(facts)
    assert (faces["status"] == "ok").all()
    assert (faces["detector"] == "whole-image+dlib68").all()  # pre-cropped: the given box
    for sample_id, fact in facts.items():
        face = faces.loc[sample_id]
        assert face.label == fact["label"] and face.subject == fact["subject"]
        assert face.class_folder == fact["folder"] and face.label_code == [
            "neutral", "anger", "contempt", "disgust", "fear", "happiness", "sadness",
            "surprise"].index(fact["label"])
        assert face.face_path == f"faces/{fact['folder']}/{sample_id}.png"
        chip = cv2.imread(str(aligned / "folders/align" / face.face_path), cv2.IMREAD_UNCHANGED)
        assert chip.shape == (48, 48, 3)  # the 48-px crop as it is (whole template), colour
        assert all((chip[..., c] == fact["pixels"]).all() for c in range(3)), sample_id
        points = np.asarray(face.landmarks68).reshape(68, 2)  # on the face, filling the crop
        eyes, mouth = points[36:48].mean(0), points[48:68].mean(0)
        assert 8 < eyes[1] < 24 < mouth[1] < 46 and 16 < eyes[0] < 32 and 16 < mouth[0] < 32


def test_subject_folds_keep_each_person_on_one_side(ck48, aligned) -> None:
    _, facts = ck48
    default = run("folders", "folds", aligned, k=5)  # no --scheme; rows with subjects
    assert default.record["params"]["scheme"] == "subject-kfold"
    assert default.record["subject_independent"] is True
    with pytest.raises(FoldError, match="image-kfold is for datasets without subject ids"):
        run("folders", "folds", aligned, scheme="image-kfold")
    kfold = run("folders", "folds", aligned, scheme="subject-kfold", k=5)
    assert kfold.record["subject_independent"] is True and kfold.record["n_folds"] == 5
    folds = read_manifest(aligned / "folders/folds")
    assert (folds.groupby("subject")["fold"].nunique() == 1).all()
    loso = run("folders", "folds", aligned, scheme="loso")
    folds = read_manifest(aligned / "folders/folds")
    assert loso.record["n_folds"] == 5 == len({f["subject"] for f in facts.values()})
    assert (folds.groupby("fold")["subject"].nunique() == 1).all()


def test_without_subjects_the_default_folds_say_they_are_not_subject_independent(ck48, tmp_path):
    root, _ = ck48
    result = _align(root, tmp_path / "work")
    assert result.exit_code == 0, result.output
    faces = read_manifest(tmp_path / "work/folders/align")
    assert faces["subject"].isna().all() and (faces["status"] == "ok").all()
    out = CliRunner().invoke(main, ["folders", "folds", "--work", str(tmp_path / "work"),
                                    "--k", "3"])
    assert out.exit_code == 0, out.output
    assert "not subject-independent" in out.output
    record = run("folders", "folds", tmp_path / "work", k=3).record
    assert record["params"]["scheme"] == "image-kfold" and record["subject_independent"] is False


def test_classes_override_and_unknown_folders_are_rows_naming_the_fix(ck48, tmp_path) -> None:
    src, facts = ck48
    root = tmp_path / "tree"
    shutil.copytree(src, root)
    (root / "happy").rename(root / "joyful")
    result = _align(root, tmp_path / "w1")
    assert result.exit_code == 0, result.output
    faces = read_manifest(tmp_path / "w1/folders/align").set_index("sample_id")
    joyful = faces[faces["class_folder"] == "joyful"]
    assert len(joyful) == 12 and (joyful["status"] == "unknown_class").all()
    message = joyful["message"].iloc[0]
    assert message.startswith(f"{root / 'joyful'}: class folder 'joyful' (12 images) names no "
                              "label") and "--classes 'joyful=<label>'" in message
    assert result.output.count("class folder 'joyful'") == 1  # said once, not per image
    assert (faces.drop(index=joyful.index)["status"] == "ok").all()
    result = _align(root, tmp_path / "w2", "--classes", "joyful=happiness, fear=surprise")
    assert result.exit_code == 0, result.output
    faces = read_manifest(tmp_path / "w2/folders/align").set_index("sample_id")
    assert (faces["status"] == "ok").all()
    want = {k: {"happy": "happiness", "fear": "surprise"}.get(f["folder"], f["label"])
            for k, f in facts.items()}
    assert faces["label"].to_dict() == want  # --classes wins over the common name too


def test_numbered_folders_are_never_guessed(ck48, tmp_path) -> None:
    src, facts = ck48
    root = tmp_path / "manet"
    for sample_id, fact in facts.items():  # MA-Net's folders: AffectNet's order
        folder = root / str(MA_NET.index(fact["label"]))
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(src / fact["folder"] / f"{sample_id}.png", folder)
    result = _align(root, tmp_path / "w1")
    assert result.exit_code == 0, result.output
    faces = read_manifest(tmp_path / "w1/folders/align")
    assert (faces["status"] == "numbered_class").all() and faces["label"].isna().all()
    assert "numbered class folder '6'" in result.output and "--classes '0=neutral," in (
        result.output)
    classes = ",".join(f"{i}={label}" for i, label in enumerate(MA_NET))
    result = _align(root, tmp_path / "w2", "--classes", classes)
    assert result.exit_code == 0, result.output
    faces = read_manifest(tmp_path / "w2/folders/align").set_index("sample_id")
    assert (faces["status"] == "ok").all()
    assert faces["label"].to_dict() == {k: f["label"] for k, f in facts.items()}


def test_bad_files_are_rows_and_the_rest_completes(ck48, tmp_path) -> None:
    src, facts = ck48
    root = tmp_path / "tree"
    shutil.copytree(src, root)
    first = next(iter(facts))
    one = root / facts[first]["folder"] / f"{first}.png"
    shutil.copy(one, root / "anger" / "extra_face.png")  # no subject in its name
    shutil.copy(one, root / "loose.png")  # beside the class folders
    (root / "README.txt").write_text("CK+48 from Kaggle")
    (root / "anger" / ".DS_Store").write_bytes(bytes(32))
    (root / "sadness" / "S999_001_00000001.png").write_bytes(b"not a png")
    result = _align(root, tmp_path / "work", "--subject-pattern", PATTERN)
    assert result.exit_code == 0, result.output
    faces = read_manifest(tmp_path / "work/folders/align").set_index("sample_id")
    expected = {"extra_face": ("no_subject", f"{root / 'anger/extra_face.png'}: "
                               f"--subject-pattern '{PATTERN}' does not match"),
                "./loose.png": ("no_class", f"{root / 'loose.png'}: an image outside"),
                "./README.txt": ("stray", f"{root / 'README.txt'}: not an image"),
                "anger/.DS_Store": ("stray", f"{root / 'anger/.DS_Store'}: not an image"),
                "S999_001_00000001": ("unreadable", f"{root / 'sadness/S999_001_00000001.png'}")}
    for sample_id, (status, message) in expected.items():
        assert faces.loc[sample_id, "status"] == status, faces.loc[sample_id]
        assert faces.loc[sample_id, "message"].startswith(message), faces.loc[sample_id]
    assert "stray: 2" in result.output and ".DS_Store" not in result.output  # counted only
    assert (faces.loc[list(facts), "status"] == "ok").all()


def test_repeated_stems_take_their_paths(ck48, tmp_path) -> None:
    src, facts = ck48
    root = tmp_path / "tree"
    shutil.copytree(src, root)
    first = next(iter(facts))
    folder = facts[first]["folder"]
    other = "surprise" if folder != "surprise" else "fear"
    shutil.copy(root / folder / f"{first}.png", root / other / f"{first}.png")
    ds = get_dataset("folders")
    items = {i["source_path"]: i for i in ds.read(root, ds.options())}
    for name in (folder, other):
        item = items[str(root / name / f"{first}.png")]
        assert item["sample_id"] == f"{name}-{first}.png"
        assert ds.item_path(item) == f"{name}/{name}-{first}.png"
    assert sum(i["sample_id"] == i["source_path"].rsplit("/", 1)[1][:-4]
               for i in items.values()) == len(facts) - 1


def test_a_split_folder_and_a_tree_without_classes(ck48, tmp_path) -> None:
    src, _ = ck48
    shutil.copytree(src, tmp_path / "kaggle/train")
    ds = get_dataset("folders")
    items = ds.read(tmp_path / "kaggle", ds.options())
    assert {i["status"] for i in items} == {"unknown_class"}
    assert f"give --root {tmp_path / 'kaggle/train'}" in items[0]["message"]
    (tmp_path / "empty/notes").mkdir(parents=True)
    (tmp_path / "empty/notes/README").write_text("x")
    with pytest.raises(InputError, match="no class folder holding images"):
        ds.read(tmp_path / "empty", ds.options())


@pytest.mark.parametrize(("args", "words"), [
    (["--classes", "happy"], "--classes 'happy': 'happy' is not folder=label (comma-separated"),
    (["--classes", "happy=glee"], "--classes 'happy=glee': 'glee' is not a label; labels: "
                                  "neutral,"),
    (["--subject-pattern", "(S"], "--subject-pattern '(S' is not a regular expression"),
])
def test_bad_options_are_one_line_errors(ck48, tmp_path, args, words) -> None:
    root, _ = ck48
    result = _align(root, tmp_path / "work", *args)
    assert result.exit_code == 1, result.output
    assert f"Error: {words}" in result.output and "Traceback" not in result.output


def test_a_tree_aligned_under_a_name_is_that_dataset_in_later_commands(ck48, tmp_path) -> None:
    """`--name ck48`: WORK/ck48/, and `--dataset ck48` for folds and export; a second tree
    under another name keeps its own folder."""
    root, _ = ck48
    work = str(tmp_path / "work")
    runner = CliRunner()
    out = runner.invoke(main, ["folders", "align", "--root", str(root), "--work", work,
                               "--name", "ck48", "--subject-pattern", "^(S[0-9]+)_"])
    assert out.exit_code == 0, out.output
    faces = read_manifest(tmp_path / "work/ck48/align")
    assert (faces["dataset"] == "ck48").all() and not (tmp_path / "work/folders").exists()
    assert faces["subject"].notna().all()  # the options the tree was read with go along
    out = runner.invoke(main, ["folds", "--dataset", "ck48", "--work", work, "--k", "5"])
    assert out.exit_code == 0 and "ck48 folds" in out.output, out.output  # subject k-fold
    assert read_manifest(tmp_path / "work/ck48/folds").groupby("subject")["fold"].nunique().eq(
        1).all()
    out = runner.invoke(main, ["folds", "--dataset", "ck48", "--work", work, "--scheme", "loso"])
    assert out.exit_code == 0 and "ck48 folds" in out.output, out.output
    out = runner.invoke(main, ["export", "imagefolder", "--dataset", "ck48", "--work", work,
                               "--out", str(tmp_path / "out")])
    assert out.exit_code == 0, out.output
    assert any((tmp_path / "out").rglob("*.png"))
    again = runner.invoke(main, ["folders", "align", "--root", str(root), "--work", work,
                                 "--name", "ck48", "--subject-pattern", "^(S[0-9]+)_"])
    assert "unchanged, skipped" in again.output
    bad = runner.invoke(main, ["folders", "align", "--root", str(root), "--work", work,
                               "--name", "ckplus"])
    assert bad.exit_code == 1 and "--name 'ckplus'" in bad.output
    unknown = runner.invoke(main, ["folds", "--dataset", "nope", "--work", work])
    assert unknown.exit_code == 1 and "unknown dataset 'nope'" in unknown.output
