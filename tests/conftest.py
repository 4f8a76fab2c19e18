"""Shared fixtures. Tests import the installed wheel (see pyproject's pytest options), never the
source folder, so they exercise the compiled modules a user gets."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# The recorded exchange data lives beside the repository (see ../shared/realdata/SOURCES.md);
# tests read it from there and never copy it into the tree.
REALDATA = REPO_ROOT.parent / "shared" / "realdata"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def realdata() -> Path:
    if not (REALDATA / "SOURCES.md").is_file():
        pytest.fail(f"recorded exchange data not found at {REALDATA}; it must sit beside the repository")
    return REALDATA
