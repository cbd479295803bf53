"""`afew video2frame` and `afew align` on real face videos from ../shared/data/media."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import dlib
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from fer_prep.cli import main
from fer_prep.datasets.afew import read_afew
from fer_prep.errors import InputError
from fer_prep.faces.dlib import dlib_model
from fer_prep.images import read_image
from fer_prep.manifest import read_manifest, schema
from fer_prep.runner import run

ODD = "clip with spaces 'quotes' é"
CLIPS = {  # split/class/name: source in data/media
    "Train_AFEW/Happy/WolfgangLanger_Pexels.mp4": "WolfgangLanger_Pexels.mp4",
    "Train_AFEW/Neutral/single_face.mp4": "single_face.mp4",
    f"Val_AFEW/Angry/{ODD}.mp4": "single_face.mp4",
    "Val_AFEW/Sad/face_noface.mov": "face_noface.mov",
    "Val_AFEW/Surprise/noface_face.mov": "noface_face.mov",
    "Val_AFEW/Neutral/no_face.mp4": "no_face.mp4",
}
FACE_CLIPS = ["train_WolfgangLanger_Pexels", "train_single_face", f"val_{ODD}"]


def _cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def afew(shared: Path, tmp_path_factory) -> dict[str, Path]:
    """An AFEW-layout folder of real clips plus a corrupt and an empty one, run through both."""
    root = tmp_path_factory.mktemp("afew")
    for rel, src in CLIPS.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shared / "data/media" / src, root / rel)
    (root / "Val_AFEW/Disgust").mkdir()
    corrupt = root / "Val_AFEW/Disgust/corrupt.avi"
    corrupt.write_bytes((shared / "data/media/single_face.mp4").read_bytes()[:4000])
    (root / "Val_AFEW/Fear").mkdir()
    (root / "Val_AFEW/Fear/empty.avi").write_bytes(b"")
    work = tmp_path_factory.mktemp("work")
    frames_out = _cli("afew", "video2frame", "--root", str(root), "--work", str(work),
                      "--jobs", "2")
    align_out = _cli("afew", "align", "--work", str(work), "--jobs", "2")
    return {"root": root, "work": work, "frames_out": frames_out, "align_out": align_out}


def _decoded_count(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.grab():
        count += 1
    return count


def test_frame_counts_equal_the_decoded_counts(afew) -> None:
    frames = read_manifest(afew["work"] / "afew/frames")
    ok = frames[frames.status == "ok"]
    for source, group in ok.groupby("source_path"):
        assert len(group) == _decoded_count(Path(source)), source
        assert group.frame.tolist() == list(range(1, len(group) + 1))
        assert group.timestamp.is_monotonic_increasing and group.timestamp.iloc[0] == 0
        files = [afew["work"] / "afew/frames" / p for p in group.frame_path]
        assert all(f.is_file() for f in files)
        assert files[0].name == "0000001.jpg"
    assert set(ok.sequence) == {
        "train_WolfgangLanger_Pexels", "train_single_face", f"val_{ODD}", "val_face_noface",
        "val_noface_face", "val_no_face",
    }
    odd = ok[ok.sequence == f"val_{ODD}"].frame_path.iloc[0]
    assert odd.startswith(f"val/Angry/{ODD}/")  # spaces, quotes and é survive


def test_a_broken_video_fails_alone(afew) -> None:
    frames = read_manifest(afew["work"] / "afew/frames").set_index("sequence")
    for name in ("corrupt", "empty"):
        row = frames.loc[f"val_{name}"]
        assert row.status == "failed" and f"{name}.avi: ffmpeg: " in row.message
        assert "Invalid data" in row.message
        assert f"{name}.avi" in afew["frames_out"]  # said on the console
    align = read_manifest(afew["work"] / "afew/align")
    for name in ("corrupt", "empty"):
        rows = align[align.sequence == f"val_{name}"]
        assert len(rows) == 1 and rows.status.iloc[0] == "failed", name  # one row, as in frames
        assert f"{name}.avi: ffmpeg: " in rows.message.iloc[0]


def test_faces_on_the_face_clips(afew) -> None:
    align = read_manifest(afew["work"] / "afew/align")
    frames = read_manifest(afew["work"] / "afew/frames")
    for clip in FACE_CLIPS:
        rows = align[align.sequence == clip]
        assert len(rows) == (frames.sequence == clip).sum() > 0, clip  # a row per frame
        assert (rows.status == "ok").mean() >= 0.99, clip
        assert rows.status.isin(["ok", "borrowed"]).all(), clip
        # chips at faces/<split>/<Class>/<clip>/0000001.jpg: the frames' layout (JPEG chips
        # under the default preset, as the frames are)
        assert (rows.face_path == "faces/" + rows.frame_path).all(), clip
    odd = align[align.sequence == f"val_{ODD}"].face_path.iloc[0]
    assert odd == f"faces/val/Angry/{ODD}/0000001.jpg"
    folder = afew["work"] / "afew/align"
    ok = align[align.status == "ok"]
    chip = read_image(folder / ok.face_path.iloc[0])
    assert chip.shape == (224, 224, 3)


def test_borrowed_and_no_face_rows_are_flagged(afew) -> None:
    align = read_manifest(afew["work"] / "afew/align")
    frames = read_manifest(afew["work"] / "afew/frames")
    no_face = align[align.sequence == "val_no_face"]
    assert len(no_face) == (frames.sequence == "val_no_face").sum() > 0
    assert (no_face.status == "no_face").all() and no_face.face_path.isna().all()
    for clip in ("val_face_noface", "val_noface_face"):
        rows = align[align.sequence == clip].set_index("frame")
        borrowed = rows[rows.status == "borrowed"]
        detected = rows.index[rows.status == "ok"].to_numpy()
        assert len(borrowed) >= 10 and len(detected) >= 10, clip
        for frame, row in borrowed.iterrows():
            assert rows.loc[row.borrowed_from, "status"] == "ok"
            assert row.borrow_distance == abs(frame - row.borrowed_from)
            assert row.borrow_distance == np.abs(detected - frame).min()  # the nearest one
            assert (afew["work"] / "afew/align" / row.face_path).is_file()


def _mtimes(folder: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_rerun_is_a_no_op_and_a_half_extracted_video_is_redone(afew) -> None:
    work, root = afew["work"], afew["root"]
    before = _mtimes(work)
    out = _cli("afew", "video2frame", "--root", str(root), "--work", str(work), "--jobs", "2")
    assert "unchanged, skipped" in out
    out = _cli("afew", "align", "--work", str(work), "--jobs", "2")
    assert "unchanged, skipped" in out
    assert _mtimes(work) == before

    clip = work / "afew/frames/train/Neutral/single_face"
    for jpg in sorted(clip.glob("*.jpg"))[30:]:
        jpg.unlink()  # as if killed half way through this video
    leftover = clip.with_name(".single_face.tmp-99999")
    leftover.mkdir()
    (leftover / "0000001.jpg").write_bytes(b"half")
    out = _cli("afew", "video2frame", "--root", str(root), "--work", str(work), "--jobs", "2")
    assert "1 computed" in out and not leftover.exists()
    assert len(list(clip.glob("*.jpg"))) == 72


def test_from_video_gives_the_same_rows(afew, tmp_path: Path) -> None:
    """Straight from the videos: the same frames, timestamps and statuses, and no frame files."""
    work = tmp_path / "work"
    _cli("afew", "align", "--from-video", "--root", str(afew["root"]), "--work", str(work),
         "--jobs", "2")
    direct = read_manifest(work / "afew/align")
    via_frames = read_manifest(afew["work"] / "afew/align")
    assert not (work / "afew/frames").exists()
    assert direct.sample_id.tolist() == via_frames.sample_id.tolist()
    assert np.allclose(direct.timestamp.dropna(), via_frames.timestamp.dropna())
    assert (direct.status == via_frames.status).mean() >= 0.98
    both = (direct.status == "ok") & (via_frames.status == "ok")
    assert both.sum() > 0 and (direct.face_path[both] == via_frames.face_path[both]).all()
    assert direct.frame_path.isna().all()


def test_emotion_fan_preset_matches_the_seeds_chips(afew, tmp_path: Path) -> None:
    """Emotion-FAN: HOG (upsample 1) + 5-point predictor + get_face_chip(224, 0.25) per frame."""
    root = tmp_path / "afew"
    (root / "Train_AFEW/Neutral").mkdir(parents=True)
    shutil.copy(afew["root"] / "Train_AFEW/Neutral/single_face.mp4", root / "Train_AFEW/Neutral")
    work = tmp_path / "work"
    _cli("afew", "video2frame", "--root", str(root), "--work", str(work), "--jobs", "1")
    _cli("afew", "align", "--work", str(work), "--preset", "emotion-fan", "--jobs", "1")
    manifest = read_manifest(work / "afew/align")
    assert (manifest.status == "ok").all()
    hog = dlib.get_frontal_face_detector()
    sp5 = dlib.shape_predictor(str(dlib_model("shape_predictor_5_face_landmarks.dat")))
    differences = []
    for row in manifest.iloc[::6].itertuples():
        frame = cv2.cvtColor(cv2.imread(str(work / "afew/frames" / row.frame_path)),
                             cv2.COLOR_BGR2RGB)
        chip = dlib.get_face_chip(frame, sp5(frame, hog(frame, 1)[0]), size=224, padding=0.25)
        assert row.face_path.endswith(".jpg")  # the preset writes video chips as the seed does
        _, jpeg = cv2.imencode(".jpg", cv2.cvtColor(chip, cv2.COLOR_RGB2BGR))  # seed's imwrite
        seed = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
        ours = read_image(work / "afew/align" / row.face_path)
        differences.append(np.abs(ours.astype(float) - seed).mean())
    assert max(differences) <= 1.0, np.round(differences, 2)


@pytest.mark.parametrize(("preset", "points", "bound"), [("default", "landmarks68", 0.9),
                                                          ("emotion-fan", "dlib5", 0.8)])
def test_smoothing_steadies_the_landmarks(afew, tmp_path: Path, preset: str, points: str,
                                          bound: float) -> None:
    """--smooth lowers frame-to-frame jitter (second differences) on a real clip: of the points
    the preset's template aligns on (eyes: the 68; dlib-chip5: dlib's 5) and so of the chips'
    frame → chip matrices. MediaPipe's Face Landmarker already filters its landmarks over time
    in VIDEO mode (0.152 raw on this clip, against the legacy mesh's unfiltered points), so
    there --smooth takes less off (17 % measured): bound 0.9; dlib's frames are detected one by
    one: 0.8."""
    root = tmp_path / "afew"
    (root / "Train_AFEW/Neutral").mkdir(parents=True)
    shutil.copy(afew["root"] / "Train_AFEW/Neutral/single_face.mp4", root / "Train_AFEW/Neutral")

    def jitter(values: pd.Series) -> float:
        stack = np.stack(values.map(lambda v: np.asarray(v, dtype=float)).to_list())
        return float(np.abs(np.diff(stack, n=2, axis=0)).mean())

    def run_with(smooth: bool) -> tuple[float, float]:
        result = run("afew", "align-video", tmp_path / str(smooth), root=root, preset=preset,
                     from_video=True, smooth=smooth, jobs=2)
        manifest = result.manifest
        assert manifest.sequence.unique().tolist() == ["train_single_face"]
        assert manifest.status.isin(["ok", "borrowed"]).all()  # every frame has landmarks
        assert result.record["params"]["smooth"] is smooth
        return jitter(manifest[points]), jitter(manifest["matrix"])

    (raw, raw_chip), (smooth, smooth_chip) = run_with(False), run_with(True)
    assert smooth < bound * raw, (raw, smooth)
    assert smooth_chip < bound * raw_chip, (raw_chip, smooth_chip)


def test_adapter_reads_emotion_fan_folder_names_and_flags_unknown_classes(tmp_path: Path) -> None:
    for rel in ["train_afew/Happy/000123.avi", "val_afew/Sad/000123.MP4",
                "val_afew/Bored/000999.webm", "val_afew/Sad/notes.txt"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    table = pd.DataFrame(read_afew(tmp_path)).set_index("sample_id")
    assert sorted(table.index) == ["train_000123", "val_000123", "val_000999"]  # split-keyed
    assert table.loc["train_000123", "label"] == "happiness"
    assert table.loc["val_000123", ["label", "label_code"]].tolist() == ["sadness", 5]
    assert table.loc["val_000999", "status"] == "bad_label"
    assert "Bored" in table.loc["val_000999", "message"]


def test_manifests_follow_the_shipped_schemas(afew) -> None:
    for stage, name in (("frames", "frames"), ("align", "faces")):
        manifest = read_manifest(afew["work"] / "afew" / stage)
        table = schema(name)
        assert set(manifest.columns) <= {c["column"] for c in table}, stage
        required = {c["column"] for c in table if c["required"] == "yes"}
        assert required and required <= set(manifest.columns), stage


def test_two_clips_linking_one_video_are_two_clips(shared: Path, tmp_path: Path) -> None:
    """Symbolic links are clips of their own (AFEW copies linked into a layout are common)."""
    video = (shared / "data/media/single_face.mp4").absolute()
    for name in ("a.mp4", "b.mp4"):
        link = tmp_path / "afew/Train_AFEW/Happy" / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(video)
    result = run("afew", "video2frame", tmp_path / "work", root=tmp_path / "afew", jobs=1)
    per_clip = result.manifest.groupby("sequence").size().to_dict()
    assert per_clip == {"train_a": _decoded_count(video), "train_b": _decoded_count(video)}


def test_two_items_sharing_an_id_are_an_error(shared: Path, tmp_path: Path) -> None:
    """One clip name twice in a split (under two classes, or as .mp4 and .avi) is one id for two
    videos: the run stops before extracting anything, naming the id, on the API and the CLI."""
    root = tmp_path / "afew"
    for rel in ("Train_AFEW/Happy/clip.mp4", "Train_AFEW/Sad/clip.mp4",
                "Val_AFEW/Sad/other.mp4", "Val_AFEW/Sad/other.avi"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shared / "data/media/single_face.mp4", root / rel)
    ids = [item["sample_id"] for item in read_afew(root)]
    assert sorted(ids) == ["train_clip", "train_clip", "val_other", "val_other"]
    work = tmp_path / "work"
    with pytest.raises(InputError, match=r"2 items share an id, e\.g\. (train_clip|val_other)"):
        run("afew", "video2frame", work, root=root, jobs=1)
    folder = work / "afew/frames"
    assert not (folder / "manifest.parquet").exists()
    assert not list(folder.rglob("*.jpg"))  # nothing was extracted
    result = CliRunner().invoke(main, ["afew", "video2frame", "--root", str(root), "--work",
                                       str(work), "--jobs", "1"])
    assert result.exit_code == 1 and "Error: 2 items share an id" in result.output

    (root / "Train_AFEW/Sad/clip.mp4").unlink()  # one id per video again: the run goes
    (root / "Val_AFEW/Sad/other.avi").unlink()
    out = _cli("afew", "video2frame", "--root", str(root), "--work", str(work), "--jobs", "1")
    assert "2 computed" in out
