"""MLflowTracker: mirrors sweeps into MLflow, a parent run per sweep and a nested run per trial.

MLflow is an observer: the store (SQLite/PostgreSQL) stays the record, and nothing here can
stop training. Every MLflow call runs on one background thread that owns its MlflowClient
(no fluent, process-global active run), so ``on_event`` only queues a small tuple and
returns; the thread merges the queued epochs of a trial into one ``log_batch``.

Outage: when a call fails (server unreachable or erroring), the tracker logs ONE warning
(one per process tree: a worker forked after its parent warned stays quiet), drops what it
cannot send for ``retry_after_s`` seconds, then tries again. For HTTP(S) tracking URIs it
probes the server with a 2 s TCP connect before making a client and shortens MLflow's request
timeout and retries (``MLFLOW_HTTP_REQUEST_TIMEOUT``, ``MLFLOW_HTTP_REQUEST_MAX_RETRIES``,
``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR``) unless you set them yourself.
``hpo-lightning mlflow-sync`` back-fills the runs from the store afterwards.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from hpo_lightning._objectives import Objectives, objectives_of
from hpo_lightning._secrets import redact
from hpo_lightning._trial import Mode, Trial, TrialState
from hpo_lightning.events import EpochEnd, EpochStart, TrainingEvent, TrainingFinish
from hpo_lightning.exceptions import HPOError, ServiceUnavailableError, missing_extra
from hpo_lightning.storage import Storage, TrialRecord, open_storage, redact_url
from hpo_lightning.tracking._base import Tracker
from hpo_lightning.tracking._mlflow_runs import STATUS, MlflowRuns
from hpo_lightning.tracking._reach import apply_http_defaults, first_report

log = logging.getLogger("hpo_lightning")

_STOP = ("stop",)


class MLflowTracker(Tracker):
    """Mirror sweeps into MLflow: one parent run per sweep, one nested run per trial.

    The parent run holds the sweep definition as params, tags for mode/monitor/tuner and the
    best trial (``hpo.best_trial``, ``hpo.best_value``; metric ``best_value`` by trial number),
    and at the end the trials table (CSV) and plots (PNG) as artifacts. Each child run holds
    the trial's params, every epoch's metrics with ``step=epoch``, the final monitored value
    (metric ``trial_value``), tags ``hpo.trial_number``/``hpo.state`` and the real status:
    complete -> FINISHED, failed -> FAILED, pruned -> KILLED (tag ``hpo.stopped_early``).

    Args:
        tracking_uri: MLflow tracking URI (default: MLflow's, e.g. ``MLFLOW_TRACKING_URI``).
        experiment_name: the MLflow experiment (created if missing).
        storage: the sweep's store (Storage or URL); used for the end-of-sweep artifacts so
            they cover every worker's trials. Without it, the trials this process saw.
        retry_after_s: after a failed call, how long to drop calls before trying again.
        flush_timeout_s: how long ``sweep_finished``/``close`` wait for queued calls.
        artifacts: log the trials table and plots when a sweep finishes.

    Example:
        >>> import hpo_lightning as hl
        >>> tracker = hl.MLflowTracker("sqlite:///mlflow.db", "demo")   # doctest: +SKIP
        >>> cb = hl.HPOCallback(tuner, monitor="val_loss", observers=[tracker])  # doctest: +SKIP
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment_name: str = "hpo_lightning",
        *,
        storage: str | os.PathLike[str] | Storage | None = None,
        retry_after_s: float = 60.0,
        flush_timeout_s: float = 120.0,
        artifacts: bool = True,
    ) -> None:
        if importlib.util.find_spec("mlflow") is None:
            raise missing_extra("mlflow", "mlflow", "MLflowTracker")
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.retry_after_s = float(retry_after_s)
        self.flush_timeout_s = float(flush_timeout_s)
        self.artifacts = artifacts
        self._storage_arg = storage
        apply_http_defaults(tracking_uri)
        self._definitions: dict[str, Mapping[str, Any]] = {}
        self._started: dict[str, float] = {}  # when sweep_started was called, by sweep
        self._seen: dict[str, dict[int, TrialRecord]] = {}
        self._lock = threading.Lock()
        self._pid = -1
        self._queue: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        # owned by the worker thread
        self._runs: MlflowRuns | None = None
        self._retry_at = 0.0
        self._down = False
        self.warned = False
        self.dropped = 0

    # --- Tracker ---------------------------------------------------------------------------
    def sweep_started(self, name: str, definition: Mapping[str, Any]) -> None:
        self._definitions[name] = dict(definition)
        self._started.setdefault(name, time.time())
        self._submit(("sweep", name, dict(definition)))

    def on_event(self, event: TrainingEvent) -> None:
        t = event.trial
        if isinstance(event, EpochEnd):
            stamp = int(time.time() * 1000)
            self._submit(("epoch", t, {event.epoch: dict(event.metrics)}, stamp))
        elif isinstance(event, EpochStart):
            if event.epoch == 0:  # the run shows up as RUNNING when training starts
                self._submit(("trial", t))
        elif isinstance(event, TrainingFinish):
            value = event.best_metric if math.isfinite(event.best_metric) else None
            rec = TrialRecord(
                id=t.id or -1,
                sweep_id=0,
                number=t.number,
                state=event.state,
                params=dict(t.params),
                value=value,
                finished_at=time.time(),
                epochs=event.epochs,
                message=event.message,
                objective_values=event.objective_values,
                violation=event.violation,
            )
            self._seen.setdefault(t.sweep, {})[t.number] = rec
            self._submit(("finish", t, rec))

    def sweep_finished(self, name: str) -> None:
        self._submit(("sweep_end", name))
        self.flush()

    def close(self) -> None:
        self.flush()
        if self._thread is not None and self._pid == os.getpid():
            self._queue.put(_STOP)
            self._thread.join(timeout=5)
        self._thread = None

    # --- public helpers ----------------------------------------------------------------------
    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until the queued MLflow calls are done (or dropped); False on timeout."""
        if self._thread is None or self._pid != os.getpid():
            return True
        done = threading.Event()
        self._queue.put(("flush", done))
        return done.wait(self.flush_timeout_s if timeout_s is None else timeout_s)

    def run_id_for(self, trial: Trial) -> str:
        """The MLflow run id of the trial's nested run (created now if needed).

        Raises HPOError when MLflow cannot be reached.
        """
        return str(self._call(lambda runs: self._child(runs, trial)))

    def logger_for(
        self, trial: Trial, *, prefix: str = "lightning", package: str | None = None
    ) -> Any:
        """A Lightning ``MLFlowLogger`` that logs into the trial's nested run.

        Use it as ``Trainer(logger=tracker.logger_for(trial))``: your ``self.log`` metrics land
        in the same run as the tracker's, not in a second one. Lightning logs with
        ``step=global_step`` while the tracker logs ``step=epoch``, so the logger's keys get
        ``prefix`` (``lightning-val_loss``) and the two histories do not mix; pass
        ``prefix=""`` to turn that off. Lightning marks a logger's run FINISHED when fit ends;
        this logger then restores the trial's real status (KILLED for a pruned trial).
        ``package``: "pytorch_lightning" or "lightning" (default: the first one installed).
        """
        # Lightning is imported where it belongs: under hpo_lightning/lightning/
        from hpo_lightning.lightning._mlflow_logger import trial_mlflow_logger

        return trial_mlflow_logger(
            experiment_name=self.experiment_name,
            tracking_uri=self.tracking_uri,
            run_id=self.run_id_for(trial),
            prefix=prefix,
            package=package,
            after_finalize=lambda: self._submit(("status", trial)),
        )

    # --- queue ---------------------------------------------------------------------------------
    def _submit(self, op: tuple[Any, ...]) -> None:
        with self._lock:
            if self._thread is None or self._pid != os.getpid():  # first use, or a forked child
                self._pid = os.getpid()
                self._queue = queue.SimpleQueue()
                self._runs = None
                self._thread = threading.Thread(
                    target=self._loop, args=(self._queue,), name="hpo-mlflow", daemon=True
                )
                self._thread.start()
        self._queue.put(op)

    def _call(self, fn: Callable[[MlflowRuns], Any]) -> Any:
        future: Future[Any] = Future()
        self._submit(("call", fn, future))
        try:
            return future.result(timeout=self.flush_timeout_s)
        except Exception as exc:
            uri = redact_url(self.tracking_uri or "(default)")
            raise HPOError(f"MLflow at {uri} cannot be used now: {redact(str(exc))}") from exc

    def _loop(self, q: queue.SimpleQueue[tuple[Any, ...]]) -> None:
        while True:
            batch = [q.get()]
            while True:
                try:
                    batch.append(q.get_nowait())
                except queue.Empty:
                    break
            for op in _merge_epochs(batch):
                if op is _STOP:
                    return
                self._execute(op)

    def _execute(self, op: tuple[Any, ...]) -> None:
        kind = op[0]
        if kind == "flush":
            op[1].set()
            return
        if time.monotonic() < self._retry_at:
            self.dropped += 1
            if kind == "call":
                op[2].set_exception(HPOError("MLflow is unreachable; retrying later"))
            return
        try:
            if self._runs is None:
                self._runs = MlflowRuns(self.tracking_uri, self.experiment_name)
            if kind == "call":
                op[2].set_result(op[1](self._runs))
            else:
                getattr(self, f"_do_{kind}")(self._runs, *op[1:])
        except Exception as exc:  # an outage (or a refusal) must never reach training
            if kind == "call":
                op[2].set_exception(exc)
            self._outage(exc)
            return
        if self._down:
            self._down = False
            log.info("MLflow at %s is reachable again", redact_url(self.tracking_uri or ""))

    def _outage(self, exc: Exception) -> None:
        self.dropped += 1
        self._down = True
        self._retry_at = time.monotonic() + self.retry_after_s
        if not self.warned:
            self.warned = True
            if not first_report(self.tracking_uri):
                return  # this process (or the one that forked it) has said so already
            first_line = redact((str(exc).strip().splitlines() or [type(exc).__name__])[0][:300])
            if isinstance(exc, ServiceUnavailableError):  # says what to do already
                log.warning(
                    "%s; MLflow calls are skipped for %.0f s at a time until it answers",
                    first_line,
                    self.retry_after_s,
                )
                return
            log.warning(
                "MLflow tracking at %s failed (%s: %s); training goes on and the store keeps "
                "every trial; MLflow calls are skipped for %.0f s at a time until it answers. "
                "Back-fill later with: hpo-lightning mlflow-sync <sweep> --storage <store>",
                redact_url(self.tracking_uri or "(default)"),
                type(exc).__name__,
                first_line,
                self.retry_after_s,
            )

    # --- operations (worker thread) ---------------------------------------------------------------
    def _child(self, runs: MlflowRuns, trial: Trial) -> str:
        parent = runs.parent(trial.sweep)
        return runs.child(parent, trial.sweep, trial.number, trial.params)

    def _do_sweep(self, runs: MlflowRuns, name: str, definition: Mapping[str, Any]) -> None:
        new = runs.find_parent(name) is None
        parent = runs.parent(name, definition)
        runs.client.update_run(parent, status="RUNNING")
        if new and self._storage_arg is not None:
            self._mirror_stored(runs, name, parent, self._storage_arg)

    def _mirror_stored(
        self, runs: MlflowRuns, name: str, parent: str, storage: str | os.PathLike[str] | Storage
    ) -> None:
        """A new parent run of a sweep that already has trials (``mlflow:`` added to a sweep
        that ran without it): mirror the stored trials, as ``mlflow-sync`` does.

        Only trials that finished before ``sweep_started``: later ones reach MLflow through
        their events, which wait in the queue behind this operation (mirroring them too
        logged their epochs twice)."""
        from hpo_lightning.tracking._mlflow_sync import mirror_trials

        given = isinstance(storage, Storage)
        store = open_storage(storage, create=False)
        try:
            sweep = store.get_sweep(name)
            started = self._started.get(name, time.time())
            trials = [
                t
                for t in store.get_trials(sweep.id)
                if t.finished_at is not None and t.finished_at < started
            ]
            if trials:
                report = mirror_trials(runs, store, sweep, parent, trials)
                log.info(
                    "MLflow: mirrored the %d stored trials of sweep '%s' into its new parent run",
                    report.trials,
                    name,
                )
        finally:
            if not given:
                store.close()

    def _do_trial(self, runs: MlflowRuns, trial: Trial) -> None:
        self._child(runs, trial)

    def _do_epoch(
        self, runs: MlflowRuns, trial: Trial, epochs: dict[int, dict[str, float]], stamp: int
    ) -> None:
        runs.log_epochs(self._child(runs, trial), epochs, stamp)

    def _do_finish(self, runs: MlflowRuns, trial: Trial, rec: TrialRecord) -> None:
        child = self._child(runs, trial)
        runs.finish_child(child, rec.state, rec.value, message=rec.message, epochs=rec.epochs)
        if rec.state is TrialState.COMPLETE and rec.value is not None:
            parent = runs.parent(trial.sweep)
            runs.update_best(parent, child, trial.number, rec.value, self._mode(trial.sweep))
            objectives = objectives_of(self._definitions.get(trial.sweep, {}), "min")
            if objectives.multi:  # the front may have changed: retag its trials' runs
                from hpo_lightning.tracking._mlflow_sync import tag_front

                trials = self._trials_for_artifacts(trial.sweep)[0]
                tag_front(runs, parent, trial.sweep, trials, objectives)

    def _do_status(self, runs: MlflowRuns, trial: Trial) -> None:
        rec = self._seen.get(trial.sweep, {}).get(trial.number)
        if rec is not None:
            runs.client.set_terminated(self._child(runs, trial), STATUS[rec.state])

    def _do_sweep_end(self, runs: MlflowRuns, name: str) -> None:
        parent = runs.parent(name)
        if self.artifacts:
            trials, mode = self._trials_for_artifacts(name)
            monitor = self._definitions.get(name, {}).get("monitor")
            log_sweep_artifacts(
                runs,
                parent,
                trials,
                mode,
                monitor=monitor,
                sweep=name,
                objectives=objectives_of(self._definitions.get(name, {}), mode),
            )
            self._log_best_checkpoint(runs, parent, name, trials)
        runs.client.set_terminated(parent, "FINISHED")

    def _log_best_checkpoint(
        self, runs: MlflowRuns, parent: str, name: str, trials: list[TrialRecord]
    ) -> None:
        """Log the best trial's kept checkpoint file to its run (``checkpoint/``)."""
        if self._storage_arg is None:
            return
        from hpo_lightning.sweep._checkpoints import best_checkpoint_of, local_copy

        store = open_storage(self._storage_arg, create=False)
        try:
            rec = store.get_sweep(name)
            found = best_checkpoint_of(store, rec.id, mode=rec.mode)
        finally:
            if not isinstance(self._storage_arg, Storage):
                store.close()
        if found is None:
            return
        number, path = found
        trial = next((t for t in trials if t.number == number), None)
        if trial is None:
            return
        child = runs.child(parent, name, number, trial.params)
        with local_copy(path) as local:
            runs.client.log_artifact(child, local, "checkpoint")

    def _mode(self, sweep: str) -> Mode:
        mode = self._definitions.get(sweep, {}).get("mode")
        if mode in ("min", "max"):
            return mode
        if self._storage_arg is not None:
            try:
                return self._stored(sweep)[1]
            except HPOError:
                pass
        return "min"

    def _stored(self, sweep: str) -> tuple[list[TrialRecord], Mode]:
        """The sweep's trials and mode from the store (a URL is opened and closed here)."""
        assert self._storage_arg is not None
        given = isinstance(self._storage_arg, Storage)
        store = open_storage(self._storage_arg, create=False)
        try:
            rec = store.get_sweep(sweep)
            return store.get_trials(rec.id), rec.mode
        finally:
            if not given:
                store.close()

    def _trials_for_artifacts(self, sweep: str) -> tuple[list[TrialRecord], Mode]:
        if self._storage_arg is not None:
            return self._stored(sweep)
        seen = self._seen.get(sweep, {})
        return [seen[n] for n in sorted(seen)], self._mode(sweep)

    def __repr__(self) -> str:
        uri = redact_url(self.tracking_uri or "(default)")
        return f"MLflowTracker({uri!r}, experiment_name={self.experiment_name!r})"


