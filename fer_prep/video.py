"""Video decoding through ffmpeg (ffmpeg-python), with the system binary or imageio-ffmpeg's own.

Two ways out of a video, sharing one filter chain so they give the same frames and timestamps:
`extract_frames` writes JPEGs (`%07d.jpg` from 1, Emotion-FAN's naming) and `decode` yields BGR
arrays without writing anything. Both return each frame's presentation time from ffmpeg's
`showinfo` filter, and raise `VideoError` with ffmpeg's own words when it fails. Arguments go to
ffmpeg as a list (no shell), so paths with spaces, quotes or non-ASCII characters are safe.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import cv2
import ffmpeg
import numpy as np

FRAME_PATTERN = "%07d.jpg"  # one naming template for producer and consumer
_SHOWINFO = re.compile(r"\[Parsed_showinfo[^\]]*\]\s*n:\s*(\d+)\s+pts:\s*\S+\s+pts_time:\s*(\S+)")


# every decoded frame once, in the filter's time base: variable-frame-rate phone videos would
# otherwise collide on the encoder's 1/fps clock ("Invalid pts") and fail half way
_PASSTHROUGH = {"fps_mode": "passthrough", "enc_time_base": "filter"}


class VideoError(RuntimeError):
    """ffmpeg could not read the video; the message carries its reason."""


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


def _reason(log: str, path: Path) -> str:
    lines = [ln.strip() for ln in log.splitlines() if ln.strip() and "showinfo" not in ln]
    interesting = [ln for ln in lines if re.search(r"error|invalid|no such|denied|not", ln, re.I)]
    return f"{path}: ffmpeg: {(interesting or lines or ['failed without a message'])[-1]}"


def _command(output) -> list[str]:
    return [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "info", *output.get_args()]


def extract_frames(
    path: Path, out_dir: Path, fps: float | None = None, quality: int = 2,
    max_side: int | None = None,
) -> list[float]:
    """Write every frame (or `fps` per second) of `path` as JPEG into `out_dir`; their timestamps.

    `quality` is ffmpeg's `-q:v` for MJPEG (2 best … 31 worst).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    pattern = str(out_dir / FRAME_PATTERN).replace("%", "%%").replace("%%07d", "%07d")
    output = _stream(path, fps, max_side).output(
        pattern, start_number=1, **_PASSTHROUGH, **{"q:v": quality}
    )
    proc = subprocess.run(_command(output), capture_output=True)
    log = proc.stderr.decode("utf-8", errors="replace")
    if proc.returncode != 0:
        raise VideoError(_reason(log, path))
    times = _timestamps(log)
    if not times:
        raise VideoError(f"{path}: ffmpeg decoded no frame")
    return times


def decode(
    path: Path, fps: float | None = None, max_side: int | None = None
) -> tuple[Iterator[tuple[int, np.ndarray]], list[float]]:
    """The frames `extract_frames` would write, as (1-based index, BGR array), without files.

    Returns the iterator and a list that holds the timestamps once the iterator is exhausted.
    """
    output = _stream(path, fps, max_side).output(
        "pipe:", format="image2pipe", vcodec="ppm", **_PASSTHROUGH
    )
    times: list[float] = []

    def frames() -> Iterator[tuple[int, np.ndarray]]:
        proc = subprocess.Popen(_command(output), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
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
        text = b"".join(log).decode("utf-8", errors="replace")
        if proc.returncode != 0:
            raise VideoError(_reason(text, path))
        if index == 0:
            raise VideoError(f"{path}: ffmpeg decoded no frame")
        times.extend(_timestamps(text))

    return frames(), times


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
