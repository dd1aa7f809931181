"""``hpo-lightning worker`` against the real PostgreSQL server: many workers, one sweep.

Each test runs in its own schema (tests/_pg.py) and skips, with the reason, when the server
on 127.0.0.1:5432 cannot be reached.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _pg import fresh_schema

from hpo_lightning import TrialState
from hpo_lightning.cli import main
from hpo_lightning.storage import TrialRecord, open_storage
from hpo_lightning.sweep import Sweep

pytestmark = pytest.mark.postgres

TESTS = Path(__file__).parent

SWEEP = """\
name: {name}
objective: sweep_objectives:slow_quadratic
objective_args: {{delay: {delay}}}
monitor: loss
mode: min
n_trials: {n_trials}
seed: 5
storage: "{url}"
tuner: {{name: random}}
space:
  x: {{type: float, low: 0, high: 1}}
  y: [0, 1, 2]
"""


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_schema("hpo_w") as url:
        yield url


@pytest.fixture(autouse=True)
def _importable_objectives(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(TESTS))
    monkeypatch.delenv("HPO_LIGHTNING_STORAGE", raising=False)


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    env.pop("HPO_LIGHTNING_STORAGE", None)
    return env


def _create_sweep(
    tmp_path: Path, url: str, *, name: str, n_trials: int, delay: float = 0.05
) -> None:
    """Store the sweep's definition on the server (as `hpo-lightning sweep` would) and stop."""
    f = tmp_path / f"{name}.yaml"
    f.write_text(SWEEP.format(name=name, n_trials=n_trials, url=url, delay=delay))
    Sweep.from_file(f).close()


def _worker(url: str, name: str, env: dict[str, str]) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "hpo_lightning", "worker", "--storage", url, "--sweep", name]
    return subprocess.Popen(
        [*cmd, "--quiet"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _trials(url: str, name: str) -> list[TrialRecord]:
    store = open_storage(url, create=False)
    try:
        return store.get_trials(store.get_sweep(name).id)
    finally:
        store.close()


def _pid(rec: TrialRecord) -> int:
    return int((rec.worker or ":-1").rpartition(":")[2])


@pytest.mark.slow
def test_eight_workers_one_killed_mid_trial(tmp_path: Path, pg_url: str) -> None:
    n_trials = 40
    _create_sweep(tmp_path, pg_url, name="scale", n_trials=n_trials, delay=0.2)
    env = _env(tmp_path)
    workers = [_worker(pg_url, "scale", env) for _ in range(8)]
    by_pid = {p.pid: p for p in workers}
    try:
        victim, lost_number = None, None
        deadline = time.monotonic() + 90  # 8 Lightning imports on 2 cores
        while victim is None and time.monotonic() < deadline:
            time.sleep(0.05)
            for t in _trials(pg_url, "scale"):
                if t.state is TrialState.RUNNING and _pid(t) in by_pid:
                    victim, lost_number = by_pid[_pid(t)], t.number
                    victim.kill()  # SIGKILL mid-trial: no chance to clean up
                    break
        assert victim is not None, "no worker started a trial within 90 s"
        others = [p for p in workers if p is not victim]
        # the killed worker stays a zombie until wait(): liveness must see through that
        for p in others:
            _, err = p.communicate(timeout=60)
            assert p.returncode == 0, err
        victim.wait(timeout=10)
        assert victim.returncode == -signal.SIGKILL
    finally:
        for p in workers:
            if p.poll() is None:
                p.kill()
                p.wait()

    trials = _trials(pg_url, "scale")
    complete = [t for t in trials if t.state is TrialState.COMPLETE]
    assert len(complete) == n_trials
    assert not [t for t in trials if t.state is TrialState.RUNNING]
    keys = [json.dumps(t.params, sort_keys=True) for t in complete]
    assert len(set(keys)) == n_trials, "two workers evaluated the same params"
    assert len({_pid(t) for t in complete}) >= 4, "the workers did not share the sweep"
    assert not [t for t in trials if t.state is TrialState.FAILED]
    failed = [t for t in trials if t.state is TrialState.LOST]
    assert [t.number for t in failed] == [lost_number]
    lost = failed[0]
    assert str(victim.pid) in (lost.message or "")
    retries = [t for t in trials if t.attrs.get("retry_of") == lost_number]
    assert len(retries) == 1
    assert retries[0].params == lost.params and retries[0].state is TrialState.COMPLETE


@pytest.mark.slow
def test_worker_before_the_sweep_exists_exits_2(tmp_path: Path, pg_url: str) -> None:
    _create_sweep(tmp_path, pg_url, name="other", n_trials=1)
    run = subprocess.run(
        [sys.executable, "-m", "hpo_lightning", "worker", "--storage", pg_url, "--sweep", "nope"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2, run.stderr
    assert run.stderr.count("\n") == 1, run.stderr
    assert "no sweep named 'nope'" in run.stderr and "other" in run.stderr


@pytest.mark.parametrize(
    "url",
    [
        # trust auth ignores passwords, so the wrong part is the database or the port
        "postgresql://postgres:Sekr3t-pw@127.0.0.1:5432/hpo_no_such_database",
        "postgresql://postgres:Sekr3t-pw@127.0.0.1:1/test?connect_timeout=2",
    ],
)
def test_worker_with_a_wrong_url_exits_2_without_the_password(
    url: str, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["worker", "--storage", url, "--sweep", "demo", "--quiet"]) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert err.count("\n") == 1, err
    assert "cannot connect to the PostgreSQL store" in err and "postgres:***@127.0.0.1" in err
    assert "Sekr3t" not in err + captured.out


def test_status_and_best_on_postgres(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _create_sweep(tmp_path, pg_url, name="pgcli", n_trials=4, delay=0.0)
    assert main(["worker", "--storage", pg_url, "--sweep", "pgcli", "--quiet"]) == 0
    assert "sweep 'pgcli' done; 4 complete, 0 failed" in capsys.readouterr().err
    assert main(["status", "pgcli", "--storage", pg_url]) == 0
    out = capsys.readouterr().out
    assert "4 complete, 0 pruned, 0 failed, 0 running" in out
    assert main(["best", "pgcli", "--storage", pg_url]) == 0
    best = json.loads(capsys.readouterr().out)
    trials = _trials(pg_url, "pgcli")
    top = min(trials, key=lambda t: t.value if t.value is not None else float("inf"))
    assert best == top.params
