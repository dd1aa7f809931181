"""Per-trial checkpoints with real Lightning fits: resume after kill -9, the best model, keep.

The kill drill kills the process that runs the trial (its pid is the trial's ``worker``) with
SIGKILL after it wrote the checkpoint of epoch 2, reruns the sweep and checks that the same
trial continued at epoch 3 with its global step, one curve and nothing duplicated.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import hpo_lightning as hl
from hpo_lightning import TrialState
from hpo_lightning._trial import FailureKind
from hpo_lightning.exceptions import CheckpointNotFoundError, ConfigError, StorageError
from hpo_lightning.storage import TrialRecord, open_storage

TESTS = Path(__file__).parent
EXAMPLES = TESTS.parent / "examples"

RESUMABLE = """\
name: r
objective: sweep_objectives:lightning_resumable
objective_args: {{max_epochs: 6, epoch_delay: {delay}}}
monitor: val_acc
mode: max
n_trials: 1
seed: 1
tuner: random
checkpoints: {{keep: best}}
space:
  lr: {{type: float, low: 0.01, high: 0.1, log: true}}
"""


def _env(markers: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(TESTS), HPO_TEST_MARKERS=str(markers))
    env.pop("HPO_LIGHTNING_STORAGE", None)
    return env


def _markers(markers: Path) -> list[dict[str, Any]]:
    files = sorted(markers.iterdir(), key=lambda p: int(p.name.split("-")[2]))
    return [json.loads(p.read_text()) for p in files]


def _wait_for_checkpoint(db: Path, epoch: int, proc: subprocess.Popen[str]) -> int:
    """Wait until trial 0 recorded the checkpoint of ``epoch``; return its worker's pid."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if db.exists():
            try:
                store = open_storage(db, create=False)
            except StorageError:  # the sweep is creating its schema right now
                time.sleep(0.05)
                continue
            try:
                sweeps = store.list_sweeps()
                ckpts = store.get_checkpoints(sweeps[0].id) if sweeps else {}
                if any(r.epoch >= epoch for r in ckpts.get(0, [])):
                    worker = store.get_trials(sweeps[0].id)[0].worker or ""
                    return int(worker.rpartition(":")[2])
            finally:
                store.close()
        time.sleep(0.05)
    raise AssertionError("no checkpoint was written in time")


