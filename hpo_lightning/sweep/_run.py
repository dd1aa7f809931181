"""``run_worker``: what every launched worker process (or actor, or job) runs."""

from __future__ import annotations

import os
import sys

from hpo_lightning.exceptions import UserInputError
from hpo_lightning.launchers._base import WorkerExit, WorkerSpec
from hpo_lightning.storage import Storage, open_storage
from hpo_lightning.sweep._result import StopReason
from hpo_lightning.sweep._stop import ParentWatch, StopToken, stop_on_signals
from hpo_lightning.sweep._worker import Worker


def exit_code(reason: StopReason, token: StopToken) -> int:
    """The process exit code of a worker or sweep that stopped for ``reason``."""
    if reason is StopReason.INTERRUPTED:
        return token.exit_code()
    if reason is StopReason.MAX_FAILURES:
        return int(WorkerExit.FAILURES)
    return int(WorkerExit.DONE)


def run_worker(
    spec: WorkerSpec,
    *,
    parent_pid: int | None = None,
    storage: Storage | None = None,
    token: StopToken | None = None,
) -> int:
    """Run one worker of a launched sweep until it is done or stopped; return its exit code.

    Sets ``spec.env``, shares the CPU cores, opens its own connection to the store (unless
    ``storage`` is given), stops on SIGINT/SIGTERM/``token`` by the stop contract, and stops
    when ``parent_pid`` is no longer its parent.
    """
    token = token or StopToken()
    with stop_on_signals(token):  # first: a stop that arrives while the worker starts counts
        os.environ.update(spec.env)
        share_cpu_threads(spec.cpus)
        watch = ParentWatch(token, parent_pid).start() if parent_pid else None
        own_store = storage is None
        store = storage if storage is not None else open_storage(spec.config.storage_location())
        try:
            worker = Worker(
                spec.config,
                store,
                store.get_sweep(spec.config.name),
                stop=token,
                mirror_summary=False,
            )
            try:
                reason = worker.run(spec.max_trials)
            except KeyboardInterrupt:
                token.request(reason="stopped by a signal")
                reason = StopReason.INTERRUPTED
            finally:
                worker.close()
        except UserInputError:
            return int(WorkerExit.BAD_INPUT)  # the message is stored with the trial
        finally:
            if watch is not None:
                watch.stop()
            if own_store:
                store.close()
    return exit_code(reason, token)


def share_cpu_threads(cpus: int | None) -> None:
    """Let torch use ``cpus`` threads in this worker (no oversubscription of the cores)."""
    if not cpus:
        return
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(cpus))
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() > cpus:
        torch.set_num_threads(cpus)
