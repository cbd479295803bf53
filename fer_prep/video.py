"""Video decoding through ffmpeg (ffmpeg-python), with the system binary or imageio-ffmpeg's own.

Two ways out of a video, sharing one filter chain so they give the same frames and timestamps:
`extract_frames` writes JPEGs (`%07d.jpg` from 1, Emotion-FAN's naming) and `decode` yields BGR
arrays without writing anything. Both give each frame's presentation time from ffmpeg's
`showinfo` filter, and raise `VideoError` with ffmpeg's own words when it fails. A video ffmpeg
reads only in part (truncated, corrupt bytes) still exits 0 with the frames it managed; its
errors then come back as `Decoded.problem`, so the clip is not taken for a whole one. Arguments
go to ffmpeg as a list (no shell), so paths with spaces, quotes or non-ASCII characters are safe.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import ffmpeg
import numpy as np

FRAME_PATTERN = "%07d.jpg"  # one naming template for producer and consumer
_SHOWINFO = re.compile(r"\[Parsed_showinfo[^\]]*\]\s*n:\s*(\d+)\s+pts:\s*\S+\s+pts_time:\s*(\S+)")
_CONTEXT = re.compile(r"^(?:\[[^\]]*\] )+")  # "[h264 @ 0x…] ": who logged, not what
_ERROR_LEVEL = 16  # AV_LOG_ERROR: errors, fatal and panic; warnings (24) are chatter
_QUOTED = 3  # distinct errors quoted in a message; the rest are counted


# every decoded frame once, in the filter's time base: variable-frame-rate phone videos would
# otherwise collide on the encoder's 1/fps clock ("Invalid pts") and fail half way
_PASSTHROUGH = {"fps_mode": "passthrough", "enc_time_base": "filter"}


class VideoError(RuntimeError):
    """ffmpeg failed or gave no frame of the video; the message carries its reason."""


@dataclass(frozen=True)
class Decoded:
    """A finished decode: each frame's timestamp, and `problem`, "" when ffmpeg read the video
    without an error, else "<path>: decoded N frames, but ffmpeg: <its errors>"."""

    times: list[float]
    problem: str = ""


@dataclass
class Decoding:
    """`decode`'s outcome, `result` set once its iterator is exhausted (None until then)."""

    result: Decoded | None = None


