"""ExperimentTracker on SQLite: the seed's API, trials, epochs, schema, bad paths, concurrency."""

from __future__ import annotations

import datetime as dt
import math
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hpo_lightning import EpochEnd, ExperimentTracker, TrainingFinish, Trial, TrialState
from hpo_lightning.exceptions import InvalidMetricError, InvalidStorageError


# --- the seed's API -------------------------------------------------------------------------------
def test_log_record_and_all_records(tracker: ExperimentTracker) -> None:
    before = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
    first = tracker.log_record("GridSearchTuner", {"lr": 0.1, "batch": 32.0}, 0.75)
    second = tracker.log_record("TPETuner", {"lr": 0.01, "batch": 64.0}, np.float64(0.5))
    assert isinstance(first, int) and second > first
    records = tracker.all_records()
    assert [(r.id, r.tuner_name, dict(r.params), r.metric) for r in records] == [
        (first, "GridSearchTuner", {"lr": 0.1, "batch": 32.0}, 0.75),
        (second, "TPETuner", {"lr": 0.01, "batch": 64.0}, 0.5),
    ]
    assert all(r.state is TrialState.COMPLETE and r.sweep == "default" for r in records)
    assert all(before <= r.timestamp <= dt.datetime.now(dt.timezone.utc) for r in records)


def test_records_survive_reopening(db_path: Path) -> None:
    with_first = ExperimentTracker(db_path)
    rid = with_first.log_record("random", {"x": 1}, 2.0)
    with_first.close()
    again = ExperimentTracker(db_path)
    assert [(r.id, r.metric) for r in again.all_records()] == [(rid, 2.0)]
    again.close()


def test_non_finite_metric_is_stored_failed_and_not_listed(tracker: ExperimentTracker) -> None:
    tracker.log_record("tpe", {"x": 1}, math.nan)
    tracker.log_record("tpe", {"x": 2}, math.inf)
    assert tracker.all_records() == []
    trials = tracker.trials()
    assert [t.state for t in trials] == [TrialState.FAILED, TrialState.FAILED]
    assert all(t.value is None and "metric was" in (t.message or "") for t in trials)


@pytest.mark.parametrize("bad", ["0.5", np.array([1.0, 2.0]), None])
def test_non_scalar_metric_raises_and_writes_nothing(
    tracker: ExperimentTracker, bad: object
) -> None:
    with pytest.raises(InvalidMetricError):
        tracker.log_record("tpe", {"x": 1}, bad)
    assert tracker.storage.list_sweeps() == []


# --- trials, states and per-epoch metrics -----------------------------------------------------
def test_trial_life_cycle_through_events(tracker: ExperimentTracker) -> None:
    states = [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAILED]
    for i, state in enumerate(states):
        trial = tracker.start_trial({"lr": 10.0**-i}, mode="max", tuner="tpe")
        assert trial.number == i and trial.sweep == "default" and trial.id is not None
        assert tracker.trials()[i].state is TrialState.RUNNING
        for epoch in range(3):
            tracker.on_event(
                EpochEnd(trial, epoch=epoch, metrics={"acc": 0.1 * epoch, "loss": 1.0})
            )
        value = math.nan if state is TrialState.FAILED else 0.2
        message = "boom" if state is TrialState.FAILED else None
        tracker.on_event(
            TrainingFinish(trial, best_metric=value, state=state, epochs=3, message=message)
        )
    stored = tracker.trials()
    assert [t.state for t in stored] == states
    assert [t.value for t in stored] == [0.2, 0.2, None]
    assert [t.epochs for t in stored] == [3, 3, 3] and stored[2].message == "boom"
    assert all(t.tuner == "tpe" and t.finished_at and t.finished_at >= t.created_at for t in stored)
    metrics = tracker.storage.get_metrics(stored[0].id)
    assert metrics == {
        0: {"acc": 0.0, "loss": 1.0},
        1: {"acc": 0.1, "loss": 1.0},
        2: {"acc": 0.2, "loss": 1.0},
    }
    assert [r.state for r in tracker.all_records()] == [TrialState.COMPLETE, TrialState.PRUNED]


def test_a_finished_trial_is_never_reopened(tracker: ExperimentTracker) -> None:
    trial = tracker.start_trial({"x": 1})
    assert tracker.storage.finish_trial(trial.id or 0, TrialState.COMPLETE, 1.0)
    tracker.on_event(TrainingFinish(trial, best_metric=5.0, state=TrialState.FAILED))
    (stored,) = tracker.trials()
    assert stored.state is TrialState.COMPLETE and stored.value == 1.0


def test_events_of_unstored_trials_are_ignored(tracker: ExperimentTracker) -> None:
    tracker.on_event(EpochEnd(Trial("default", 0, {"x": 1}), epoch=0, metrics={"a": 1.0}))
    assert tracker.storage.list_sweeps() == []


def test_sweeps_hold_their_own_trials(db_path: Path) -> None:
    a, b = ExperimentTracker(db_path, sweep="a"), ExperimentTracker(db_path, sweep="b")
    a.log_record("tpe", {"x": 1}, 1.0)
    b.log_record("tpe", {"x": 2}, 2.0)
    b.log_record("tpe", {"x": 3}, 3.0)
    assert [len(a.trials()), len(b.trials()), len(a.trials("b"))] == [1, 2, 2]
    assert sorted((r.sweep, r.metric) for r in a.all_records()) == [
        ("a", 1.0),
        ("b", 2.0),
        ("b", 3.0),
    ]
    a.close()
    b.close()


