"""The one place that reads the process environment.

Every setting that can change between deployments is read here, with an embedded default that
runs the whole platform on one machine with nothing else installed. `.env.example` lists them.
"""

from __future__ import annotations

import os
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

# A local `.env` file is a convenience for operators; real deployments set variables directly.
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)


def is_set(name: str) -> bool:
    """Whether the variable is present and non-empty."""
    return bool(os.environ.get(name, "").strip())
