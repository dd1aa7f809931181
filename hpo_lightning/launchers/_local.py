"""The local launcher: worker processes on this machine, each with its own GPUs.

Workers are forked (spawned where fork is missing) from a parent that has not initialised
CUDA. Each gets a disjoint set of the visible GPUs through ``CUDA_VISIBLE_DEVICES`` and its
share of the CPU cores for torch's threads. Workers run in their own process group, so a
terminal's Ctrl-C reaches only the parent, which forwards the stop; each worker also asks Linux
to send it SIGTERM when the parent dies and watches its parent, so none outlives it.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import multiprocessing.connection as mp_connection
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any, ClassVar

from hpo_lightning.exceptions import ConfigError
from hpo_lightning.launchers._base import Exited, Launcher, WorkerExit, WorkerSpec
from hpo_lightning.launchers._resources import CUDA_ENV, Resources, visible_gpus


class LocalLauncher(Launcher):
    """Worker processes on this machine.

    Args:
        grace_s: after a second stop request, seconds a worker gets before it is killed.

    Example:
        >>> LocalLauncher().name
        'local'
    """

    name: ClassVar[str] = "local"

    def __init__(self, *, grace_s: float = 30.0) -> None:
        if isinstance(grace_s, bool) or not isinstance(grace_s, (int, float)) or grace_s <= 0:
            raise ConfigError(f"launcher 'local': `grace_s` must be > 0 seconds, got {grace_s!r}")
        self.grace_s = float(grace_s)
        self._procs: dict[int, Any] = {}
        self._stops = 0
        self._stopped_at: float | None = None

    # --- planning ---------------------------------------------------------------------
    def plan(self, config: Any, n_workers: int | str) -> list[WorkerSpec]:
        """Lay out workers over the visible GPUs (or the CPU cores) and validate the request."""
        res = Resources.from_mapping(config.resources)
        gpus, source = visible_gpus()
        per = res.gpus_per_trial
        if per and per != int(per):
            raise ConfigError(
                f"`resources.gpus_per_trial: {per}`: local workers take whole GPUs; use 1 or more "
                "(fractions need the ray launcher)"
            )
        per = int(per)
        n = auto_workers(res, gpus) if n_workers == "auto" else int(n_workers)
        self.validate(config, n, gpus=gpus, source=source)
        cores = os.cpu_count() or 1
        cpus = res.cpus_per_trial or max(1, cores // n)
        specs = []
        for i in range(n):
            env = {}
            if per:
                env[CUDA_ENV] = ",".join(gpus[i * per : (i + 1) * per])
            elif gpus:
                env[CUDA_ENV] = ""  # a CPU trial must not grab the GPUs of GPU trials
            specs.append(WorkerSpec(config=config, index=i, env=env, cpus=cpus))
        return specs

    def validate(
        self,
        config: Any,
        n_workers: int | str,
        *,
        gpus: list[str] | None = None,
        source: str = "",
    ) -> None:
        res = Resources.from_mapping(config.resources)
        if gpus is None:
            gpus, source = visible_gpus()
        if n_workers == "auto":
            n_workers = auto_workers(res, gpus)
        n_workers = int(n_workers)
        per = int(res.gpus_per_trial)
        if per > len(gpus):
            raise ConfigError(
                f"`resources.gpus_per_trial: {per}` asks for more GPUs than this machine shows "
                f"({len(gpus)}, from {source}); lower it or run where there are more"
            )
        if per and n_workers * per > len(gpus):
            raise ConfigError(
                f"{n_workers} workers x {per} GPUs per trial need {n_workers * per} GPUs, but this "
                f"machine shows {len(gpus)} ({source}); use n_workers: {len(gpus) // per} "
                "(or auto)"
            )

    # --- running -----------------------------------------------------------------------
    def start(self, specs: Sequence[WorkerSpec]) -> None:
        ctx: Any = mp.get_context("fork" if hasattr(os, "fork") else "spawn")
        parent = os.getpid()
        for spec in specs:
            proc = ctx.Process(
                target=_worker_process,
                args=(spec, parent),
                daemon=False,
                name=f"hpo-worker-{spec.index}",
            )
            proc.start()
            self._procs[spec.index] = proc

    def wait(self, timeout: float) -> list[Exited]:
        alive = [p for p in self._procs.values() if p.exitcode is None]
        if alive:
            mp_connection.wait([p.sentinel for p in alive], timeout=timeout)
        stopped = self._stopped_at
        if stopped is not None and self._stops >= 2 and time.monotonic() - stopped > self.grace_s:
            self._kill_all()
        out = []
        for index, proc in list(self._procs.items()):
            if proc.exitcode is not None:
                proc.join()
                del self._procs[index]
                code = proc.exitcode
                out.append(Exited(index, WorkerExit.of(code), code))
        return out

    def running(self) -> int:
        return len(self._procs)

    def stop(self, *, now: bool = False, signum: int | None = None) -> None:
        self._stops = 2 if now else self._stops + 1
        if self._stopped_at is None or now:
            self._stopped_at = time.monotonic()
        # the driver's own signal (a forwarded Ctrl-C stays SIGINT), so the worker names it
        sig = signum if signum in (signal.SIGINT, signal.SIGTERM) else signal.SIGTERM
        for proc in self._procs.values():
            if proc.exitcode is None and proc.pid:
                try:
                    os.kill(proc.pid, sig)  # the worker's first/second stop request
                    if now:
                        os.kill(proc.pid, sig)
                except ProcessLookupError:
                    continue

    def _kill_all(self) -> None:
        for proc in self._procs.values():
            if proc.exitcode is None and proc.pid:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # the worker and the DDP ranks it started
                except (ProcessLookupError, PermissionError):
                    proc.kill()

    def close(self) -> None:
        if any(p.exitcode is None for p in self._procs.values()):
            self.stop(now=True)
            deadline = time.monotonic() + 10
            while self._procs and time.monotonic() < deadline:
                self.wait(0.2)
            self._kill_all()


def auto_workers(res: Resources, gpus: list[str]) -> int:
    """``n_workers: auto``: one worker per GPU set, else one per ``cpus_per_trial`` cores
    (2 cores by default: a Lightning trial on one core is slower than two trials on two)."""
    per = int(res.gpus_per_trial)
    if per and gpus:
        return max(1, len(gpus) // per)
    if gpus and not res.gpus_per_trial:
        return len(gpus)  # no resources given on a GPU machine: a GPU each
    cores = os.cpu_count() or 1
    return max(1, cores // (res.cpus_per_trial or 2))


def describe_auto(res: Resources, gpus: list[str], source: str) -> str:
    """One line saying what ``n_workers: auto`` chose and why."""
    n = auto_workers(res, gpus)
    if gpus and (res.gpus_per_trial or not res.cpus_per_trial):
        per = int(res.gpus_per_trial) or 1
        return f"n_workers: auto -> {n} ({len(gpus)} GPUs from {source}, {per} per trial)"
    cores = os.cpu_count() or 1
    return (
        f"n_workers: auto -> {n} (no GPU: {cores} CPU cores, {res.cpus_per_trial or 2} per trial)"
    )


def _worker_process(spec: WorkerSpec, parent: int) -> None:
    """Entry point of a local worker process."""
    from hpo_lightning.sweep._stop import die_with_parent

    with contextlib.suppress(OSError):
        os.setpgid(0, 0)  # a terminal's Ctrl-C goes to the parent, which forwards the stop
    die_with_parent()
    if os.getppid() != parent:  # the parent died before prctl took effect
        sys.exit(WorkerExit.INTERRUPTED)
    from hpo_lightning.sweep._run import run_worker

    sys.exit(int(run_worker(spec, parent_pid=parent)))