# --- the file: schema version, WAL ------------------------------------------------------------
def test_schema_version_table_and_wal_mode(tracker: ExperimentTracker, db_path: Path) -> None:
    tracker.log_record("tpe", {"x": 1}, 1.0)
    con = sqlite3.connect(db_path)
    try:
        from hpo_lightning.storage._schema import SCHEMA_VERSION

        assert con.execute("SELECT version FROM hpo_schema").fetchall() == [(SCHEMA_VERSION,)]
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"hpo_schema", "hpo_sweeps", "hpo_trials", "hpo_metrics"} <= tables
        params = con.execute("SELECT params FROM hpo_trials").fetchone()[0]
        assert params == '{"x": 1}'  # JSON, not pickle
    finally:
        con.close()


def test_a_store_from_a_newer_version_is_refused(db_path: Path) -> None:
    ExperimentTracker(db_path).close()
    con = sqlite3.connect(db_path)
    con.execute("UPDATE hpo_schema SET version = 99")
    con.commit()
    con.close()
    with pytest.raises(InvalidStorageError, match=r"newer hpo_lightning \(schema 99"):
        ExperimentTracker(db_path)


# --- bad paths: a clear error, nothing written ----------------------------------------------------
def test_missing_directory(tmp_path: Path) -> None:
    path = tmp_path / "no_such_dir" / "exp.db"
    with pytest.raises(InvalidStorageError, match=r"directory .*no_such_dir does not exist"):
        ExperimentTracker(path)
    assert list(tmp_path.iterdir()) == []


def _refused(path: Path, match: str) -> None:
    before = path.read_bytes()
    listing = sorted(p.name for p in path.parent.iterdir())
    with pytest.raises(InvalidStorageError, match=match):
        ExperimentTracker(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == listing  # no -wal/-shm left


def test_a_file_that_is_not_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database\n" * 10)
    _refused(path, r"is not a SQLite database")


def test_a_foreign_sqlite_database(tmp_path: Path) -> None:
    path = tmp_path / "other_app.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    con.execute("INSERT INTO customers (name) VALUES ('ada')")
    con.commit()
    con.close()
    _refused(path, r"SQLite database of another application \(tables: customers\)")


def test_a_directory_as_path(tmp_path: Path) -> None:
    with pytest.raises(InvalidStorageError, match=r"is a directory"):
        ExperimentTracker(tmp_path)


# --- several processes on one file -------------------------------------------------------------
WORKER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from hpo_lightning import ExperimentTracker, EpochEnd, TrainingFinish, TrialState
    path, wid, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    go = Path(path + ".go")
    while not go.exists():
        time.sleep(0.005)
    tracker = ExperimentTracker(path, sweep="shared")
    for i in range(n):
        if i % 2:
            tracker.log_record(f"w{wid}", {"worker": wid, "i": i}, float(i))
        else:
            trial = tracker.start_trial({"worker": wid, "i": i}, tuner=f"w{wid}")
            for epoch in range(3):
                tracker.on_event(EpochEnd(trial, epoch=epoch, metrics={"loss": float(epoch)}))
            tracker.on_event(TrainingFinish(trial, best_metric=float(i), epochs=3))
    tracker.close()
    """
)


@pytest.mark.slow
def test_four_processes_write_one_file(db_path: Path) -> None:
    n_workers, n = 4, 30
    ExperimentTracker(db_path, sweep="shared").close()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(db_path), str(w), str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(n_workers)
    ]
    time.sleep(0.5)  # let every worker reach the start line, then release them together
    Path(str(db_path) + ".go").touch()
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (_out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
        assert "locked" not in err
    tracker = ExperimentTracker(db_path, sweep="shared")
    trials = tracker.trials()
    assert len(trials) == n_workers * n
    assert sorted(t.number for t in trials) == list(range(n_workers * n))  # no number twice
    assert all(t.state is TrialState.COMPLETE for t in trials)
    for w in range(n_workers):
        mine = [t for t in trials if t.params["worker"] == w]
        assert sorted(t.params["i"] for t in mine) == list(range(n))
    metric_rows = sum(len(tracker.storage.get_metrics(t.id)) for t in trials)
    assert metric_rows == n_workers * (n // 2) * 3
    tracker.close()


def test_the_callback_accepts_any_tracker_subclass() -> None:
    """A Tracker that does not number trials itself still records every event."""
    import pytorch_lightning as pl
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    import hpo_lightning as hl
    from hpo_lightning.tracking import Tracker

    class Recorder(Tracker):
        def __init__(self) -> None:
            self.events: list[Any] = []

        def on_event(self, event: Any) -> None:
            self.events.append(event)

    class Net(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(2, 1)

        def training_step(self, batch: Any, _: int) -> Any:
            loss = self.lin(batch[0]).pow(2).mean()
            self.log("loss", loss)
            return loss

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    tuner = hl.make_tuner("random", {"x": hl.Float(0, 1)}, seed=0)
    recorder = Recorder()
    cb = hl.HPOCallback(tuner, monitor="loss", tracker=recorder)
    tuner.suggest()
    data = DataLoader(TensorDataset(torch.ones(8, 2)), batch_size=4)
    trainer = pl.Trainer(
        max_epochs=2,
        callbacks=[cb],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(Net(), data)
    kinds = [type(e).__name__ for e in recorder.events]
    assert kinds.count("EpochEnd") == 2 and kinds[-1] == "TrainingFinish"
    assert recorder.events[-1].state is TrialState.COMPLETE
