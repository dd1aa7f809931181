"""A sweep with an `mlflow:` section mirrors into MLflow: one parent, one child per trial."""

from __future__ import annotations

from pathlib import Path

import pytest
import sweep_objectives as objs

import hpo_lightning as hl

mlflow = pytest.importorskip("mlflow")

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning:mlflow.*", "ignore::UserWarning:alembic.*"),
    pytest.mark.slow,
]


@pytest.mark.parametrize("workers", [1, 2])
def test_sweep_mirrors_to_mlflow(
    tmp_path: Path, workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # MLflow puts a sqlite:/// store's artifacts under ./mlruns
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    res = hl.run_sweep(
        objs.quadratic,
        name="mirror",
        space={"x": hl.Float(0, 1)},
        monitor="loss",
        n_trials=4,
        n_workers=workers,
        storage=str(tmp_path / "s.db"),
        tuner="random",
        seed=0,
        mlflow={"tracking_uri": uri, "experiment": "exp"},
        progress="quiet",
    )
    assert res.n_complete == 4
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("exp")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 4
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert all(r.info.status == "FINISHED" for r in children)
    assert parents[0].info.status == "FINISHED"
    artifacts = {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    assert any(p.endswith(".csv") for p in artifacts)
