"""Oulu-CASIA from real faces in its exact layout: the 18 CK+ sequences of ../shared (5 people)
as `OriginalImg/{VL,NI}/Strong/P00N/<Expression>/NNN.jpeg` (320×240 JPEG frames from 000.jpeg,
the NI sequences one frame shorter than the VL ones), the same VL frames cropped to the face in
`Preprocess Img/`, and a copy nested as archives extract (`B_OriginalImg/B_OriginalImg/…`).
Labels from the folders, every selected frame a face (MediaPipe, through the runner and the
CLI), NI read by its own frames, bad files and folders as rows, folds by subject, and masks."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from fer_prep.cli import main
from fer_prep.datasets import get_dataset
from fer_prep.datasets.ckplus import read_ckplus
from fer_prep.errors import FoldError, InputError
from fer_prep.faces import create_backend
from fer_prep.manifest import read_manifest
from fer_prep.runner import run

#: CK+ code → Oulu-CASIA's expression folder (no contempt in Oulu-CASIA or in the shared CK+)
FOLDERS = {1: "Anger", 3: "Disgust", 4: "Fear", 5: "Happiness", 6: "Sadness", 7: "Surprise"}
MAFER = {"surprise": 0, "happiness": 1, "sadness": 2, "anger": 3, "fear": 4, "disgust": 5,
         "neutral": 6}
ONSET = 3  # frames kept between the neutral first frame and the last three of each sequence
CROP = 1.2  # Preprocess Img side / dlib's face box side: a tight face crop
OULU = get_dataset("oulu")


def _oulu_frame(grey: np.ndarray) -> np.ndarray:
    """A 640×490 CK+ frame as a 320×240 colour frame (VL is colour)."""
    small = cv2.resize(grey[5:485], (320, 240), interpolation=cv2.INTER_AREA).astype(np.float32)
    tint = np.stack([0.9 * small, small, np.minimum(1.08 * small, 255)], axis=2)
    return tint.round().astype(np.uint8)


def _write(folder: Path, frames: list[np.ndarray]) -> None:
    folder.mkdir(parents=True)
    for number, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{number:03d}.jpeg"), frame)


def write_oulu_fixture(shared: Path, root: Path) -> dict[str, dict]:
    """The Oulu-CASIA tree of the shared CK+ sequences under `root`; {sequence: facts}."""
    hog = create_backend("dlib-hog")
    ck = read_ckplus(shared / "data/ckplus", "all")
    people = {s: f"P{i + 1:03d}" for i, s in enumerate(sorted({i["subject"] for i in ck}))}
    facts: dict[str, dict] = {}
    for take in sorted({i["sequence"] for i in ck}):
        rows = [i for i in ck if i["sequence"] == take]
        n = len(rows)
        keep = [0, *np.linspace(1, n - 4, ONSET).round().astype(int), n - 3, n - 2, n - 1]
        frames = [_oulu_frame(cv2.imread(rows[k]["source_path"], cv2.IMREAD_GRAYSCALE))
                  for k in keep]
        subject, expression = people[rows[0]["subject"]], FOLDERS[rows[-1]["label_code"]]
        _write(root / "OriginalImg/VL/Strong" / subject / expression, frames)
        # the NI camera missed the apex frame: one frame fewer, numbered by its own files
        ni = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in frames[:-1]]
        _write(root / "OriginalImg/NI/Strong" / subject / expression, ni)
        x, y, w, h = hog.faces(frames[0])[0].detector_box
        side = CROP * max(w, h)
        x0, y0 = max(round(x + w / 2 - side / 2), 0), max(round(y + h / 2 - side / 2), 0)
        crops = [f[y0:y0 + round(side), x0:x0 + round(side)] for f in frames]
        _write(root / "Preprocess Img/VL/Strong" / subject / expression, crops)
        facts[f"{subject}_{expression}"] = {
            "subject": subject, "expression": expression, "label": expression.lower(),
            "ck": take, "vl": len(frames), "ni": len(ni), "offset": (x0, y0)}
    return facts


@pytest.fixture(scope="module")
def oulu(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("oulu")
    return root, write_oulu_fixture(shared, root)


@pytest.fixture(scope="module")
def nested(oulu, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The frames as the archive extracts: B_OriginalImg/B_OriginalImg/OriginalImg/…"""
    root, _ = oulu
    out = tmp_path_factory.mktemp("nested")
    shutil.copytree(root / "OriginalImg", out / "B_OriginalImg/B_OriginalImg/OriginalImg",
                    copy_function=os.link)
    return out


