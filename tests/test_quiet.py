"""`native_quiet` mutes fd 2 only inside its block, nests, and lets exceptions through."""

import os
import sys

import pytest

from fer_prep.quiet import native_quiet


def test_mutes_fd2_inside_and_restores(capfd: pytest.CaptureFixture[str]) -> None:
    sys.stderr.write("before ")  # pending Python output is flushed, not lost
    with native_quiet():
        os.write(2, b"native\n")
        with native_quiet():
            os.write(2, b"nested\n")
        os.write(2, b"still muted\n")
    os.write(2, b"after\n")
    print("python", file=sys.stderr)
    assert capfd.readouterr().err == "before after\npython\n"


def test_exception_passes_and_fd2_comes_back(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="boom"), native_quiet():
        raise ValueError("boom")
    os.write(2, b"back\n")
    assert capfd.readouterr().err == "back\n"
