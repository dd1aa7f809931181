"""The launcher contract suite: start, watch and stop real workers of a real sweep.

Subclass :class:`LauncherContract` and provide a ``launcher`` fixture (a fresh launcher) and a
``storage_url`` fixture (a store its workers can reach); every launcher must pass it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

import hpo_lightning as hl
from hpo_lightning import TrialState
from hpo_lightning.exceptions import UserInputError
from hpo_lightning.launchers import Launcher, WorkerExit, WorkerSpec
from hpo_lightning.storage import open_storage
from hpo_lightning.sweep import SweepConfig


def _config(storage_url: str, *, n_trials: int, seconds: float, **extra: Any) -> SweepConfig:
    cfg = SweepConfig(
        name="contract",
        objective="hpo_lightning.testing._objectives:sleeper",
        objective_args={"seconds": seconds},
        space={"x": hl.Float(0, 1)},
        monitor="x",
        n_trials=n_trials,
        tuner="random",
        seed=0,
        storage=storage_url,
        **extra,
    )
    store = open_storage(storage_url)
    store.create_sweep(cfg.name, cfg.definition(), mode=cfg.primary_mode)
    store.close()
    return cfg


def _wait_all(launcher: Launcher, timeout: float) -> list[Any]:
    exits: list[Any] = []
    deadline = time.monotonic() + timeout
    while launcher.running() and time.monotonic() < deadline:
        exits.extend(launcher.wait(0.5))
    return exits


def _trials(storage_url: str) -> list[Any]:
    store = open_storage(storage_url, create=False)
    try:
        return store.get_trials(store.get_sweep("contract").id)
    finally:
        store.close()


class LauncherContract:
    """What every launcher does; ``launcher`` and ``storage_url`` fixtures come from subclasses."""

    @pytest.fixture
    def launcher(self) -> Launcher:
        raise NotImplementedError

    @pytest.fixture
    def storage_url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'launch.db'}"

    def test_workers_run_the_sweep_to_its_end(self, launcher: Launcher, storage_url: str) -> None:
        cfg = _config(storage_url, n_trials=6, seconds=0.1)
        specs = launcher.plan(cfg, 2)
        assert [s.index for s in specs] == [0, 1]
        launcher.start(specs)
        exits = _wait_all(launcher, 120)
        assert sorted(e.index for e in exits) == [0, 1]  # each exit reported once
        assert {e.exit for e in exits} == {WorkerExit.DONE}
        assert launcher.running() == 0
        trials = _trials(storage_url)
        assert [t.state for t in trials].count(TrialState.COMPLETE) == 6
        assert TrialState.RUNNING not in [t.state for t in trials]

    def test_stop_ends_every_worker_and_requeues_running_trials(
        self, launcher: Launcher, storage_url: str
    ) -> None:
        cfg = _config(storage_url, n_trials=50, seconds=30.0)
        launcher.start(launcher.plan(cfg, 2))
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if sum(t.state is TrialState.RUNNING for t in _trials(storage_url)) == 2:
                break
            time.sleep(0.2)
        launcher.stop()
        exits = _wait_all(launcher, 60)
        assert launcher.running() == 0, "a worker did not stop"
        assert {e.exit for e in exits} <= {WorkerExit.INTERRUPTED, WorkerExit.TERMINATED}
        states = [t.state for t in _trials(storage_url)]
        assert TrialState.RUNNING not in states
        assert states.count(TrialState.INTERRUPTED) == 2
        assert TrialState.FAILED not in states

    def test_a_worker_limit_stops_it(self, launcher: Launcher, storage_url: str) -> None:
        cfg = _config(storage_url, n_trials=20, seconds=0.05)
        specs = [
            WorkerSpec(config=s.config, index=s.index, max_trials=3, env=s.env, cpus=s.cpus)
            for s in launcher.plan(cfg, 1)
        ]
        launcher.start(specs)
        exits = _wait_all(launcher, 120)
        assert [e.exit for e in exits] == [WorkerExit.DONE]
        assert [t.state for t in _trials(storage_url)].count(TrialState.COMPLETE) == 3

    def test_unsatisfiable_resources_are_refused_up_front(self, launcher: Launcher) -> None:
        cfg = SweepConfig(
            name="huge",
            objective="hpo_lightning.testing._objectives:sleeper",
            space={"x": hl.Float(0, 1)},
            monitor="x",
            resources={"gpus_per_trial": 4096},
        )
        with pytest.raises(UserInputError, match="GPU"):
            launcher.validate(cfg, 1)
