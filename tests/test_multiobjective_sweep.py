"""Multi-objective sweeps end to end: config, store, best/status/export, resume, workers."""

from __future__ import annotations

import csv
import io
import json
import math
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from hpo_lightning import TrialState
from hpo_lightning.cli import main
from hpo_lightning.exceptions import ConfigError
from hpo_lightning.storage import TrialRecord, open_storage
from hpo_lightning.sweep import Sweep, run_sweep
from hpo_lightning.sweep._config import config_from_dict, load_sweep_file

TESTS = Path(__file__).parent

MO_SWEEP = """\
name: {name}
objective: sweep_objectives:two_objectives
monitor: [f1, f2]
mode: [min, min]
constraints: {{size: "<= 1"}}
n_trials: {n_trials}
seed: 5
tuner: random
space:
  x: {{type: float, low: 0, high: 1}}
  y: [0, 1, 2]
"""


@pytest.fixture(autouse=True)
def _importable_objectives(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(TESTS))
    monkeypatch.delenv("HPO_LIGHTNING_STORAGE", raising=False)


def _base(**extra: Any) -> dict[str, Any]:
    return {
        "name": "mo",
        "objective": "sweep_objectives:two_objectives",
        "space": {"x": {"type": "float", "low": 0, "high": 1}},
        "monitor": ["f1", "f2"],
        "mode": ["min", "min"],
        "tuner": "random",
        **extra,
    }


def brute_force_front(trials: list[TrialRecord], modes: list[str]) -> list[list[int]]:
    """The reference: [feasible front numbers, infeasible front numbers], by pairwise checks."""
    sign = [1.0 if m == "min" else -1.0 for m in modes]
    done = [t for t in trials if t.state is TrialState.COMPLETE and t.objective_values]
    out = []
    for feasible in (True, False):
        group = [t for t in done if (not t.violation) is feasible]
        losses = {t.number: [s * v for s, v in zip(sign, t.objective_values or ())] for t in group}

        def dominated(n: int, losses: dict[int, list[float]] = losses) -> bool:
            a = losses[n]
            return any(
                all(b_i <= a_i for a_i, b_i in zip(a, b))
                and any(b_i < a_i for a_i, b_i in zip(a, b))
                for m, b in losses.items()
                if m != n
            )

        out.append(sorted(n for n in losses if not dominated(n)))
    return out


def _run_file(path: Path, **overrides: Any) -> None:
    """Run a sweep file in this process (the command line would start a worker process)."""
    sweep = Sweep.from_file(path, **overrides)
    try:
        assert sweep.run(progress="quiet").ok
    finally:
        sweep.close()


