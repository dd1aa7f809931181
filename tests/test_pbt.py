"""PBT: table-driven decisions (curves in, exploit or continue out), exploration, and a real
population of 8 digits MLPs (lineage recorded, the same under the same seed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import hpo_lightning as hl
from hpo_lightning.exceptions import UserInputError
from hpo_lightning.schedulers import Decision, Exploit, LearningCurve, PBTScheduler

EXAMPLES = Path(__file__).parent.parent / "examples"


def _curves(values: dict[int, list[float]]) -> list[LearningCurve]:
    return [LearningCurve.of(n, v) for n, v in values.items()]


@pytest.mark.parametrize(
    ("trial", "values", "others", "expected"),
    [
        # not an interval epoch (interval 2: epochs 1, 3, ...)
        (3, [0.9], {0: [0.1], 1: [0.2], 2: [0.3]}, Decision.CONTINUE),
        # the worst of 4 at epoch 1: exploit the best
        (3, [0.9, 0.8], {0: [0.9, 0.1], 1: [0.9, 0.2], 2: [0.9, 0.3]}, Exploit(0, 1)),
        # not in the bottom quantile
        (3, [0.9, 0.15], {0: [0.9, 0.1], 1: [0.9, 0.2], 2: [0.9, 0.3]}, Decision.CONTINUE),
        # alone at this epoch: nobody to copy
        (3, [0.9, 0.8], {0: [0.9]}, Decision.CONTINUE),
        # another population (trials 4-7) does not count
        (3, [0.9, 0.8], {4: [0.9, 0.1], 5: [0.9, 0.2]}, Decision.CONTINUE),
        # a diverged member ranks last, and is never a donor
        (3, [0.9, float("nan")], {0: [0.9, 0.5]}, Exploit(0, 1)),
        (3, [0.9, 0.5], {0: [0.9, float("nan")]}, Decision.CONTINUE),
    ],
)
def test_pbt_decisions(
    trial: int, values: list[float], others: dict[int, list[float]], expected: Any
) -> None:
    pbt = PBTScheduler(population=4, interval=2, quantile=0.25, seed=0)
    curve = LearningCurve.of(trial, values)
    assert pbt.decide(curve, _curves(others), mode="min") == expected
    assert pbt.decide(curve, _curves(others), mode="min") == expected  # pure


def test_pbt_mode_max_and_donors_from_the_top_quantile() -> None:
    others = _curves({n: [0.1 * n] for n in range(7)})  # 0.0 .. 0.6, higher is better
    donors = {
        pbt.decide(LearningCurve.of(7, [0.05]), others, mode="max").donor  # type: ignore[union-attr]
        for pbt in (PBTScheduler(population=8, interval=1, quantile=0.5, seed=s) for s in range(20))
    }
    assert donors <= {6, 5, 4, 3} and len(donors) > 1


def test_explore_is_seeded_and_stays_in_the_space() -> None:
    space = hl.SearchSpace(
        {
            "lr": hl.Float(1e-4, 1e-1, log=True),
            "hidden": hl.Int(8, 64),
            "opt": hl.Categorical(["adam", "sgd"]),
        }
    )
    pbt = PBTScheduler(population=4, interval=1, mutations=["lr", "hidden", "opt"], seed=1)
    donor = {"lr": 0.0999, "hidden": 64, "opt": "adam"}
    seen = []
    for trial in range(30):
        new = pbt.explore(donor, space=space, trial=trial, epoch=3)
        assert new == pbt.explore(donor, space=space, trial=trial, epoch=3)
        assert space.contains(new)
        seen.append(new["lr"])
    assert len(set(seen)) > 2 and min(seen) < 0.0999
    fixed = PBTScheduler(population=4, interval=1, mutations=["lr"], seed=1)
    assert fixed.explore(donor, space=space, trial=0, epoch=0)["hidden"] == 64


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"population": 1}, "`population` must be an integer >= 2"),
        ({"quantile": 0.7}, r"`quantile` must be in \(0, 0.5\]"),
        ({"mutations": "lr"}, "`mutations` must be a list of parameter names"),
        ({"factors": [0.8, -1]}, "`factors` must be positive numbers"),
    ],
)
def test_bad_pbt_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(UserInputError, match=message):
        hl.make_scheduler("pbt", **options)


def _pbt_sweep(tmp_path: Path, name: str) -> tuple[list[Any], int]:
    res = hl.run_sweep(
        "digits:train",
        objective_args={"max_epochs": 4},
        name=name,
        space={"lr": hl.Float(3e-4, 3e-1, log=True), "weight_decay": hl.Float(0.0, 0.01)},
        monitor="val_acc",
        mode="max",
        n_trials=8,
        seed=7,
        tuner="random",
        scheduler={"name": "pbt", "population": 8, "interval": 1, "quantile": 0.25},
        storage=str(tmp_path / f"{name}.db"),
        base_dir=str(tmp_path),
        progress="quiet",
    )
    assert res.n_complete == 8
    store = hl.open_storage(tmp_path / f"{name}.db")
    trials = store.get_trials(store.get_sweep(name).id)
    store.close()
    files = len(list((tmp_path / f"{name}.checkpoints").rglob("*.ckpt")))
    return trials, files


@pytest.mark.slow
def test_pbt_population_of_8_digits_mlps_records_lineage_and_is_seeded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    first, files = _pbt_sweep(tmp_path, "a")
    second, _ = _pbt_sweep(tmp_path, "b")
    lineage = [t.attrs.get("lineage", []) for t in first]
    steps = [s for steps in lineage for s in steps]
    assert steps, "no trial exploited another"
    for t, trial_steps in zip(first, lineage):
        for s in trial_steps:
            assert s["donor"] != t.number and 0 <= s["epoch"] < 3
            assert 3e-4 <= s["params"]["lr"] <= 3e-1
    assert all(t.epochs == 4 for t in first)  # one curve of 4 epochs per trial
    assert files == 1  # keep: best, once the sweep is over
    assert [(t.params, t.value, t.attrs.get("lineage")) for t in first] == [
        (t.params, t.value, t.attrs.get("lineage")) for t in second
    ]


@pytest.mark.slow
def test_pbt_in_your_own_loop_brings_a_continued_trial_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tests = Path(__file__).parent
    monkeypatch.syspath_prepend(str(tests))
    import sweep_objectives as objs

    sweep = hl.Sweep(
        name="loop",
        objective="sweep_objectives:lightning_resumable",
        space={"lr": hl.Float(1e-3, 0.5, log=True)},
        monitor="val_acc",
        mode="max",
        n_trials=3,
        seed=0,
        tuner="random",
        scheduler={"name": "pbt", "population": 3, "interval": 1, "quantile": 0.34},
        storage=str(tmp_path / "s.db"),
        base_dir=str(tmp_path),
    )
    seen = []
    for trial in sweep:
        seen.append((trial.number, dict(trial.params)))
        objs.lightning_resumable(trial.params, trial.callback, max_epochs=4, epoch_delay=0.0)
    numbers = [n for n, _ in seen]
    assert len(numbers) > len(set(numbers)), seen  # a continued trial came again
    trials = {t.number: t for t in sweep.trials()}
    assert all(t.state is hl.TrialState.COMPLETE and t.epochs == 4 for t in trials.values())
    for number in sorted(set(numbers)):
        given = [p for n, p in seen if n == number]
        lineage = trials[number].attrs.get("lineage", [])
        assert given == [trials[number].params] + [s["params"] for s in lineage]
    sweep.close()
