"""Fixtures for the framework-free ml tests: the shared public datasets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def crowd_dir() -> Path:
    """``$TESSERA_DATA_DIR/crowd`` (default ``<repo>/../shared/data/crowd``); fails when missing."""
    root = Path(os.environ.get("TESSERA_DATA_DIR", REPO.parent / "shared" / "data"))
    path = root / "crowd"
    if not (path / "README.md").is_file():
        pytest.fail(f"crowd datasets not found at {path}; set TESSERA_DATA_DIR")
    return path
