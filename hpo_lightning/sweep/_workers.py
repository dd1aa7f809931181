"""Local worker processes: each runs the serial loop on its own connection to the store."""

from __future__ import annotations

import logging
import multiprocessing as mp
import multiprocessing.connection as mp_connection
import os
import signal
import sys
import time
from typing import TYPE_CHECKING, Any

from hpo_lightning.exceptions import UserInputError
from hpo_lightning.sweep._config import SweepConfig
from hpo_lightning.sweep._progress import ProgressDisplay
from hpo_lightning.sweep._result import stop_reason
from hpo_lightning.sweep._runtime import Heartbeat

_EXIT_BAD_INPUT = 2

if TYPE_CHECKING:
    from hpo_lightning.sweep._driver import Sweep


def run_parallel(sweep: Sweep, workers: int, display: ProgressDisplay) -> str:
    """Run ``workers`` processes (fork where available) until the sweep is done; the parent
    only shows progress, forwards Ctrl-C, and reaps trials of workers that died."""
    ctx: Any = mp.get_context("fork" if hasattr(os, "fork") else "spawn")
    procs = [
        ctx.Process(target=worker_main, args=(sweep.config, i), daemon=False)
        for i in range(workers)
    ]
    _mlflow_sync(sweep)  # create MLflow's store, experiment and parent run before forking
    sweep.storage.close()  # children open their own connection
    for p in procs:
        p.start()
    try:
        while any(p.is_alive() for p in procs):
            if display.style != "quiet":
                display.update(sweep.storage.get_trials(sweep.record.id))
            # wake up as soon as a worker exits, else refresh the display twice a second
            mp_connection.wait([p.sentinel for p in procs if p.is_alive()], timeout=0.5)
    except KeyboardInterrupt:
        for p in procs:
            if p.is_alive() and p.pid:
                os.kill(p.pid, signal.SIGINT)
        _join(procs, 30)
        raise
    _join(procs, 5)
    sweep._reap()
    if any(p.exitcode == _EXIT_BAD_INPUT for p in procs):
        # a wrong monitor or metric type: every worker would fail alike; say it once
        failed = sweep.storage.get_trials(sweep.record.id)
        first = next((t.message for t in failed if t.message and "Error: " in t.message), None)
        raise UserInputError(first or "a worker stopped on bad input; see its output above")
    _mlflow_sync(sweep)  # back-fill what a worker could not mirror (e.g. an MLflow hiccup)
    if sweep.config.mlflow:  # one parent-run summary for the whole sweep, from the parent
        sweep.mlflow_tracker = sweep._make_mlflow_tracker()
        sweep._ready, sweep._heartbeat = True, Heartbeat(sweep.storage, sweep.config.heartbeat_s)
    trials = sweep.storage.get_trials(sweep.record.id)
    display.update(trials)
    return stop_reason(sweep.config, trials)


def _join(procs: list[Any], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.terminate()
            p.join(5)


def worker_main(config: SweepConfig, index: int) -> None:
    """Entry point of a local worker process: run trials until the sweep is done."""
    from hpo_lightning.sweep._driver import Sweep

    code = 0
    _share_cpu_threads(config.n_workers)
    sweep = Sweep(config)
    sweep._finish_mlflow = False
    try:
        sweep._run_serial(
            ProgressDisplay(
                config.name, config.n_trials, config.monitor, config.mode, style="quiet"
            ),
            None,
        )
    except KeyboardInterrupt:
        pass
    except UserInputError:
        code = _EXIT_BAD_INPUT  # the parent reports the message stored with the trial
    finally:
        sweep._close_run()
        sweep.close()
    if code:
        sys.exit(code)


def _share_cpu_threads(workers: int) -> None:
    """Give each local worker its share of the CPU cores for torch's intra-op threads, so
    ``n_workers`` processes do not each start one thread per core (oversubscription)."""
    torch = sys.modules.get("torch")
    if torch is None or workers <= 1:
        return
    share = max(1, (os.cpu_count() or 1) // workers)
    if torch.get_num_threads() > share:
        torch.set_num_threads(share)


def _mlflow_sync(sweep: Sweep) -> None:
    """Bring MLflow up to date with the store, synchronously (no thread is left running).

    Before the workers fork, this creates MLflow's database, the experiment and the parent
    run once, so workers do not race to create them; after they exit, it back-fills anything
    a worker could not mirror. MLflow is a mirror: a failure here is a warning.
    """
    if not sweep.config.mlflow:
        return
    m = dict(sweep.config.mlflow)
    try:
        from hpo_lightning.tracking._mlflow_sync import sync_sweep

        sync_sweep(
            sweep.storage,
            sweep.name,
            tracking_uri=m.get("tracking_uri"),
            experiment_name=m.get("experiment") or sweep.name,
            artifacts=False,
        )
    except Exception as exc:
        logging.getLogger("hpo_lightning").warning(
            "MLflow could not be brought up to date (run `hpo-lightning mlflow-sync %s` later): %s",
            sweep.name,
            exc,
        )
