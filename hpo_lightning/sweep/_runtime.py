"""Pieces of a running trial: the heartbeat thread, worker liveness, the trial handle."""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from hpo_lightning._objectives import Objectives, final_outcome
from hpo_lightning._trial import FailureKind, Mode, Trial, TrialState, is_better, to_metric
from hpo_lightning.events import EpochEnd, EventBus, TrainingFinish
from hpo_lightning.exceptions import InvalidMetricError
from hpo_lightning.schedulers import Decision, EarlyStopper
from hpo_lightning.storage import Storage, TrialRecord

if TYPE_CHECKING:
    from hpo_lightning.tracking import MLflowTracker


def worker_alive(worker: str) -> bool | None:
    """False if ``host:pid`` names a dead process of this host; None when it cannot be told."""
    host, _, pid_text = worker.rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    pid = int(pid_text)
    if pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return None
    try:  # a zombie (killed child not yet reaped) is dead too
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                return False
    except (OSError, IndexError):
        pass
    return None


def shown_state(rec: TrialRecord, lost_after_s: float, now: float | None = None) -> str:
    """A trial's state as read commands show it: a RUNNING trial whose worker is gone (a dead
    local process, or no heartbeat for ``lost_after_s``) shows as ``lost?`` with the silence,
    before any sweep has reaped it."""
    if rec.state is TrialState.FAILED and rec.failure is not None:
        return f"failed ({rec.failure.value})"
    if rec.state is not TrialState.RUNNING:
        return rec.state.value
    now = time.time() if now is None else now
    silent = now - (rec.heartbeat_at or rec.created_at)
    if worker_alive(rec.worker or "") is False or silent > lost_after_s:
        return f"lost? (no heartbeat for {silent:.0f} s)"
    return rec.state.value


class Heartbeat:
    """A daemon thread that refreshes the heartbeat of this process's running trials."""

    def __init__(self, storage: Storage, interval_s: float) -> None:
        self.storage = storage
        self.interval_s = interval_s
        self._ids: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, trial_id: int) -> None:
        with self._lock:
            self._ids.add(trial_id)
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="hpo-heartbeat", daemon=True)
            self._thread.start()

    def remove(self, trial_id: int) -> None:
        with self._lock:
            self._ids.discard(trial_id)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            with self._lock:
                ids = sorted(self._ids)
            try:
                self.storage.heartbeat(ids)
            except Exception:  # a missed beat is harmless; the next one retries
                continue


