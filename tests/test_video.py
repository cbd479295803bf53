"""`extract_frames` and `decode` on real videos: clean ones give no problem, and a truncated or
corrupt copy keeps the frames ffmpeg decoded and says what ffmpeg said about it."""

from __future__ import annotations

import random
import re
import subprocess
from pathlib import Path

import pytest

from fer_prep.sample import write_afew_sample
from fer_prep.video import Decoded, VideoError, decode, extract_frames, ffmpeg_exe

FRAMES = {  # every real video of the shared media folder and its frame count
    "WolfgangLanger_Pexels.mp4": 472, "single_face.mp4": 72, "no_face.mp4": 95,
    "face_noface.mov": 169, "noface_face.mov": 169,
}


@pytest.fixture(scope="module")
def media(shared: Path) -> Path:
    return shared / "data/media"


def both(path: Path, tmp: Path) -> Decoded:
    """`path` through `extract_frames` and `decode`, checked to agree; the result."""
    out = tmp / f"{path.name}-frames"
    extracted = extract_frames(path, out)
    assert len(list(out.iterdir())) == len(extracted.times)
    frames, decoding = decode(path)
    assert decoding.result is None  # nothing known before the iterator has run
    assert [i for i, _ in frames] == list(range(1, len(extracted.times) + 1))
    assert decoding.result == extracted
    assert extracted.times[0] == 0 and extracted.times == sorted(extracted.times)
    return extracted


def cut(src: Path, dst: Path, share: float = 0.6) -> Path:
    """The first `share` of `src`'s bytes, as a download that stopped part way leaves them."""
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * share)])
    return dst


def corrupt(src: Path, dst: Path) -> Path:
    """`src` with 20 runs of random bytes in its middle third (the same ones every time)."""
    data, rng = bytearray(src.read_bytes()), random.Random(0)
    for _ in range(20):
        at = rng.randrange(len(data) // 3, 2 * len(data) // 3)
        data[at : at + 64] = rng.randbytes(64)
    dst.write_bytes(data)
    return dst


def ffmpeg(src: Path, dst: Path, *args: str) -> Path:
    """`src` rewritten by ffmpeg into `dst`, video only."""
    cmd = [ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-y", "-i", str(src), "-an", *args,
           str(dst)]
    subprocess.run(cmd, check=True)
    return dst


def assert_partial(result: Decoded, path: Path, whole: int, words: str) -> None:
    """`result` kept some frames but not all, and its problem names `path` and ffmpeg's words."""
    count = len(result.times)
    assert 0 < count <= whole
    assert result.problem.startswith(f"{path}: decoded {count} frames, but ffmpeg: ")
    assert re.search(words, result.problem), result.problem


@pytest.mark.parametrize("name", FRAMES)
def test_shared_videos_are_clean(media: Path, tmp_path: Path, name: str) -> None:
    result = both(media / name, tmp_path)
    assert len(result.times) == FRAMES[name]
    assert result.problem == ""


def test_sample_clips_are_clean(tmp_path: Path) -> None:
    clips = sorted(write_afew_sample(tmp_path / "sample").rglob("*.avi"))
    assert len(clips) == 4
    for clip in clips:
        assert both(clip, tmp_path).problem == "", clip


def test_truncated_mp4_keeps_its_frames(media: Path, tmp_path: Path) -> None:
    """The index (moov) comes first here, so ffmpeg decodes up to where the bytes stop."""
    path = cut(media / "WolfgangLanger_Pexels.mp4", tmp_path / "cut.mp4")
    result = both(path, tmp_path)
    assert_partial(result, path, FRAMES["WolfgangLanger_Pexels.mp4"] - 1, "partial file")


def test_truncated_mp4_without_its_index_fails(media: Path, tmp_path: Path) -> None:
    """The index (moov) comes last here: cut off, no frame can be found, which is an error."""
    path = cut(media / "single_face.mp4", tmp_path / "cut.mp4")
    with pytest.raises(VideoError, match=f"^{re.escape(str(path))}: ffmpeg: moov atom not found"):
        extract_frames(path, tmp_path / "frames")
    frames, _ = decode(path)
    with pytest.raises(VideoError, match="moov atom not found"):
        next(frames)


@pytest.mark.parametrize(("suffix", "args", "words"), [
    (".avi", ("-c:v", "mpeg4", "-q:v", "3"), r"Invalid data|damaged|Error at MB"),  # AFEW's kind
    (".mov", ("-c:v", "copy", "-movflags", "+faststart"), r"partial file|Invalid NAL unit size"),
])
def test_truncated_rewritten_clip_keeps_its_frames(
    media: Path, tmp_path: Path, suffix: str, args: tuple[str, ...], words: str
) -> None:
    whole = ffmpeg(media / "single_face.mp4", tmp_path / f"whole{suffix}", *args)
    assert both(whole, tmp_path).problem == ""
    path = cut(whole, tmp_path / f"cut{suffix}")
    assert_partial(both(path, tmp_path), path, FRAMES["single_face.mp4"] - 1, words)


def test_corrupt_bytes_in_the_middle(media: Path, tmp_path: Path) -> None:
    """ffmpeg conceals the damage and decodes (nearly) every frame, but says so."""
    path = corrupt(media / "WolfgangLanger_Pexels.mp4", tmp_path / "corrupt.mp4")
    whole = FRAMES["WolfgangLanger_Pexels.mp4"]
    assert_partial(both(path, tmp_path), path, whole, "error while decoding MB")
