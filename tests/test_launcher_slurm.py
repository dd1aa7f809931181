"""The Slurm launcher on a real single-node Slurm (tests/_slurm.py), and its refusals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _slurm import LocalSlurm, local_slurm

from hpo_lightning import TrialState
from hpo_lightning.exceptions import ConfigError
from hpo_lightning.launchers import Launcher
from hpo_lightning.launchers._slurm import SlurmLauncher, parse_minutes
from hpo_lightning.storage import open_storage
from hpo_lightning.sweep import StopReason, Sweep
from hpo_lightning.testing import LauncherContract

TESTS = Path(__file__).parent


@pytest.fixture(scope="module")
def slurm() -> Iterator[LocalSlurm]:
    with local_slurm() as cluster:
        old = os.environ.get("SLURM_CONF")
        os.environ["SLURM_CONF"] = str(cluster.conf)
        try:
            yield cluster
        finally:
            if old is None:
                os.environ.pop("SLURM_CONF", None)
            else:
                os.environ["SLURM_CONF"] = old


def _sweep(tmp_path: Path, **kw: Any) -> Sweep:
    options: dict[str, Any] = {
        "name": "slurm",
        "objective": "sweep_objectives:devices_sleeper",
        "space": {"x": {"type": "float", "low": 0, "high": 1}},
        "monitor": "x",
        "n_trials": 6,
        "n_workers": 2,
        "tuner": "random",
        "seed": 2,
        "storage": str(tmp_path / "slurm.db"),
        "launcher": {"name": "slurm", "folder": str(tmp_path / "jobs"), "poll_s": 0.5},
        "resources": {"cpus_per_trial": 1},
        "base_dir": str(TESTS),
    }
    options.update(kw)
    return Sweep(**options)


@pytest.mark.slow
def test_a_job_array_runs_the_sweep_exactly(slurm: LocalSlurm, tmp_path: Path) -> None:
    sweep = _sweep(tmp_path)
    result = sweep.run(progress="quiet")
    trials = sweep.trials()
    sweep.close()
    assert result.stopped is StopReason.DONE
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 6
    workers = {t.worker for t in trials}
    assert 1 <= len(workers) <= 2  # the array's tasks, each a process of its own
    assert os.getpid() not in {int(str(w).rpartition(":")[2]) for w in workers}


@pytest.mark.parametrize(
    ("text", "minutes"), [(30, 30), ("90", 90), ("1:30:00", 90), ("2-00:00", 2880), ("05:30", 6)]
)
def test_time_limits_read_as_slurm_writes_them(text: Any, minutes: int) -> None:
    assert parse_minutes(text) == minutes


def test_a_bad_time_limit_is_one_line() -> None:
    with pytest.raises(ConfigError, match="`time` must be minutes or HH:MM:SS"):
        parse_minutes("soon")


@pytest.mark.slow
def test_a_preempted_task_requeues_and_its_trial_goes_back_to_the_queue(tmp_path: Path) -> None:
    """submitit's local executor sends the preemption signal (USR2) as Slurm would."""
    submitit = pytest.importorskip("submitit")
    from hpo_lightning.launchers import WorkerSpec
    from hpo_lightning.launchers._slurm_task import SlurmTask

    sweep = _sweep(tmp_path, n_trials=3, objective_args={"seconds": 1.5}, launcher=None)
    cfg = sweep.config
    ex = submitit.LocalExecutor(folder=str(tmp_path / "jobs"))
    ex.update_parameters(timeout_min=5)
    job = ex.submit(SlurmTask(str(tmp_path / "jobs")), WorkerSpec(config=cfg, index=0))
    store = open_storage(tmp_path / "slurm.db")
    deadline = time.monotonic() + 60
    while not (running := store.get_trials(sweep.record.id, states=[TrialState.RUNNING])):
        assert time.monotonic() < deadline, "the task started no trial within 60 s"
        time.sleep(0.1)
    # Slurm's warning before a preemption or the time limit, sent to the task's process
    os.kill(int(str(running[0].worker).rpartition(":")[2]), signal.SIGUSR2)
    assert job.result() == 0  # the requeued task finished the sweep
    trials = store.get_trials(sweep.record.id)
    store.close()
    sweep.close()
    states = [t.state for t in trials]
    assert states.count(TrialState.INTERRUPTED) == 1 and states.count(TrialState.COMPLETE) == 3
    (cut,) = [t for t in trials if t.state is TrialState.INTERRUPTED]
    assert "preemption" in (cut.message or "")
    rerun = [t for t in trials if dict(t.params) == dict(cut.params) and t is not cut]
    assert [t.state for t in rerun] == [TrialState.COMPLETE]


