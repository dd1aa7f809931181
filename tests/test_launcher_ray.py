"""The Ray launcher on a real local Ray instance (2 CPUs, 2 logical GPUs), started once here."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _ray import local_ray

from hpo_lightning import TrialState
from hpo_lightning.exceptions import ConfigError
from hpo_lightning.launchers import Launcher
from hpo_lightning.launchers._ray import RayLauncher
from hpo_lightning.storage import TrialRecord, open_storage
from hpo_lightning.sweep import StopReason, Sweep
from hpo_lightning.testing import LauncherContract

pytestmark = pytest.mark.slow
TESTS = Path(__file__).parent


@pytest.fixture(scope="module")
def ray() -> Iterator[Any]:
    with local_ray() as r:
        yield r


def _sweep(tmp_path: Path, **kw: Any) -> Sweep:
    options: dict[str, Any] = {
        "name": "ray",
        "objective": "sweep_objectives:devices_sleeper",
        "space": {"x": {"type": "float", "low": 0, "high": 1}},
        "monitor": "x",
        "n_trials": 12,
        "n_workers": 2,
        "tuner": "random",
        "seed": 1,
        "storage": str(tmp_path / "ray.db"),
        "launcher": {"name": "ray"},
        "resources": {"gpus_per_trial": 1, "cpus_per_trial": 1},
        "base_dir": str(TESTS),
    }
    options.update(kw)
    return Sweep(**options)


def _overlap(a: TrialRecord, b: TrialRecord) -> bool:
    end_a, end_b = a.finished_at or time.time(), b.finished_at or time.time()
    return a.created_at < end_b and b.created_at < end_a


def test_each_trial_runs_on_its_own_gpu_and_the_count_is_exact(ray: Any, tmp_path: Path) -> None:
    sweep = _sweep(tmp_path)
    result = sweep.run(progress="quiet")
    trials = sweep.trials()
    sweep.close()
    assert result.stopped is StopReason.DONE
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 12
    assert {t.attrs["devices"] for t in trials} == {"0", "1"}  # both GPUs used, one each
    for i, a in enumerate(trials):
        for b in trials[i + 1 :]:
            if _overlap(a, b):
                assert a.attrs["devices"] != b.attrs["devices"], (a, b)
    assert len({t.worker for t in trials}) == 2  # two long-lived actors ran everything
    assert not os.path.exists(tmp_path / "ray.db-journal")


def test_an_actor_killed_mid_trial_loses_its_trial_which_runs_again(
    ray: Any, tmp_path: Path
) -> None:
    sweep = _sweep(tmp_path, n_trials=4, objective_args={"seconds": 1.0})
    out: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: out.update(r=sweep.run(progress="quiet")))
    runner.start()
    store = open_storage(tmp_path / "ray.db")
    victim = None
    deadline = time.monotonic() + 60
    while victim is None and time.monotonic() < deadline:
        time.sleep(0.1)
        running = store.get_trials(sweep.record.id, states=[TrialState.RUNNING])
        if running:
            victim = running[0]
            host, _, pid = (victim.worker or "").rpartition(":")
            assert host == socket.gethostname()
            os.kill(int(pid), signal.SIGKILL)  # the actor's process dies mid-trial
    assert victim is not None, "no trial started within 60 s"
    runner.join(timeout=120)
    assert not runner.is_alive()
    trials = store.get_trials(sweep.record.id)
    store.close()
    sweep.close()
    assert out["r"].stopped is StopReason.DONE
    lost = [t for t in trials if t.state is TrialState.LOST]
    assert [t.number for t in lost] == [victim.number]
    assert sum(t.state is TrialState.COMPLETE for t in trials) == 4
    retried = [t for t in trials if dict(t.params) == dict(victim.params)]
    assert [t.state for t in retried] == [TrialState.LOST, TrialState.COMPLETE]


def test_a_lightning_trial_runs_inside_an_actor(ray: Any, tmp_path: Path) -> None:
    sweep = _sweep(
        tmp_path,
        objective="sweep_objectives:lightning_fit",
        space={"lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}, "hidden": [8]},
        monitor="val_acc",
        mode="max",
        n_trials=2,
        n_workers=1,
        resources={"cpus_per_trial": 1},
    )
    result = sweep.run(progress="quiet")
    trials = sweep.trials()
    sweep.close()
    assert result.n_complete == 2
    assert all(t.epochs == 2 and t.value is not None for t in trials)


def test_resources_no_node_has_are_refused_before_anything_is_written(
    ray: Any, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=r"no node of the Ray cluster .* 2 GPUs") as err:
        _sweep(tmp_path, resources={"gpus_per_trial": 3})
    assert "\n" not in str(err.value)
    assert not (tmp_path / "ray.db").exists()


def test_the_served_ray_store_passes_the_single_process_contract(ray: Any, tmp_path: Path) -> None:
    from hpo_lightning.storage._served._ray import start_store_actor
    from hpo_lightning.testing._storage_contract import DEFINITION

    url, actor = start_store_actor(str(tmp_path / "actor.db"), lease_s=5)
    try:
        store = open_storage(url)
        sweep = store.create_sweep("s", DEFINITION, mode="min")

        @ray.remote
        def claim_many(url: str, n: int) -> list[int]:
            from hpo_lightning.storage import open_storage

            s = open_storage(url)
            return [
                s.claim_with(1, lambda c: c.add_trial({"n": len(c.trials)})).number
                for _ in range(n)
            ]

        numbers = sorted(
            n for part in ray.get([claim_many.remote(url, 10) for _ in range(2)]) for n in part
        )
        assert numbers == list(range(20))
        trials = store.get_trials(sweep.id)
        assert [t.params["n"] for t in trials] == list(range(20))  # each saw all before it
    finally:
        ray.kill(actor)


def _cli(tmp_path: Path, launcher: str) -> tuple[int, str]:
    f = tmp_path / "s.yaml"
    f.write_text(
        "name: r\nobjective: sweep_objectives:quadratic\nmonitor: loss\nn_trials: 2\n"
        f"space: {{x: {{type: float, low: 0, high: 1}}}}\nlauncher: {launcher}\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "hpo_lightning", "sweep", str(f), "--quiet"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(TESTS)},
        timeout=120,
    )
    return proc.returncode, proc.stderr


def test_an_unreachable_address_is_one_line_exit_2_nothing_written(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    code, err = _cli(tmp_path, "{name: ray, address: '127.0.0.1:9'}")
    assert code == 2, err
    assert err.count("\n") == 1 and "cannot reach the Ray cluster at address '127.0.0.1:9'" in err
    assert not (tmp_path / "hpo_lightning.db").exists()


def test_without_ray_the_error_names_the_extra(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "from hpo_lightning.cli import main\n"
        f"sys.exit(main(['sweep', {str(tmp_path / 's.yaml')!r}, '--quiet']))\n"
    )
    (tmp_path / "s.yaml").write_text(
        "name: r\nobjective: sweep_objectives:quadratic\nmonitor: loss\nn_trials: 2\n"
        "space: {x: {type: float, low: 0, high: 1}}\nlauncher: {name: ray}\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(TESTS)},
    )
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "pip install 'hpo_lightning[ray]'" in proc.stderr
    assert not (tmp_path / "hpo_lightning.db").exists()


def test_ctrl_c_on_the_driver_stops_the_actors_and_leaves_nothing_running(tmp_path: Path) -> None:
    """The driver starts its own local Ray here (no fixture): it must also shut it down."""
    pytest.importorskip("ray")
    f = tmp_path / "s.yaml"
    f.write_text(
        "name: c\nobjective: sweep_objectives:devices_sleeper\nobjective_args: {seconds: 2}\n"
        "monitor: x\nn_trials: 20\nn_workers: 2\ntuner: random\nseed: 3\n"
        "space: {x: {type: float, low: 0, high: 1}}\n"
        "launcher: {name: ray, num_cpus: 2, num_gpus: 0}\n"
    )
    driver = subprocess.Popen(
        [sys.executable, "-m", "hpo_lightning", "sweep", str(f), "--quiet"],
        env={**os.environ, "PYTHONPATH": str(TESTS)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    db = tmp_path / "hpo_lightning.db"
    deadline = time.monotonic() + 120
    try:
        while True:
            assert time.monotonic() < deadline, "no trial ran within 120 s"
            if db.exists():
                store = open_storage(db)
                try:
                    trials = store.get_trials(store.get_sweep("c").id)
                except Exception:
                    trials = []
                store.close()
                if sum(t.state is TrialState.RUNNING for t in trials) == 2:
                    break
            time.sleep(0.2)
        driver.send_signal(signal.SIGINT)
        _, err = driver.communicate(timeout=60)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 130, err
    assert "resume with: hpo-lightning sweep" in err
    store = open_storage(db)
    trials = store.get_trials(store.get_sweep("c").id)
    store.close()
    assert not [t for t in trials if t.state is TrialState.RUNNING]
    assert sum(t.state is TrialState.INTERRUPTED for t in trials) == 2
    pids = {int(str(t.worker).rpartition(":")[2]) for t in trials}
    time.sleep(1.0)
    for pid in pids:  # the actors' processes are gone with the driver's Ray
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


class TestRayLauncherContract(LauncherContract):
    """The launcher contract suite, on the module's local Ray instance."""

    @pytest.fixture
    def launcher(self, ray: Any) -> Iterator[Launcher]:
        launcher = RayLauncher(grace_s=10)
        yield launcher
        launcher.close()


def test_a_ray_client_address_with_a_sqlite_store_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    from hpo_lightning.sweep import SweepConfig

    cfg = SweepConfig(
        name="x",
        objective="sweep_objectives:quadratic",
        space={"x": {"type": "float", "low": 0, "high": 1}},
        monitor="loss",
        storage=str(tmp_path / "s.db"),
        base_dir=str(TESTS),
    )
    with pytest.raises(ConfigError, match="runs outside the cluster"):
        RayLauncher(address="ray://127.0.0.1:9").validate(cfg, 1)
