"""Our trackers against the tracker contract suite (hpo_lightning.testing)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hpo_lightning.testing import TrackerContract
from hpo_lightning.tracking import ExperimentTracker, Tracker


class TestExperimentTracker(TrackerContract):
    @pytest.fixture(params=["sqlite", "memory"])
    def tracker(self, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Tracker]:
        where = ":memory:" if request.param == "memory" else str(tmp_path / "t.db")
        t = ExperimentTracker(where, sweep="contract")
        yield t
        t.close()
