"""Shared fixtures.

`shared`: the real data folder; skips when it is absent, fails instead under
FER_PREP_REQUIRE_SHARED=1.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """The shared data folder, absolute (tests link into it): $FER_PREP_SHARED, else `../shared`
    next to the repository."""
    return Path(os.environ.get("FER_PREP_SHARED", REPO.parent / "shared")).expanduser().absolute()


@pytest.fixture(scope="session")
def shared() -> Path:
    """The shared folder; skips when it is absent, fails instead if FER_PREP_REQUIRE_SHARED=1."""
    path = shared_dir()
    if not path.is_dir():
        reason = f"shared data folder {path} is absent (set FER_PREP_SHARED)"
        if os.environ.get("FER_PREP_REQUIRE_SHARED") == "1":
            pytest.fail(f"{reason}, and FER_PREP_REQUIRE_SHARED=1")
        pytest.skip(reason)
    return path