@pytest.fixture(scope="module")
def aligned(oulu, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """The VL/Strong peak frames (the defaults) aligned by the runner: (work, manifest)."""
    root, _ = oulu
    work = tmp_path_factory.mktemp("work")
    result = run("oulu", "align", work, root=root, jobs=2)
    return work, read_manifest(result.folder)


def _peaks(count: int) -> list[int]:
    return [count - 3, count - 2, count - 1]


def test_labels_and_frames_come_from_the_folders(oulu) -> None:
    root, facts = oulu
    items = OULU.read(root, OULU.options())
    assert len(items) == 18 * 3 and all(i["status"] == "ok" for i in items)
    seen = {}
    for item in items:
        fact = facts[item["sequence"]]
        assert item["subject"] == fact["subject"] and item["label"] == fact["label"]
        assert item["label_code"] == MAFER[fact["label"]]
        assert OULU.label(item["label_code"]) == item["label"]
        assert item["sequence_label"] == fact["label"] and item["role"] == "peak"
        assert (item["camera"], item["light"]) == ("VL", "Strong") and item["dataset"] == "oulu"
        assert item["sample_id"] == f"{item['sequence']}_{item['frame']:03d}"
        assert item["source_path"] == str(root / "OriginalImg/VL/Strong" / fact["subject"]
                                          / fact["expression"] / f"{item['frame']:03d}.jpeg")
        assert OULU.item_path(item) == (f"{fact['subject']}/{fact['expression']}/"
                                        f"{item['sample_id']}")
        seen.setdefault(item["sequence"], []).append(item["frame"])
    assert {s: sorted(f) for s, f in seen.items()} == {s: _peaks(f["vl"]) for s, f in facts.items()}
    assert OULU.read_labels(root) == items  # folds from --root: the file names alone

    with_neutral = OULU.read(root, OULU.options(frames="neutral-peak"))
    neutral = [i for i in with_neutral if i["role"] == "neutral"]
    assert len(with_neutral) == 18 * 4 and len(neutral) == 18
    assert all(i["frame"] == 0 and i["label"] == "neutral" and i["label_code"] == 6
               and i["sequence_label"] == facts[i["sequence"]]["label"] for i in neutral)

    every = OULU.read(root, OULU.options(frames="all"))
    roles = pd.DataFrame(every).groupby("sequence")["role"].agg(list).to_dict()
    assert roles == {s: ["neutral"] + ["onset"] * ONSET + ["peak"] * 3 for s in facts}
    assert len({OULU.item_path(i) for i in every}) == len(every) == 18 * (ONSET + 4)


def test_every_peak_frame_gets_a_face(oulu, aligned) -> None:
    _, facts = oulu
    work, faces = aligned
    assert len(faces) == 18 * 3
    assert (faces["status"] == "ok").all(), faces.loc[faces.status != "ok", "message"].tolist()
    assert (faces["backend"] == "mediapipe").all() and set(faces["camera"]) == {"VL"}
    assert set(faces["label"]) == {f["label"] for f in facts.values()} == set(MAFER) - {"neutral"}
    for row in faces.itertuples():
        fact = facts[row.sequence]
        assert row.face_path == f"faces/{fact['subject']}/{fact['expression']}/{row.sample_id}.png"
        assert (work / "oulu/align" / row.face_path).is_file()
        x, y, w, h = row.box  # a real face of a 320×240 frame, holding its landmarks (to
        points = np.asarray(row.landmarks68).reshape(68, 2)  # 0.01 px: boxes in float32)
        inside = (points >= np.subtract([x, y], 0.01)) & (points <= np.add([x + w, y + h], 0.01))
        assert 60 < w < 200 and inside.all(), row.sample_id


def test_the_cli_reads_a_nested_archive(oulu, nested, tmp_path: Path) -> None:
    _, facts = oulu
    result = CliRunner().invoke(main, ["oulu", "align", "--root", str(nested), "--work",
                                       str(tmp_path), "--jobs", "2"])
    assert result.exit_code == 0, result.output
    assert "ok: 54" in result.output
    faces = read_manifest(tmp_path / "oulu/align")
    assert len(faces) == 54 and (faces["status"] == "ok").all()
    top = nested / "B_OriginalImg/B_OriginalImg/OriginalImg/VL/Strong"
    assert all(Path(p).parent.parent.parent == top for p in faces["source_path"])
    assert set(faces["sequence"]) == set(facts)


def test_ni_is_read_by_its_own_frames(oulu, tmp_path: Path) -> None:
    """NI's sequences are one frame shorter: its peaks are its own last three files, not VL's
    frame numbers."""
    root, facts = oulu
    result = run("oulu", "align", tmp_path, root=root, camera="NI", jobs=2)
    faces = result.manifest
    assert len(faces) == 54 and (faces["status"] == "ok").all(), faces["message"].tolist()
    assert set(faces["camera"]) == {"NI"} and set(faces["light"]) == {"Strong"}
    for sequence, rows in faces.groupby("sequence"):
        fact = facts[sequence]
        assert fact["ni"] == fact["vl"] - 1
        assert sorted(rows["frame"]) == _peaks(fact["ni"]) != _peaks(fact["vl"])
        folder = root / "OriginalImg/NI/Strong" / fact["subject"] / fact["expression"]
        assert sorted(rows["source_path"]) == [str(folder / f"{n:03d}.jpeg")
                                               for n in _peaks(fact["ni"])]
        chip = cv2.imread(str(result.folder / rows["face_path"].iloc[0]), cv2.IMREAD_UNCHANGED)
        assert chip.shape == (224, 224, 3)  # grey NI frames, colour chips by default


def test_mediapipe_finds_the_preprocessed_crops(oulu, aligned, tmp_path: Path) -> None:
    """The default backend on `Preprocess Img`'s tight crops: every face, its points where
    MediaPipe put them on the whole frame (within 0.1 of the inter-ocular distance)."""
    root, facts = oulu
    result = run("oulu", "align", tmp_path, root=root, set="preprocessed", jobs=2)
    crops = result.manifest.set_index("sample_id")
    _, frames = aligned
    assert len(crops) == 54 and (crops["status"] == "ok").all(), crops["message"].tolist()
    assert all("/Preprocess Img/VL/Strong/" in p for p in crops["source_path"])
    for row in frames.itertuples():
        whole = np.asarray(row.landmarks68).reshape(68, 2) - facts[row.sequence]["offset"]
        points = np.asarray(crops.loc[row.sample_id, "landmarks68"]).reshape(68, 2)
        eyes = np.linalg.norm(whole[36:42].mean(0) - whole[42:48].mean(0))
        assert np.linalg.norm(points - whole, axis=1).mean() < 0.1 * eyes, row.sample_id


def _copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, copy_function=os.link)
    return dst


