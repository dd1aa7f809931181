"""A worker imports torch and Lightning only when its objective uses them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hpo_lightning.storage import open_storage

TESTS = Path(__file__).parent

PLAIN = """\
import json, os, sys

def objective(params, callback):
    heavy = sorted(m for m in ("torch", "lightning", "pytorch_lightning") if m in sys.modules)
    with open(os.environ["HEAVY_OUT"], "a") as fh:
        fh.write(json.dumps(heavy) + "\\n")
    return (params["x"] - 0.5) ** 2
"""

SWEEP = """\
name: {name}
objective: {objective}
monitor: {monitor}
mode: max
n_trials: 2
tuner: random
storage: {store}
space:
  x: {{type: float, low: 0, high: 1}}
  lr: {{type: float, low: 0.001, high: 0.1, log: true}}
  hidden: [8, 16]
"""


def _sweep(tmp_path: Path, name: str, objective: str, monitor: str) -> subprocess.CompletedProcess:
    f = tmp_path / f"{name}.yaml"
    store = tmp_path / "store.db"
    f.write_text(SWEEP.format(name=name, objective=objective, monitor=monitor, store=store))
    env = dict(os.environ, HEAVY_OUT=str(tmp_path / "heavy.jsonl"))
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(TESTS), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "hpo_lightning", "sweep", str(f), "--quiet"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_a_plain_python_objective_runs_without_torch_or_lightning(tmp_path: Path) -> None:
    (tmp_path / "plain_objective.py").write_text(PLAIN)
    run = _sweep(tmp_path, "plain", "plain_objective:objective", "loss")
    assert run.returncode == 0, run.stderr
    seen = [json.loads(line) for line in (tmp_path / "heavy.jsonl").read_text().splitlines()]
    assert seen == [[], []]  # two trials, in the worker process, nothing heavy imported


@pytest.mark.slow
def test_an_objective_importing_lightning_in_its_body_gets_the_real_callback(
    tmp_path: Path,
) -> None:
    """sweep_objectives imports Lightning inside the function: the deferred callback is built
    when the Trainer takes it, and reports every epoch."""
    run = _sweep(tmp_path, "fit", "sweep_objectives:lightning_fit", "val_acc")
    assert run.returncode == 0, run.stderr
    store = open_storage(tmp_path / "store.db", create=False)
    trials = store.get_trials(store.get_sweep("fit").id)
    assert [t.state.value for t in trials] == ["complete", "complete"]
    assert all(t.epochs == 2 and store.get_metrics(t.id) for t in trials)
    store.close()
