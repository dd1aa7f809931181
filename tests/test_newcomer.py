"""The newcomer's papercuts (issue 16), one test each: what a first-time user meets."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_cli import SWEEP, write_sweep

from hpo_lightning import TrialState
from hpo_lightning.cli import main
from hpo_lightning.storage import TrialRecord, open_storage
from hpo_lightning.sweep import Sweep
from hpo_lightning.sweep._progress import ProgressDisplay

TESTS = Path(__file__).parent


@pytest.fixture(autouse=True)
def _importable_objectives(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(TESTS))
    monkeypatch.delenv("HPO_LIGHTNING_STORAGE", raising=False)


def _cli(*args: str, cwd: Path, **kw: object) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    env.pop("HPO_LIGHTNING_STORAGE", None)
    return subprocess.Popen(
        [sys.executable, "-m", "hpo_lightning", *args],
        cwd=cwd,
        env=env,
        **kw,  # type: ignore[call-overload]
    )


# --- delete, and what max_failures says -------------------------------------------------------
def test_max_failures_says_how_to_go_on_and_delete_frees_the_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = write_sweep(tmp_path, objective="failing", extra="max_failures: 2\n")
    assert main(["sweep", str(f), "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert "first error: RuntimeError: boom" in err and err.count("\n") == 0
    assert "`max_failures:` in the sweep file, or --max-failures 7" in err
    assert "hpo-lightning delete demo" in err
    # --max-failures raises the limit for the rerun: two more failures, then it stops again
    assert main(["sweep", str(f), "--quiet", "--max-failures", "4"]) == 1
    assert "stopped after 4 failed trials" in capsys.readouterr().err
    # without a terminal and without --yes: refused, nothing deleted (pytest's stdin is no tty)
    assert main(["delete", str(f)]) == 2
    err = capsys.readouterr().err
    assert "stdin is not a terminal; add --yes" in err and err.count("\n") == 1
    assert main(["delete", "demo", "--storage", str(tmp_path / "hpo_lightning.db"), "--yes"]) == 0
    assert "deleted sweep 'demo' (4 trials)" in capsys.readouterr().out
    # the name is free: the same file now starts a new sweep, which fails again from trial 0
    assert main(["sweep", str(f), "--quiet"]) == 1
    store = open_storage(tmp_path / "hpo_lightning.db", create=False)
    trials = store.get_trials(store.get_sweep("demo").id)
    store.close()
    assert [t.number for t in trials] == [0, 1]


@pytest.mark.slow
def test_delete_asks_on_a_terminal(tmp_path: Path) -> None:
    f = write_sweep(tmp_path, n_trials=2)
    assert main(["sweep", str(f), "--quiet"]) == 0
    db = tmp_path / "hpo_lightning.db"

    def answer(text: bytes) -> tuple[int, bytes]:
        leader, follower = pty.openpty()
        tty = {"stdin": follower, "stdout": follower, "stderr": follower}
        proc = _cli("delete", "demo", cwd=tmp_path, **tty)
        os.close(follower)
        seen = b""
        deadline = time.monotonic() + 60
        while b"[y/N]" not in seen and time.monotonic() < deadline:
            if select.select([leader], [], [], 1)[0]:
                seen += os.read(leader, 4096)
        os.write(leader, text)
        proc.wait(timeout=60)
        try:
            while select.select([leader], [], [], 0.2)[0]:
                seen += os.read(leader, 4096)
        except OSError:  # the terminal closed with the process
            pass
        os.close(leader)
        return proc.returncode, seen

    code, seen = answer(b"n\n")
    assert code == 1 and b"delete sweep 'demo' and its 2 trials (2 complete)" in seen
    assert b"nothing deleted" in seen
    store = open_storage(db, create=False)
    assert [s.name for s in store.list_sweeps()] == ["demo"]
    store.close()
    code, seen = answer(b"y\n")
    assert code == 0 and b"deleted sweep 'demo' (2 trials)" in seen
    store = open_storage(db, create=False)
    assert store.list_sweeps() == []
    store.close()


# --- export | head ----------------------------------------------------------------------------
@pytest.mark.slow
def test_export_into_a_closed_pipe_is_quiet(tmp_path: Path) -> None:
    f = write_sweep(tmp_path, n_trials=3)
    assert main(["sweep", str(f), "--quiet"]) == 0
    env = {k: v for k, v in os.environ.items() if k != "HPO_LIGHTNING_STORAGE"}
    # stdout written at exit (a user's default) or at once; status writes through rich
    for command, unbuffered in (("export", ""), ("export", "1"), ("status", "")):
        env["PYTHONUNBUFFERED"] = unbuffered
        proc = subprocess.Popen(
            [sys.executable, "-m", "hpo_lightning", command, "demo"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # the reader is gone before the first byte (`| head -0`, `| true`)
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == 141
        assert err == ""  # no BrokenPipeError traceback, no "Exception ignored" note


# --- the live display -------------------------------------------------------------------------
def test_display_follow_shows_the_running_trial(tmp_path: Path) -> None:
    store = open_storage(tmp_path / "s.db")
    sweep = store.create_sweep("live", {"monitor": "loss"}, mode="min")
    display = ProgressDisplay("live", 3, "loss", "min", style="bar")

    def wait_for(text: str) -> None:
        deadline = time.monotonic() + 10
        while text not in display.info and time.monotonic() < deadline:
            time.sleep(0.02)
        assert text in display.info

    with display, display.follow(lambda: store.get_trials(sweep.id), interval_s=0.05):
        display.update(store.get_trials(sweep.id))
        wait_for("running 0")
        with store.claim(sweep.id) as c:
            trial = c.add_trial({"x": 1})
        wait_for("running 1")  # while the trial trains, nobody calls update()
        store.finish_trial(trial.id, TrialState.COMPLETE, 0.25, epochs=1)
        wait_for("running 0  failed 0  pruned 0  best loss=0.25")
    store.close()


# --- a rerun does not replay every old trial --------------------------------------------------
def test_rerun_prints_one_line_for_finished_trials(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = write_sweep(tmp_path, n_trials=4)
    assert main(["sweep", str(f)]) == 0  # stderr is no terminal here: one line per trial
    first = capsys.readouterr().err
    assert first.count("[demo] trial ") == 4
    assert main(["sweep", str(f), "--n-trials", "5"]) == 0
    err = capsys.readouterr().err
    assert "[demo] 4 trials had finished before this run: 4 complete, 0 pruned" in err
    assert err.count("[demo] trial ") == 1 and "[demo] trial 4 complete" in err


# --- read commands find the sweep a file stored elsewhere -------------------------------------
def test_read_command_names_the_sweep_file_when_the_default_store_lacks_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "examples").mkdir()
    f = write_sweep(tmp_path / "examples", name="digits", n_trials=2)
    assert main(["sweep", str(f), "--quiet"]) == 0
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)  # the store is examples/hpo_lightning.db, not ./hpo_lightning.db
    assert main(["status", "digits"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "looked in ./hpo_lightning.db" in err
    assert f"the sweep file {Path('examples') / 'digits.yaml'} defines 'digits'" in err
    assert main(["list"]) == 2  # no store here: it names the store the sweep file uses
    err = capsys.readouterr().err
    assert f"store in: {Path('examples') / 'hpo_lightning.db'} (digits)" in err
    # the file stands for its store, from any folder
    assert main(["best", "examples/digits.yaml"]) == 0
    assert main(["status", "examples/digits.yaml"]) == 0
    assert "2 complete" in capsys.readouterr().out


# --- the command line's own manners -----------------------------------------------------------
def test_version_help_usage_and_positional_worker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("hpo-lightning 0.")
    assert main([]) == 2
    usage = capsys.readouterr().err
    assert usage.startswith("usage: hpo-lightning") and "run (or resume) a sweep" in usage
    assert "delete" in usage and "Exit codes" in usage
    for command, spelled in (
        ("mlflow-sync", "$MLFLOW_TRACKING_URI, else MLflow's own default: ./mlflow.db with"),
        ("plot", "else $HPO_LIGHTNING_STORAGE, else ./hpo_lightning.db"),
    ):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert spelled in " ".join(capsys.readouterr().out.split())
    # worker: the sweep by name (positional) or as its file; --sweep still works
    f = write_sweep(tmp_path, n_trials=3)
    db = str(tmp_path / "hpo_lightning.db")
    assert main(["sweep", str(f), "--create-only"]) == 0
    assert "start workers with: hpo-lightning worker demo" in capsys.readouterr().out
    assert main(["worker", "demo", "--storage", db, "--n-trials", "1", "--quiet"]) == 0
    assert main(["worker", "--sweep", "demo", "--storage", db, "--n-trials", "2", "--quiet"]) == 0
    assert main(["worker", str(f), "--quiet"]) == 0
    assert main(["worker", "demo", "--sweep", "other", "--storage", db]) == 2
    capsys.readouterr()
    assert main(["status", str(f)]) == 0
    assert "3 complete, 0 pruned, 0 failed, 0 running" in capsys.readouterr().out


# --- a changed definition names only what changed ---------------------------------------------
def test_changed_definition_names_only_the_values_that_differ(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = write_sweep(tmp_path, n_trials=1)
    assert main(["sweep", str(f), "--quiet"]) == 0
    f.write_text(
        SWEEP.format(name="demo", objective="quadratic", n_trials=1, args="{}").replace(
            "high: 1}", "high: 2}"
        )
    )
    assert main(["sweep", str(f), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "(space.x.high: stored 1.0, now 2.0)" in err or "(space.x.high: stored 1, now 2)" in err
    assert "'y'" not in err and "choices" not in err  # the unchanged param is not shown


# --- plots say what they show -----------------------------------------------------------------
def _finished(n: int) -> list[TrialRecord]:
    return [
        TrialRecord(
            id=i,
            sweep_id=1,
            number=i,
            state=TrialState.COMPLETE,
            params={"lr": 10.0 ** -(1 + i % 4), "opt": ["adam", "sgd"][i % 2]},
            value=0.5 + 0.1 * (i % 4),
        )
        for i in range(n)
    ]


def test_plots_name_the_metric_the_sweep_and_what_importance_is(tmp_path: Path) -> None:
    from hpo_lightning.plots import save_plots
    from hpo_lightning.plots._history import history_figure
    from hpo_lightning.plots._importance import importance_figure

    trials = _finished(7)
    ax = history_figure(trials, "max", monitor="val_acc", sweep="digits").axes[0]
    assert ax.get_ylabel() == "val_acc (max)"
    assert ax.get_title() == "Optimisation history of sweep 'digits'"
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)  # no trial 2.5
    ax = importance_figure(trials, monitor="val_acc", sweep="digits").axes[0]
    assert ax.get_xlabel() == "% of the variance of val_acc explained by the parameter alone"
    assert "sweep 'digits'" in ax.get_title()
    labels = [t.get_text() for t in ax.texts]
    assert len(labels) == 2 and all(t.endswith("%") for t in labels)
    # the files written by `hpo-lightning plot` get the stored sweep's monitor and name
    store = open_storage(tmp_path / "s.db")
    sweep = store.create_sweep("digits", {"monitor": "val_acc"}, mode="max")
    for t in trials:
        with store.claim(sweep.id) as c:
            rec = c.add_trial(dict(t.params))
        store.finish_trial(rec.id, TrialState.COMPLETE, t.value, epochs=1)
    paths = save_plots(store, "digits", tmp_path / "plots")
    store.close()
    assert [p.name for p in paths] == [
        "optimisation_history.png",
        "parallel_coordinates.png",
        "param_importance.png",
    ]
    assert all(p.stat().st_size > 10_000 for p in paths)


# --- mlflow: added to a sweep that already ran ------------------------------------------------
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning:mlflow.*", "ignore::UserWarning:alembic.*")
def test_mlflow_added_to_a_finished_sweep_mirrors_its_trials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.chdir(tmp_path)  # MLflow puts a sqlite:/// store's artifacts under ./mlruns
    f = write_sweep(tmp_path, n_trials=3)
    sweep = Sweep.from_file(f)
    try:
        assert sweep.run(progress="quiet").n_complete == 3  # no MLflow yet
    finally:
        sweep.close()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with f.open("a") as fh:
        fh.write(f"mlflow: {{tracking_uri: '{uri}', experiment: later}}\n")
    # nothing left to run; MLflow is filled. In-process (the command line's separate worker
    # process is back-filled by the launcher; this is the tracker's own path)
    sweep = Sweep.from_file(f)
    try:
        assert sweep.run(progress="quiet").n_complete == 3
    finally:
        sweep.close()
    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("later").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 3
    assert sorted(r.data.tags["hpo.trial_number"] for r in children) == ["0", "1", "2"]
    assert all(r.info.status == "FINISHED" for r in children)
    assert "hpo.best_trial" in parents[0].data.tags
    # delete takes the sweep's MLflow runs along, so a new sweep of that name gets its own
    assert main(["delete", str(f), "--yes"]) == 0
    assert "also deleted the 4 MLflow runs of sweep 'demo'" in capsys.readouterr().out
    deleted = [client.get_run(r.info.run_id).info.lifecycle_stage for r in runs]
    assert deleted == ["deleted"] * 4
    sweep = Sweep.from_file(f, n_trials=1)
    try:
        assert sweep.run(progress="quiet").n_complete == 1
    finally:
        sweep.close()
    runs = client.search_runs([client.get_experiment_by_name("later").experiment_id])
    assert len(runs) == 2 and parents[0].info.run_id not in {r.info.run_id for r in runs}


# --- the README's PostgreSQL block, as written -------------------------------------------------
@pytest.mark.slow
@pytest.mark.postgres
def test_readme_postgres_block_gives_parallel_workers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from _pg import fresh_schema

    with fresh_schema("hpo_readme") as url:
        f = write_sweep(
            tmp_path, name="digits", objective="slow_quadratic", n_trials=8, args="{delay: 0.3}"
        )
        # hpo-lightning sweep FILE --storage $HPO_LIGHTNING_STORAGE --create-only
        assert main(["sweep", str(f), "--storage", url, "--create-only"]) == 0
        assert "(0 of 8 trials finished)" in capsys.readouterr().out
        store = open_storage(url, create=False)
        assert store.get_trials(store.get_sweep("digits").id) == []  # nothing ran yet
        # two `hpo-lightning worker digits &` that find the store in $HPO_LIGHTNING_STORAGE
        env = {**os.environ, "HPO_LIGHTNING_STORAGE": url}
        env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "hpo_lightning", "worker", "digits", "--quiet"],
                cwd=tmp_path,
                env=env,
                stderr=subprocess.PIPE,
            )
            for _ in range(2)
        ]
        for w in workers:
            assert w.wait(timeout=180) == 0, w.stderr.read() if w.stderr else ""
        trials = store.get_trials(store.get_sweep("digits").id)
        store.close()
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 8
    assert {t.worker for t in trials} == {f"{os.uname().nodename}:{w.pid}" for w in workers}


# --- the quick start -----------------------------------------------------------------------------
@pytest.mark.slow
def test_quickstart_runs_on_one_torch_thread(tmp_path: Path) -> None:
    import shutil

    examples = TESTS.parent / "examples"
    for name in ("quickstart.py", "digits.py"):
        shutil.copy(examples / name, tmp_path)
    code = (
        "import runpy, sys; sys.path.insert(0, '.'); runpy.run_path('quickstart.py'); "
        "import torch; print('torch threads', torch.get_num_threads())"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # as a user has it
    run = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "20 trials stored in quickstart.db" in run.stdout
    assert run.stdout.rstrip().endswith("torch threads 1")
