"""MLflowTracker, mlflow-sync and the plots, against a real MLflow tracking store (never a mock).

Most tests use a ``sqlite:///`` tracking URI (copied from one MLflow database initialised per
session, because MLflow's schema migrations take seconds); the outage test runs a real
``mlflow server`` and stops it mid-sweep.
"""

from __future__ import annotations

import csv
import logging
import math
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hpo_lightning import ExperimentTracker, Trial, TrialState
from hpo_lightning.cli import main
from hpo_lightning.events import EpochEnd, EpochStart, EventBus, TrainingFinish
from hpo_lightning.exceptions import MissingDependencyError
from hpo_lightning.plots import param_importance
from hpo_lightning.storage import Storage, TrialRecord, open_storage
from hpo_lightning.testing import TrackerContract

mlflow = pytest.importorskip("mlflow")
from _mlflow_server import MlflowServer  # noqa: E402

from hpo_lightning.tracking import MLflowTracker  # noqa: E402
from hpo_lightning.tracking._mlflow_sync import sync_sweep  # noqa: E402

# mlflow's own import-time and sqlite-store warnings are not ours to fix
pytestmark = pytest.mark.filterwarnings(
    "ignore::UserWarning:mlflow.*", "ignore::UserWarning:alembic.*"
)

DEFINITION: dict[str, Any] = {
    "name": "s",
    "space": {"lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True}},
    "tuner": {"name": "random", "options": {}},
    "scheduler": None,
    "monitor": "val_loss",
    "mode": "min",
    "n_trials": 3,
    "seed": 0,
}
# (state, val_loss per epoch): the state matrix of a sweep
MATRIX = [
    (TrialState.COMPLETE, [1.0, 0.6, 0.4]),
    (TrialState.PRUNED, [2.0, 1.8]),
    (TrialState.FAILED, [0.9]),
]


@pytest.fixture(autouse=True)
def _artifacts_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow puts a sqlite:/// store's artifacts under ./mlruns: keep them out of the repo."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite database with its schema created once for the session."""
    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def tracking_uri(tmp_path: Path, mlflow_template: Path) -> str:
    shutil.copy(mlflow_template, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Storage]:
    s = open_storage(tmp_path / "sweeps.db")
    yield s
    s.close()


def run_matrix(store: Storage, observers: list[Any], sweep: str = "s", first: int = 0) -> None:
    """Publish a sweep's events (store of record first) for the trials of MATRIX."""
    store.create_sweep(sweep, {**DEFINITION, "name": sweep}, mode="min")
    record = ExperimentTracker(store, sweep=sweep)
    bus = EventBus()
    bus.subscribe(record, critical=True)
    for obs in observers:
        bus.subscribe(obs)
    for i, (state, curve) in enumerate(MATRIX[first:], start=first):
        trial = record.start_trial({"lr": 10.0 ** -(i + 1), "opt": "adam"}, mode="min")
        for epoch, v in enumerate(curve):
            bus.publish(EpochStart(trial, epoch=epoch))
            bus.publish(
                EpochEnd(
                    trial, epoch=epoch, metrics={"val_loss": v, "lr": 0.1, "acc@1": 0.5}, value=v
                )
            )
        value = min(curve) if state is TrialState.COMPLETE else curve[-1]
        bus.publish(
            TrainingFinish(
                trial,
                best_metric=math.nan if state is TrialState.FAILED else value,
                best_params=trial.params,
                state=state,
                epochs=len(curve),
                message={TrialState.PRUNED: "median rule", TrialState.FAILED: "boom"}.get(state),
            )
        )


def runs_of(uri: str, experiment: str) -> tuple[Any, dict[int, Any], Any]:
    """(client, {trial number: child run}, parent run) of the experiment; checks the shape."""
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("hpo.role") == "sweep"]
    assert len(parents) == 1, [r.data.tags for r in runs]
    parent = parents[0]
    children = {int(r.data.tags["hpo.trial_number"]): r for r in runs if r is not parent}
    assert len(children) == len(runs) - 1
    for r in children.values():
        assert r.data.tags["mlflow.parentRunId"] == parent.info.run_id
    return client, children, parent


def history(client: Any, run: Any, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))