@cache
def ffmpeg_exe() -> str:
    """The system `ffmpeg` if there is one, else the static binary inside imageio-ffmpeg."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def frame_name(index: int) -> str:
    """File name of frame `index` (1-based), e.g. 0000001.jpg."""
    return FRAME_PATTERN % index


def _stream(path: Path, fps: float | None, max_side: int | None):
    stream = ffmpeg.input(str(path))
    if fps:
        stream = stream.filter("fps", fps=fps)
    if max_side:  # shrink to fit max_side × max_side, never enlarge, keep the aspect ratio
        stream = stream.filter(
            "scale", w=f"min(iw,{max_side})", h=f"min(ih,{max_side})",
            force_original_aspect_ratio="decrease", force_divisible_by=2,
        )
    return stream.filter("showinfo", checksum=0)  # timestamps only: no per-frame checksums


def _timestamps(log: str) -> list[float]:
    return [float(t) for _, t in _SHOWINFO.findall(log)]


def _report_env(report: Path) -> dict[str, str]:
    """The environment that has ffmpeg copy its errors, and nothing else, to the file `report`.

    On stderr ffmpeg's threads interleave: an error can land inside one of showinfo's lines,
    which it writes in parts, and lose its level tag there. The report takes whole messages by
    level. FFREPORT's syntax: `\\`, `'` and `:` are escaped, `%` doubled.
    """
    name = re.sub(r"([\\':])", r"\\\1", str(report)).replace("%", "%%")
    return {**os.environ, "FFREPORT": f"file={name}:level={_ERROR_LEVEL}"}


def _errors(report: Path) -> list[str]:
    """ffmpeg's error messages from its report, without the context tags."""
    lines = report.read_text("utf-8", errors="replace").splitlines()
    if lines[:1] == ["Command line:"]:
        lines = lines[2:]  # the report's header: ffmpeg's own command line
    messages = (_CONTEXT.sub("", ln).strip().rstrip(".") for ln in lines)
    return [m for m in messages if m]


def _quote(errors: list[str]) -> str:
    """The first few distinct errors, and how many more there were."""
    distinct = list(dict.fromkeys(errors))
    more = len(distinct) - _QUOTED
    return "; ".join(distinct[:_QUOTED]) + (f" (+{more} more)" if more > 0 else "")


def _result(path: Path, log: str, errors: list[str], returncode: int, count: int) -> Decoded:
    """The outcome of decoding `count` frames; `VideoError` if ffmpeg failed or gave none."""
    said = _quote(errors)
    if returncode != 0:
        lines = [ln.strip() for ln in log.splitlines() if ln.strip() and "showinfo" not in ln]
        raise VideoError(f"{path}: ffmpeg: {said or (lines or ['failed without a message'])[-1]}")
    if count == 0:
        raise VideoError(f"{path}: ffmpeg decoded no frame" + (f": {said}" if said else ""))
    problem = f"{path}: decoded {count} frames, but ffmpeg: {said}" if said else ""
    return Decoded(_timestamps(log), problem)


def _command(output) -> list[str]:
    return [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "info", *output.get_args()]


def extract_frames(
    path: Path, out_dir: Path, fps: float | None = None, quality: int = 2,
    max_side: int | None = None,
) -> Decoded:
    """Write every frame (or `fps` per second) of `path` as JPEG into `out_dir`; their timestamps,
    and ffmpeg's errors if it read the video only in part.

    `quality` is ffmpeg's `-q:v` for MJPEG (2 best … 31 worst).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    pattern = str(out_dir / FRAME_PATTERN).replace("%", "%%").replace("%%07d", "%07d")
    output = _stream(path, fps, max_side).output(
        pattern, start_number=1, **_PASSTHROUGH, **{"q:v": quality}
    )
    return _run(path, output)


def _run(path: Path, output) -> Decoded:
    """Run ffmpeg to the end on `output` (a file pattern or a null sink) and read its outcome."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "ffmpeg.log"
        proc = subprocess.run(_command(output), capture_output=True, env=_report_env(report))
        errors = _errors(report)
    log = proc.stderr.decode("utf-8", errors="replace")
    return _result(path, log, errors, proc.returncode, len(_timestamps(log)))


def count_frames(path: Path, fps: float | None = None, max_side: int | None = None) -> Decoded:
    """What `decode` would give, without the pixels: the timestamps (so the number of frames)
    and the problem, for a dataset that picks frames by their place in the clip (MMI's apex)."""
    output = _stream(path, fps, max_side).output("-", format="null", **_PASSTHROUGH)
    return _run(path, output)


def decode(
    path: Path, fps: float | None = None, max_side: int | None = None
) -> tuple[Iterator[tuple[int, np.ndarray]], Decoding]:
    """The frames `extract_frames` would write, as (1-based index, BGR array), without files.

    Returns the iterator and a `Decoding` whose `result` (timestamps, problem) is set once the
    iterator is exhausted; the iterator raises `VideoError` where `extract_frames` would.
    """
    output = _stream(path, fps, max_side).output(
        "pipe:", format="image2pipe", vcodec="ppm", **_PASSTHROUGH
    )
    decoding = Decoding()

    def frames() -> Iterator[tuple[int, np.ndarray]]:
        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp) / "ffmpeg.log"
            proc = subprocess.Popen(_command(output), stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, env=_report_env(report))
            log: list[bytes] = []
            reader = threading.Thread(target=lambda: log.append(proc.stderr.read()), daemon=True)
            reader.start()
            index = 0
            try:
                while (image := _read_ppm(proc.stdout)) is not None:
                    index += 1
                    yield index, image
            finally:
                proc.stdout.close()
                proc.wait()
                reader.join()
            errors = _errors(report)
        text = b"".join(log).decode("utf-8", errors="replace")
        decoding.result = _result(path, text, errors, proc.returncode, index)

    return frames(), decoding


def _read_ppm(pipe) -> np.ndarray | None:
    """One binary PPM (P6) from the pipe as BGR, or None at the end of the stream."""
    header: list[bytes] = []
    while len(header) < 4:  # magic, width, height, maxval: whitespace-separated tokens
        token = b""
        while True:
            ch = pipe.read(1)
            if not ch:
                return None
            if ch.isspace():
                if token:
                    break
                continue
            token += ch
        header.append(token)
    width, height = int(header[1]), int(header[2])
    data = pipe.read(width * height * 3)
    if len(data) < width * height * 3:
        return None
    rgb = np.frombuffer(data, np.uint8).reshape(height, width, 3)
    # a contiguous BGR copy: OpenCV reads a reversed-channel view ([..., ::-1]) 100× slower
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