def _best_lines(args: list[str], capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    assert main(["best", *args]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


# --- configuration -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ({"mode": ["min"]}, "same length"),
        ({"mode": "min"}, "list of 2 directions"),
        ({"mode": ["min", "up"]}, "'min' or 'max'"),
        ({"monitor": ["f1", "f1"]}, "twice"),
        ({"constraints": {"size": "< 5"}}, '"<= x" or ">= x"'),
        ({"constraints": {"size": "<= lots"}}, '"<= x" or ">= x"'),
        ({"constraints": {"size": 5}}, '"<= x" or ">= x"'),
        ({"constraints": {"size": "<= inf"}}, "finite"),
        ({"constraints": ["size <= 5"]}, "mapping"),
        ({"scheduler_objective": "f3"}, "one of the monitored metrics"),
        ({"scheduler": {"name": "pbt"}}, "scheduler_objective"),
    ],
)
def test_bad_objectives_are_one_line_config_errors(extra: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        config_from_dict(_base(**extra))
    assert "\n" not in str(info.value)


def test_a_single_metric_stays_single_objective() -> None:
    cfg = config_from_dict(_base(monitor=["f1"], mode=["max"]))
    assert cfg.monitor == "f1" and cfg.mode == "max" and not cfg.objectives().multi
    assert cfg.definition()["monitor"] == "f1" and cfg.definition()["constraints"] is None
    multi = config_from_dict(_base(constraints={"size": ">=1e-3"}, scheduler_objective="f2"))
    assert multi.definition()["constraints"] == {"size": ">= 0.001"}
    assert multi.epoch_monitor == "f2"


def test_the_cli_refuses_a_bad_constraint_before_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "mo.yaml"
    f.write_text(MO_SWEEP.format(name="mo", n_trials=3).replace('"<= 1"', '"at most 1"'))
    assert main(["sweep", str(f), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "constraints.size" in err and '"<= x" or ">= x"' in err
    assert not (tmp_path / "hpo_lightning.db").exists()


# --- front, store, resume ------------------------------------------------------------------
def test_best_is_the_brute_force_front_and_survives_a_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "mo.yaml"
    f.write_text(MO_SWEEP.format(name="mo", n_trials=10))
    for n_trials in (10, 18):  # the second run extends the sweep: nothing lost, same rule
        _run_file(f, n_trials=n_trials)
        store = open_storage(tmp_path / "hpo_lightning.db")
        trials = store.get_trials(store.get_sweep("mo").id)
        store.close()
        assert [t.number for t in trials] == list(range(n_trials))
        assert all(t.state is TrialState.COMPLETE for t in trials)
        for t in trials:  # every objective stored; violation = max(size - 1, 0)
            assert t.objective_values == (
                t.value,
                pytest.approx((1 - t.params["x"]) ** 2 + 0.1 * t.params["y"]),
            )
            assert t.violation == max(t.params["y"] - 1, 0)
        feasible, infeasible = brute_force_front(trials, ["min", "min"])
        lines = _best_lines([str(f)], capsys)
        assert [e["number"] for e in lines if e["feasible"]] == sorted(
            feasible, key=lambda n: trials[n].value or 0.0
        )
        assert sorted(e["number"] for e in lines if not e["feasible"]) == infeasible
        assert [e["feasible"] for e in lines] == sorted(
            (e["feasible"] for e in lines), reverse=True
        )
        assert infeasible and feasible  # the seed gives both kinds: the order is tested
        assert set(lines[0]) == {"number", "objectives", "feasible", "violation", "params"}
        assert set(lines[0]["objectives"]) == {"f1", "f2"}


def test_status_and_export_show_every_objective(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "mo.yaml"
    f.write_text(MO_SWEEP.format(name="mo", n_trials=6))
    _run_file(f)
    assert main(["status", str(f)]) == 0
    out = capsys.readouterr().out
    assert "min f1, min f2" in out and "violation" in out and "pareto" in out
    assert main(["export", str(f)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 6
    assert {"f1", "f2", "pareto", "violation", "value", "param_x", "param_y"} <= set(rows[0])
    assert all(float(r["f1"]) == float(r["value"]) for r in rows)
    assert main(["export", str(f), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["objectives"] == ["f1", "f2"]
    trial = doc["trials"][0]
    assert set(trial["params"]) == {"x", "y"} and set(trial["objectives"]) == {"f1", "f2"}
    assert not any(k.startswith("param_") for k in trial)
    front = {e["number"] for e in _best_lines([str(f)], capsys)}
    assert {t["number"] for t in doc["trials"] if t["pareto"]} == front


def test_a_single_objective_export_nests_params_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_sweep(
        "sweep_objectives:quadratic",
        name="one",
        space={"x": {"type": "float", "low": 0, "high": 1}},
        monitor="loss",
        n_trials=3,
        tuner="random",
        storage=str(tmp_path / "s.db"),
        progress="quiet",
    )
    assert main(["export", "one", "--storage", str(tmp_path / "s.db"), "--format", "json"]) == 0
    trial = json.loads(capsys.readouterr().out)["trials"][0]
    assert set(trial["params"]) == {"x"} and "objectives" not in trial


def test_a_missing_metric_fails_the_trial_naming_it(tmp_path: Path) -> None:
    res = run_sweep(
        "sweep_objectives:two_objectives",
        name="missing",
        space={"x": {"type": "float", "low": 0, "high": 1}, "y": [0, 1]},
        monitor=["f1", "latency"],
        mode=["min", "min"],
        n_trials=2,
        max_failures=1,
        tuner="random",
        storage=str(tmp_path / "s.db"),
        progress="quiet",
    )
    assert res.n_failed == 1 and res.stopped == "max_failures"
    (t,) = open_storage(tmp_path / "s.db").get_trials(1)
    assert t.failure is not None and t.failure.value == "no_metric"
    assert "'latency'" in (t.message or "") and "f1, f2, size" in (t.message or "")


def _make_version_3(location: str, run_sql: Any) -> int:
    """A store as version 3 left it (no objective columns, no change counts) with one
    finished trial: it is migrated through version 4 (objectives) and 5 (change counts)."""
    store = open_storage(location)
    sweep = store.create_sweep("old", {"monitor": "loss"}, mode="min")
    with store.claim(sweep.id) as c:
        old = c.add_trial({"x": 1})
    store.finish_trial(old.id, TrialState.COMPLETE, 0.5)
    store.close()
    run_sql(
        "ALTER TABLE hpo_trials DROP COLUMN objective_values",
        "ALTER TABLE hpo_trials DROP COLUMN violation",
        "DROP INDEX hpo_trials_by_change",
        "ALTER TABLE hpo_trials DROP COLUMN changed",
        "ALTER TABLE hpo_sweeps DROP COLUMN changes",
        "UPDATE hpo_schema SET version = 3",
    )
    return sweep.id


def _check_migrated(location: str, sweep_id: int) -> None:
    store = open_storage(location, create=False)
    (t,) = store.get_trials(sweep_id)
    assert t.value == 0.5 and t.objective_values is None and t.violation is None
    with store.claim(sweep_id) as c:
        new = c.add_trial({"x": 2})
    store.finish_trial(new.id, TrialState.COMPLETE, 0.1, objective_values=[0.1, 3.0], violation=0)
    assert store.get_trials(sweep_id)[1].objective_values == (0.1, 3.0)
    store.close()


def test_a_version_3_postgres_store_is_migrated() -> None:
    from _pg import admin, fresh_schema

    with fresh_schema() as url:
        schema = url.rsplit("application_name=", 1)[-1]  # fresh_schema names it so

        def run_sql(*statements: str) -> None:
            for stmt in statements:
                admin(stmt.replace("hpo_", f'"{schema}".hpo_'))

        _check_migrated(url, _make_version_3(url, run_sql))
        from hpo_lightning.storage._schema import SCHEMA_VERSION

        assert admin(f'SELECT version FROM "{schema}".hpo_schema') == [(SCHEMA_VERSION,)]


def test_a_version_3_store_is_migrated(tmp_path: Path) -> None:
    """Version 3 had no objective_values/violation columns: old trials read as single-
    objective ones, new ones store every objective."""
    path = tmp_path / "v3.db"

    def run_sql(*statements: str) -> None:
        conn = sqlite3.connect(path)
        for stmt in statements:
            conn.execute(stmt)
        conn.commit()
        conn.close()

    _check_migrated(str(path), _make_version_3(str(path), run_sql))
    from hpo_lightning.storage._schema import SCHEMA_VERSION

    (version,) = sqlite3.connect(path).execute("SELECT MAX(version) FROM hpo_schema").fetchone()
    assert version == SCHEMA_VERSION


@pytest.mark.slow
def test_two_parallel_workers_keep_the_front_exact(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "mo.yaml"
    f.write_text(MO_SWEEP.format(name="par", n_trials=8) + "objective_args: {delay: 0.3}\n")
    assert main(["sweep", str(f), "--quiet", "--n-workers", "2"]) == 0
    capsys.readouterr()
    store = open_storage(tmp_path / "hpo_lightning.db")
    trials = store.get_trials(store.get_sweep("par").id)
    store.close()
    assert sorted(t.number for t in trials) == list(range(8))
    assert len({t.worker for t in trials}) == 2
    feasible, infeasible = brute_force_front(trials, ["min", "min"])
    lines = _best_lines([str(f)], capsys)
    assert sorted(e["number"] for e in lines) == sorted(feasible + infeasible)


# --- a real Lightning fit ------------------------------------------------------------------
@pytest.mark.slow
def test_a_lightning_sweep_of_accuracy_against_width(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """val_acc (per epoch) against width (logged once, at the last validation), with a
    parameter-count constraint: best is the brute-force front, infeasible trials after."""
    db = str(tmp_path / "s.db")
    res = run_sweep(
        "sweep_objectives:sized_fit",
        name="wine",
        space={
            "hidden": {"type": "int", "low": 2, "high": 64, "log": True},
            "lr": {"type": "float", "low": 0.01, "high": 0.1, "log": True},
        },
        monitor=["val_acc", "width"],
        mode=["max", "min"],
        constraints={"params_k": "<= 0.5"},
        objective_args={"max_epochs": 2},
        n_trials=6,
        tuner="random",
        seed=2,  # widths 4, 43, 37, 6, 10, 33: feasible (<= 29) and infeasible ones
        storage=db,
        progress="quiet",
    )
    assert res.n_complete == 6
    store = open_storage(db)
    trials = store.get_trials(store.get_sweep("wine").id)
    store.close()
    for t in trials:
        assert t.objective_values is not None and t.objective_values[1] == t.params["hidden"]
        weights = 13 * t.params["hidden"] + t.params["hidden"] + 3 * t.params["hidden"] + 3
        assert t.violation == pytest.approx(max(weights / 1000 - 0.5, 0.0))
    feasible, infeasible = brute_force_front(trials, ["max", "min"])
    assert feasible and infeasible  # the seed draws both kinds: the order is tested
    lines = _best_lines(["wine", "--storage", db], capsys)
    numbers = [e["number"] for e in lines]
    assert sorted(numbers) == sorted(feasible + infeasible)
    assert [e["feasible"] for e in lines] == [True] * len(feasible) + [False] * len(infeasible)
    assert [t.number for t in res.pareto] == numbers
    on_front = set(numbers)
    dominated = [t.number for t in trials if t.number not in on_front]
    assert all(n not in numbers for n in dominated)
    assert main(["plot", "wine", "--storage", db, "--out", str(tmp_path / "plots")]) == 0
    assert (tmp_path / "plots" / "pareto_front.png").stat().st_size > 1000
    res2 = run_sweep(
        "sweep_objectives:sized_fit",
        name="never",
        space={"hidden": [4], "lr": [0.05]},
        monitor=["val_acc", "latency_ms"],
        mode=["max", "min"],
        n_trials=1,
        max_failures=1,
        tuner="grid",
        storage=db,
        progress="quiet",
    )
    assert res2.n_failed == 1
    store = open_storage(db)
    (t,) = store.get_trials(store.get_sweep("never").id)
    store.close()
    assert t.failure is not None and t.failure.value == "no_metric"
    assert "'latency_ms'" in (t.message or "") and "params_k" in (t.message or "")
    assert math.isnan(t.value or math.nan)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning:mlflow.*", "ignore::UserWarning:alembic.*")
def test_mlflow_tags_the_front_and_writes_the_objective_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.chdir(tmp_path)  # MLflow puts a sqlite:/// store's artifacts under ./mlruns
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    f = tmp_path / "mo.yaml"
    f.write_text(
        MO_SWEEP.format(name="tagged", n_trials=4)
        + f"mlflow: {{tracking_uri: '{uri}', experiment: exp}}\n"
    )
    _run_file(f)
    front = {e["number"] for e in _best_lines([str(f)], capsys)}
    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("exp").experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    tagged = {
        int(r.data.tags["hpo.trial_number"])
        for r in children
        if r.data.tags.get("pareto_front") == "true"
    }
    assert len(children) == 4 and tagged == front
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    csv_path = client.download_artifacts(parent.info.run_id, "trials.csv", str(tmp_path))
    header = Path(csv_path).read_text().splitlines()[0].split(",")
    assert {"f1", "f2", "pareto", "violation", "param_x"} <= set(header)


def test_three_objectives_get_a_front_scatter_and_parallel_coordinates(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from hpo_lightning._objectives import Objectives
    from hpo_lightning.plots import plot_trials

    objectives = Objectives.of(["a", "b", "c"], ["min", "max", "min"], constraints={"c": "<= 2"})
    trials = [
        TrialRecord(
            i,
            1,
            i,
            TrialState.COMPLETE,
            {"x": i / 10},
            value=float(i % 4),
            objective_values=(float(i % 4), float(i % 3), float(i % 5)),
            violation=max(float(i % 5) - 2, 0.0),
        )
        for i in range(10)
    ]
    paths = plot_trials(trials, "min", tmp_path, sweep="three", objectives=objectives)
    names = {p.name for p in paths}
    assert {"pareto_front.png", "pareto_objectives.png"} <= names
    assert all(p.stat().st_size > 1000 for p in paths)


def test_a_joining_worker_reads_the_objectives_from_the_store(tmp_path: Path) -> None:
    f = tmp_path / "mo.yaml"
    f.write_text(MO_SWEEP.format(name="joined", n_trials=2) + "scheduler_objective: f2\n")
    Sweep.from_file(f).close()  # stores the definition, runs nothing
    joined = Sweep.join(str(tmp_path / "hpo_lightning.db"), "joined")
    try:
        assert joined.config.objectives() == load_sweep_file(f).objectives()
        assert joined.config.epoch_monitor == "f2"
    finally:
        joined.close()


# --- the best trial of a sweep with constraints is its best feasible one -------------------
def test_progress_and_best_checkpoint_rank_feasible_trials_first(tmp_path: Path) -> None:
    """A better value that breaks a constraint never shows as the sweep's best: not in the
    progress line (summarize) and not as `best --checkpoint`'s trial."""
    from hpo_lightning.sweep._checkpoints import best_checkpoint_of
    from hpo_lightning.sweep._progress import summarize

    store = open_storage(str(tmp_path / "s.db"))
    sweep = store.create_sweep("c", {"monitor": "loss", "mode": "min"}, mode="min")
    # (value, violation): trial 0 is the lowest but infeasible; 1 is the best feasible one
    results = [(0.1, 3.0), (0.5, 0.0), (0.9, 0.0), (0.2, 1.0)]
    for v, violation in results:
        with store.claim(sweep.id) as claim:
            t = claim.add_trial({"x": v}, tuner="random")
        store.add_checkpoint(t.id, 0, str(tmp_path / f"t{t.number}.ckpt"), v)
        store.finish_trial(t.id, TrialState.COMPLETE, v, epochs=1, violation=violation)
    trials = store.get_trials(sweep.id)
    best = summarize(trials, "min")["best"]
    assert (best.number, best.value) == (1, 0.5)
    assert best_checkpoint_of(store, sweep.id, mode="min") == (1, str(tmp_path / "t1.ckpt"))
    # with no feasible trial at all, the smallest violation ranks first
    only_infeasible = [t for t in trials if t.violation]
    assert summarize(only_infeasible, "min")["best"].number == 3
    store.close()
