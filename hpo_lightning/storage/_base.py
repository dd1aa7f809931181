"""The store interface: the single source of truth for sweeps, trials and per-epoch metrics.

Contract for every :class:`Storage` (checked by ``hpo_lightning.testing.StorageContract`` against
SQLite and PostgreSQL):

* Every write is one transaction; a reader never sees half a write.
* Several processes (and machines, for PostgreSQL) may use one store at once: writes are
  serialised by the database, never fail with "database is locked", and ``claim`` is atomic --
  two workers claiming at once get two different trial numbers, each seeing the other's trial.
* Values are JSON (params, definitions) and floats; nothing is pickled.
* A finished trial (COMPLETE, PRUNED, FAILED) is never changed back to RUNNING.
"""

from __future__ import annotations

import json
import os
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

from hpo_lightning._trial import FailureKind, Mode, TrialState
from hpo_lightning.exceptions import StorageError

T = TypeVar("T")


_ACTING_FOR: ContextVar[str | None] = ContextVar("hpo_lightning_acting_for", default=None)


def worker_id() -> str:
    """``host:pid`` of this process, stored on the trials it runs.

    Inside :func:`acting_for` (a served store inserting a trial for a remote worker) it is
    that worker's id instead.
    """
    return _ACTING_FOR.get() or f"{socket.gethostname()}:{os.getpid()}"


@contextmanager
def acting_for(worker: str) -> Iterator[None]:
    """Make :func:`worker_id` answer ``worker`` in this thread (or task) for the block."""
    token = _ACTING_FOR.set(worker)
    try:
        yield
    finally:
        _ACTING_FOR.reset(token)


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, allow_nan=True)


@dataclass(frozen=True)
class SweepRecord:
    """A stored sweep: its name, definition (JSON) and optimisation mode."""

    id: int
    name: str
    definition: Mapping[str, Any]
    mode: Mode
    created_at: float
    status: str = "running"


@dataclass(frozen=True)
class TrialRecord:
    """A stored trial. ``value`` is the final monitored value (None when failed).

    A multi-objective sweep's trial also keeps ``objective_values`` (every objective, in the
    order of the sweep's ``monitor``; ``value`` is the first) and ``violation``, the summed
    violation of the sweep's constraints (0: feasible; None: no constraints).
    """

    id: int
    sweep_id: int
    number: int
    state: TrialState
    params: Mapping[str, Any]
    value: float | None = None
    tuner: str | None = None
    worker: str | None = None
    created_at: float = 0.0
    finished_at: float | None = None
    heartbeat_at: float | None = None
    epochs: int = 0
    message: str | None = None
    attrs: Mapping[str, Any] = field(default_factory=dict)
    failure: FailureKind | None = None  # why a FAILED trial failed
    objective_values: tuple[float, ...] | None = None
    violation: float | None = None

    @property
    def feasible(self) -> bool:
        """True unless the trial broke a constraint of its sweep."""
        return not self.violation

    # the sweep's change count at this trial's last change (0: a store that counts none);
    # see Storage.claim
    changed: int = 0


@dataclass(frozen=True)
class CheckpointRecord:
    """A stored checkpoint of a trial: the file (path or fsspec URL) written after ``epoch``
    (0-based) and the monitored value of that epoch (None when it reported none)."""

    trial_id: int
    epoch: int
    path: str
    value: float | None = None


