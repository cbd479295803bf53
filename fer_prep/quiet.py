"""Keep the native libraries' own log lines off stderr, so it holds only the tool's lines.

OpenCV's `[ WARN ]` lines have a switch (`quiet_opencv`). The rest have none reachable from
Python: MediaPipe's graphs log through C++ absl (`W0000 … inference_feedback_manager.cc`, the
"before absl::InitializeLog()" notice), TFLite prints "Created TensorFlow Lite XNNPACK delegate"
with fprintf, libpng prints "libpng error: …" for a corrupt PNG. None of them reads
GLOG_minloglevel, TF_CPP_MIN_LOG_LEVEL or absl-py's verbosity, and the wheels export no level
setter, so `native_quiet` points fd 2 at /dev/null while such native code runs.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import cv2

OPENCV_LOG_ERROR = 2  # cv2.utils.logging.LOG_LEVEL_ERROR (OpenCV 4 wheels lack that module)

_lock = threading.Lock()
_depth = 0  # open windows in this process: the first one redirects, the last one restores
_saved_fd = -1  # fd 2 as it was when the window opened (taken afresh: pytest's capfd swaps it)
_devnull_fd = -1


def quiet_opencv() -> None:
    """Drop OpenCV's `[ WARN ]` and `[ INFO ]` lines in this process; errors still show."""
    logging = getattr(getattr(cv2, "utils", None), "logging", None)  # OpenCV 5
    (logging.setLogLevel if logging is not None else cv2.setLogLevel)(OPENCV_LOG_ERROR)


@contextmanager
def native_quiet() -> Iterator[None]:
    """Send fd 2 to /dev/null for the block, then put it back; exceptions pass through.

    Nestable and thread-safe (a process-wide count, so overlapping windows restore once, last).
    Python's pending stderr output is flushed first; `sys.stderr` writes after the block go
    where they always did, but those made inside it are lost, so keep the block to native calls.
    About 5–7 µs an enter/exit (measured), next to 3–12 ms for one MediaPipe `process` call.
    """
    global _depth, _saved_fd, _devnull_fd
    with _lock:
        if _depth == 0:
            if sys.stderr is not None:
                sys.stderr.flush()
            if _devnull_fd < 0:
                _devnull_fd = os.open(os.devnull, os.O_WRONLY)
            _saved_fd = os.dup(2)
            os.dup2(_devnull_fd, 2)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                os.dup2(_saved_fd, 2)
                os.close(_saved_fd)
