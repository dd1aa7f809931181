"""The YAML ``scheduler:`` section end to end: ``hpo-lightning sweep`` with real Lightning fits."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpo_lightning import TrialState
from hpo_lightning.cli import main
from hpo_lightning.storage import open_storage

TESTS = Path(__file__).parent
GOOD_LR, TINY_LR = 0.05, 0.00001
# written out: PyYAML reads the repr 1e-05 (no dot) as a string, not a float
GOOD_LR_TEXT, TINY_LR_TEXT = "0.05", "0.00001"

SWEEP = """\
name: {name}
objective: sweep_objectives:lightning_fit
objective_args: {{max_epochs: 4}}
monitor: val_acc
mode: max
n_trials: 4
seed: 0
tuner: grid
space:
  lr: [{good}, {tiny}]
  hidden: [16, 32]
scheduler: {scheduler}
"""
ASHA = "{name: asha, min_epochs: 1, reduction_factor: 2, max_epochs: 4}"


def write_sweep(tmp_path: Path, *, name: str = "asha", scheduler: str = ASHA) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        SWEEP.format(name=name, good=GOOD_LR_TEXT, tiny=TINY_LR_TEXT, scheduler=scheduler)
    )
    return path


@pytest.fixture(autouse=True)
def _importable_objectives(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(TESTS))
    monkeypatch.delenv("HPO_LIGHTNING_STORAGE", raising=False)


@pytest.mark.slow
def test_asha_section_prunes_the_tiny_lr_trials(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the grid runs both lr=0.05 trials first, so each tiny-lr trial meets good peers at rung 1
    f = write_sweep(tmp_path)
    assert main(["sweep", str(f), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "sweep 'asha' done: " in out and ", 0 failed;" in out

    store = open_storage(tmp_path / "hpo_lightning.db", create=False)
    try:
        trials = store.get_trials(store.get_sweep("asha").id)
        metrics = {t.number: store.get_metrics(t.id) for t in trials}
    finally:
        store.close()
    assert len(trials) == 4
    by_lr = {lr: [t for t in trials if t.params["lr"] == lr] for lr in (GOOD_LR, TINY_LR)}
    assert [t.state for t in by_lr[TINY_LR]] == [TrialState.PRUNED] * 2
    assert [t.epochs for t in by_lr[TINY_LR]] == [1, 1]  # stopped at the first rung
    assert by_lr[GOOD_LR][0].state is TrialState.COMPLETE and by_lr[GOOD_LR][0].epochs == 4
    pruned = [t for t in trials if t.state is TrialState.PRUNED]
    for t in pruned:
        assert 1 <= t.epochs < 4, t
        curve = metrics[t.number]
        assert len(curve) == t.epochs  # it trained no further than it was stopped
        assert t.value == pytest.approx(curve[max(curve)]["val_acc"])  # its last value
        assert (t.message or "").startswith("stopped by the asha scheduler")
    assert max(t.value or 0 for t in by_lr[TINY_LR]) < min(t.value or 0 for t in by_lr[GOOD_LR])

    assert main(["status", "asha", "--storage", str(tmp_path / "hpo_lightning.db")]) == 0
    status = capsys.readouterr().out
    assert status.count("│ pruned ") == len(pruned)  # one row each
    assert f"{4 - len(pruned)} complete, {len(pruned)} pruned, 0 failed, 0 running" in status


@pytest.mark.parametrize(
    ("scheduler", "match"),
    [
        (
            "{name: ashaa, min_epochs: 1}",
            "unknown scheduler 'ashaa'; known schedulers: asha, auto, hyperband, median, none, "
            "pbt; did you mean 'asha'?",
        ),
        (
            "{name: asha, min_epochs: 1, reduction_factor: 1, max_epochs: 4}",
            "`reduction_factor` must be an integer >= 2, but got 1",
        ),
        (
            "{name: asha, min_epochs: 5, reduction_factor: 2, max_epochs: 4}",
            "`min_epochs` <= `max_epochs` must hold, but got min_epochs=5, max_epochs=4",
        ),
        ("{name: asha, min_epoch: 1}", "has no option 'min_epoch'"),
        ("{min_epochs: 1}", "the `scheduler` section needs a `name`"),
        ("asha", "`scheduler` must be a mapping"),
    ],
)
def test_bad_scheduler_sections_exit_2_and_write_nothing(
    tmp_path: Path, scheduler: str, match: str, capsys: pytest.CaptureFixture[str]
) -> None:
    f = write_sweep(tmp_path, name="bad", scheduler=scheduler)
    assert main(["sweep", str(f), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1, err
    assert str(f) in err  # the message names the file
    assert list(tmp_path.iterdir()) == [f]  # no store file, nothing else written