class TrialHandle:
    """One trial of a sweep, as the ``for trial in sweep`` loop sees it.

    Attributes:
        number: the trial's number in the sweep; params: the hyper-parameters to evaluate.
        callback: an HPOCallback bound to this trial -- pass it to your Trainer.

    Without Lightning, report each epoch's value with ``trial.report_epoch(epoch, value)``
    (it is stored, and the sweep's scheduler may stop the trial) or only the final value with
    ``trial.report(value)`` (with several objectives or constraints, a mapping of each metric:
    ``trial.report({"val_acc": 0.9, "size": 12})``).

    Example:
        >>> import hpo_lightning as hl
        >>> sweep = hl.Sweep(name="loop", objective=lambda p, cb: None,  # the loop is it
        ...                  space={"lr": [0.2, 0.1, 0.9]}, tuner="grid", monitor="loss",
        ...                  n_trials=3, storage=":memory:",
        ...                  scheduler={"name": "median", "warmup_epochs": 1, "min_trials": 1})
        >>> for trial in sweep:
        ...     for epoch in range(5):
        ...         loss = trial.params["lr"] / (epoch + 1)  # an epoch of your training
        ...         if trial.report_epoch(epoch, loss) is hl.Decision.STOP:
        ...             break
        >>> [(t.state.value, t.epochs) for t in sweep.trials()]
        [('complete', 5), ('complete', 5), ('pruned', 2)]
    """

    def __init__(
        self,
        sweep: str,
        record: TrialRecord,
        callback: Any,
        bus: EventBus,
        *,
        objectives: Objectives,
        mlflow_tracker: MLflowTracker | None = None,
        mode: Mode = "min",
        stopper: EarlyStopper | None = None,
    ) -> None:
        self.sweep = sweep
        self.record = record
        self.number = record.number
        self.params: dict[str, Any] = dict(record.params)
        self.callback = callback
        self.trial = Trial(sweep=sweep, number=record.number, params=self.params, id=record.id)
        self.objectives = objectives
        self.monitor = objectives.scheduler_metric  # what report_epoch reports
        self.mlflow_tracker = mlflow_tracker
        self.mode = mode
        self.stopper = stopper
        self._bus = bus
        self._done = False
        self._values: list[float] = []  # the values report_epoch was given
        self._epochs = 0
        if stopper is not None:
            stopper.start(self.trial)

    @property
    def finished(self) -> bool:
        return self._done or bool(getattr(self.callback, "finished", False))

    @property
    def epochs_reported(self) -> int:
        """How many epochs ``report_epoch`` was told of."""
        return len(self._values)

    def report_epoch(self, epoch: int, value: Any) -> Decision:
        """Record the monitored ``value`` after ``epoch`` (0-based) and say whether to go on.

        The value is stored as the trial's metric of that epoch. With a scheduler, STOP means
        it stopped the trial: the trial is stored PRUNED with this value (FAILED when the value
        is NaN/inf) and the loop should leave the trial; later reports are ignored. A trial
        the loop leaves after its epochs is COMPLETE with its best value.
        """
        v = to_metric(value, self.monitor)
        if self.finished:
            return Decision.STOP
        self._values.append(v)
        self._epochs = max(self._epochs, epoch + 1)
        self._bus.publish(EpochEnd(self.trial, epoch=epoch, metrics={self.monitor: v}, value=v))
        if self.stopper is None or self.stopper.report(self.trial, epoch, v) is not Decision.STOP:
            return Decision.CONTINUE  # (a PBT step needs checkpoints: the trial goes on)
        if math.isfinite(v):
            self.finish(TrialState.PRUNED, v, self.stopper.stop_message(epoch, v))
        else:
            self._diverged(v)
        return Decision.STOP

    def complete(self) -> None:
        """Finish the trial from its reported epochs: COMPLETE with the best value, FAILED
        when the last one is NaN/inf."""
        if not self._values or not math.isfinite(self._values[-1]):
            self._diverged(self._values[-1] if self._values else math.nan)
            return
        best = self._values[0]
        for v in self._values[1:]:
            if is_better(v, best, self.mode):
                best = v
        self.finish(TrialState.COMPLETE, best)

    def report(self, value: Any) -> None:
        """Finish the trial with ``value`` (NaN/inf -> FAILED): a number, or a mapping of
        each monitored (and constrained) metric to its value."""
        if isinstance(value, Mapping) or self.objectives.multi or self.objectives.constraints:
            self._report_metrics(value)
            return
        v = to_metric(value, self.monitor)
        if math.isfinite(v):
            self.finish(TrialState.COMPLETE, v)
        else:
            self._diverged(v)

    def _diverged(self, value: float) -> None:
        self.finish(
            TrialState.FAILED,
            math.nan,
            f"'{self.monitor}' was {value} (diverged)",
            failure=FailureKind.DIVERGED,
        )

    def _report_metrics(self, value: Any) -> None:
        if not isinstance(value, Mapping):
            raise InvalidMetricError(
                f"this sweep monitors {list(self.objectives.metrics)}: report a mapping of "
                f"each to its value, e.g. trial.report({{'{self.monitor}': 0.9, ...}}), "
                f"not {value!r}"
            )
        logged = {str(k): to_metric(v, str(k)) for k, v in value.items()}
        out = final_outcome(self.objectives, logged)
        self.finish(
            out.state,
            out.value,
            out.message,
            failure=out.failure,
            objective_values=out.objective_values,
            violation=out.violation,
        )

    def finish(
        self,
        state: TrialState,
        value: float,
        message: str | None = None,
        *,
        failure: FailureKind | None = None,
        objective_values: tuple[float, ...] | None = None,
        violation: float | None = None,
    ) -> None:
        if self.finished:
            return
        self._done = True
        self._bus.publish(
            TrainingFinish(
                self.trial,
                best_metric=value,
                best_params=self.params,
                state=state,
                epochs=max(self._epochs, getattr(self.callback, "epochs", 0) or 0),
                message=message,
                failure=failure,
                objective_values=objective_values,
                violation=violation,
            )
        )

    def mlflow_logger(self, **options: Any) -> Any:
        """A Lightning MLFlowLogger that logs into this trial's MLflow run (needs ``mlflow:``).

        Options go to ``MLflowTracker.logger_for`` (``prefix=``, ``package=``).
        """
        tracker = self.mlflow_tracker
        if tracker is None:
            from hpo_lightning.exceptions import ConfigError

            raise ConfigError(
                f"sweep '{self.sweep}' has no MLflow tracking; add an `mlflow:` section "
                "(tracking_uri, experiment) to use trial.mlflow_logger()"
            )
        return tracker.logger_for(self.trial, **options)

    def __repr__(self) -> str:
        return f"TrialHandle(sweep={self.sweep!r}, number={self.number}, params={self.params})"


Finisher = Callable[[TrialHandle], None]