def test_a_sweep_is_a_parent_run_with_a_nested_run_per_trial(
    tracking_uri: str, store: Storage, tmp_path: Path
) -> None:
    tracker = MLflowTracker(tracking_uri, "exp", storage=store)
    tracker.sweep_started("s", DEFINITION)
    run_matrix(store, [tracker])
    tracker.sweep_finished("s")
    tracker.close()
    assert tracker.dropped == 0 and not tracker.warned

    client, children, parent = runs_of(tracking_uri, "exp")
    assert sorted(children) == [0, 1, 2]
    status = {n: r.info.status for n, r in children.items()}
    assert status == {0: "FINISHED", 1: "KILLED", 2: "FAILED"}
    assert [children[n].data.tags["hpo.state"] for n in (0, 1, 2)] == [
        "complete",
        "pruned",
        "failed",
    ]
    assert children[1].data.tags["hpo.stopped_early"] == "true"
    assert "hpo.stopped_early" not in children[0].data.tags
    assert history(client, children[0], "val_loss") == [(0, 1.0), (1, 0.6), (2, 0.4)]
    assert history(client, children[1], "val_loss") == [(0, 2.0), (1, 1.8)]
    assert [s for s, _ in history(client, children[0], "acc_1")] == [0, 1, 2]  # key made valid
    assert children[0].data.metrics["trial_value"] == 0.4
    assert "trial_value" not in children[2].data.metrics
    assert children[0].data.params == {"lr": "0.1", "opt": "adam"}
    # parent: definition as params, best trial tagged on both sides
    assert parent.info.status == "FINISHED"
    assert parent.data.params["tuner.name"] == "random"
    assert parent.data.params["space.lr.low"] == "0.0001"
    assert parent.data.params["mode"] == "min"
    assert parent.data.tags["hpo.best_trial"] == "0"
    assert float(parent.data.tags["hpo.best_value"]) == 0.4
    assert children[0].data.tags["hpo.best"] == "true"
    assert "hpo.best" not in children[1].data.tags
    # artifacts: the trials table and the three plots
    names = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert names == {
        "plots/optimisation_history.png",
        "plots/parallel_coordinates.png",
        "plots/param_importance.png",
    }
    local = Path(client.download_artifacts(parent.info.run_id, "trials.csv", str(tmp_path)))
    rows = list(csv.DictReader(local.open()))
    assert [(r["number"], r["state"]) for r in rows] == [
        ("0", "complete"),
        ("1", "pruned"),
        ("2", "failed"),
    ]
    png = Path(client.download_artifacts(parent.info.run_id, "plots", str(tmp_path)))
    assert (png / "param_importance.png").read_bytes()[:4] == b"\x89PNG"


def test_a_resumed_sweep_and_a_second_worker_share_the_parent_run(
    tracking_uri: str, store: Storage
) -> None:
    first = MLflowTracker(tracking_uri, "exp", storage=store)
    first.sweep_started("s", DEFINITION)
    run_matrix(store, [first])
    first.sweep_finished("s")
    first.close()
    # another process (a new tracker) resumes with a changed n_trials and a worse trial
    again = MLflowTracker(tracking_uri, "exp", storage=store)
    again.sweep_started("s", {**DEFINITION, "n_trials": 5})
    trial = Trial("s", 3, {"lr": 0.5}, id=None)
    again.on_event(EpochEnd(trial, epoch=0, metrics={"val_loss": 3.0}, value=3.0))
    again.on_event(TrainingFinish(trial, best_metric=3.0, state=TrialState.COMPLETE, epochs=1))
    again.sweep_finished("s")
    again.close()
    _, children, parent = runs_of(tracking_uri, "exp")
    assert sorted(children) == [0, 1, 2, 3]
    assert parent.data.tags["hpo.best_trial"] == "0"  # 3.0 does not beat 0.4
    assert parent.data.params["n_trials"] == "3"  # a logged param is never changed


