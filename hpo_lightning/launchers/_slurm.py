"""The Slurm launcher: a job array whose tasks each run a Worker (through ``submitit``).

``launcher: {name: slurm, partition: gpu, time: "4:00:00", array_parallelism: 8}`` (extra
``[slurm]``). Each array task is one worker: it claims trials until the sweep is done, so the
array's size is ``n_workers`` and ``array_parallelism`` caps how many run at once. A task asks
Slurm for ``resources.cpus_per_trial`` CPUs and ``resources.gpus_per_trial`` GPUs; Slurm sets
``CUDA_VISIBLE_DEVICES``.

* **Store.** A ``postgresql://`` store is opened by every task. A SQLite file is never opened
  by the tasks (SQLite locking is unsafe on NFS): the driver serves it over HTTP
  (``hpo+http://``, token-authenticated) on ``serve_host``/``serve_port`` -- an address the
  compute nodes can reach -- for as long as it follows the jobs. ``--detach`` therefore needs
  a store that outlives the driver: PostgreSQL, or ``hpo-lightning serve``.
* **Requeue.** A task warned of a timeout or a preemption stops its trial (INTERRUPTED, its
  params go back to the queue) and is requeued by submitit; ``scancel`` (SIGTERM) stops a task
  the same way; a task killed outright loses its trial, which the driver marks LOST.
* **Watching.** The driver follows the array with ``squeue`` (no accounting database needed)
  and reads each finished task's exit code from the job folder.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from hpo_lightning.exceptions import ConfigError, missing_extra
from hpo_lightning.launchers._base import Exited, Launcher, WorkerExit, WorkerSpec
from hpo_lightning.launchers._resources import Resources
from hpo_lightning.launchers._slurm_task import SlurmTask, exit_file

log = logging.getLogger("hpo_lightning")

_PG = ("postgresql://", "postgres://", "postgresql+psycopg://")
_ALIVE = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING"}
_ALIVE |= {"REQUEUE_HOLD", "REQUEUE_FED", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD"}


def parse_minutes(value: Any) -> int:
    """Slurm's time limit (``MM``, ``HH:MM:SS``, ``D-HH:MM[:SS]`` or minutes) in minutes."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    text = str(value).strip()
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text)
    if m is None or isinstance(value, bool):
        raise ConfigError(
            f"launcher 'slurm': `time` must be minutes or HH:MM:SS (or D-HH:MM:SS), got {value!r}"
        )
    days, a, b, c = (int(g) if g else None for g in m.groups())
    if b is None:  # plain minutes, or D-HH
        minutes = (a or 0) * 60 if days is not None else a or 0
    elif c is None:  # HH:MM (D-HH:MM) or MM:SS
        minutes = (a or 0) * 60 + b if days is not None else (a or 0) + (1 if b else 0)
    else:  # HH:MM:SS
        minutes = (a or 0) * 60 + b + (1 if c else 0)
    minutes += (days or 0) * 24 * 60
    if minutes <= 0:
        raise ConfigError(f"launcher 'slurm': `time` must be positive, got {value!r}")
    return minutes


