"""The Slurm launcher on a real single-node Slurm (tests/_slurm.py), and its refusals."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _slurm import LocalSlurm, local_slurm

from hpo_lightning import TrialState
from hpo_lightning.exceptions import ConfigError
from hpo_lightning.launchers._slurm import parse_minutes
from hpo_lightning.storage import open_storage
from hpo_lightning.sweep import StopReason, Sweep

TESTS = Path(__file__).parent


@pytest.fixture(scope="module")
def slurm() -> Iterator[LocalSlurm]:
    with local_slurm() as cluster:
        old = os.environ.get("SLURM_CONF")
        os.environ["SLURM_CONF"] = str(cluster.conf)
        try:
            yield cluster
        finally:
            if old is None:
                os.environ.pop("SLURM_CONF", None)
            else:
                os.environ["SLURM_CONF"] = old


def _sweep(tmp_path: Path, **kw: Any) -> Sweep:
    options: dict[str, Any] = {
        "name": "slurm",
        "objective": "sweep_objectives:devices_sleeper",
        "space": {"x": {"type": "float", "low": 0, "high": 1}},
        "monitor": "x",
        "n_trials": 6,
        "n_workers": 2,
        "tuner": "random",
        "seed": 2,
        "storage": str(tmp_path / "slurm.db"),
        "launcher": {"name": "slurm", "folder": str(tmp_path / "jobs"), "poll_s": 0.5},
        "resources": {"cpus_per_trial": 1},
        "base_dir": str(TESTS),
    }
    options.update(kw)
    return Sweep(**options)


@pytest.mark.slow
def test_a_job_array_runs_the_sweep_exactly(slurm: LocalSlurm, tmp_path: Path) -> None:
    sweep = _sweep(tmp_path)
    result = sweep.run(progress="quiet")
    trials = sweep.trials()
    sweep.close()
    assert result.stopped is StopReason.DONE
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 6
    workers = {t.worker for t in trials}
    assert 1 <= len(workers) <= 2  # the array's tasks, each a process of its own
    assert os.getpid() not in {int(str(w).rpartition(":")[2]) for w in workers}


@pytest.mark.parametrize(
    ("text", "minutes"), [(30, 30), ("90", 90), ("1:30:00", 90), ("2-00:00", 2880), ("05:30", 6)]
)
def test_time_limits_read_as_slurm_writes_them(text: Any, minutes: int) -> None:
    assert parse_minutes(text) == minutes


def test_a_bad_time_limit_is_one_line() -> None:
    with pytest.raises(ConfigError, match="`time` must be minutes or HH:MM:SS"):
        parse_minutes("soon")