def test_sync_back_fills_everything_and_twice_creates_no_duplicates(
    tracking_uri: str, store: Storage
) -> None:
    run_matrix(store, [])  # a sweep that never saw MLflow
    first = sync_sweep(store, "s", tracking_uri=tracking_uri, experiment_name="exp")
    assert (first.runs_created, first.metrics_logged, first.states_set) == (4, 18, 3)
    second = sync_sweep(store, "s", tracking_uri=tracking_uri, experiment_name="exp")
    assert (second.runs_created, second.metrics_logged, second.states_set) == (0, 0, 0)
    client, children, parent = runs_of(tracking_uri, "exp")
    assert len(children) == 3
    assert history(client, children[0], "val_loss") == [(0, 1.0), (1, 0.6), (2, 0.4)]
    assert [children[n].info.status for n in (0, 1, 2)] == ["FINISHED", "KILLED", "FAILED"]
    assert parent.data.tags["hpo.best_trial"] == "0" and parent.info.status == "FINISHED"


def test_an_unreachable_server_warns_once_and_never_stops_training(
    store: Storage, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from _mlflow_server import free_port

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    tracker = MLflowTracker(f"http://127.0.0.1:{free_port()}", "exp", retry_after_s=60)
    caplog.set_level(logging.WARNING, logger="hpo_lightning")
    started = time.perf_counter()
    tracker.sweep_started("s", DEFINITION)
    run_matrix(store, [tracker])
    publish_s = time.perf_counter() - started
    tracker.sweep_finished("s")
    tracker.close()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "mlflow-sync" in warnings[0].getMessage()
    assert tracker.dropped > 1  # later calls are skipped, not each waiting for a timeout
    assert publish_s < 5.0
    trials = store.get_trials(store.get_sweep("s").id)
    assert [t.state for t in trials] == [s for s, _ in MATRIX]


@pytest.mark.slow
def test_a_server_stopped_mid_sweep_then_sync_restores_it(
    tmp_path: Path,
    store: Storage,
    mlflow_template: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    server = MlflowServer(tmp_path)
    shutil.copy(mlflow_template, server.backend)
    caplog.set_level(logging.WARNING, logger="hpo_lightning")
    try:
        server.start()
        tracker = MLflowTracker(server.uri, "exp", storage=store, retry_after_s=60)
        tracker.sweep_started("s", DEFINITION)
        store.create_sweep("s", DEFINITION, mode="min")
        # trial 0 reaches MLflow, then the server stops
        run_first_trial_then_stop = _MidSweepStop(server, tracker)
        run_matrix(store, [tracker, run_first_trial_then_stop])
        tracker.sweep_finished("s")
        tracker.close()
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        trials = store.get_trials(store.get_sweep("s").id)
        assert [t.state for t in trials] == [s for s, _ in MATRIX]
        assert store.get_metrics(trials[1].id) == {
            0: {"val_loss": 2.0, "lr": 0.1, "acc@1": 0.5},
            1: {"val_loss": 1.8, "lr": 0.1, "acc@1": 0.5},
        }

        server.start()
        _, before, _ = runs_of(server.uri, "exp")
        assert sorted(before) == [0]  # only what was sent before the stop
        argv = [
            "mlflow-sync",
            "s",
            "--storage",
            str(tmp_path / "sweeps.db"),
            "--tracking-uri",
            server.uri,
            "--experiment",
            "exp",
        ]
        assert main(argv) == 0
        client, children, parent = runs_of(server.uri, "exp")
        assert [children[n].info.status for n in (0, 1, 2)] == ["FINISHED", "KILLED", "FAILED"]
        assert history(client, children[1], "val_loss") == [(0, 2.0), (1, 1.8)]
        assert parent.info.status == "FINISHED"
        assert main([*argv, "--no-artifacts"]) == 0
        _, after, _ = runs_of(server.uri, "exp")
        assert sorted(after) == [0, 1, 2]
        assert history(client, after[1], "val_loss") == [(0, 2.0), (1, 1.8)]
    finally:
        server.stop()


class _MidSweepStop:
    """An observer that stops the server once trial 0 is finished and sent to MLflow."""

    def __init__(self, server: MlflowServer, tracker: MLflowTracker) -> None:
        self.server, self.tracker = server, tracker

    def on_event(self, event: Any) -> None:
        if isinstance(event, TrainingFinish) and event.trial.number == 0:
            assert self.tracker.flush(60)
            self.server.stop()


@pytest.mark.slow
def test_a_lightning_fit_and_its_mlflow_logger_share_the_trial_run(
    tracking_uri: str, store: Storage
) -> None:
    pl = pytest.importorskip("pytorch_lightning")
    import torch

    from hpo_lightning import HPOCallback

    class Tiny(pl.LightningModule):  # type: ignore[name-defined,misc]
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch: Any, _: int) -> torch.Tensor:
            x, y = batch
            return torch.nn.functional.mse_loss(self.layer(x), y)

        def validation_step(self, batch: Any, _: int) -> None:
            x, y = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y))

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    from hpo_lightning.schedulers import Decision

    class StopAtEpoch1:  # a scheduler as users write them: decide(curve, others, mode)
        def decide(self, curve: Any, others: Any, *, mode: str) -> Decision:
            return Decision.STOP if (curve.last_epoch or 0) >= 1 else Decision.CONTINUE

    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 2, generator=g)
    data = torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True))
    loader = torch.utils.data.DataLoader(data, batch_size=16)
    store.create_sweep("s", DEFINITION, mode="min")
    record = ExperimentTracker(store, sweep="s")
    tracker = MLflowTracker(tracking_uri, "exp", storage=store)
    tracker.sweep_started("s", DEFINITION)
    for i, scheduler in enumerate([None, StopAtEpoch1()]):
        trial = record.start_trial({"lr": 0.1, "i": i})
        cb = HPOCallback(monitor="val_loss", tracker=record, trial=trial, scheduler=scheduler)
        cb.subscribe(tracker)
        trainer = pl.Trainer(
            max_epochs=3,
            logger=tracker.logger_for(trial),
            callbacks=[cb],
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        trainer.fit(Tiny(), loader, loader)
    tracker.sweep_finished("s")
    tracker.close()
    client, children, _ = runs_of(tracking_uri, "exp")
    assert sorted(children) == [0, 1]  # the logger wrote into the trial runs, not new ones
    assert [s for s, _ in history(client, children[0], "val_loss")] == [0, 1, 2]
    assert [s for s, _ in history(client, children[1], "val_loss")] == [0, 1]
    assert "lightning-val_loss" in children[0].data.metrics  # from Lightning's MLFlowLogger
    assert children[0].info.status == "FINISHED"
    assert children[1].info.status == "KILLED"  # not the logger's FINISHED


def test_without_mlflow_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'hpo_lightning\[mlflow\]'"):
        MLflowTracker("sqlite:///x.db")


def test_importing_the_package_loads_neither_mlflow_nor_matplotlib() -> None:
    code = (
        "import sys, hpo_lightning, hpo_lightning.tracking, hpo_lightning.plots;"
        "hpo_lightning.MLflowTracker;"
        "bad = [m for m in ('mlflow', 'matplotlib') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_plot_command_writes_pngs_and_the_table(store: Storage, tmp_path: Path) -> None:
    run_matrix(store, [])
    out = tmp_path / "plots"
    assert main(["plot", "s", "--storage", str(tmp_path / "sweeps.db"), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "optimisation_history.png",
        "parallel_coordinates.png",
        "param_importance.png",
        "trials.csv",
    ]


def test_plot_command_bad_input_is_one_line_and_exit_2(
    store: Storage, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_matrix(store, [])
    db = str(tmp_path / "sweeps.db")
    assert main(["plot", "nope", "--storage", db, "--out", str(tmp_path / "o")]) == 2
    assert main(["plot", "s", "--storage", db, "--out", db]) == 2
    assert main(["mlflow-sync", "nope", "--storage", db, "--tracking-uri", "sqlite:///m.db"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("hpo-lightning: error:") for line in err)
    assert not (tmp_path / "m.db").exists()


def test_importance_ranks_the_param_that_drives_the_value() -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    trials = []
    for n in range(60):
        x, z = float(rng.uniform(0, 1)), float(rng.uniform(0, 1))
        y = (x - 0.3) ** 2 + 0.01 * float(rng.normal())
        trials.append(TrialRecord(n, 1, n, TrialState.COMPLETE, {"x": x, "z": z}, value=y))
    scores = param_importance(trials)
    assert list(scores) == ["x", "z"]
    assert scores["x"] > 0.7 and scores["z"] < 0.15


class TestMLflowTrackerContract(TrackerContract):
    """MLflowTracker against the tracker contract suite (hpo_lightning.testing)."""

    @pytest.fixture
    def tracker(self, tracking_uri: str, store: Storage) -> Iterator[MLflowTracker]:
        t = MLflowTracker(tracking_uri, "contract", storage=store)
        yield t
        t.close()