def log_sweep_artifacts(
    runs: MlflowRuns,
    parent: str,
    trials: list[TrialRecord],
    mode: Mode,
    *,
    monitor: str | None = None,
    sweep: str | None = None,
    objectives: Objectives | None = None,
) -> list[str]:
    """Write the trials table and plots to a temporary folder and log them on the parent."""
    from hpo_lightning.plots import plot_trials, write_trials_csv

    with tempfile.TemporaryDirectory(prefix="hpo-mlflow-") as tmp:
        out = Path(tmp)
        files = [write_trials_csv(trials, out / "trials.csv", objectives)]
        files += plot_trials(
            trials,
            mode,
            out / "plots",
            monitor=monitor if isinstance(monitor, str) else None,
            sweep=sweep,
            objectives=objectives,
        )
        for f in files:
            sub = "plots" if f.parent.name == "plots" else None
            runs.client.log_artifact(parent, str(f), sub)
        return [f.name for f in files]


def _merge_epochs(batch: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Fold consecutive epoch ops of one trial into one op, so they become one log_batch."""
    out: list[tuple[Any, ...]] = []
    for op in batch:
        prev = out[-1] if out else None
        if op[0] == "epoch" and prev is not None and prev[0] == "epoch" and prev[1] == op[1]:
            merged = dict(prev[2])
            merged.update(op[2])
            out[-1] = ("epoch", op[1], merged, op[3])
        else:
            out.append(op)
    return out
