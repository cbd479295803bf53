"""MMI: sessions made from the real shared CK+ sequences (encoded to .avi with ffmpeg beside their
metadata XML, plus a dual-view and a turned recording), read through the video path with the
real MediaPipe models; FMPN's extracted-frames layout for its published folds."""

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

from fer_prep.cli import main
from fer_prep.datasets import get_dataset
from fer_prep.datasets.ckplus import read_ckplus
from fer_prep.datasets.mmi import MMI_VALUES, ckplus_as_mmi, select
from fer_prep.exports import export
from fer_prep.manifest import read_manifest
from fer_prep.runner import run
from fer_prep.sample import encode_avi

RECORDED = {"S052_004": "dual-right", "S055_005": "dual-left", "S074_002": "turned"}
VIEWS = {"dual-right": "right", "dual-left": "left", "turned": "rotate-ccw", "single": "full"}


@pytest.fixture(scope="module")
def mmi(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Nine sessions (six as filmed, a dual view each way, one turned) and five bad ones."""
    ck = shared / "data/ckplus"
    labels = {i["sequence"]: i["sequence_label"] for i in read_ckplus(ck, "peak")
              if i["sequence_label"] in MMI_VALUES}
    chosen = sorted(labels)[::2][:6] + sorted(RECORDED)
    chosen = dict.fromkeys(chosen)  # unique, in order
    labels = {s: labels[s] for s in chosen}
    root = tmp_path_factory.mktemp("mmi")
    ckplus_as_mmi(ck / "cohn-kanade-images", labels, root, RECORDED)
    sessions = root / "Sessions"
    video = next(sessions.glob("1/*.avi"))
    for n, (stem, xml) in enumerate([
        ("S900-001", '<Session><Metatag Name="Source" Value="x"/></Session>'),
        ("S900-002", '<Session><Metatag Name="Emotion" Value="9"/></Session>'),
        ("S900-003", '<Session><Metatag Name="Emotion" Value="4"'),  # cut off
    ], start=100):
        (sessions / str(n)).mkdir()
        shutil.copyfile(video, sessions / str(n) / f"{stem}.avi")
        (sessions / str(n) / f"{stem}.xml").write_text(xml, encoding="utf-8")
    (sessions / "103").mkdir()
    (sessions / "103/S900-004.xml").write_text(
        '<Session><Metatag Name="Emotion" Value="1"/></Session>', encoding="utf-8")
    (sessions / "104").mkdir()  # a real face, one frame long: too short for a selection
    face = cv2.imread(str(next(ck.glob("cohn-kanade-images/S052/001/*.png"))))  # BGR
    encode_avi(iter([face]), sessions / "104/S900-005.avi", face.shape[1::-1], 24)
    (sessions / "104/S900-005.xml").write_text(
        '<Session><Metatag Name="Emotion" Value="6"/></Session>', encoding="utf-8")
    work = tmp_path_factory.mktemp("work")
    frames = run("mmi", "video2frame", work, root=root)
    faces = run("mmi", "align-video", work)
    return {"root": root, "work": work, "labels": labels, "frames": frames, "faces": faces,
            "ck": ck / "cohn-kanade-images"}


def test_every_selected_frame_gets_a_face_in_its_view(mmi: dict) -> None:
    faces = read_manifest(mmi["work"] / "mmi/align")
    good = faces[faces["sequence"].isin(mmi["labels"])]
    assert (good["status"] == "ok").all(), good.loc[good["status"] != "ok", "message"].tolist()
    assert good.groupby("sequence").size().eq(4).all()  # neutral + three around the apex
    assert good.groupby("sequence")["role"].apply(list).map(
        lambda r: r == ["neutral", "peak", "peak", "peak"]).all()
    for sequence, rows in good.groupby("sequence"):
        label = mmi["labels"][sequence]
        assert rows["label"].tolist() == ["neutral", label, label, label]
        assert set(rows["sequence_label"]) == {label}
        assert set(rows["view"]) == {VIEWS[RECORDED.get(sequence, "single")]}, sequence
    # the apex is the middle of the clip: CK+'s last frame, played forward then back
    for sequence, rows in good.groupby("sequence"):
        subject, take = sequence.split("_")
        last = len(list((mmi["ck"] / subject / take).glob("*.png")))
        assert rows["frame"].tolist() == [1, last - 1, last, last + 1]
        assert rows["sample_id"].iloc[2] == f"{sequence}_{last:03d}"  # FMPN's names


def test_views_put_the_landmarks_on_the_frontal_face(mmi: dict) -> None:
    faces = read_manifest(mmi["work"] / "mmi/align").query("status == 'ok'")
    for sequence, rows in faces.groupby("sequence"):
        width, height = rows["width"].iloc[0], rows["height"].iloc[0]
        view = rows["view"].iloc[0]
        assert (width, height) == {"full": (720, 576), "left": (360, 576),
                                   "right": (360, 576), "rotate-ccw": (720, 576)}[view]
        points = np.stack(rows["landmarks68"].to_numpy()).reshape(-1, 68, 2)
        eyes = points[:, 42:48].mean(1) - points[:, 36:42].mean(1)
        assert (np.abs(eyes[:, 1]) < 0.3 * eyes[:, 0]).all(), sequence  # upright, level eyes


def test_bad_sessions_are_rows_that_say_why(mmi: dict) -> None:
    assert mmi["faces"].counts["ok"] == 4 * len(mmi["labels"])
    frames = read_manifest(mmi["work"] / "mmi/frames")
    said = frames[frames["status"] != "ok"].set_index("sequence")
    assert said.loc["S900_001", "status"] == "no_emotion"
    assert 'no metadata entry Name="Emotion"' in said.loc["S900_001", "message"]
    assert said.loc["S900_002", "status"] == "not_basic"
    assert "Emotion value '9'" in said.loc["S900_002", "message"]
    assert said.loc["S900_003", "status"] == "bad_metadata"
    assert said.loc["S900_004", "status"] == "missing_video"
    assert "S900-004.xml" in said.loc["S900_004", "message"]


def test_a_clip_too_short_for_its_selection_is_a_row_that_says_so(mmi: dict, tmp_path: Path
                                                                   ) -> None:
    """mmi-5: a 1-frame video is one `too_short` row naming it, at video2frame and at align
    (from the frames and from the video), with its label; the folds keep it out of every part."""
    video = mmi["root"] / "Sessions/104/S900-005.avi"
    direct = run("mmi", "align-video", tmp_path, root=mmi["root"], from_video=True)
    for folder in ("frames", "align"):
        rows = read_manifest(mmi["work"] / "mmi" / folder)
        row = rows[rows["sequence"] == "S900_005"]
        assert len(row) == 1 and row["status"].item() == "too_short", folder
        assert row["message"].item() == (f"{video}: 1 frame(s), and the neutral-peak selection "
                                         "needs 4 (a neutral first frame and 3 peak frames "
                                         "after it)")
        assert row["label"].item() == "surprise"
    rows = read_manifest(direct.folder)
    assert rows.loc[rows["sequence"] == "S900_005", "status"].tolist() == ["too_short"]


def test_decoding_the_videos_gives_the_same_rows(mmi: dict, tmp_path: Path) -> None:
    direct = run("mmi", "align-video", tmp_path, root=mmi["root"], from_video=True)
    ours = read_manifest(direct.folder).sort_values("sample_id").reset_index(drop=True)
    staged = read_manifest(mmi["work"] / "mmi/align").sort_values("sample_id")
    staged = staged.reset_index(drop=True)
    cols = ["sample_id", "frame", "role", "label", "status", "view"]
    pd.testing.assert_frame_equal(ours[cols], staged[cols])
    ok = ours["status"] == "ok"
    a = np.stack(ours.loc[ok, "landmarks68"].to_numpy())
    b = np.stack(staged.loc[ok, "landmarks68"].to_numpy())
    assert np.abs(a - b).max() < 3.0  # JPEG frames vs decoded pixels


def test_masks_and_folds_on_mmi(mmi: dict) -> None:
    folds = run("mmi", "folds", mmi["work"], scheme="subject-kfold", k=3)
    assert folds.counts["ok"] >= 4 * len(mmi["labels"])
    short = folds.manifest[folds.manifest["sequence"] == "S900_005"]  # mmi-5: in no part
    assert short["status"].tolist() == ["excluded"] and short["fold"].tolist() == [-1]
    masks = run("mmi", "masks", mmi["work"])
    table = read_manifest(masks.folder)
    present = set(mmi["labels"].values())
    made = table[(table["kind"] == "class") & (table["status"] == "ok")]
    assert set(made["label"]) == present
    assert len(list(masks.folder.glob("[0-9]/[0-9].png"))) == len(made)


def test_cli_runs_the_video_path(mmi: dict, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["mmi", "video2frame", "--root", str(mmi["root"]),
                                  "--work", str(tmp_path), "--frames", "peak"])
    assert result.exit_code == 0, result.output
    frames = read_manifest(tmp_path / "mmi/frames")
    assert set(frames.loc[frames["status"] == "ok", "role"]) == {"peak"}
    assert "not_basic" in result.output or "Emotion value" in result.output


def test_selection_centres_three_peaks_on_the_apex() -> None:
    assert select(81, "neutral-peak") == {1: "neutral", 40: "peak", 41: "peak", 42: "peak"}
    assert select(81, "peak", apex=1.0) == {79: "peak", 80: "peak", 81: "peak"}
    assert select(81, "peak", apex=0.0) == {2: "peak", 3: "peak", 4: "peak"}
    roles = select(9, "all")
    assert list(roles.values()) == ["neutral", "onset", "onset", "peak", "peak", "peak",
                                    "offset", "offset", "offset"]


# --- FMPN's extracted frames and published folds ------------------------------------------------

@pytest.fixture(scope="module")
def fmpn_root(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """FMPN-FER's MMI data root: imgs/ with every frame its lists name (one real CK+ face,
    linked), and its label table."""
    ref = shared / "reference/fmpn/MMI"
    root = tmp_path_factory.mktemp("MMI")
    (root / "imgs").mkdir()
    face = next((shared / "data/ckplus/cohn-kanade-images").glob("S052/001/*.png"))
    names = {line.strip() for f in ref.glob("t*_ids_0.csv")
             for line in f.read_text().splitlines() if line.strip()}
    for name in names:
        os.link(face, root / "imgs" / name) if face.stat().st_dev == root.stat().st_dev \
            else shutil.copyfile(face, root / "imgs" / name)
    shutil.copyfile(ref / "emotion_labels.csv", root / "emotion_labels.csv")
    return root


def test_fmpn_lists_are_the_seeds_byte_for_byte(shared: Path, fmpn_root: Path,
                                                tmp_path: Path) -> None:
    ref = shared / "reference/fmpn/MMI"
    for how in ({"scheme": "fmpn"}, {"split": "mmi-fmpn-10fold-v1"}):
        work = tmp_path / next(iter(how.values()))
        run("mmi", "folds", work, root=fmpn_root, **how)  # labels and names alone
        export("fmpn", "mmi", work, work / "MMI")
        for k in range(10):
            for part in ("train", "test"):
                name = f"{part}_ids_{k}.csv"
                assert (work / "MMI" / name).read_bytes() == (ref / name).read_bytes(), name
    with open(work / "MMI/emotion_labels.pkl", "rb") as f:
        ours = pickle.load(f, encoding="latin1")
    table = pd.read_csv(ref / "emotion_labels.csv", dtype={"sequence": str})
    published = dict(zip(table["sequence"], table["label"], strict=True))
    assert ours == {s: published[s] for s in ours} and len(ours) == 208
    assert {type(v) for v in ours.values()} == {int}  # its MMI loader takes the class as it is


def test_fmpn_frames_take_their_roles_from_their_numbers(fmpn_root: Path) -> None:
    items = get_dataset("mmi").read(fmpn_root, get_dataset("mmi").options())
    assert len(items) == 208 and all(i["status"] == "ok" for i in items)
    first = next(i for i in items if i["sequence"] == "S001_100")
    assert first["frame_numbers"] == [40, 41, 42] and set(first["frame_roles"]) == {"peak"}


def test_the_label_pickle_loads_plain_data_only(fmpn_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "MMI"
    shutil.copytree(fmpn_root / "imgs", root / "imgs")
    (root / "emotion_labels.pkl").write_bytes(pickle.dumps({"S001_100": Path("x")}))
    runner = CliRunner()
    result = runner.invoke(main, ["mmi", "video2frame", "--root", str(root),
                                  "--work", str(tmp_path / "work")])
    assert result.exit_code == 1
    assert "not FMPN's label table" in result.output and "is not plain data" in result.output


def test_reader_options_where_the_dataset_is_not_read_are_an_error(mmi: dict) -> None:
    result = CliRunner().invoke(main, ["mmi", "align", "--work", str(mmi["work"]),
                                       "--view", "left"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: --view: options of reading mmi")


def test_fmpn_frames_go_through_the_video_path(shared: Path, tmp_path: Path) -> None:
    """FMPN's extracted frames (a neutral first frame and three apex frames per session) are
    placed in the frames stage and aligned like decoded ones; a changed frame redoes its clip."""
    ck = shared / "data/ckplus/cohn-kanade-images"
    imgs = tmp_path / "MMI/imgs"
    imgs.mkdir(parents=True)
    for sequence, numbers in {"S052_004": (1, 30, 31, 32), "S055_005": (1, 12, 13, 14)}.items():
        files = sorted((ck / sequence.replace("_", "/")).glob("*.png"))
        for n, f in zip(numbers, [files[0], *files[-3:]], strict=True):
            shutil.copyfile(f, imgs / f"{sequence}_{n:03d}.png")
    (tmp_path / "MMI/emotion_labels.csv").write_text("sequence,label\nS052_004,3\nS055_005,5\n")
    work = tmp_path / "work"
    run("mmi", "video2frame", work, root=tmp_path / "MMI")
    faces = read_manifest(run("mmi", "align-video", work).folder)
    assert (faces["status"] == "ok").all()
    assert faces["sample_id"].tolist() == ["S052_004_001", "S052_004_030", "S052_004_031",
                                           "S052_004_032", "S055_005_001", "S055_005_012",
                                           "S055_005_013", "S055_005_014"]
    assert faces["role"].tolist() == ["neutral", "peak", "peak", "peak"] * 2
    assert faces["label"].tolist() == ["neutral", *["happiness"] * 3, "neutral", *["surprise"] * 3]
    shutil.copyfile(imgs / "S052_004_001.png", imgs / "S052_004_030.png")
    again = run("mmi", "video2frame", work, root=tmp_path / "MMI")
    assert again.computed == 1 and again.reused == 1