@pytest.mark.slow
def test_a_trial_killed_after_epoch_2_resumes_where_its_checkpoint_was(tmp_path: Path) -> None:
    """The sweep's launcher replaces the killed worker; the new one resumes the same trial."""
    f = tmp_path / "r.yaml"
    f.write_text(RESUMABLE.format(delay=0.5))
    markers = tmp_path / "markers"
    markers.mkdir()
    cmd = [sys.executable, "-m", "hpo_lightning", "sweep", str(f), "--quiet"]
    proc = subprocess.Popen(
        cmd, env=_env(markers), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        pid = _wait_for_checkpoint(tmp_path / "hpo_lightning.db", 2, proc)
        os.kill(pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    store = open_storage(tmp_path / "hpo_lightning.db", create=False)
    sweep = store.get_sweep("r")
    (trial,) = store.get_trials(sweep.id)  # the same trial, no second row
    assert trial.number == 0 and trial.state is TrialState.COMPLETE and trial.epochs == 6
    # it had made progress since it started, so the death does not count against its params
    assert trial.attrs["resumes"] == 1 and trial.attrs["losses"] == 0
    assert trial.worker != f"{trial.worker.rpartition(':')[0]}:{pid}"  # another worker ended it
    metrics = store.get_metrics(trial.id)
    assert sorted(metrics) == list(range(6))  # one curve: no gap, no duplicate
    steps = [metrics[e]["gstep"] for e in range(6)]
    per_epoch = steps[0]
    assert steps == [per_epoch * (e + 1) for e in range(6)]  # the step counter went on
    assert trial.value == max(m["val_acc"] for m in metrics.values())
    first, resumed = _markers(markers)  # two fits: the killed one and the resumed one
    assert first == {"epoch": 0, "step": 0}
    assert resumed["epoch"] >= 3  # after the checkpoint of epoch 2 (or a later one)
    assert resumed["step"] == per_epoch * resumed["epoch"]
    assert trial.attrs["resumed_epochs"] == resumed["epoch"]
    assert len(store.get_checkpoints(sweep.id)[0]) == 1  # keep: best
    store.close()


def test_an_unreadable_checkpoint_warns_and_restarts_from_epoch_0(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(TESTS))
    monkeypatch.setenv("HPO_TEST_MARKERS", str(tmp_path))
    options: dict[str, Any] = dict(
        name="bad",
        objective="sweep_objectives:lightning_resumable",
        objective_args={"max_epochs": 3, "epoch_delay": 0.0},
        space={"lr": hl.Float(0.01, 0.1, log=True)},
        monitor="val_acc",
        mode="max",
        n_trials=1,
        seed=0,
        tuner="random",
        storage=str(tmp_path / "s.db"),
        checkpoints={"dir": str(tmp_path / "ck")},
        base_dir=str(tmp_path),
    )
    sweep = hl.Sweep(**options)
    # a trial whose worker died after epoch 1, leaving a corrupt checkpoint behind
    with sweep.storage.claim(sweep.record.id) as claim:
        t = claim.add_trial({"lr": 0.05}, tuner="random")
    for epoch in (0, 1):
        sweep.storage.log_metrics(t.id, epoch, {"val_acc": 0.1, "gstep": 99.0})
    bad = tmp_path / "ck" / "trial-00000" / "epoch-0001.ckpt"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a checkpoint")
    sweep.storage.add_checkpoint(t.id, 1, str(bad), 0.1)
    sweep.storage.finish_trial(t.id, TrialState.LOST, None, message="killed")
    with caplog.at_level(logging.WARNING, logger="hpo_lightning"):
        result = sweep.run(progress="quiet")
    assert result.n_complete == 1
    warnings = [r.message for r in caplog.records if "could not resume" in r.message]
    assert len(warnings) == 1 and "restarts from epoch 0" in warnings[0]
    (trial,) = sweep.trials()
    assert trial.number == 0 and trial.state is TrialState.COMPLETE and trial.epochs == 3
    metrics = sweep.storage.get_metrics(trial.id)
    assert sorted(metrics) == [0, 1, 2] and metrics[0]["gstep"] != 99.0
    assert not bad.exists()
    sweep.close()


@pytest.fixture
def examples(monkeypatch: pytest.MonkeyPatch) -> None:
    """examples/ on sys.path (digits.py: the model and the sweep objective)."""
    monkeypatch.syspath_prepend(str(EXAMPLES))


def _best_cmd(name: str, db: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "hpo_lightning",
        "best",
        name,
        "--checkpoint",
        "--storage",
        str(db),
    ]


def _digits_sweep(tmp_path: Path, keep: str, **options: Any) -> hl.Sweep:
    return hl.Sweep(
        name=f"digits-{keep}",
        objective="digits:train",
        objective_args={"max_epochs": options.pop("epochs", 3)},
        space={"lr": hl.Float(1e-3, 3e-2, log=True), "hidden": hl.Int(16, 48)},
        monitor="val_acc",
        mode="max",
        seed=3,
        tuner="random",
        storage=str(tmp_path / "s.db"),
        checkpoints={"keep": keep},
        base_dir=str(tmp_path),
        **options,
    )


@pytest.mark.slow
def test_keep_best_leaves_one_checkpoint_that_reproduces_the_stored_metric(
    tmp_path: Path, examples: None
) -> None:
    from digits import DigitsData, DigitsMLP

    sweep = _digits_sweep(tmp_path, "best", n_trials=4, epochs=4)
    result = sweep.run(progress="quiet")
    files = sorted((tmp_path / "s.checkpoints").rglob("*.ckpt"))
    assert len(files) == 1  # exactly one checkpoint per sweep
    path = sweep.best_checkpoint()
    assert Path(path) == files[0] and f"trial-{result.best.number:05d}" in path
    assert hl.load_best(str(tmp_path / "s.db"), sweep.name) == path
    model = sweep.best_checkpoint(DigitsMLP)
    assert isinstance(model, DigitsMLP)
    model.eval()
    data = DigitsData()
    import torch

    with torch.no_grad():
        hits = sum(int((model(x).argmax(-1) == y).sum()) for x, y in data.val_dataloader())
    acc = hits / len(data.val_set)
    assert math.isclose(acc, result.best.value, abs_tol=1e-6)
    shown = subprocess.run(
        _best_cmd(sweep.name, tmp_path / "s.db"),
        capture_output=True,
        text=True,
    )
    assert shown.returncode == 0 and shown.stdout.strip() == path
    sweep.close()


@pytest.mark.slow
@pytest.mark.parametrize(("keep", "files"), [("last", 2), ("none", 0)])
def test_keep_last_and_none(tmp_path: Path, keep: str, files: int, examples: None) -> None:
    sweep = _digits_sweep(tmp_path, keep, n_trials=2, epochs=2)
    sweep.run(progress="quiet")
    left = sorted((tmp_path / "s.checkpoints").rglob("*.ckpt"))
    assert len(left) == files
    assert all(p.name == "epoch-0001.ckpt" for p in left)  # the last epoch's
    if files == 0:
        with pytest.raises(CheckpointNotFoundError, match="no checkpoint"):
            sweep.best_checkpoint()
        shown = subprocess.run(
            _best_cmd(sweep.name, tmp_path / "s.db"),
            capture_output=True,
            text=True,
        )
        assert shown.returncode == 2 and "has no checkpoint" in shown.stderr
    sweep.close()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning:mlflow.*", "ignore::UserWarning:alembic.*")
def test_the_best_checkpoint_is_logged_to_the_best_trials_mlflow_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.chdir(tmp_path)  # MLflow puts a sqlite:/// store's artifacts under ./mlruns
    monkeypatch.syspath_prepend(str(TESTS))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    res = hl.run_sweep(
        "sweep_objectives:lightning_resumable",
        objective_args={"max_epochs": 2, "epoch_delay": 0.0},
        name="ml",
        space={"lr": hl.Float(0.01, 0.1, log=True)},
        monitor="val_acc",
        mode="max",
        n_trials=2,
        storage=str(tmp_path / "s.db"),
        tuner="random",
        seed=0,
        checkpoints=True,
        mlflow={"tracking_uri": uri, "experiment": "exp"},
        base_dir=str(tmp_path),
        progress="quiet",
    )
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("exp")
    runs = client.search_runs([exp.experiment_id])
    logged = {
        r.data.tags.get("hpo.trial_number"): [
            a.path for a in client.list_artifacts(r.info.run_id, "checkpoint")
        ]
        for r in runs
        if "mlflow.parentRunId" in r.data.tags
    }
    with_ckpt = {k: v for k, v in logged.items() if v}
    assert len(with_ckpt) == 1, logged
    ((trial, files),) = with_ckpt.items()
    assert str(res.best.number) == trial and files[0].endswith(".ckpt")


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"keep": "all"}, "`checkpoints.keep` must be one of best, last, none"),
        ({"every": 0}, "`checkpoints.every` must be an integer >= 1"),
        ({"evry": 2}, "unknown key 'evry'"),
        ("yes", "`checkpoints` must be true or a mapping"),
    ],
)
def test_bad_checkpoint_sections_are_refused(section: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        hl.SweepConfig(
            name="x",
            objective="m:f",
            space={"x": hl.Float(0, 1)},
            monitor="loss",
            checkpoints=section,
        )


def test_a_trial_that_dies_twice_without_progress_fails_as_crashed(tmp_path: Path) -> None:
    from hpo_lightning.sweep import Worker

    sweep = hl.Sweep(
        name="crash",
        objective=lambda params, callback: 0.0,
        space={"x": hl.Float(0, 1)},
        monitor="loss",
        n_trials=1,
        seed=0,
        tuner="random",
        storage=str(tmp_path / "s.db"),
        checkpoints=True,
        base_dir=str(tmp_path),
    )
    store = sweep.storage
    with store.claim(sweep.record.id) as claim:
        t = claim.add_trial({"x": 0.5}, tuner="random")
    for epoch in range(3):
        store.log_metrics(t.id, epoch, {"loss": 1.0})
    store.add_checkpoint(t.id, 2, str(tmp_path / "e2.ckpt"), 1.0)
    store.finish_trial(t.id, TrialState.LOST, None, message="killed")
    worker = Worker(sweep.config, store, sweep.record)
    first = worker.next_trial()
    assert isinstance(first, TrialRecord) and first.number == 0
    assert (first.attrs["losses"], first.attrs["resumed_epochs"]) == (0, 3)  # it had progressed
    store.finish_trial(t.id, TrialState.LOST, None, message="killed again at once")
    second = worker.next_trial()
    assert isinstance(second, TrialRecord) and second.attrs["losses"] == 1
    (crashed,) = store.fail_stale_trials(
        sweep.record.id, older_than_s=0.0, is_alive=lambda worker: False
    )
    assert crashed.state is TrialState.FAILED and crashed.failure is FailureKind.CRASHED
    sweep.close()
