"""A sweep file may name a tuner or scheduler registered in the objective's module
(docs/extending.md): the file is validated after that module is imported."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpo_lightning.cli import main
from hpo_lightning.storage import open_storage

MODULE = '''
from hpo_lightning.schedulers import Decision, Scheduler, register_scheduler
from hpo_lightning.tuners import RandomSearchTuner, register_tuner


class StopAfter(Scheduler):
    """Stops every trial after ``epochs`` epochs."""

    name = "stop-after-test"

    def __init__(self, *, epochs: int = 1) -> None:
        self.epochs = epochs

    def decide(self, curve, others, *, mode="min"):
        return Decision.STOP if curve.last_epoch + 1 >= self.epochs else Decision.CONTINUE

    def options(self):
        return {"epochs": self.epochs}


class Mine(RandomSearchTuner):
    name = "mine-test"


register_scheduler("stop-after-test", StopAfter)
register_tuner("mine-test", Mine)


def objective(params, callback):
    return (params["x"] - 0.3) ** 2
'''


@pytest.fixture(autouse=True)
def _registries_restored(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """What these tests register is gone after them (other tests list the known names)."""
    from hpo_lightning.schedulers import _registry as schedulers
    from hpo_lightning.tuners import _registry as tuners

    monkeypatch.setattr(schedulers, "_REGISTRY", dict(schedulers._REGISTRY))
    monkeypatch.setattr(tuners, "_REGISTRY", dict(tuners._REGISTRY))
    monkeypatch.setattr(tuners, "_MULTI", dict(tuners._MULTI))
    yield
    sys.modules.pop("regmod_objective", None)


def _write(tmp_path: Path, scheduler: str) -> Path:
    (tmp_path / "regmod_objective.py").write_text(MODULE)
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(
        textwrap.dedent(
            f"""\
            name: registered
            objective: regmod_objective:objective
            monitor: loss
            n_trials: 3
            tuner: mine-test
            scheduler: {{name: {scheduler}, epochs: 2}}
            space:
              x: {{type: float, low: 0, high: 1}}
            """
        )
    )
    return sweep


def test_a_sweep_file_uses_a_tuner_and_scheduler_registered_by_its_objective_module(
    tmp_path: Path,
) -> None:
    sweep = _write(tmp_path, "stop-after-test")
    db = tmp_path / "s.db"
    assert main(["sweep", str(sweep), "--storage", str(db)]) == 0
    store = open_storage(f"sqlite:///{db}")
    try:
        record = store.get_sweep("registered")
        trials = store.get_trials(record.id)
    finally:
        store.close()
    assert [t.tuner for t in trials] == ["mine-test"] * 3
    assert {t.state.value for t in trials} == {"complete"}
    assert record.definition["scheduler"] == {"name": "stop-after-test", "epochs": 2}


def test_a_misspelt_registered_name_is_refused_with_the_registered_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = _write(tmp_path, "stop-aftr-test")
    db = tmp_path / "s.db"
    assert main(["sweep", str(sweep), "--storage", str(db)]) == 2
    err = capsys.readouterr().err
    assert "unknown scheduler 'stop-aftr-test'" in err and "did you mean 'stop-after-test'" in err
    assert not db.exists()
