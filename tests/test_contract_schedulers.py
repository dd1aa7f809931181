"""Every scheduler of ours against the scheduler contract suite (hpo_lightning.testing)."""

from __future__ import annotations

import pytest

from hpo_lightning.schedulers import Scheduler, make_scheduler, scheduler_names
from hpo_lightning.testing import SchedulerContract


class TestEveryScheduler(SchedulerContract):
    @pytest.fixture(params=scheduler_names())
    def scheduler(self, request: pytest.FixtureRequest) -> Scheduler:
        options = {"median": {"warmup_epochs": 1, "min_trials": 2}}.get(request.param, {})
        if request.param in ("asha", "hyperband"):
            options = {"min_epochs": 1, "reduction_factor": 2, "max_epochs": 12}
        return make_scheduler(request.param, **options)
