"""``hpo-lightning serve`` + ``hpo-lightning worker``: workers in other processes share a
SQLite store through the served store, and ride out the server being killed and restarted."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hpo_lightning import TrialState
from hpo_lightning.storage import TOKEN_ENV, TrialRecord, open_storage
from hpo_lightning.sweep import Sweep

TESTS = Path(__file__).parent
TOKEN = "test-token-" + "x" * 20

SWEEP = """\
name: served
objective: sweep_objectives:slow_quadratic
objective_args: {{delay: 0.3}}
monitor: loss
n_trials: {n_trials}
seed: 3
storage: "{url}"
tuner: {{name: random}}
space:
  x: {{type: float, low: 0, high: 1}}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    env.pop("HPO_LIGHTNING_STORAGE", None)
    env[TOKEN_ENV] = TOKEN
    return env


def _serve(db: Path, port: int) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "hpo_lightning", "serve", "--storage", str(db)]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port)], env=_env(), stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == f"hpo+http://127.0.0.1:{port}/"
    return proc


def _worker(url: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "hpo_lightning", "worker", "--storage", url, "--sweep", "served"]
    return subprocess.Popen(
        [*cmd, "--quiet"], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _trials(db: Path) -> list[TrialRecord]:
    store = open_storage(db, create=False)
    try:
        return store.get_trials(store.get_sweep("served").id)
    finally:
        store.close()


@pytest.mark.slow
def test_two_workers_through_a_served_store_survive_a_server_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(TESTS))
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    db, port, n_trials = tmp_path / "sweeps.db", _free_port(), 14
    url = f"hpo+http://127.0.0.1:{port}/"
    server = _serve(db, port)
    workers: list[subprocess.Popen[str]] = []
    try:
        f = tmp_path / "served.yaml"
        f.write_text(SWEEP.format(n_trials=n_trials, url=url))
        Sweep.from_file(f).close()  # the definition, stored through the server
        workers = [_worker(url) for _ in range(2)]
        deadline = time.monotonic() + 90
        while sum(t.state is TrialState.COMPLETE for t in _trials(db)) < 3:
            assert time.monotonic() < deadline, "no trial completed within 90 s"
            time.sleep(0.1)
        server.send_signal(signal.SIGKILL)  # mid-sweep, maybe mid-request
        server.wait(timeout=10)
        time.sleep(2.0)  # the workers keep retrying meanwhile
        assert all(w.poll() is None for w in workers), "a worker gave up while the server was away"
        server = _serve(db, port)
        for w in workers:
            _, err = w.communicate(timeout=120)
            assert w.returncode == 0, err
    finally:
        for p in [*workers, server]:
            if p.poll() is None:
                p.kill()
                p.wait()
    trials = _trials(db)
    complete = [t for t in trials if t.state is TrialState.COMPLETE]
    assert len(complete) == n_trials
    # both workers ran trials, and each trial names the worker process that ran it
    assert {t.worker for t in complete} == {f"{socket.gethostname()}:{w.pid}" for w in workers}
    assert [t.state for t in trials].count(TrialState.COMPLETE) == len(trials)  # none lost
