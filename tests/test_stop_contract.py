"""The stop contract with real Lightning fits and real signals to real processes.

First Ctrl-C / SIGTERM: no new trial, running fits end at their next epoch, stored INTERRUPTED,
requeued (never failed), exit 130 / 143 with a line saying how to resume. Killing the parent
with SIGKILL leaves no worker running and no trial RUNNING.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hpo_lightning import TrialState
from hpo_lightning.storage import TrialRecord, open_storage

pytestmark = pytest.mark.slow
TESTS = Path(__file__).parent

SWEEP = """\
name: stop
objective: sweep_objectives:lightning_epochs
objective_args: {{max_epochs: 40, epoch_delay: 0.25}}
monitor: val_acc
mode: max
n_trials: {n_trials}
n_workers: {workers}
seed: 1
tuner: random
space:
  lr: {{type: float, low: 0.01, high: 0.1, log: true}}
  hidden: [8, 16]
"""


def _start(tmp_path: Path, workers: int, n_trials: int = 20) -> tuple[subprocess.Popen[str], Path]:
    f = tmp_path / "stop.yaml"
    f.write_text(SWEEP.format(workers=workers, n_trials=n_trials))
    markers = tmp_path / "markers"
    markers.mkdir(exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(TESTS), HPO_TEST_MARKERS=str(markers))
    env.pop("HPO_LIGHTNING_STORAGE", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpo_lightning", "sweep", str(f), "--quiet"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a background job inherits SIGINT ignored; a terminal gives the default disposition
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    return proc, f


def _fits(tmp_path: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in (tmp_path / "markers").glob("fit-*")]


def _wait_for_fits(tmp_path: Path, n: int, timeout: float = 120) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted((tmp_path / "markers").glob("fit-*"))
        if len(found) >= n:
            time.sleep(1.0)  # an epoch or more into the fit
            return [p.name.split("-")[1] for p in found]
        time.sleep(0.1)
    raise AssertionError(f"fewer than {n} fits started within {timeout} s")


def _trials(tmp_path: Path) -> list[TrialRecord]:
    store = open_storage(tmp_path / "hpo_lightning.db", create=False)
    try:
        return store.get_trials(store.get_sweep("stop").id)
    finally:
        store.close()


@pytest.mark.parametrize(
    "workers, sig, code",
    [
        (1, signal.SIGINT, 130),
        (1, signal.SIGTERM, 143),
        (2, signal.SIGINT, 130),
        (2, signal.SIGTERM, 143),
    ],
)
def test_a_signal_stops_the_sweep_and_requeues_running_trials(
    tmp_path: Path, workers: int, sig: int, code: int
) -> None:
    proc, f = _start(tmp_path, workers)
    _wait_for_fits(tmp_path, workers)
    sent = time.monotonic()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    took = time.monotonic() - sent
    assert proc.returncode == code, err
    assert f"resume with: hpo-lightning sweep {f}" in err
    assert took < 20, f"the sweep took {took:.1f} s to stop"  # an epoch is 0.25 s
    trials = _trials(tmp_path)
    states = [t.state for t in trials]
    assert TrialState.RUNNING not in states
    assert TrialState.FAILED not in states, [t.message for t in trials]
    interrupted = [t for t in trials if t.state is TrialState.INTERRUPTED]
    assert 1 <= len(interrupted) <= workers
    assert all(0 < t.epochs < 40 for t in interrupted)  # stopped at an epoch boundary
    # the workers name the signal the sweep got (the driver forwards it, Ctrl-C included)
    cause = "Ctrl-C (SIGINT)" if sig == signal.SIGINT else "SIGTERM"
    assert all(cause in (t.message or "") for t in interrupted), [t.message for t in interrupted]
    assert len(trials) == len(interrupted) + states.count(TrialState.COMPLETE)

    if workers == 1 and sig == signal.SIGINT:  # resume: the requeued params run first
        complete = states.count(TrialState.COMPLETE)
        done = subprocess.run(  # a worker that stops once one more trial finished
            [
                sys.executable,
                "-m",
                "hpo_lightning",
                "worker",
                "--sweep",
                "stop",
                "--quiet",
                "--storage",
                str(tmp_path / "hpo_lightning.db"),
                "--n-trials",
                str(complete + 1),
            ],
            env=dict(os.environ, PYTHONPATH=str(TESTS)),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        after = _trials(tmp_path)
        first_new = after[len(trials)]
        assert first_new.attrs.get("retry_of") == interrupted[0].number
        assert first_new.params == interrupted[0].params
        assert first_new.state is TrialState.COMPLETE


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_workers_do_not_outlive_a_killed_parent(tmp_path: Path) -> None:
    proc, _ = _start(tmp_path, workers=2)
    pids = {int(p) for p in _wait_for_fits(tmp_path, 2)}
    assert proc.pid not in pids  # the fits run in the worker processes
    proc.kill()
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.2)
    assert not any(_alive(p) for p in pids), "a worker outlived its parent"
    trials = _trials(tmp_path)
    assert TrialState.RUNNING not in [t.state for t in trials]
    assert TrialState.FAILED not in [t.state for t in trials]
    assert [t.state for t in trials].count(TrialState.INTERRUPTED) == 2
