"""DDP trials inside sweeps: Trainer(devices=2, strategy="ddp") on CPU/gloo.

Lightning starts rank 1 by running the sweep's command again; that rank must join rank 0's
trial (same params, same trial id) instead of claiming its own, write nothing, and stop at the
same epoch as rank 0 when a scheduler prunes the trial.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hpo_lightning import TrialState
from hpo_lightning.storage import TrialRecord, open_storage

pytestmark = pytest.mark.slow
TESTS = Path(__file__).parent

SWEEP = """\
name: ddp
objective: sweep_objectives:lightning_epochs
objective_args: {{max_epochs: {epochs}, epoch_delay: 0.0, devices: 2, strategy: ddp}}
monitor: val_acc
mode: max
n_trials: {n_trials}
seed: 4
tuner: random
space:
  lr: {{type: float, low: 0.001, high: 0.3, log: true}}
  hidden: [4, 8, 16, 32, 64]
{extra}"""


def _run(tmp_path: Path, *, n_trials: int, epochs: int, extra: str = "") -> list[TrialRecord]:
    f = tmp_path / "ddp.yaml"
    f.write_text(SWEEP.format(n_trials=n_trials, epochs=epochs, extra=extra))
    markers = tmp_path / "markers"
    markers.mkdir()
    env = dict(os.environ, PYTHONPATH=str(TESTS), HPO_TEST_MARKERS=str(markers))
    env.pop("HPO_LIGHTNING_STORAGE", None)
    done = subprocess.run(
        [sys.executable, "-m", "hpo_lightning", "sweep", str(f), "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    store = open_storage(tmp_path / "hpo_lightning.db", create=False)
    try:
        return store.get_trials(store.get_sweep("ddp").id)
    finally:
        store.close()


def _markers(tmp_path: Path, kind: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((tmp_path / "markers").glob(f"{kind}-*"))]


def test_a_ddp_trial_is_one_trial_with_the_same_params_on_both_ranks(tmp_path: Path) -> None:
    trials = _run(tmp_path, n_trials=3, epochs=2)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3, [t.message for t in trials]
    fits = _markers(tmp_path, "fit")
    assert sorted(m["rank"] for m in fits) == [0, 0, 0, 1, 1, 1]
    for t in trials:  # both ranks built their model from the trial's params
        mine = [m for m in fits if m["params"] == dict(t.params)]
        assert sorted(m["rank"] for m in mine) == [0, 1]
        assert mine[0]["shape"] == mine[1]["shape"] == [t.params["hidden"], 13]
        assert {json.loads(m["trial"])["id"] for m in mine} == {t.id}
    assert all(t.epochs == 2 for t in trials)


def test_a_pruned_ddp_trial_stops_at_the_same_epoch_on_both_ranks(tmp_path: Path) -> None:
    extra = "scheduler: {name: asha, min_epochs: 1, reduction_factor: 2, max_epochs: 8}\n"
    trials = _run(tmp_path, n_trials=4, epochs=8, extra=extra)
    states = [t.state for t in trials]
    assert TrialState.FAILED not in states and TrialState.RUNNING not in states
    pruned = [t for t in trials if t.state is TrialState.PRUNED]
    assert pruned, "ASHA pruned no trial"
    ends = _markers(tmp_path, "end")
    for t in pruned:
        mine = [m for m in ends if m["params"] == dict(t.params)]
        assert sorted(m["rank"] for m in mine) == [0, 1]
        assert mine[0]["epochs"] == mine[1]["epochs"] == t.epochs < 8
