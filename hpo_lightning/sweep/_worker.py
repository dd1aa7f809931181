"""The per-process worker loop: claim -> run -> record, the same everywhere a trial runs.

A serial sweep, each local worker process, ``hpo-lightning worker`` and every launcher's worker
run :meth:`Worker.run`. The worker owns the tuner, the scheduler, the event bus, the store's
tracker and the MLflow observer of its process; :class:`~hpo_lightning.sweep.Sweep` only
defines the sweep and starts workers (itself, or through a launcher).

Before each claim the worker marks trials of dead workers LOST (a transaction of its own, see
:meth:`Worker.reap`). Every decision is then taken inside a claim transaction on the store: the
worker reads the trials changed since its last claim into its view of the sweep
(``SweepView``), updates the tuner (finished trials are reported once, RUNNING ones are
pending), and inserts the next trial. So n_trials holds across processes and machines, grid
points never repeat, a killed sweep resumes where it was, and a claim costs the same at trial
10,000 as at trial 100.
"""

from __future__ import annotations

import enum
import logging
import math
import os
import socket
import time
import traceback
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from hpo_lightning._trial import FailureKind, Trial, TrialState
from hpo_lightning.events import EventBus
from hpo_lightning.exceptions import UserInputError
from hpo_lightning.schedulers import EarlyStopper
from hpo_lightning.space import SearchSpace
from hpo_lightning.storage import Claim, Storage, SweepRecord, TrialRecord
from hpo_lightning.sweep._config import SweepConfig, tuner_options
from hpo_lightning.sweep._deferred import DeferredCallback, lightning_loaded
from hpo_lightning.sweep._objective import objective_warnings, resolve_objective
from hpo_lightning.sweep._ranks import JoinedTrial, destroy_process_group, rank_zero_trial
from hpo_lightning.sweep._result import StopReason, settled
from hpo_lightning.sweep._runtime import Heartbeat, TrialHandle, worker_alive
from hpo_lightning.sweep._stop import StopToken, reinstall
from hpo_lightning.sweep._view import SweepView
from hpo_lightning.sweep._worker_checkpoints import CheckpointingWorker
from hpo_lightning.tracking import ExperimentTracker
from hpo_lightning.tuners import make_tuner

if TYPE_CHECKING:
    from hpo_lightning.tracking import MLflowTracker

log = logging.getLogger("hpo_lightning")


class _Wait(enum.Enum):
    WAIT = "wait"  # trials in flight may still fail or be requeued: wait for a free slot


