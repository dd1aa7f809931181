"""The command line, in-process and as a subprocess, including kill -9 and resume."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hpo_lightning import TrialState
from hpo_lightning.cli import main
from hpo_lightning.exceptions import InvalidStorageError
from hpo_lightning.storage import open_storage

TESTS = Path(__file__).parent

SWEEP = """\
name: {name}
objective: sweep_objectives:{objective}
objective_args: {args}
monitor: loss
mode: min
n_trials: {n_trials}
seed: 3
tuner: {{name: tpe, n_startup_trials: 3}}
space:
  x: {{type: float, low: 0, high: 1}}
  y: [0, 1, 2]
"""


def write_sweep(
    tmp_path: Path,
    *,
    name: str = "demo",
    objective: str = "quadratic",
    n_trials: int = 6,
    args: str = "{}",
    extra: str = "",
) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        SWEEP.format(name=name, objective=objective, n_trials=n_trials, args=args) + extra
    )
    return path


@pytest.fixture(autouse=True)
def _importable_objectives(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(TESTS))
    monkeypatch.delenv("HPO_LIGHTNING_STORAGE", raising=False)


def test_sweep_status_best_export_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write_sweep(tmp_path)
    assert main(["sweep", str(f), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "sweep 'demo' done: 6 complete" in out
    db = str(tmp_path / "hpo_lightning.db")
    assert main(["status", "demo", "--storage", db]) == 0
    assert "6 complete, 0 pruned, 0 failed, 0 running" in capsys.readouterr().out
    assert main(["best", str(f)]) == 0  # a sweep file stands for its store and name
    best = json.loads(capsys.readouterr().out)
    assert set(best) == {"x", "y"}
    assert main(["export", "demo", "--storage", db, "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 6 and {"param_x", "param_y", "value", "state"} <= set(rows[0])
    assert main(["export", "demo", "--storage", db, "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["trials"]) == 6
    assert main(["list", "--storage", db]) == 0
    assert capsys.readouterr().out.startswith("demo: 6 complete")


def test_failing_objective_exits_1_with_first_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = write_sweep(tmp_path, objective="failing", extra="max_failures: 2\n")
    assert main(["sweep", str(f), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "stopped after 2 failed trials; first error: RuntimeError: boom at x=" in err


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ("n_trails: 3\n", "unknown key 'n_trails'; did you mean 'n_trials'?"),
        ("max_failures: many\n", "`max_failures` must be an integer >= 1, but got 'many'"),
        ("tuner: tpee\n", "did you mean 'tpe'"),
    ],
)
def test_bad_sweep_files_exit_2_and_write_nothing(
    tmp_path: Path, extra: str, match: str, capsys: pytest.CaptureFixture[str]
) -> None:
    text = SWEEP.format(name="bad", objective="quadratic", n_trials=3, args="{}")
    if extra.startswith("tuner:"):
        text = text.replace("tuner: {name: tpe, n_startup_trials: 3}\n", "")
    (tmp_path / "bad.yaml").write_text(text + extra)
    assert main(["sweep", str(tmp_path / "bad.yaml")]) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1
    assert not (tmp_path / "hpo_lightning.db").exists()


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["sweep", "missing.yaml"], "does not exist"),
        (["status", "nope", "--storage", "{tmp}/none.db"], "no store at"),
        (["status", "nope", "--storage", "{tmp}/no_dir/x.db"], "does not exist"),
        (["best", "nope", "--storage", "{db}"], "no sweep named 'nope'"),
        (["sweep", "{file}", "--storage", "{tmp}/no_dir/x.db"], "does not exist"),
    ],
)
def test_bad_arguments_exit_2(
    tmp_path: Path, argv: list[str], match: str, capsys: pytest.CaptureFixture[str]
) -> None:
    f = write_sweep(tmp_path, n_trials=1)
    db = tmp_path / "hpo_lightning.db"
    assert main(["sweep", str(f), "--quiet"]) == 0
    before = db.read_bytes()
    capsys.readouterr()
    args = [a.format(tmp=tmp_path, db=db, file=f) for a in argv]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1
    assert not (tmp_path / "none.db").exists()
    assert db.read_bytes() == before or db.stat().st_size == len(before)


def test_argparse_errors_exit_2(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["sweep", str(write_sweep(tmp_path)), "--n-trials", "0"])
    assert exc.value.code == 2


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    env["HPO_TEST_MARKERS"] = str(tmp_path / "markers")
    (tmp_path / "markers").mkdir(exist_ok=True)
    return env


@pytest.mark.slow
def test_subprocess_kill9_then_resume(tmp_path: Path) -> None:
    f = write_sweep(
        tmp_path, name="crash", objective="slow_quadratic", n_trials=8, args="{delay: 0.4}"
    )
    env = _env(tmp_path)
    cmd = [sys.executable, "-m", "hpo_lightning", "sweep", str(f), "--quiet"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    db = tmp_path / "hpo_lightning.db"
    deadline = time.monotonic() + 60
    killed_running = None
    while time.monotonic() < deadline:
        time.sleep(0.05)
        try:  # a read-only open refuses the file while the sweep is still creating it
            store = open_storage(db, create=False)
        except InvalidStorageError:
            continue
        try:
            trials = store.get_trials(store.get_sweep("crash").id)
        except Exception:
            continue
        finally:
            store.close()
        done = [t for t in trials if t.state is TrialState.COMPLETE]
        running = [t for t in trials if t.state is TrialState.RUNNING]
        if len(done) >= 3 and running:
            os.kill(proc.pid, signal.SIGKILL)
            killed_running = running[0].number
            break
    proc.wait(timeout=30)
    assert killed_running is not None, "the sweep never reached 3 complete trials"
    assert proc.returncode == -signal.SIGKILL

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    store = open_storage(db, create=False)
    trials = store.get_trials(store.get_sweep("crash").id)
    store.close()
    states = [t.state for t in trials]
    assert states.count(TrialState.COMPLETE) == 8
    assert TrialState.RUNNING not in states
    # the sweep's worker outlived its killed parent only to requeue its trial (or was lost)
    lost = [t for t in trials if t.state.requeued]
    assert [t.number for t in lost] == [killed_running]
    assert TrialState.FAILED not in states
    retry = [t for t in trials if t.attrs.get("retry_of") == killed_running]
    assert len(retry) == 1 and retry[0].params == lost[0].params
    keys = [json.dumps(t.params, sort_keys=True) for t in trials if t.state is TrialState.COMPLETE]
    assert len(set(keys)) == 8  # no duplicates among finished trials


@pytest.mark.slow
def test_python_m_and_console_script_agree(tmp_path: Path) -> None:
    f = write_sweep(tmp_path, n_trials=2)
    env = _env(tmp_path)
    run = subprocess.run(
        [sys.executable, "-m", "hpo_lightning", "sweep", str(f), "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "2 complete" in run.stdout
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "hpo_lightning",
            "best",
            "zzz",
            "--storage",
            str(tmp_path / "hpo_lightning.db"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "no sweep named 'zzz'" in bad.stderr


@pytest.mark.slow
def test_ctrl_c_marks_running_trial_and_says_how_to_resume(tmp_path: Path) -> None:
    # 2 s trials: the SIGINT, sent once the third trial has started, lands inside it even on a
    # loaded CI machine (with 0.5 s trials a CI run once found no interrupted trial: most likely
    # the signal came between two trials, where rightly none is interrupted)
    f = write_sweep(
        tmp_path, name="intr", objective="slow_quadratic", n_trials=20, args="{delay: 2.0}"
    )
    env = _env(tmp_path)
    cmd = [sys.executable, "-m", "hpo_lightning", "sweep", str(f), "--quiet"]
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a shell's background job (``.ci/run &``) inherits SIGINT ignored, and Python then
        # keeps ignoring it: give the sweep the default disposition, as in a terminal
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    markers = tmp_path / "markers"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(markers.iterdir())) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert f"resume with: hpo-lightning sweep {f}" in err
    store = open_storage(tmp_path / "hpo_lightning.db", create=False)
    trials = store.get_trials(store.get_sweep("intr").id)
    store.close()
    assert TrialState.RUNNING not in [t.state for t in trials]
    interrupted = [t for t in trials if t.state is TrialState.INTERRUPTED]
    assert len(interrupted) == 1 and "interrupted" in (interrupted[0].message or "")
    assert TrialState.FAILED not in [t.state for t in trials]


def test_status_and_list_show_a_dead_workers_trial_as_lost(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Read commands say a trial is lost once its worker is gone, before any resume."""
    f = write_sweep(tmp_path, name="gone", n_trials=2)
    db = tmp_path / "hpo_lightning.db"
    assert main(["sweep", str(f), "--quiet"]) == 0
    store = open_storage(db, create=False)
    sweep = store.get_sweep("gone")
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # a pid that is surely dead
    import socket

    with store.claim(sweep.id) as c:
        c.add_trial({"x": 0.5, "y": 1})
    store.close()
    import sqlite3

    with sqlite3.connect(db) as conn:  # set-up: pretend the dead process claimed it
        conn.execute(
            "UPDATE hpo_trials SET worker = ? WHERE state = 'running'",
            (f"{socket.gethostname()}:{proc.pid}",),
        )
    capsys.readouterr()
    assert main(["status", "gone", "--storage", str(db)]) == 0
    out = capsys.readouterr().out
    assert "lost? (no heartbeat" in out and "1 lost" in out
    assert main(["list", "--storage", str(db)]) == 0
    assert "1 lost" in capsys.readouterr().out
