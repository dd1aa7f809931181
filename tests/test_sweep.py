"""The sweep driver: counts, parallel workers, failures, resume, the trial loop."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pytest
import sweep_objectives as objs

import hpo_lightning as hl
from hpo_lightning.exceptions import ConfigError, DuplicateSweepError, InvalidSpaceError

SPACE = {"x": {"type": "float", "low": 0.0, "high": 1.0}, "y": {"type": "int", "low": 0, "high": 4}}


def _sweep(tmp_path: Path, **kw: object) -> hl.Sweep:
    opts: dict[str, object] = dict(
        name="s",
        objective=objs.quadratic,
        space=SPACE,
        monitor="loss",
        n_trials=12,
        storage=str(tmp_path / "s.db"),
        seed=1,
        tuner="tpe",
    )
    opts.update(kw)
    return hl.Sweep(**opts)  # type: ignore[arg-type]


def test_serial_sweep_runs_exactly_n_trials(tmp_path: Path) -> None:
    res = _sweep(tmp_path).run(progress="quiet")
    assert (res.n_complete, res.n_failed, res.stopped) == (12, 0, "done")
    trials = _sweep(tmp_path).trials()
    assert [t.number for t in trials] == list(range(12))
    assert res.best is not None and res.best.value == min(t.value for t in trials)


def test_rerun_resumes_and_extends(tmp_path: Path) -> None:
    _sweep(tmp_path, n_trials=5).run(progress="quiet")
    res = _sweep(tmp_path, n_trials=8).run(progress="quiet")
    assert res.n_complete == 8  # 5 kept + 3 new
    # the stored size follows, so a worker that joins (hpo-lightning worker) runs to 8 too
    assert hl.Sweep.join(str(tmp_path / "s.db"), "s").config.n_trials == 8
    _sweep(tmp_path, n_trials=3).run(progress="quiet")  # a smaller rerun does not shrink it
    assert hl.Sweep.join(str(tmp_path / "s.db"), "s").config.n_trials == 8


def test_a_joining_worker_uses_the_sweeps_heartbeat_settings(tmp_path: Path) -> None:
    _sweep(tmp_path, n_trials=1, heartbeat_s=20.0, lost_after_s=300.0).run(progress="quiet")
    joined = hl.Sweep.join(str(tmp_path / "s.db"), "s").config
    assert (joined.heartbeat_s, joined.lost_after_s) == (20.0, 300.0)
    # they are how the sweep runs, not what it searches: a rerun may change them
    _sweep(tmp_path, n_trials=2, lost_after_s=120.0).run(progress="quiet")


def test_same_seed_same_sequence(tmp_path: Path) -> None:
    params = []
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        sweep = _sweep(tmp_path / sub)
        sweep.run(progress="quiet")
        params.append([t.params for t in sweep.trials()])
    assert params[0] == params[1] and len(params[0]) == 12


def test_changed_definition_is_refused(tmp_path: Path) -> None:
    _sweep(tmp_path, n_trials=2).run(progress="quiet")
    with pytest.raises(DuplicateSweepError, match="monitor: stored 'loss', now 'acc'"):
        _sweep(tmp_path, monitor="acc")


def test_a_sweep_that_finished_no_trial_takes_a_corrected_definition(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    res = _sweep(tmp_path, objective=objs.failing, max_failures=2).run(progress="quiet")
    assert res.stopped == "max_failures" and res.n_complete == 0
    fixed = _sweep(tmp_path, n_trials=3)  # the corrected objective, same name
    assert "redefined (objective: stored" in caplog.text
    res = fixed.run(progress="quiet")
    assert res.n_complete == 3 and res.n_failed == 0  # the old failures went with it
    fixed.close()


def test_failures_are_isolated_and_max_failures_stops(tmp_path: Path) -> None:
    res = _sweep(tmp_path, objective=objs.failing, max_failures=3).run(progress="quiet")
    assert res.stopped == "max_failures" and res.n_failed == 3 and res.n_complete == 0
    assert res.first_error is not None and res.first_error.startswith("RuntimeError: boom at x=")


def test_nan_metric_marks_failed_and_sweep_goes_on(tmp_path: Path) -> None:
    res = _sweep(
        tmp_path,
        objective=objs.sometimes_nan,
        n_trials=6,
        max_failures=50,
        space={"x": SPACE["x"]},
        tuner="random",
    ).run(progress="quiet")
    assert res.n_complete == 6
    failed = [
        t
        for t in _sweep(
            tmp_path,
            objective=objs.sometimes_nan,
            n_trials=6,
            max_failures=50,
            space={"x": SPACE["x"]},
            tuner="random",
        ).trials()
        if t.state is hl.TrialState.FAILED
    ]
    assert failed and all("nan" in (t.message or "") for t in failed)
    assert all(t.params["x"] > 0.5 for t in failed)


def test_grid_points_never_repeat_and_exhaust(tmp_path: Path) -> None:
    space = {"a": [1, 2, 3], "b": ["u", "v"]}
    res = _sweep(
        tmp_path, space=space, tuner="grid", n_trials=50, objective=lambda p, cb: p["a"]
    ).run(progress="quiet")
    assert res.stopped == "exhausted" and res.n_complete == 6
    seen = [
        json.dumps(t.params, sort_keys=True)
        for t in _sweep(
            tmp_path, space=space, tuner="grid", n_trials=50, objective=lambda p, cb: p["a"]
        ).trials()
    ]
    assert len(seen) == len(set(seen)) == 6


def test_four_workers_exact_counts_no_duplicates(tmp_path: Path) -> None:
    sweep = _sweep(
        tmp_path,
        objective=objs.slow_quadratic,
        objective_args={"delay": 0.05},
        n_trials=24,
        n_workers=4,
        tuner="random",
    )
    res = sweep.run(progress="quiet")
    trials = sweep.trials()
    assert res.n_complete == 24 and len(trials) == 24
    assert not [t for t in trials if t.state is hl.TrialState.RUNNING]
    keys = [json.dumps(t.params, sort_keys=True) for t in trials]
    assert len(set(keys)) == 24
    assert len({t.worker for t in trials}) > 1  # several processes did the work


def test_plain_loop_with_report_and_lightning(tmp_path: Path) -> None:
    sweep = _sweep(tmp_path, n_trials=3, space={"x": SPACE["x"]}, objective=objs.quadratic)
    for trial in sweep:
        trial.report(trial.params["x"])
    assert sweep.result().n_complete == 3

    lsweep = hl.Sweep(
        name="l",
        objective=objs.lightning_fit,
        monitor="val_acc",
        mode="max",
        space={"lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}, "hidden": [8, 16]},
        n_trials=2,
        storage=str(tmp_path / "l.db"),
        seed=0,
        tuner="random",
    )
    for trial in lsweep:
        objs.lightning_fit(trial.params, trial.callback)
    trials = lsweep.trials()
    assert [t.state for t in trials] == [hl.TrialState.COMPLETE] * 2
    assert all(t.epochs == 2 and 0 <= (t.value or -1) <= 1 for t in trials)
    metrics = lsweep.storage.get_metrics(trials[0].id)
    assert sorted(metrics) == [0, 1] and "val_acc" in metrics[1]


def test_trial_without_result_is_failed(tmp_path: Path) -> None:
    sweep = _sweep(tmp_path, n_trials=1, max_failures=1, objective=lambda p, cb: None)
    res = sweep.run(progress="quiet")
    assert res.stopped == "max_failures"
    assert "neither fitted a Trainer" in (res.first_error or "")


@pytest.mark.parametrize(
    ("kw", "err", "match"),
    [
        ({"n_trials": 0}, ConfigError, "n_trials"),
        ({"tuner": "tpee"}, ConfigError, "did you mean 'tpe'"),
        ({"mode": "maximize"}, ConfigError, "mode"),
        ({"objective": "no_such_module_xyz:train"}, ConfigError, "cannot be imported"),
        ({"objective": "sweep_objectives:nope"}, ConfigError, "has no attribute 'nope'"),
        ({"objective": "sweep_objectives:math"}, ConfigError, "not a function"),
        ({"space": {"x": {"type": "float", "low": 1, "high": 0}}}, InvalidSpaceError, "low < high"),
    ],
)
def test_bad_options_write_nothing(tmp_path: Path, kw: dict, err: type, match: str) -> None:
    with pytest.raises(err, match=match):
        _sweep(tmp_path, **kw)
    assert not (tmp_path / "s.db").exists()


def test_timeout_stops_starting_trials(tmp_path: Path) -> None:
    res = _sweep(
        tmp_path,
        objective=objs.sleeper,
        objective_args={"seconds": 0.2},
        n_trials=100,
        timeout=0.5,
        tuner="random",
    ).run(progress="quiet")
    assert res.stopped == "timeout" and 1 <= res.n_complete < 10


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_monitor_never_logged_stops_the_sweep_with_a_clear_error(
    tmp_path: Path, workers: int
) -> None:
    space = {"lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}, "hidden": [8]}
    sweep = hl.Sweep(
        name="m",
        objective=objs.wrong_monitor,
        monitor="val_los",
        space=space,
        n_trials=4,
        n_workers=workers,
        storage=str(tmp_path / "m.db"),
        seed=0,
        tuner="random",
    )
    with pytest.raises(
        hl.exceptions.MetricNotFoundError if workers == 1 else hl.exceptions.UserInputError,
        match="'val_los' was never logged",
    ):
        sweep.run(progress="quiet")
    assert len(sweep.trials()) <= workers  # it did not go on trial after trial


def test_lightnings_srun_hint_is_not_printed_for_every_trial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recwarn: pytest.WarningsRecorder
) -> None:
    # a machine with Slurm installed, outside any Slurm job: every Trainer warns that `srun`
    # is not used, advice that is wrong for a sweep (its launcher decides where trials run)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    for var in ("SLURM_NTASKS", "SLURM_JOB_NAME"):
        monkeypatch.delenv(var, raising=False)
    sweep = hl.Sweep(
        name="srun",
        objective=objs.lightning_fit,
        objective_args={"max_epochs": 1},
        monitor="val_acc",
        mode="max",
        space={"lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}, "hidden": [8]},
        n_trials=2,
        storage=str(tmp_path / "s.db"),
        seed=0,
        tuner="random",
    )
    filters = list(warnings.filters)
    assert sweep.run(progress="quiet").n_complete == 2
    messages = [str(w.message) for w in recwarn]
    assert not [m for m in messages if "`srun` command is available" in m]
    assert warnings.filters == filters  # the caller's filters are as they were
    # the set-up does make Lightning warn, outside a trial
    from lightning_fabric.plugins.environments import SLURMEnvironment

    with pytest.warns(UserWarning, match="`srun` command is available"):
        SLURMEnvironment._validate_srun_used()