class Claim:
    """What ``Storage.claim`` hands the caller inside the claim transaction.

    Attributes:
        trials: the sweep's trials (by number) -- only those changed after ``since`` when
            ``since`` is not None -- and then the trials this claim added or reopened.
        since: the change count the caller passed, when the store answered with only the
            trials changed after it; None when ``trials`` holds every trial of the sweep.
        changes: the change count to pass as ``since`` to the next claim once this one has
            committed (every later change of a trial gets a greater count); None when the
            store counts no changes.
    """

    def __init__(
        self,
        trials: list[TrialRecord],
        add: Callable[..., TrialRecord],
        reopen: Callable[..., TrialRecord | None] | None = None,
        *,
        since: int | None = None,
        changes: int | None = None,
    ) -> None:
        self.trials = trials
        self.since = since
        self.changes = changes
        self._add = add
        self._reopen = reopen

    def _saw(self, rec: TrialRecord) -> None:
        if self.changes is not None:
            self.changes = max(self.changes, rec.changed)

    def reopen_trial(self, trial: TrialRecord, *, attrs: Mapping[str, Any]) -> TrialRecord | None:
        """Resume a requeued trial from its latest checkpoint: the same row, RUNNING again.

        Its metrics and checkpoints after that checkpoint's epoch are dropped (the resumed fit
        trains those epochs again), ``epochs`` becomes the checkpoint's epoch + 1 and ``attrs``
        replace the stored ones (plus ``resumed_epochs``: that epoch count, by which the next
        reopen tells whether the trial made progress). Returns None (changing nothing) when
        the trial has no checkpoint or the store cannot reopen trials; the caller then adds a
        new trial.
        """
        if self._reopen is None or not trial.state.requeued:
            return None
        rec = self._reopen(trial, attrs=attrs)
        if rec is not None:
            if any(t.id == rec.id for t in self.trials):
                self.trials[:] = [rec if t.id == rec.id else t for t in self.trials]
            else:  # a claim of changes only may not hold it
                self.trials.append(rec)
            self._saw(rec)
        return rec

    def add_trial(
        self,
        params: Mapping[str, Any],
        *,
        tuner: str | None = None,
        state: TrialState = TrialState.RUNNING,
        attrs: Mapping[str, Any] | None = None,
    ) -> TrialRecord:
        """Insert a new trial (RUNNING by default) with the next trial number."""
        rec = self._add(params, tuner=tuner, state=state, attrs=attrs)
        self.trials.append(rec)
        self._saw(rec)
        return rec