@pytest.mark.slow
def test_scancel_of_a_task_mid_trial_sends_its_trial_back(
    slurm: LocalSlurm, tmp_path: Path
) -> None:
    sweep = _sweep(tmp_path, n_trials=6, objective_args={"seconds": 1.5})
    out: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: out.update(r=sweep.run(progress="quiet")))
    runner.start()
    store = open_storage(tmp_path / "slurm.db")
    deadline = time.monotonic() + 90
    while len(store.get_trials(sweep.record.id, states=[TrialState.RUNNING])) < 2:
        assert time.monotonic() < deadline, "the two tasks started no trials within 90 s"
        time.sleep(0.1)
    task = next(
        line.split()[0]
        for line in slurm.run("squeue", "-h", "-r", "-o", "%i %T").splitlines()
        if line.endswith("RUNNING")
    )
    slurm.run("scancel", task)  # SIGTERM to the task, SIGKILL after KillWait
    runner.join(timeout=120)
    assert not runner.is_alive()
    trials = store.get_trials(sweep.record.id)
    store.close()
    sweep.close()
    assert out["r"].stopped is StopReason.DONE
    cut = [t for t in trials if t.state.requeued]
    assert len(cut) == 1, [(t.number, t.state, t.message) for t in trials]
    assert sum(t.state is TrialState.COMPLETE for t in trials) == 6
    rerun = [t for t in trials if dict(t.params) == dict(cut[0].params) and t is not cut[0]]
    assert [t.state for t in rerun] == [TrialState.COMPLETE]


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hpo_lightning", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(TESTS), **(env or {})},
        timeout=180,
    )


SWEEP = """\
name: detached
objective: sweep_objectives:devices_sleeper
objective_args: {{seconds: 0.3}}
monitor: x
n_trials: 4
n_workers: 2
seed: 4
tuner: {{name: random}}
storage: "{storage}"
space:
  x: {{type: float, low: 0, high: 1}}
launcher: {{name: {launcher}, folder: "{jobs}", poll_s: 0.5}}
"""


@pytest.mark.slow
@pytest.mark.postgres
def test_detach_submits_and_status_shows_the_jobs(slurm: LocalSlurm, tmp_path: Path) -> None:
    from _pg import fresh_schema

    with fresh_schema("hpo_slurm") as url:
        f = tmp_path / "s.yaml"
        # the file's section names slurm too, so --launcher keeps its options (the job folder)
        f.write_text(SWEEP.format(storage=url, launcher="slurm", jobs=tmp_path / "jobs"))
        proc = _cli("sweep", str(f), "--launcher", "slurm", "--detach")
        assert proc.returncode == 0, proc.stderr
        assert "slurm job " in proc.stdout and "hpo-lightning status detached" in proc.stdout
        status = _cli("status", "detached", "--storage", url)
        assert status.returncode == 0, status.stderr
        assert "launched: slurm job " in status.stdout
        store = open_storage(url)
        sweep_id = store.get_sweep("detached").id
        deadline = time.monotonic() + 120
        while sum(t.state is TrialState.COMPLETE for t in store.get_trials(sweep_id)) < 4:
            assert time.monotonic() < deadline, "the detached jobs did not finish in 120 s"
            time.sleep(0.5)
        store.close()
        while slurm.run("squeue", "-h").strip():  # the tasks exit once the sweep is done
            assert time.monotonic() < deadline + 30
            time.sleep(0.5)


def test_detach_with_a_sqlite_store_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(SWEEP.format(storage=tmp_path / "s.db", launcher="slurm", jobs=tmp_path / "j"))
    proc = _cli("sweep", str(f), "--detach")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "a store that outlives it" in proc.stderr
    assert not (tmp_path / "s.db").exists()


def test_without_sbatch_the_sweep_is_refused_in_one_line(tmp_path: Path) -> None:
    pytest.importorskip("submitit")
    f = tmp_path / "s.yaml"
    f.write_text(SWEEP.format(storage=tmp_path / "s.db", launcher="slurm", jobs=tmp_path / "j"))
    proc = _cli("sweep", str(f), env={"PATH": str(Path(sys.executable).parent)})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "no `sbatch` on this machine's PATH" in proc.stderr
    assert not (tmp_path / "s.db").exists()


def test_without_submitit_the_error_names_the_extra(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(SWEEP.format(storage=tmp_path / "s.db", launcher="slurm", jobs=tmp_path / "j"))
    code = (
        "import sys; sys.modules['submitit'] = None\n"
        "from hpo_lightning.cli import main\n"
        f"sys.exit(main(['sweep', {str(f)!r}, '--quiet']))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(TESTS)},
    )
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "pip install 'hpo_lightning[slurm]'" in proc.stderr
    assert not (tmp_path / "s.db").exists()


def test_resources_no_node_has_are_refused_before_anything_is_written(
    slurm: LocalSlurm, tmp_path: Path
) -> None:
    with pytest.raises(
        ConfigError, match=r"Slurm refuses a task asking for 64 CPUs and 0 GPUs"
    ) as err:
        _sweep(tmp_path, resources={"cpus_per_trial": 64})
    assert "\n" not in str(err.value)
    assert not (tmp_path / "slurm.db").exists()


@pytest.mark.slow
class TestSlurmLauncherContract(LauncherContract):
    """The launcher contract suite, on the module's local Slurm."""

    @pytest.fixture
    def launcher(self, slurm: LocalSlurm, tmp_path: Path) -> Iterator[Launcher]:
        launcher = SlurmLauncher(folder=str(tmp_path / "jobs"), poll_s=0.5, grace_s=10)
        yield launcher
        launcher.close()
