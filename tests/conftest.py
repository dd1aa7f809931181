"""Shared fixtures. Keep each small and documented; module-specific helpers stay in their module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hpo_lightning import ExperimentTracker


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Path of a not-yet-created SQLite store in a fresh temporary directory."""
    return tmp_path / "experiments.db"


@pytest.fixture
def tracker(db_path: Path) -> Iterator[ExperimentTracker]:
    """An ExperimentTracker on ``db_path``, closed after the test."""
    t = ExperimentTracker(db_path)
    yield t
    t.close()