class Worker(CheckpointingWorker):
    """Runs a sweep's trials in this process until the sweep is done or a stop is requested.

    Args:
        config: the sweep.
        storage: this process's connection to the store.
        record: the stored sweep.
        stop: the stop token (signals, the launcher, the parent's death set it).
        mirror_summary: whether this worker writes MLflow's end-of-sweep summary (a launcher's
            workers leave it to the driver).

    Example:
        >>> import hpo_lightning as hl
        >>> from hpo_lightning.sweep import SweepConfig, Worker
        >>> from hpo_lightning.storage import open_storage
        >>> cfg = SweepConfig(name="w", objective=lambda p, cb: p["x"], space={"x": hl.Float(0, 1)},
        ...                   monitor="x", n_trials=3, tuner="random", seed=0)
        >>> store = open_storage(":memory:")
        >>> rec = store.create_sweep("w", cfg.definition(), mode="min")
        >>> Worker(cfg, store, rec).run()
        <StopReason.DONE: 'done'>
    """

    def __init__(
        self,
        config: SweepConfig,
        storage: Storage,
        record: SweepRecord,
        *,
        stop: StopToken | None = None,
        mirror_summary: bool = True,
    ) -> None:
        self.config = config
        self.storage = storage
        self.record = record
        self.stop_token = stop or StopToken()
        self.mirror_summary = mirror_summary
        self._objective = resolve_objective(config.objective, config.base_dir)
        self.checkpoints = config.checkpoint_policy()
        self._ready = False
        self._where_cache: dict[str, Any] | None = None  # set in the process that runs trials
        self._view = SweepView()
        self._claim: Claim | None = None  # the claim _decide last saw
        self.mlflow_tracker: MLflowTracker | None = None
        self.scheduler: Any = None
        self._stopper: EarlyStopper | None = None
        self._started = time.monotonic()

    # --- set-up -------------------------------------------------------------------------
    def _setup(self) -> None:
        """Build the tuner, scheduler and observers (in the process that runs trials)."""
        if self._ready:
            return
        cfg = self.config
        self.tuner = make_tuner(
            cfg.tuner,
            SearchSpace.from_dict(cfg.space),
            mode=cfg.mode,
            seed=cfg.seed,
            **tuner_options(cfg),
        )
        self._reported: set[int] = set()
        self._objectives = cfg.objectives()
        self._view = SweepView()  # a new tuner hears every finished trial again
        self.scheduler = make_sweep_scheduler(cfg)
        self._store_tracker = ExperimentTracker(self.storage, sweep=cfg.name)
        self._observers: list[Any] = []
        if cfg.mlflow:
            self.mlflow_tracker = make_mlflow_tracker(cfg, self.storage, self.record)
            self._observers.append(self.mlflow_tracker)
        self._bus = EventBus()
        self._bus.subscribe(self._store_tracker, critical=True)
        for obs in self._observers:
            self._bus.subscribe(obs)
        self._heartbeat = Heartbeat(self.storage, cfg.heartbeat_s)
        if lightning_loaded():
            # The objective's module imported Lightning: import the callback now (seconds),
            # not in the first trial's clock. A plain-Python objective never imports it.
            import hpo_lightning.lightning  # noqa: F401

        self._started = time.monotonic()
        self._ready = True

    def close(self) -> None:
        """Stop the heartbeat and close the MLflow observer (the store stays open)."""
        if not self._ready:
            return
        self._heartbeat.stop()
        self._ready = False
        tracker, self.mlflow_tracker = self.mlflow_tracker, None
        if tracker is not None:
            try:
                if self.mirror_summary:
                    tracker.sweep_finished(self.config.name)
                tracker.close()
            except Exception as exc:  # MLflow is a mirror; never fail the sweep for it
                from hpo_lightning._secrets import redact

                log.warning("MLflow at sweep end failed: %s", redact(str(exc)))

    # --- claiming ---------------------------------------------------------------------------
    def reap(self) -> list[TrialRecord]:
        """Mark trials of dead workers LOST (or FAILED after a second death); return them."""
        return self.storage.fail_stale_trials(
            self.record.id, older_than_s=self.config.lost_after_s, is_alive=worker_alive
        )

    def _sync_tuner(self) -> None:
        tuner = self.tuner
        tuner.clear_pending()
        view = self._view
        # by trial number, running and newly finished trials interleaved, as the whole list
        # was read before views; a requeued trial is no result (its params run again)
        news = [view.unreported.pop(n) for n in sorted(view.unreported)]
        for t in sorted([*view.running(), *news], key=lambda t: t.number):
            if t.state is TrialState.RUNNING:
                tuner.add_pending(t.params)
            elif t.number not in self._reported:
                self._reported.add(t.number)
                step = max(t.epochs - 1, 0) if t.state is TrialState.PRUNED else None
                value, options = tuner_result(t, self._objectives)
                tuner.report_result(t.params, value, state=t.state, step=step, **options)

    def _decide(self, claim: Claim, limit: int | None) -> TrialRecord | StopReason | _Wait:
        """Inside the claim transaction: stop, wait, rerun a requeued trial, or add a new one.

        Safe to run again on fresh trials (a store may replay it after a lost connection):
        the tuner's pending set is rebuilt and each finished trial is reported once.
        """
        cfg = self.config
        self._claim = claim
        self._view.read(claim)
        s = self._view.counts()
        end = settled(s, n_trials=cfg.n_trials, max_failures=cfg.max_failures, limit=limit)
        if end is not None:
            return end
        target = cfg.n_trials if limit is None else min(cfg.n_trials, limit)
        if s["done"] + s["running"] >= target:
            return _Wait.WAIT
        if cfg.retry_lost:
            for t in self._view.pending_requeue():
                losses = int(t.attrs.get("losses", 0)) + (t.state is TrialState.LOST)
                if self.checkpoints is not None:
                    reopened = self._reopen(claim, t, losses)
                    if reopened is not None:
                        return reopened
                return claim.add_trial(
                    t.params,
                    tuner=t.tuner,
                    attrs={**self._where(), "retry_of": t.number, "losses": losses},
                )
        self._sync_tuner()
        params = self.tuner.suggest()
        if params is None:
            return _Wait.WAIT if s["running"] else StopReason.EXHAUSTED
        return claim.add_trial(params, tuner=self.tuner.name, attrs=self._where())

    def _where(self) -> dict[str, Any]:
        """Where this worker runs trials: host and devices (shown by ``status``)."""
        if self._where_cache is None:
            where: dict[str, Any] = {"host": socket.gethostname()}
            devices = os.environ.get("CUDA_VISIBLE_DEVICES")
            if devices is not None:
                where["devices"] = devices
            self._where_cache = where
        return dict(self._where_cache)

    def next_trial(self, limit: int | None = None) -> TrialRecord | StopReason:
        """Claim the next trial, waiting while in-flight trials may still need a slot."""
        while True:
            if self.stop_token.requested:
                return StopReason.INTERRUPTED
            timeout = self.config.timeout
            if timeout is not None and time.monotonic() - self._started > timeout:
                return StopReason.TIMEOUT
            self.reap()
            self._claim = None
            nxt = self.storage.claim_with(
                self.record.id, lambda c: self._decide(c, limit), since=self._view.since
            )
            if self._claim is not None:  # committed: fold in what it wrote
                self._view.committed(self._claim)
            if not isinstance(nxt, _Wait):
                return nxt
            time.sleep(0.05)

    # --- running trials ---------------------------------------------------------------------
    def early_stopper(self) -> EarlyStopper | None:
        """The scheduler applied to this process's trials (one for all of them; None without
        a scheduler): it reads the other trials' curves from the store."""
        if self.scheduler is None:
            return None
        if self._stopper is None or self._stopper.scheduler is not self.scheduler:
            cfg = self.config
            self._stopper = EarlyStopper(
                self.scheduler,
                monitor=cfg.epoch_monitor,  # several objectives: the scheduler's one
                mode=cfg.epoch_mode,
                storage=self.storage,
            )
        return self._stopper

    def callback(self, trial: Trial, *, joined: bool = False, explored: bool = False) -> Any:
        """An HPOCallback bound to ``trial`` (``joined``: another DDP rank's, writing nothing).

        While Lightning is not imported, a DeferredCallback that builds it on first use.
        """
        if not lightning_loaded():
            return DeferredCallback(lambda: self.callback(trial, joined=joined, explored=explored))
        from hpo_lightning.lightning import HPOCallback

        return HPOCallback(
            None,
            monitor=self.config.monitor,
            mode=self.config.mode,
            constraints=self.config.constraints,
            scheduler_objective=self.config.scheduler_objective,
            tracker=None if joined else self._store_tracker,
            observers=() if joined else self._observers,
            scheduler=self.early_stopper(),
            trial=trial,
            sweep=self.config.name,
            stop=self.stop_token,
            checkpoints=self.checkpoints,
            resume=self.resume_path(trial.number),
            explored=explored,
        )

    def handle(self, rec: TrialRecord, *, explored: bool = False) -> TrialHandle:
        """The handle of a claimed trial: its params and a callback bound to it (``explored``:
        it continues from a PBT donor's checkpoint with explored params)."""
        trial = Trial(sweep=self.config.name, number=rec.number, params=dict(rec.params), id=rec.id)
        return TrialHandle(
            self.config.name,
            rec,
            self.callback(trial, explored=explored),
            self._bus,
            objectives=self.config.objectives(),
            mlflow_tracker=self.mlflow_tracker,
            mode=self.config.epoch_mode,
            stopper=self.early_stopper(),
        )

    def finish_handle(self, handle: TrialHandle, returned: Any) -> None:
        """Record what the objective returned, unless the callback recorded the trial."""
        if handle.finished:  # the callback recorded it (interrupted trials included)
            return
        if returned is None and handle.epochs_reported:  # a plain loop's report_epoch calls
            handle.complete()
            return
        if (
            (isinstance(returned, (int, float)) and not isinstance(returned, bool))
            or (returned is not None and hasattr(returned, "item"))
            or isinstance(returned, Mapping)  # {metric: value}: several objectives
        ):
            handle.report(returned)
        else:
            handle.finish(
                TrialState.FAILED,
                math.nan,
                "the objective neither fitted a Trainer with the callback nor returned a "
                f"metric value; log {list(self.config.objectives().metrics)} and pass the "
                "callback to the Trainer",
                failure=FailureKind.NO_METRIC,
            )

    def interrupt(self, handle: TrialHandle) -> None:
        """Store a trial cut short by a stop request as INTERRUPTED (requeued)."""
        if handle.finished:
            return
        handle.finish(TrialState.INTERRUPTED, math.nan, self.stop_token.message())

    def run_one(self, rec: TrialRecord) -> None:
        """Run one claimed trial and record how it ended."""
        self._heartbeat.add(rec.id)  # before anything slow: the trial is claimed already
        try:
            handle = self.handle(rec)
            if self.stop_token.requested:  # asked to stop while claiming
                self.interrupt(handle)
                return
            self._call(handle)
        finally:
            self._heartbeat.remove(rec.id)
            reinstall(self.stop_token)  # Lightning ignores SIGINT after a Ctrl-C
            self.settle_checkpoints()

    def _call(self, handle: TrialHandle) -> None:
        token = self.stop_token
        token.in_objective = True
        try:
            while True:
                with (
                    rank_zero_trial(
                        self.config.name, handle.record.id, handle.number, handle.params
                    ),
                    objective_warnings(),
                ):
                    returned = self._objective(
                        dict(handle.params), handle.callback, **dict(self.config.objective_args)
                    )
                continued = self._continued(handle)
                if continued is None:
                    break
                handle = continued
        except (KeyboardInterrupt, SystemExit) as exc:
            if not token.requested:
                # Ctrl-C outside our handler (e.g. SIGINT was ignored, then raised by hand)
                # or a sys.exit() of the objective: both end the sweep, requeued
                token.request(reason=f"{type(exc).__name__} raised during the trial")
            self.interrupt(handle)
        except UserInputError as exc:
            # a wrong monitor or metric type fails every trial alike: stop and say so
            self._fail(handle, f"{type(exc).__name__}: {exc}", FailureKind.BAD_INPUT)
            raise
        except Exception as exc:
            if token.requested:  # e.g. Lightning's SIGTERMException after our stop request
                self.interrupt(handle)
                return
            tb = "".join(traceback.format_exception(exc)[-8:])
            self._fail(handle, f"{type(exc).__name__}: {exc}\n{tb}"[:4000], FailureKind.ERROR)
        else:
            self.finish_handle(handle, returned)
        finally:
            token.in_objective = False

    @staticmethod
    def _fail(handle: TrialHandle, message: str, kind: FailureKind) -> None:
        handle.finish(TrialState.FAILED, math.nan, message, failure=kind)

    # --- the loop -------------------------------------------------------------------------------
    def run(self, limit: int | None = None, on_trial: Any = None) -> StopReason:
        """Claim and run trials until the sweep (or ``limit`` finished trials) is done.

        ``on_trial()`` is called after each trial (e.g. to refresh a progress display).
        UserInputError (a wrong monitor) propagates after the trial is stored FAILED.
        """
        self._setup()
        while True:
            nxt = self.next_trial(limit)
            if isinstance(nxt, StopReason):
                if nxt in (StopReason.DONE, StopReason.EXHAUSTED):
                    self.settle_checkpoints(final=True)
                return nxt
            self.run_one(nxt)
            if on_trial is not None:
                on_trial()

    def trials(self) -> Iterator[TrialHandle]:
        """Yield trials for a loop you write; each is finished when the loop moves on.

        A trial that a PBT step continues comes again (same number, explored params).
        """
        self._setup()
        while True:
            nxt = self.next_trial()
            if not isinstance(nxt, TrialRecord):
                return
            self._heartbeat.add(nxt.id)
            try:
                handle: TrialHandle | None = self.handle(nxt)
            except BaseException:
                self._heartbeat.remove(nxt.id)
                raise
            try:
                self.stop_token.in_objective = True  # the loop's body is the objective
                while handle is not None:
                    yield from self._yield_one(handle)
                    last, handle = handle, self._continued(handle)
            finally:
                self.stop_token.in_objective = False
                self._heartbeat.remove(nxt.id)
            self.finish_handle(last, None)
            self.settle_checkpoints()

    def _yield_one(self, handle: TrialHandle) -> Iterator[TrialHandle]:
        rec = handle.record
        try:
            with rank_zero_trial(self.config.name, rec.id, rec.number, handle.params):
                yield handle
        except GeneratorExit:
            self.stop_token.request(reason="the loop stopped during this trial")
            self.interrupt(handle)
            raise
        except (KeyboardInterrupt, SystemExit):
            self.stop_token.request(reason="stopped by Ctrl-C (SIGINT)")
            self.interrupt(handle)
            raise

    def run_joined(self, joined: JoinedTrial) -> StopReason:
        """Run rank 0's trial as rank ``joined.rank``: same params and trial; write nothing.

        A crash of this rank is recorded once (FAILED with the rank's error); the process then
        ends normally, so that Lightning does not kill rank 0, whose collective fails instead.
        """
        self.scheduler = make_sweep_scheduler(self.config)
        trial = Trial(
            sweep=self.config.name,
            number=joined.number,
            params=dict(joined.params),
            id=joined.trial_id,
        )
        callback = self.callback(trial, joined=True)
        try:
            with objective_warnings():
                self._objective(dict(joined.params), callback, **dict(self.config.objective_args))
        except (KeyboardInterrupt, SystemExit):
            pass
        except Exception as exc:
            if not self.stop_token.requested:
                tb = "".join(traceback.format_exception(exc)[-8:])
                self.storage.finish_trial(
                    joined.trial_id,
                    TrialState.FAILED,
                    None,
                    message=f"rank {joined.rank}: {type(exc).__name__}: {exc}\n{tb}"[:4000],
                    failure=FailureKind.ERROR,
                )
        finally:
            # leave as rank 0 does: a process group left to the interpreter's exit may abort it
            # (gloo: "terminate called without an active exception"), and rank 0 then loses
            # the trial
            destroy_process_group()
        return StopReason.JOINED


