"""Bad input: a clear message naming the file, a manifest row, and the rest completes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
from click.testing import CliRunner

from fer_prep.cli import main
from fer_prep.datasets.ckplus import read_ckplus
from fer_prep.manifest import read_manifest


def _copy(shared: Path, root: Path, seq: str) -> None:
    for part in ("cohn-kanade-images", "Emotion"):
        shutil.copytree(shared / "data/ckplus" / part / seq, root / part / seq)


def test_broken_files_are_reported_and_the_rest_completes(shared: Path, tmp_path: Path) -> None:
    root = tmp_path / "ck"
    for seq in ["S052/001", "S055/001", "S074/001", "S106/002", "S111/001"]:
        _copy(shared, root, seq)
    frames = root / "cohn-kanade-images"
    # a truncated PNG as a peak frame
    corrupt = sorted((frames / "S052/001").glob("*.png"))[-1]
    corrupt.write_bytes(corrupt.read_bytes()[:5000])
    # a text file named .png as the neutral frame
    text = sorted((frames / "S055/001").glob("*.png"))[0]
    text.write_text("this is not an image\n")
    # an Emotion file with garbage
    garbage = next((root / "Emotion/S074/001").glob("*_emotion.txt"))
    garbage.write_text("happy?\n")
    # an empty, labelled sequence folder
    (frames / "S106/009").mkdir()
    (root / "Emotion/S106/009").mkdir(parents=True)
    (root / "Emotion/S106/009/S106_009_00000012_emotion.txt").write_text("   5.0000000e+00\n")

    work = tmp_path / "work"
    result = CliRunner().invoke(main, ["ckplus", "align", "--root", str(root), "--work",
                                       str(work), "--jobs", "2"])
    assert result.exit_code == 0, result.output
    manifest = read_manifest(work / "ckplus/align").set_index("sample_id")

    def row(sample_id: str):
        return manifest.loc[sample_id]

    assert row(corrupt.stem).status == "unreadable"
    assert str(corrupt) in row(corrupt.stem).message and "corrupt" in row(corrupt.stem).message
    assert row(text.stem).status == "unreadable" and str(text) in row(text.stem).message
    assert row("S074_001").status == "bad_label" and "happy?" in row("S074_001").message
    assert str(garbage) in row("S074_001").message
    assert row("S106_009").status == "empty_sequence"
    for problem in (corrupt, text, garbage):
        assert str(problem) in result.output  # said on the console too, naming the file
    ok = manifest[manifest.status == "ok"]
    # S052/001 keeps 3 of 4 frames, S055/001 3 of 4, S106/002 and S111/001 all 4
    assert len(ok) == 3 + 3 + 4 + 4
    assert all((work / "ckplus/align" / p).is_file() for p in ok.face_path)


def test_a_frame_that_breaks_a_model_fails_alone(shared: Path, tmp_path: Path) -> None:
    """dlib's CNN breaks on a 3×3 frame: that row is `no_face`; the other frames align."""
    import cv2
    import numpy as np

    root = tmp_path / "ck"
    _copy(shared, root, "S111/001")
    tiny = sorted((root / "cohn-kanade-images/S111/001").glob("*.png"))[-1]
    cv2.imwrite(str(tiny), np.zeros((3, 3), np.uint8))
    work = tmp_path / "work"
    result = CliRunner().invoke(main, ["ckplus", "align", "--root", str(root), "--work",
                                       str(work), "--jobs", "1", "--preset", "emotion-fan"])
    assert result.exit_code == 0, result.output
    manifest = read_manifest(work / "ckplus/align").set_index("sample_id")
    assert manifest.loc[tiny.stem, "status"] == "no_face"
    assert str(tiny) in manifest.loc[tiny.stem, "message"]
    assert (manifest.drop(index=tiny.stem).status == "ok").all()


def test_nested_zip_layout_is_found(shared: Path, tmp_path: Path) -> None:
    """Emotion_labels/Emotion and CK+/cohn-kanade-images, as the zips extract."""
    root = tmp_path / "ck"
    shutil.copytree(shared / "data/ckplus/cohn-kanade-images/S052/001",
                    root / "CK+/cohn-kanade-images/S052/001")
    shutil.copytree(shared / "data/ckplus/Emotion/S052/001",
                    root / "Emotion_labels/Emotion/S052/001")
    (root / "Emotion_labels/Emotion/S052/001/.DS_Store").write_text("")
    table = pd.DataFrame(read_ckplus(root))
    assert (table.status == "ok").all() and len(table) == 4
    assert (table[table.role == "peak"].label == "surprise").all()