class SlurmLauncher(Launcher):
    """Workers as the tasks of a Slurm job array (see the module docstring).

    Args:
        partition: the partition (None: the cluster's default).
        time: each task's time limit (``"4:00:00"`` or minutes); requeued when it runs out.
        mem: memory per task (``"16G"``).
        array_parallelism: at most this many tasks run at once.
        sbatch: extra ``sbatch`` options, e.g. ``{account: proj, qos: high, constraint: a100}``.
        folder: where submitit keeps the jobs' scripts and logs (on a shared filesystem).
        serve_host / serve_port: where the driver serves a SQLite store to the tasks.
        poll_s: how often the driver asks ``squeue``.
        grace_s: after a second stop request, seconds before the tasks are cancelled.
    """

    name: ClassVar[str] = "slurm"

    def __init__(
        self,
        *,
        partition: str | None = None,
        time: str | int = "1:00:00",
        mem: str | None = None,
        array_parallelism: int | None = None,
        sbatch: Mapping[str, Any] | None = None,
        folder: str = "hpo_slurm_jobs",
        serve_host: str = "127.0.0.1",
        serve_port: int = 0,
        poll_s: float = 5.0,
        grace_s: float = 60.0,
    ) -> None:
        self.minutes = parse_minutes(time)
        if array_parallelism is not None and (
            isinstance(array_parallelism, bool)
            or not isinstance(array_parallelism, int)
            or array_parallelism < 1
        ):
            raise ConfigError(
                f"launcher 'slurm': `array_parallelism` must be an integer >= 1, "
                f"got {array_parallelism!r}"
            )
        if sbatch is not None and not isinstance(sbatch, Mapping):
            raise ConfigError(f"launcher 'slurm': `sbatch` must be a mapping, got {sbatch!r}")
        for key, v in (("poll_s", poll_s), ("grace_s", grace_s)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                raise ConfigError(f"launcher 'slurm': `{key}` must be > 0 seconds, got {v!r}")
        self.partition, self.mem = partition, mem
        self.array_parallelism = array_parallelism
        self.sbatch = {str(k).replace("-", "_"): v for k, v in (sbatch or {}).items()}
        self.folder = Path(folder).absolute()
        self.serve_host, self.serve_port = serve_host, int(serve_port)
        self.poll_s, self.grace_s = float(poll_s), float(grace_s)
        self._jobs: dict[int, str] = {}  # index -> Slurm job id ("123_4")
        self._array_ids: list[str] = []
        self._server: Any = None
        self._served: Any = None  # the store the server serves (opened here)
        self._last_poll = 0.0
        self._stops = 0
        self._stopped_at: float | None = None

    # --- checks -------------------------------------------------------------------------
    def validate(self, config: Any, n_workers: int | str) -> None:
        try:
            import submitit  # noqa: F401
        except ImportError:
            raise missing_extra("submitit", "slurm", "the slurm launcher") from None
        if shutil.which("sbatch") is None:
            raise ConfigError(
                "launcher 'slurm': no `sbatch` on this machine's PATH; run the sweep on a "
                "Slurm login node (or choose another launcher)"
            )
        res = Resources.from_mapping(config.resources)
        location = config.storage_location()
        if location == ":memory:":
            raise ConfigError(
                "launcher 'slurm': an in-memory store (':memory:') cannot be shared with "
                "Slurm tasks; give a SQLite file path or a postgresql:// URL"
            )
        self._test_submit(res)

    def _sbatch_flags(self, res: Resources) -> list[str]:
        """One task's request as sbatch flags (what the job array asks per task)."""
        flags = [f"--time={self.minutes}", f"--cpus-per-task={res.cpus_per_trial or 1}"]
        if res.gpus_per_trial:
            flags.append(f"--gpus-per-task={int(res.gpus_per_trial)}")
        if self.partition:
            flags.append(f"--partition={self.partition}")
        if self.mem:
            flags.append(f"--mem={self.mem}")
        for key, value in self.sbatch.items():
            flag = "--" + key.replace("_", "-")
            flags.append(flag if value is True else f"{flag}={value}")
        return flags

    def _test_submit(self, res: Resources) -> None:
        """``sbatch --test-only``: Slurm says now whether a task could ever run (a request no
        node or partition can satisfy is refused here, not left pending for ever)."""
        cmd = ["sbatch", "--test-only", *self._sbatch_flags(res), "--wrap=true"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as exc:
            raise ConfigError(f"launcher 'slurm': cannot run sbatch: {exc}") from None
        if proc.returncode != 0:
            lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
            why = lines[-1].removeprefix("sbatch: error: ") if lines else "no reason given"
            raise ConfigError(
                f"launcher 'slurm': Slurm refuses a task asking for {res.cpus_per_trial or 1} "
                f"CPUs and {res.gpus_per_trial} GPUs ({' '.join(cmd[2:-1])}): {why}; change "
                "`resources` or the launcher's options"
            )

    # --- the store the tasks open -----------------------------------------------------------
    def _store_url(self, location: str) -> str:
        if location.startswith(_PG) or location.startswith("hpo+http://"):
            return location
        if self._server is None:
            from hpo_lightning.storage import StoreServer, open_storage

            self._served = open_storage(location)
            self._server = StoreServer(self._served, host=self.serve_host, port=self.serve_port)
            log.info("serving the store %s to the Slurm tasks at %s", location, self._server.url)
        return str(self._server.url)

    @contextlib.contextmanager
    def _token_in_env(self) -> Iterator[None]:
        """sbatch hands the submitting environment to the job: the token travels that way
        (never in the job script, the pickled submission or the logs)."""
        from hpo_lightning.storage import TOKEN_ENV

        if self._server is None:
            yield
            return
        old = os.environ.get(TOKEN_ENV)
        os.environ[TOKEN_ENV] = self._server.token
        try:
            yield
        finally:
            if old is None:
                os.environ.pop(TOKEN_ENV, None)
            else:
                os.environ[TOKEN_ENV] = old

    # --- running ----------------------------------------------------------------------------
    def _executor(self, res: Resources, n: int) -> Any:
        import submitit

        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o700)
        ex = submitit.SlurmExecutor(folder=str(self.folder / "%j"))
        params: dict[str, Any] = {
            "time": self.minutes,
            "nodes": 1,
            "ntasks_per_node": 1,
            "cpus_per_task": res.cpus_per_trial or 1,
            "array_parallelism": self.array_parallelism or n,
            "job_name": "hpo-worker",
            "signal_delay_s": 120,
            "stderr_to_stdout": True,
        }
        if res.gpus_per_trial:
            params["gpus_per_task"] = int(res.gpus_per_trial)
        if self.partition:
            params["partition"] = self.partition
        if self.mem:
            params["mem"] = str(self.mem)
        extra = {k: v for k, v in self.sbatch.items()}
        try:
            ex.update_parameters(**params, additional_parameters=extra or None)
        except ValueError as exc:
            raise ConfigError(f"launcher 'slurm': {str(exc).splitlines()[0]}") from None
        return ex

    def start(self, specs: Sequence[WorkerSpec]) -> None:
        if not specs:
            return
        cfg = specs[0].config
        url = self._store_url(cfg.storage_location())
        shipped = [replace(s, config=replace(s.config, storage=url)) for s in specs]
        ex = self._executor(Resources.from_mapping(cfg.resources), len(specs))
        for s in specs:
            exit_file(self.folder, s.index).unlink(missing_ok=True)
        with self._token_in_env():
            try:
                jobs = ex.map_array(SlurmTask(str(self.folder)), shipped)
            except Exception as exc:  # submitit raises plain errors for sbatch's refusals
                first = str(exc).strip().splitlines()
                raise ConfigError(
                    f"launcher 'slurm': sbatch refused the job array: "
                    f"{first[-1] if first else type(exc).__name__}"
                ) from None
        for spec, job in zip(specs, jobs):
            self._jobs[spec.index] = str(job.job_id)
        array = str(jobs[0].job_id).split("_")[0]
        self._array_ids.append(array)
        log.info("submitted Slurm job array %s (%d tasks)", array, len(jobs))

    def _squeue(self) -> dict[str, str] | None:
        """State of each live array task (``"123_4" -> RUNNING``); None if squeue failed."""
        if not self._array_ids:
            return {}
        cmd = ["squeue", "-h", "-r", "-o", "%i %T", "-j", ",".join(self._array_ids)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as exc:
            log.warning("squeue failed (%s); asking again", exc)
            return None
        if proc.returncode != 0:
            if "Invalid job id" in proc.stderr:  # every job of the array has left the queue
                return {}
            log.warning("squeue failed (%s); asking again", proc.stderr.strip())
            return None
        states = {}
        for line in proc.stdout.splitlines():
            job, _, state = line.strip().partition(" ")
            states[job] = state
        return states

    def wait(self, timeout: float) -> list[Exited]:
        if not self._jobs:
            self._release()
            return []
        pause = max(0.0, self._last_poll + self.poll_s - time.monotonic())
        if pause > timeout:
            time.sleep(timeout)
            return []
        time.sleep(pause)
        self._last_poll = time.monotonic()
        states = self._squeue()
        if states is None:
            return []
        out = []
        for index, job in list(self._jobs.items()):
            if states.get(job) in _ALIVE:
                continue
            del self._jobs[index]
            out.append(self._exited(index))
        stopped = self._stopped_at
        if stopped is not None and self._stops >= 2 and time.monotonic() - stopped > self.grace_s:
            self._scancel()
        if not self._jobs:
            self._release()
        return out

    def _exited(self, index: int) -> Exited:
        try:
            code = int(json.loads(exit_file(self.folder, index).read_text())["code"])
        except (OSError, ValueError, KeyError, TypeError):
            return Exited(index, WorkerExit.CRASHED, None)  # killed before it could say
        return Exited(index, WorkerExit.of(code), code)

    def running(self) -> int:
        return len(self._jobs)

    def stop(self, *, now: bool = False, signum: int | None = None) -> None:
        self._stops = 2 if now else self._stops + 1
        if self._stopped_at is None or now:
            self._stopped_at = time.monotonic()
        if not self._array_ids:
            return
        arrays = ",".join(self._array_ids)
        self._run_quietly(["scancel", "--state=PENDING", arrays])  # no new task starts
        for _ in range(2 if now else 1):  # SIGTERM: the worker's first (second) stop request
            self._run_quietly(["scancel", "--signal=TERM", "--state=RUNNING", arrays])

    def describe(self) -> dict[str, Any]:
        return {"launcher": self.name, "jobs": list(self._array_ids), "tasks": len(self._jobs)}

    def detach(self) -> None:
        """Leave the submitted jobs running (``--detach``): close() no longer cancels them."""
        self._jobs.clear()
        self._array_ids.clear()

    def _scancel(self) -> None:
        if self._array_ids:
            self._run_quietly(["scancel", ",".join(self._array_ids)])

    @staticmethod
    def _run_quietly(cmd: list[str]) -> None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(cmd, capture_output=True, timeout=60)

    def _release(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._served is not None:
            self._served.close()
            self._served = None

    def close(self) -> None:
        if self._jobs:
            self._scancel()
            self._jobs.clear()
        self._release()