def make_sweep_scheduler(cfg: SweepConfig) -> Any:
    """The sweep's scheduler, seeded by the sweep when it takes a seed (e.g. Hyperband)."""
    if not cfg.scheduler:
        return None
    import inspect

    from hpo_lightning.schedulers import _registry, make_scheduler

    options = dict(cfg.scheduler)
    cls = _registry._REGISTRY.get(options.get("name"))  # type: ignore[arg-type]
    if "seed" not in options and cls is not None and "seed" in inspect.signature(cls).parameters:
        options["seed"] = cfg.seed  # e.g. Hyperband's bracket draws follow the sweep seed
    return make_scheduler(**options)


def make_mlflow_tracker(cfg: SweepConfig, storage: Storage, record: SweepRecord) -> Any:
    """The MLflow observer of a sweep (its parent run created or found)."""
    from hpo_lightning.tracking import MLflowTracker

    m = dict(cfg.mlflow or {})
    tracker = MLflowTracker(
        tracking_uri=m.get("tracking_uri"),
        experiment_name=m.get("experiment") or cfg.name,
        storage=storage,
    )
    tracker.sweep_started(cfg.name, record.definition)
    return tracker


def tuner_result(trial: TrialRecord, objectives: Any) -> tuple[Any, dict[str, Any]]:
    """What a finished trial reports to the tuner: its value (one per objective of a
    multi-objective sweep; NaN when it has none) and, with constraints, its violation."""
    if objectives.multi:
        value: Any = trial.objective_values  # None (failed, no values): NaN per objective
    else:
        value = trial.value if trial.value is not None else math.nan
    options: dict[str, Any] = {}
    if trial.violation is not None:  # inf: a constrained metric was NaN
        options["violation"] = trial.violation
    return value, options
