"""The local launcher: GPU placement (fake devices), n_workers auto, max_trials, crash loops."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

import hpo_lightning as hl
from hpo_lightning import TrialState
from hpo_lightning._trial import FailureKind
from hpo_lightning.exceptions import ConfigError
from hpo_lightning.launchers import Resources, make_launcher, visible_gpus
from hpo_lightning.launchers._local import auto_workers
from hpo_lightning.storage import open_storage
from hpo_lightning.sweep import StopReason, Sweep

TESTS = Path(__file__).parent


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.syspath_prepend(str(TESTS))
    markers = tmp_path / "markers"
    markers.mkdir()
    monkeypatch.setenv("HPO_TEST_MARKERS", str(markers))
    return markers


def _sweep(tmp_path: Path, **options: Any) -> Sweep:
    base = {
        "name": "s",
        "objective": "sweep_objectives:record_devices",
        "space": {"x": hl.Float(0, 1)},
        "monitor": "x",
        "n_trials": 8,
        "tuner": "random",
        "seed": 0,
        "storage": str(tmp_path / "s.db"),
        "base_dir": str(TESTS),
    }
    base.update(options)
    return Sweep(**base)


def _markers(tmp_path: Path, kind: str) -> list[dict[str, Any]]:
    out = []
    for p in sorted((tmp_path / "markers").glob(f"{kind}-*")):
        out.append(json.loads(p.read_text()))
    return out


def test_visible_gpus_come_from_cuda_visible_devices_without_cuda() -> None:
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "3,5,6,7"})[0] == ["3", "5", "6", "7"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""})[0] == []
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "1,-1,2"})[0] == ["1"]  # CUDA stops at -1


def test_auto_workers_by_gpus_and_by_cores() -> None:
    assert auto_workers(Resources(gpus_per_trial=2), ["3", "5", "6", "7"]) == 2
    assert auto_workers(Resources(), ["0", "1", "2"]) == 3
    cores = os.cpu_count() or 1
    assert auto_workers(Resources(cpus_per_trial=1), []) == cores
    assert auto_workers(Resources(), []) == max(1, cores // 2)


@pytest.mark.parametrize(
    "resources, message",
    [
        ({"gpus_per_trial": -1}, "gpus_per_trial"),
        ({"gpus_per_trial": 1.5}, "fraction below 1"),
        ({"cpus_per_trial": 0}, "cpus_per_trial"),
        ({"gpu_per_trial": 1}, "did you mean 'gpus_per_trial'"),
    ],
)
def test_bad_resources_are_refused(tmp_path: Path, resources: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _sweep(tmp_path, resources=resources)
    assert not (tmp_path / "s.db").exists()


def test_more_gpus_than_visible_are_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5,6,7")
    with pytest.raises(ConfigError, match=r"more GPUs than this machine shows \(4"):
        _sweep(tmp_path, resources={"gpus_per_trial": 5})
    with pytest.raises(ConfigError, match="need 6 GPUs"):
        _sweep(tmp_path, resources={"gpus_per_trial": 2}, n_workers=3)
    assert not (tmp_path / "s.db").exists()


def test_unknown_launcher_and_option_get_a_hint() -> None:
    with pytest.raises(ConfigError, match="did you mean 'local'"):
        make_launcher("locale")
    with pytest.raises(ConfigError, match="did you mean 'grace_s'"):
        make_launcher({"name": "local", "grace": 3})


@pytest.mark.slow
def test_each_concurrent_trial_gets_its_own_gpus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5,6,7")
    sweep = _sweep(tmp_path, resources={"gpus_per_trial": 2}, n_workers="auto")
    result = sweep.run(progress="quiet")
    assert result.stopped is StopReason.DONE and result.n_complete == 8
    seen = _markers(tmp_path, "devices")
    assert len(seen) == 8
    assert {m["devices"] for m in seen} == {"3,5", "6,7"}  # all used, disjoint pairs
    for a in seen:  # trials that overlapped in time ran on different devices
        for b in seen:
            if a is not b and a["start"] < b["end"] and b["start"] < a["end"]:
                assert a["devices"] != b["devices"]
    trials = sweep.trials()
    assert {t.attrs.get("devices") for t in trials} == {"3,5", "6,7"}
    assert all(t.attrs.get("host") for t in trials)
    sweep.close()


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 3])
def test_max_trials_is_honoured_and_said(tmp_path: Path, workers: int) -> None:
    sweep = _sweep(tmp_path, n_trials=12)
    result = sweep.run(n_workers=workers, max_trials=3, progress="quiet")
    assert result.stopped is StopReason.LIMIT
    # workers stop claiming at the limit; trials already in flight may finish
    assert 3 <= result.n_complete <= 3 + workers - 1
    rest = sweep.run(n_workers=workers, progress="quiet")
    assert rest.stopped is StopReason.DONE and rest.n_complete == 12
    sweep.close()


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_params_that_kill_their_worker_fail_after_the_second_death(
    tmp_path: Path, workers: int
) -> None:
    sweep = _sweep(tmp_path, objective="sweep_objectives:self_kill", n_trials=6, max_failures=2)
    result = sweep.run(n_workers=workers, progress="quiet", isolate=True)
    trials = sweep.trials()
    crashed = [t for t in trials if t.failure is FailureKind.CRASHED]
    lost = [t for t in trials if t.state is TrialState.LOST]
    assert crashed, [(t.number, t.state, t.message) for t in trials]
    for t in crashed:  # each crashed trial is the retry of a trial that was lost
        first = next(o for o in trials if o.number == t.attrs["retry_of"])
        assert first.state is TrialState.LOST and first.params == t.params
    assert len(lost) >= len(crashed)
    assert TrialState.RUNNING not in [t.state for t in trials]
    assert result.stopped in (StopReason.MAX_FAILURES, StopReason.DONE)
    if result.stopped is StopReason.MAX_FAILURES:
        assert result.exit_code == 1 and len(crashed) >= 2
    # no params were run more than twice
    runs: dict[str, int] = {}
    for t in trials:
        key = json.dumps(dict(t.params), sort_keys=True)
        runs[key] = runs.get(key, 0) + 1
    assert max(runs.values()) <= 2
    store = open_storage(tmp_path / "s.db", create=False)
    store.close()
    sweep.close()