class Storage(ABC):
    """Where sweeps and trials live. See the module docstring for the contract.

    Example:
        >>> from hpo_lightning.storage import open_storage
        >>> store = open_storage(":memory:")
        >>> sweep = store.create_sweep("demo", {"space": {}}, mode="min")
        >>> with store.claim(sweep.id) as c:
        ...     t = c.add_trial({"x": 1})
        >>> ok = store.finish_trial(t.id, TrialState.COMPLETE, 0.5, epochs=1)
        >>> store.get_trials(sweep.id)[0].value
        0.5
    """

    url: str

    @abstractmethod
    def create_sweep(self, name: str, definition: Mapping[str, Any], *, mode: Mode) -> SweepRecord:
        """Create a sweep; if it exists, return the stored one unchanged (caller compares)."""

    @abstractmethod
    def get_sweep(self, name: str) -> SweepRecord:
        """The sweep of that name; SweepNotFoundError (listing the known names) otherwise."""

    @abstractmethod
    def list_sweeps(self) -> list[SweepRecord]: ...

    @abstractmethod
    def raise_n_trials(self, sweep_id: int, n_trials: int) -> SweepRecord:
        """Raise the ``n_trials`` of the stored definition to at least ``n_trials`` (a rerun
        that extends the sweep; workers that join read it) and return the stored sweep.

        Atomic: of two processes extending at once, the larger value stays; a smaller value
        than the stored one changes nothing.
        """

    @abstractmethod
    def set_sweep_status(self, sweep_id: int, status: str) -> None:
        """Record where the sweep's workers were launched (e.g. ``slurm job 123 (8 workers)
        started ...``), shown by ``hpo-lightning status`` as "launched: ..."; a sweep whose
        workers nobody launched keeps ``running``, the default."""

    @abstractmethod
    def delete_sweep(self, sweep_id: int) -> int:
        """Delete the sweep with its trials and their metrics in one transaction; return the
        number of trials deleted. Its name is free again. StorageError if there is no such
        sweep (nothing is deleted then).
        """

    @abstractmethod
    def claim(self, sweep_id: int, *, since: int | None = None) -> AbstractContextManager[Claim]:
        """A write transaction that locks the sweep: read its trials, then add one atomically.

        ``since``: the ``changes`` of the caller's last committed claim; a store that counts
        changes then reads only the trials changed after it (``claim.since`` says so), which
        keeps a claim's cost flat as the sweep grows. A store may always answer with every
        trial (``claim.since`` None). In such a claim, ``heartbeat_at`` and ``epochs`` of a
        RUNNING trial are as of its last change, not live.
        """

    def claim_with(
        self, sweep_id: int, decide: Callable[[Claim], T], *, since: int | None = None
    ) -> T:
        """Run ``decide(claim)`` inside :meth:`claim` and return its result.

        Prefer this to ``with claim()`` in loops that must survive a lost connection: a store
        that loses its connection mid-claim while another worker claims runs ``decide`` again
        on the fresh trials, which a ``with`` block cannot do. ``decide`` must therefore only
        read ``claim.trials`` and call ``claim.add_trial``.
        """
        with self.claim(sweep_id, since=since) as c:
            return decide(c)

    @abstractmethod
    def log_metrics(self, trial_id: int, epoch: int, metrics: Mapping[str, float]) -> None:
        """Store one epoch's scalar metrics (upsert) and refresh the trial's heartbeat."""

    @abstractmethod
    def finish_trial(
        self,
        trial_id: int,
        state: TrialState,
        value: float | None,
        *,
        epochs: int | None = None,
        message: str | None = None,
        failure: FailureKind | None = None,
        objective_values: Sequence[float] | None = None,
        violation: float | None = None,
    ) -> bool:
        """Move a RUNNING trial to a final state; False if it was already finished.

        ``failure`` says why a FAILED trial failed (stored as data, see FailureKind).
        ``objective_values`` (every objective of a multi-objective sweep; non-finite values
        are stored as None) and ``violation`` (summed constraint violation) are stored as
        given.
        """

    @abstractmethod
    def heartbeat(self, trial_ids: Sequence[int]) -> None: ...

    @abstractmethod
    def get_trials(
        self, sweep_id: int, *, states: Sequence[TrialState] | None = None
    ) -> list[TrialRecord]:
        """Trials of a sweep ordered by number."""

    @abstractmethod
    def get_metrics(self, trial_id: int) -> dict[int, dict[str, float]]:
        """Per-epoch metrics of a trial: ``{epoch: {name: value}}``."""

    def get_curves(self, sweep_id: int, metric: str) -> dict[int, dict[int, float]]:
        """One metric's per-epoch values for every trial of a sweep: ``{number: {epoch: v}}``.

        Trials that never logged ``metric`` are absent; a non-finite value reads as NaN. SQL
        stores answer with one query; this default reads trial by trial.
        """
        out: dict[int, dict[int, float]] = {}
        for trial in self.get_trials(sweep_id):
            curve = {e: m[metric] for e, m in self.get_metrics(trial.id).items() if metric in m}
            if curve:
                out[trial.number] = curve
        return out

    @abstractmethod
    def fail_stale_trials(
        self,
        sweep_id: int,
        *,
        older_than_s: float,
        is_alive: Callable[[str], bool | None],
        max_losses: int = 2,
    ) -> list[TrialRecord]:
        """Mark RUNNING trials whose worker is gone as LOST; return them.

        A worker is gone when ``is_alive(worker)`` says False (a dead local pid), or when it
        says None (unknown, e.g. another host) and its heartbeat is older than ``older_than_s``.
        A trial whose ``attrs["losses"]`` (the losses of the params before it) reach
        ``max_losses - 1`` becomes FAILED with ``FailureKind.CRASHED`` instead: params that
        kill their worker again and again are not retried for ever.
        """

    # --- checkpoints (a store that keeps none raises; see sweep/_checkpoints.py) ----------
    def add_checkpoint(self, trial_id: int, epoch: int, path: str, value: float | None) -> None:
        """Record the checkpoint written after ``epoch`` of a trial (upsert)."""
        raise StorageError(f"{type(self).__name__} does not record checkpoints")

    def delete_checkpoints(self, trial_id: int, epochs: Sequence[int]) -> None:
        """Forget the checkpoints of a trial at ``epochs`` (the caller deletes the files)."""
        raise StorageError(f"{type(self).__name__} does not record checkpoints")

    def set_trial_attrs(self, trial_id: int, attrs: Mapping[str, Any]) -> None:
        """Replace a running trial's attrs (e.g. its PBT lineage)."""
        raise StorageError(f"{type(self).__name__} does not record checkpoints")

    def discard_epochs(self, trial_id: int, after: int) -> None:
        """Drop a running trial's metrics and checkpoint records of epochs after ``after``."""
        raise StorageError(f"{type(self).__name__} does not record checkpoints")

    def get_checkpoints(self, sweep_id: int) -> dict[int, list[CheckpointRecord]]:
        """The recorded checkpoints of a sweep's trials: ``{trial number: [by epoch]}``."""
        return {}

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Storage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