def test_bad_files_and_folders_are_rows_and_the_rest_completes(oulu, aligned, tmp_path) -> None:
    src, facts = oulu
    root = _copy_tree(src, tmp_path / "oulu")
    work = tmp_path / "work"
    shutil.copytree(aligned[0], work)  # the faces already found are reused, not recomputed
    lit = root / "OriginalImg/VL/Strong"
    (lit / "P001/Fear").mkdir()  # an empty expression folder
    anger = lit / "P002/Anger"
    last = sorted(anger.glob("*.jpeg"))[-1]
    cv2.imwrite(str(anger / "005.png"), cv2.imread(str(last)))  # a real face, but a PNG
    (anger / "notes.txt").write_text("take 2 was better\n")
    _copy_tree(lit / "P003/Fear", lit / "P003/Contempt")  # no such class in Oulu-CASIA
    (lit / "P004/Sadness/.DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(64))
    happy = lit / "P001/Happiness"
    shutil.copy(happy / "003.jpeg", happy / "3.jpg")  # frame 3 under a second name
    shutil.copy(happy / "000.jpeg", happy / "cover.jpeg")
    (lit / "P005/Fear").mkdir()
    shutil.copy(lit / "P005/Anger/000.jpeg", lit / "P005/Fear/000.jpeg")  # a lone frame
    (lit / "P006").mkdir()  # a subject without sequences
    bad = {
        "P001_Fear": ("empty_sequence", lit / "P001/Fear", "no JPEG frame (NNN.jpeg)"),
        "P002_Anger_005.png": ("not_jpeg", anger / "005.png", "not a JPEG frame"),
        "P002_Anger_notes.txt": ("not_jpeg", anger / "notes.txt", "not a JPEG frame"),
        "P003_Contempt": ("bad_label", lit / "P003/Contempt",
                          "'Contempt' is not one of Oulu-CASIA's expression folders (Anger "),
        "P001_Happiness_3.jpg": ("duplicate_frame", happy / "3.jpg",
                                 "frame 3 again (first read from 003.jpeg)"),
        "P001_Happiness_cover.jpeg": ("bad_name", happy / "cover.jpeg", "not a frame name"),
        "P005_Fear": ("short_sequence", lit / "P005/Fear", "one JPEG frame"),
        "P006": ("empty_subject", lit / "P006", "no expression folder (Anger Disgust "),
    }
    result = CliRunner().invoke(main, ["oulu", "align", "--root", str(root), "--work",
                                       str(work), "--jobs", "2"])
    assert result.exit_code == 0, result.output
    assert "0 computed, 54 reused" in result.output and "stray: 1" in result.output
    faces = read_manifest(work / "oulu/align").set_index("sample_id")
    for sample_id, (status, path, words) in bad.items():
        row = faces.loc[sample_id]
        assert row.status == status and row.message.startswith(f"{path}: "), row
        assert words in row.message and "\n" not in row.message
        assert result.output.count(row.message) == 1  # said once, in one line
    assert faces.loc["P004_Sadness_.DS_Store", "status"] == "stray"
    assert ".DS_Store" not in result.output  # counted, not warned about
    ok = faces[faces["status"] == "ok"]
    assert len(ok) == 54 and set(ok["sequence"]) == set(facts)
    anger_peaks = ok.loc[ok["sequence"] == "P002_Anger", "frame"]
    assert sorted(anger_peaks) == _peaks(facts["P002_Anger"]["vl"])  # the PNG is no frame


def test_a_root_that_is_not_oulu_or_lacks_the_camera_or_light_is_refused(oulu, tmp_path) -> None:
    root, _ = oulu
    (tmp_path / "cohn-kanade-images/S052").mkdir(parents=True)
    with pytest.raises(InputError, match=r"no OriginalImg/ folder here or up to 3 levels below "
                                         r"\(is this the Oulu-CASIA root\?\)") as caught:
        OULU.read(tmp_path, OULU.options())
    assert str(tmp_path) in str(caught.value)
    crops_only = tmp_path / "crops"
    crops_only.mkdir()
    (crops_only / "Preprocess Img").symlink_to(root / "Preprocess Img")
    with pytest.raises(InputError, match=r"it holds .*Preprocess Img \(--set preprocessed\)"):
        OULU.read(crops_only, OULU.options())
    with pytest.raises(InputError, match=r"VL: no Dark/ folder for --light Dark; it holds "
                                         r"Strong$"):
        OULU.read(root, OULU.options(light="Dark"))
    with pytest.raises(InputError, match=r"Preprocess Img: no NI/ folder for --camera NI; it "
                                         r"holds VL$"):
        OULU.read(root, OULU.options(camera="NI", set="preprocessed"))
    result = CliRunner().invoke(main, ["oulu", "align", "--root", str(root), "--work",
                                       str(tmp_path / "work"), "--light", "Weak"])
    assert result.exit_code == 1
    assert f"Error: {root / 'OriginalImg/VL'}: no Weak/ folder for --light Weak" in result.output


def test_folds_keep_subjects_apart(oulu, aligned, tmp_path: Path) -> None:
    root, facts = oulu
    work, _ = aligned
    with pytest.raises(FoldError, match="5 subjects cannot fill 10 folds"):
        run("oulu", "folds", work)  # the protocol's 10 folds need 10 subjects
    result = run("oulu", "folds", work, k=5)
    assert result.record["params"]["scheme"] == "subject-kfold"
    assert result.record["n_folds"] == 5 and result.record["subject_independent"] is True
    folds = read_manifest(result.folder)
    assert len(folds) == 54 and (folds["status"] == "ok").all()
    assert folds.groupby("subject")["fold"].nunique().eq(1).all()
    assert sorted(folds["subject"].unique()) == sorted({f["subject"] for f in facts.values()})
    from_root = read_manifest(run("oulu", "folds", tmp_path, root=root, k=5).folder)
    assert dict(zip(from_root["sample_id"], from_root["fold"], strict=True)) == \
        dict(zip(folds["sample_id"], folds["fold"], strict=True))


@pytest.fixture(scope="module")
def masks(oulu, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Neutral and peak faces, 5 folds by subject, then the masks."""
    root, _ = oulu
    work = tmp_path_factory.mktemp("masks")
    faces = run("oulu", "align", work, root=root, frames="neutral-peak", jobs=2)
    assert faces.counts == {"ok": 72}
    run("oulu", "folds", work, k=5)
    run("oulu", "masks", work, jobs=2)
    return work


def test_masks_run_on_oulu(masks: Path) -> None:
    folder = masks / "oulu/masks"
    record = json.loads((folder / "stage.json").read_text())
    classes = ("anger", "disgust", "fear", "happiness", "sadness", "surprise")
    assert record["classes"] == {str(i): c for i, c in enumerate(classes)}
    assert record["n_folds"] == 5 and record["samples_used"] == 54
    folds = read_manifest(masks / "oulu/folds")
    table = read_manifest(folder).set_index(["fold", "class_index"])
    for fold in range(5):
        present = set(folds.loc[(folds["fold"] != fold) & (folds["role"] == "peak"), "label"])
        for c, label in enumerate(classes):
            row, path = table.loc[(fold, c)], folder / f"{fold}/{c}.png"
            if label not in present:  # sadness: one subject only, absent in its test fold
                assert row["status"] == "absent" and not path.exists(), (fold, label)
                continue
            mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            assert row["status"] == "ok" and mask.shape == (224, 224), (fold, label)
            assert mask.min() == 0 and mask.max() == 255
    assert (table["status"] == "absent").sum() == 1


def test_the_sample_is_oulu_shaped_and_deterministic(samples: Path, tmp_path: Path) -> None:
    root = samples / "oulu"
    vl, ni = (root / "OriginalImg" / camera / "Strong" for camera in ("VL", "NI"))
    sequences = sorted(p.relative_to(vl) for p in vl.glob("P*/*"))
    assert len(sequences) == 10 and sorted(p.relative_to(ni) for p in ni.glob("P*/*")) == sequences
    assert {p.name for p in sequences} == {"Happiness", "Surprise", "Sadness", "Anger"}
    for sequence in sequences:
        names = sorted(p.name for p in (vl / sequence).iterdir())
        assert names == [f"{n:03d}.jpeg" for n in range(len(names))]
        assert len(list((ni / sequence).iterdir())) == len(names) - 1
    frame = cv2.imread(str(vl / sequences[0] / "000.jpeg"), cv2.IMREAD_UNCHANGED)
    assert frame.shape == (240, 320, 3)
    again = OULU.write_sample(tmp_path)
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert all((root / f).read_bytes() == (again / f).read_bytes() for f in files)


def test_mafer_export_is_the_folder_its_loader_reads(aligned, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """MAFER's datasets/oulucasia.py reads `<Expression>/<image>` with cv2 from where it runs
    and loads the database CSV when it exists (else its builder lists the folder); main_oulu.py
    KFolds its rows (seed 17) and subtracts mean.npy per BGR channel. Checked here as its loader
    reads them (CI cannot fetch it), from a moved copy of the export."""
    from sklearn.model_selection import KFold

    from fer_prep.exports import export

    work, faces = aligned
    folds = run("oulu", "folds", work, scheme="mafer")
    written = tmp_path / "oulucasia"
    result = export("mafer", "oulu", work, written)
    out = tmp_path / "moved"
    written.rename(out)  # relative paths: the export reads the same anywhere
    monkeypatch.chdir(out)  # MAFER runs in the export: `-df .`
    table = pd.read_csv("oulucasia_database.csv")  # as MAFER reads it back
    assert list(table.columns) == ["Unnamed: 0", "image_path", "expression"]
    assert len(table) == (faces["status"] == "ok").sum() == sum(
        n for k, n in result.counts.items() if k.endswith("faces"))
    index = {"Surprise": 0, "Happiness": 1, "Sadness": 2, "Anger": 3, "Fear": 4, "Disgust": 5}
    for path, code in zip(table["image_path"], table["expression"], strict=True):
        assert path.startswith("./") and cv2.imread(path) is not None
        assert index[Path(path).parent.name] == code
    assert table["image_path"].tolist() == sorted(table["image_path"])
    # MAFER's __create_database with -df . on the class folders alone: the same rows
    aside = tmp_path / "aside"
    aside.mkdir()
    for name in ("oulucasia_database.csv", "mean.npy", "fer-prep-export.json"):
        (out / name).rename(aside / name)
    built = [(os.path.join(".", expr, img), index[expr]) for expr in os.listdir(".")
             for img in os.listdir(os.path.join(".", expr))]
    assert sorted(built) == list(zip(table["image_path"], table["expression"], strict=True))
    for name in ("oulucasia_database.csv", "mean.npy", "fer-prep-export.json"):
        (aside / name).rename(out / name)
    placed = read_manifest(folds.folder).query("status == 'ok'")
    ours = dict(zip(placed["sample_id"], placed["fold"], strict=True))
    theirs = {}
    for k, (_, test) in enumerate(KFold(10, shuffle=True, random_state=17).split(table)):
        theirs.update({Path(table["image_path"][i]).stem: k for i in test})
    assert theirs == ours  # MAFER's own KFold over the database = folds --scheme mafer
    mean = np.load(out / "mean.npy")
    pixels = np.concatenate([cv2.imread(p).reshape(-1, 3) for p in table["image_path"]])
    assert mean.shape == (3,) and np.allclose(mean, pixels.mean(0))
