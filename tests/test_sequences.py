"""Image-sequence trees from real faces: the 18 labelled CK+ sequences of ../shared (first frame,
a middle one and the last three of each) written as a lab would keep them, in the three layouts
the `sequences` reader takes: `<subject>/<sequence>/<n>.jpg` with a labels CSV, an Oulu-like
`<subject>/<Class>/000.jpeg` tree and a class-above `<Class>/<subject>/<sequence>/` tree of
CK+'s own PNGs. Every selected frame gets a face from the real MediaPipe, labels are CK+'s own
Emotion labels, a tree aligned under `--name` is that dataset for folds and masks, and every
bad input is a row with a message naming the file while the rest completes."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from fer_prep.cli import main
from fer_prep.datasets import get_dataset
from fer_prep.datasets.ckplus import CODES, read_ckplus
from fer_prep.errors import InputError, OptionError
from fer_prep.labels import CANONICAL
from fer_prep.manifest import read_manifest
from fer_prep.runner import run

#: canonical label → Oulu-CASIA's expression folder, and → CK+48's (the class-above tree)
OULU = {"anger": "Anger", "disgust": "Disgust", "fear": "Fear", "happiness": "Happiness",
        "sadness": "Sadness", "surprise": "Surprise"}
CK48 = {"anger": "anger", "disgust": "disgust", "fear": "fear", "happiness": "happy",
        "sadness": "sadness", "surprise": "surprise"}
#: the CSV's words for the labels: canonical names and common ones, mixed
CSV_WORDS = {"anger": "angry", "disgust": "disgust", "fear": "Fearful", "happiness": "happy",
             "sadness": "sad", "surprise": "surprise"}


def ck_sequences(shared: Path) -> dict[str, dict]:
    """CK+'s labelled sequences: {sequence: subject, take, label, the frames kept (first, the
    middle one, the last three), the ids CK+'s own reader gives the neutral and peak frames}."""
    out: dict[str, dict] = {}
    for item in read_ckplus(shared / "data/ckplus", "all"):
        seq = out.setdefault(item["sequence"], {
            "subject": item["subject"], "take": item["sequence"].split("_")[1],
            "label": item["sequence_label"], "frames": []})
        seq["frames"].append(Path(item["source_path"]))
    for seq in out.values():
        frames = seq["frames"]
        seq["frames"] = [frames[0], frames[len(frames) // 2], *frames[-3:]]
    for item in read_ckplus(shared / "data/ckplus", "neutral-peak"):
        out[item["sequence"]].setdefault("roles", {})[item["sample_id"]] = item["role"]
    return out


def number(frame: Path) -> int:
    """CK+'s frame number, from its name (S052_001_00000015.png → 15)."""
    return int(frame.stem.rsplit("_", 1)[1])


def write_plain(ck: dict[str, dict], root: Path) -> Path:
    """`<subject>/<sequence>/<n>.jpg`, n CK+'s frame number unpadded (so 13.jpg sorts after
    7.jpg only by the natural sort); labels in a CSV beside the tree, not in it. Returns it."""
    lines = ["sequence,label"]
    for sequence, seq in ck.items():
        folder = root / seq["subject"] / seq["take"]
        folder.mkdir(parents=True)
        for frame in seq["frames"]:
            cv2.imwrite(str(folder / f"{number(frame)}.jpg"), cv2.imread(str(frame)))
        key = f"{seq['subject']}/{seq['take']}" if len(lines) % 2 else sequence  # both forms
        lines.append(f"{key},{CSV_WORDS[seq['label']]}")
    table = root.parent / f"{root.name}-labels.csv"
    table.write_text("\n".join(lines) + "\n")
    return table


def write_oulu(ck: dict[str, dict], root: Path) -> None:
    """`<subject>/<Expression>/NNN.jpeg` from 000.jpeg, as Oulu-CASIA's OriginalImg/VL/Strong."""
    for seq in ck.values():
        folder = root / seq["subject"] / OULU[seq["label"]]
        folder.mkdir(parents=True)
        for n, frame in enumerate(seq["frames"]):
            cv2.imwrite(str(folder / f"{n:03d}.jpeg"), cv2.imread(str(frame)))


def write_class_above(ck: dict[str, dict], root: Path) -> None:
    """`<class>/<subject>/<sequence>/` holding CK+'s PNGs under their own names."""
    for seq in ck.values():
        folder = root / CK48[seq["label"]] / seq["subject"] / seq["take"]
        folder.mkdir(parents=True)
        for frame in seq["frames"]:
            shutil.copy(frame, folder)


@pytest.fixture(scope="module")
def ck(shared: Path) -> dict[str, dict]:
    found = ck_sequences(shared)
    assert len(found) == 18 and len({s["subject"] for s in found.values()}) == 5
    return found


@pytest.fixture(scope="module")
def trees(ck, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("sequences")
    write_oulu(ck, base / "oulu")
    write_class_above(ck, base / "above")
    return {"plain": base / "plain", "labels": write_plain(ck, base / "plain"),
            "oulu": base / "oulu", "above": base / "above"}


@pytest.fixture(scope="module")
def aligned(trees) -> dict[str, Path]:
    """The plain and class-above trees aligned through the API (the Oulu-like one through the
    CLI, in `mylab`)."""
    work = trees["plain"].parent / "work"
    run("sequences", "align", work / "plain", root=trees["plain"], labels=str(trees["labels"]),
        jobs=2)
    run("sequences", "align", work / "above", root=trees["above"], jobs=2)
    return {"plain": work / "plain/sequences/align", "above": work / "above/sequences/align"}


@pytest.fixture(scope="module")
def mylab(trees) -> tuple[Path, str]:
    """The Oulu-like tree aligned through the CLI under --name mylab; (work, output)."""
    work = trees["oulu"].parent / "work-mylab"
    out = CliRunner().invoke(main, ["sequences", "align", "--root", str(trees["oulu"]),
                                    "--name", "mylab", "--work", str(work), "--jobs", "2"])
    assert out.exit_code == 0, out.output
    return work, out.output


def check_faces(faces, folder: Path) -> None:
    """Every row has a MediaPipe face whose landmarks lie on a face (eyes above the mouth,
    inside the 640×490 frame) and a chip on disk."""
    assert (faces["status"] == "ok").all(), faces.loc[faces["status"] != "ok", "message"]
    assert (faces["backend"] == "mediapipe").all()
    for row in faces.itertuples():
        points = np.asarray(row.landmarks68).reshape(68, 2)
        assert (points >= 0).all() and (points < [640, 490]).all(), row.sample_id
        assert points[36:48, 1].mean() < points[48:68, 1].mean() - 30, row.sample_id
        assert (folder / row.face_path).is_file()


def test_a_plain_tree_with_a_labels_csv(ck, trees, aligned) -> None:
    """Labels from the CSV (both sequence forms, common names), frames in natural order: the
    neutral is 1.jpg, the peaks CK+'s last three, every one a face."""
    faces = read_manifest(aligned["plain"])
    assert len(faces) == 18 * 4
    check_faces(faces, aligned["plain"])
    for sequence, seq in ck.items():
        rows = faces[faces["sequence"] == sequence].sort_values("frame")
        names = [Path(p).name for p in rows["source_path"]]
        assert names == [f"{number(f)}.jpg" for f in (seq["frames"][0], *seq["frames"][-3:])]
        assert list(rows["frame"]) == [1, 3, 4, 5] and list(rows["role"]) == [
            "neutral", "peak", "peak", "peak"]
        assert list(rows["label"]) == ["neutral", *[seq["label"]] * 3]
        assert list(rows["label_code"]) == [0, *[CANONICAL.index(seq["label"])] * 3]
        assert set(rows["sequence_label"]) == {seq["label"]}
        assert set(rows["subject"]) == {seq["subject"]}
        stems = [Path(p).stem for p in rows["source_path"]]
        assert list(rows["sample_id"]) == [f"{sequence}_{s}" for s in stems]
        assert list(rows["face_path"]) == [f"faces/{seq['subject']}/{seq['take']}/{s}.png"
                                           for s in stems]


def test_a_class_above_tree_reads_as_ckplus_does(ck, aligned) -> None:
    """<class>/<subject>/<sequence>/ of CK+'s PNGs: the ids, roles and labels CK+'s own reader
    gives those frames."""
    faces = read_manifest(aligned["above"]).set_index("sample_id")
    check_faces(faces.reset_index(), aligned["above"])
    want = {i: (s["label"] if r == "peak" else "neutral", r, seq)
            for seq, s in ck.items() for i, r in s["roles"].items()}
    assert sorted(faces.index) == sorted(want)
    for sample_id, (label, role, sequence) in want.items():
        row = faces.loc[sample_id]
        assert (row.label, row.role, row.sequence) == (label, role, sequence), sample_id
        assert row.sequence_label == ck[sequence]["label"]


def test_an_oulu_like_tree_under_a_name_folds_and_masks(ck, mylab) -> None:
    """Labels from the expression folders; `--name mylab` keys WORK/mylab/ for folds and masks;
    the masks are FMPN's, one per fold and class, absent where a fold's training part lacks it."""
    work, output = mylab
    assert "read as <subject>/<Class>/ frames, labels from the class folders" in output
    faces = read_manifest(work / "mylab/align")
    assert not (work / "sequences").exists() and (work / "mylab/dataset.json").is_file()
    assert (faces["dataset"] == "mylab").all() and len(faces) == 18 * 4
    check_faces(faces, work / "mylab/align")
    for seq in ck.values():
        rows = faces[faces["sequence"] == f"{seq['subject']}_{OULU[seq['label']]}"]
        names = sorted(Path(p).name for p in rows["source_path"])
        assert names == ["000.jpeg", "002.jpeg", "003.jpeg", "004.jpeg"]
        assert sorted(rows["label"]) == sorted(["neutral", *[seq["label"]] * 3])
    out = CliRunner().invoke(main, ["folds", "--dataset", "mylab", "--work", str(work),
                                    "--scheme", "loso"])
    assert out.exit_code == 0 and "mylab folds" in out.output, out.output
    masks = run("mylab", "masks", work)
    assert masks.record["n_folds"] == 5
    assert list(masks.record["classes"].values()) == list(OULU)
    rows = read_manifest(masks.folder)
    assert len(rows) == 5 * 6
    folds = read_manifest(work / "mylab/folds").drop_duplicates("subject").set_index("subject")
    sad = {s["subject"] for s in ck.values() if s["label"] == "sadness"}
    assert sad == {"S106"}  # so the fold testing S106 trains on no sadness
    absent = rows[rows["status"] == "absent"]
    assert list(zip(absent["fold"], absent["label"], strict=True)) == [
        (folds.loc["S106", "fold"], "sadness")]
    assert all((masks.folder / p).is_file() for p in rows.loc[rows["status"] == "ok",
                                                              "mask_path"])


def test_frame_selections_and_peak_frames(trees) -> None:
    ds = get_dataset("sequences")
    for frames, peaks, roles in [("all", 3, ["neutral", "onset", "peak", "peak", "peak"]),
                                 ("peak", 3, ["peak"] * 3), ("neutral-peak", 1,
                                                            ["neutral", "peak"]),
                                 ("all", 9, ["neutral", "peak", "peak", "peak", "peak"])]:
        items = ds.read(trees["oulu"], ds.options(frames=frames, peak_frames=peaks))
        by_seq: dict[str, list[str]] = {}
        for item in items:
            by_seq.setdefault(item["sequence"], []).append(item["role"])
        assert len(by_seq) == 18 and all(r == roles for r in by_seq.values()), (frames, peaks)


def test_csv_codes_through_classes_and_a_subject_column(ck, trees, tmp_path) -> None:
    """`subject,sequence,label` with CK+'s own codes: numbers are never guessed, --classes
    names them."""
    table = tmp_path / "codes.csv"
    code = {label: c for c, label in CODES.items()}
    table.write_text("Subject,Sequence,Label,notes\n" + "".join(
        f"{s['subject']},{s['take']},{code[s['label']]},x\n" for s in ck.values()))
    ds = get_dataset("sequences")
    items = ds.read(trees["plain"], ds.options(labels=str(table)))
    assert {i["status"] for i in items} == {"numbered_class"} and len(items) == 18
    assert "--classes '1=anger,2=contempt," in items[0]["message"]
    classes = ",".join(f"{c}={label}" for c, label in CODES.items())
    items = ds.read(trees["plain"], ds.options(labels=str(table), classes=classes))
    assert {i["status"] for i in items} == {"ok"}
    assert {i["sequence"]: i["sequence_label"] for i in items} == {
        q: s["label"] for q, s in ck.items()}


@pytest.fixture(scope="module")
def bad_tree(ck, trees, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two subjects of the plain tree with every bad input the reader must survive."""
    root = tmp_path_factory.mktemp("bad") / "tree"
    for subject in ("S052", "S055"):
        shutil.copytree(trees["plain"] / subject, root / subject)
    (root / "S052/002").mkdir()  # an empty sequence folder
    (root / "S052/001/Thumbs.db").write_bytes(bytes(16))  # no image: a quiet stray
    (root / "S055/notes.txt").write_text("session 2")
    shutil.copy(root / "S052/001/1.jpg", root / "S052/loose.jpg")  # outside a sequence
    (root / "S052/006/99.jpg").write_bytes(b"not a jpeg")  # the last frame: a peak
    labels = {q: CSV_WORDS[s["label"]] for q, s in ck.items() if s["subject"] in ("S052", "S055")}
    labels.update({"S052_004": None, "S055_001": "glee", "S055_003": "3"})
    lines = ["sequence,label"] + [f"{q}" if w is None else f"{q},{w}" for q, w in labels.items()]
    lines.insert(3, "S999/001,happy")  # names no sequence folder
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root, root / "labels.csv"


def test_bad_inputs_are_rows_naming_the_file_and_the_rest_completes(ck, bad_tree, tmp_path):
    root, table = bad_tree
    work = tmp_path / "work"
    out = CliRunner().invoke(main, ["sequences", "align", "--root", str(root), "--work",
                                    str(work), "--jobs", "2"])
    assert out.exit_code == 0, out.output
    faces = read_manifest(work / "sequences/align").set_index("sample_id")
    lines = table.read_text().splitlines()
    line = {text.split(",")[0]: n for n, text in enumerate(lines, start=1)}
    expected = {
        "S052_002": ("empty_sequence", f"{root / 'S052/002'}: sequence folder holds no frames"),
        "S052/001/Thumbs.db": ("stray", f"{root / 'S052/001/Thumbs.db'}: not an image"),
        "S055/notes.txt": ("stray", f"{root / 'S055/notes.txt'}: not an image"),
        "S052/loose.jpg": ("misplaced", f"{root / 'S052/loose.jpg'}: an image outside the "
                           "sequence folders"),
        "S052_006_99": ("unreadable", f"{root / 'S052/006/99.jpg'}"),
        f"labels.csv:{line['S052_004']}": ("bad_label", f"{table} line {line['S052_004']}: "
                                           "1 field, the header has 2"),
        "S052_004": ("no_label", f"{root / 'S052/004'}: no label for sequence S052_004 in "
                     f"{table}"),
        "S999_001": ("missing_images", f"{table} line {line['S999/001']}: sequence "
                     f"'S999_001' is not in {root} (no folder {root / 'S999/001'})"),
        "S055_001": ("unknown_class", f"{table} line {line['S055_001']}: the label of S055_001 "
                     "('glee') names no label; say which with --classes 'glee=<label>'"),
        "S055_003": ("numbered_class", f"{table} line {line['S055_003']}: the label of S055_003 "
                     "is a number ('3')"),
    }
    for sample_id, (status, message) in expected.items():
        row = faces.loc[sample_id]
        assert (row.status, row.message[:len(message)]) == (status, message), sample_id
    for sample_id, (status, message) in expected.items():
        said = status not in ("stray", "no_label")  # quiet ones are counted, not said
        assert (message in out.output) is said, (sample_id, out.output)
    assert "stray: 2" in out.output and "no_label: 1" in out.output
    ok = faces[faces["status"] == "ok"]
    good = {q for q, s in ck.items() if s["subject"] in ("S052", "S055")} - {
        "S052_004", "S055_001", "S055_003"}
    assert set(ok["sequence"]) == good and len(ok) == 4 * len(good) - 1
    assert set(faces.loc[faces["sequence"] == "S052_006", "role"].dropna()) == {"neutral",
                                                                                  "peak"}


def test_bad_class_folders_are_rows_said_once(ck, trees, tmp_path) -> None:
    ds = get_dataset("sequences")
    above = tmp_path / "above"
    shutil.copytree(trees["above"], above)
    (above / "happy").rename(above / "joyful")
    items = ds.read(above, ds.options())
    joyful = [i for i in items if i["status"] != "ok"]
    happy = {q for q, s in ck.items() if s["label"] == "happiness"}
    assert {i["sequence"] for i in joyful} == happy and {i["status"] for i in joyful} == {
        "unknown_class"}
    assert {i["message"] for i in joyful} == {
        f"{above / 'joyful'}: class folder ('joyful') names no label; say which with "
        f"--classes 'joyful=<label>' (labels: {', '.join(CANONICAL)}, or a common name: happy, "
        f"angry, …); or, if it holds <subject>/<sequence>/ folders, give --root {above / 'joyful'}"
    }  # one message for the folder's sequences: said once
    items = ds.read(above, ds.options(classes="joyful=happiness"))
    assert {i["status"] for i in items} == {"ok"}
    oulu = tmp_path / "oulu"
    shutil.copytree(trees["oulu"], oulu)
    (oulu / "S052/Surprise").rename(oulu / "S052/Startled")
    bad = [i for i in ds.read(oulu, ds.options()) if i["status"] != "ok"]
    assert [(i["sequence"], i["status"]) for i in bad] == [("S052_Startled", "unknown_class")]
    assert bad[0]["message"].startswith(f"{oulu}/*/Startled: sequence folder name")


def test_trees_that_are_not_sequence_trees_are_errors(ck, trees, tmp_path) -> None:
    ds = get_dataset("sequences")
    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copy(ck["S052_001"]["frames"][0], flat)
    with pytest.raises(InputError, match=f"{flat}: no <subject>/<sequence>/ .* folder of frames"):
        ds.read(flat, ds.options())
    with pytest.raises(InputError, match=f"{trees['plain']}: no sequence is labelled .*--labels"):
        ds.read(trees["plain"], ds.options())  # no labels.csv in it, none given
    assert {i["status"] for i in ds.read(trees["plain"], ds.options(include_unlabelled=True))
            } == {"ok"}
    header = tmp_path / "header.csv"
    header.write_text("seq,emotion\nS052/001,happy\n")
    with pytest.raises(InputError, match=f"{header}: the labels CSV needs a header"):
        ds.read(trees["plain"], ds.options(labels=str(header)))
    with pytest.raises(InputError, match="missing"):
        ds.read(trees["plain"], ds.options(labels=str(tmp_path / "none.csv")))
    with pytest.raises(OptionError, match="--name 'ckplus'"):
        run("sequences", "align", tmp_path / "work", root=trees["oulu"], name="ckplus")


def test_repeated_names_duplicate_frames_and_disagreeing_lines(ck, trees, tmp_path) -> None:
    """A subject's sequence under two classes takes <Class>-<sequence>; a second frame of one
    stem and two CSV lines giving one sequence two labels are rows."""
    ds = get_dataset("sequences")
    above = tmp_path / "above"
    shutil.copytree(trees["above"], above)
    shutil.copytree(above / "surprise/S052/001", above / "fear/S052/001")
    items = [i for i in ds.read(above, ds.options()) if i["subject"] == "S052"]
    assert {i["sequence"] for i in items} == {"S052_surprise-001", "S052_fear-001", "S052_004",
                                              "S052_006"}
    paths = [ds.item_path(i) for i in items]
    assert len(set(paths)) == len(paths) and "S052/fear-001/S052_001_00000001" in paths
    plain = tmp_path / "plain"
    shutil.copytree(trees["plain"], plain)
    shutil.copy(plain / "S052/001/1.jpg", plain / "S052/001/1.png")
    table = tmp_path / "labels.csv"
    table.write_text(trees["labels"].read_text() + "S052_004,sad\nS052/004,happy\n")
    lines = table.read_text().splitlines()
    first = next(n for n, line in enumerate(lines, 1) if line.startswith(("S052_004", "S052/004")))
    items = {i["sample_id"]: i for i in ds.read(plain, ds.options(labels=str(table)))}
    assert items["S052/001/1.png"]["status"] == "duplicate_frame"
    assert items["S052/001/1.png"]["message"] == (
        f"{plain / 'S052/001/1.png'}: a second frame named 1 (beside 1.jpg): skipped")
    assert items["S052_001_1"]["source_path"] == str(plain / "S052/001/1.jpg")
    assert items["S052_004"]["status"] == "bad_label"
    assert lines[first - 1].endswith(",happy") and first < len(lines) - 1  # CK+'s label
    assert items["S052_004"]["message"] == (f"{table} lines {first} and {len(lines) - 1}: "
                                            "sequence S052_004 is labelled both 'happy' and 'sad'")
