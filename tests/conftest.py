"""Shared fixtures. Keep each small and documented; module-specific helpers stay in their module."""

from __future__ import annotations

import os

# Every model in the tests is tiny: one intra-op thread is fastest, and several test
# processes (DDP ranks, sweep workers) on 2 cores would otherwise oversubscribe them.
os.environ.setdefault("OMP_NUM_THREADS", "1")

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
