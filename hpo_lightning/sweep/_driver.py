"""The sweep driver: composes a tuner, a scheduler, trackers and workers around one store.

Every decision is taken inside a claim transaction on the store: the driver reads the sweep's
trials, marks trials of dead workers as lost, rebuilds the tuner's view (finished trials are
reported once, RUNNING ones are pending), and inserts the next trial. So n_trials holds across
processes and machines, grid points never repeat, and a killed sweep resumes where it was.
"""

from __future__ import annotations

import enum
import math
import os
import signal
import time
import traceback
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from hpo_lightning._trial import Trial, TrialState
from hpo_lightning.events import EventBus
from hpo_lightning.exceptions import UserInputError
from hpo_lightning.space import SearchSpace
from hpo_lightning.storage import Claim, Storage, TrialRecord, open_storage, redact_url
from hpo_lightning.sweep._config import SweepConfig, check_same_definition, load_sweep_file
from hpo_lightning.sweep._objective import resolve_objective
from hpo_lightning.sweep._progress import ProgressDisplay, summarize
from hpo_lightning.sweep._result import SweepResult, stop_reason
from hpo_lightning.sweep._runtime import (
    INTERRUPTED,
    Heartbeat,
    TrialHandle,
    is_retriable,
    worker_alive,
)
from hpo_lightning.tracking import ExperimentTracker
from hpo_lightning.tuners import make_tuner
from hpo_lightning.tuners._base import new_seed


class _Next(enum.Enum):
    WAIT = "wait"  # trials in flight may still fail: wait for a free slot
    DONE = "done"  # n_trials finished
    EXHAUSTED = "exhausted"  # the tuner has nothing left (grid)
    FAILURES = "max_failures"
    TIMEOUT = "timeout"


class Sweep:
    """A named search stored in one store, run by one or many processes.

    Example:
        >>> import hpo_lightning as hl
        >>> def objective(params, callback):
        ...     return (params["x"] - 0.3) ** 2
        >>> sweep = hl.Sweep(name="demo", objective=objective, space={"x": hl.Float(0, 1)},
        ...                  monitor="loss", n_trials=5, storage=":memory:", tuner="random", seed=0)
        >>> sweep.run(progress="quiet").n_complete
        5

    The plain loop for your own script::

        for trial in sweep:
            trainer = Trainer(max_epochs=10, callbacks=[trial.callback])
            trainer.fit(Model(**trial.params), datamodule)
    """

    def __init__(self, config: SweepConfig | None = None, **options: Any) -> None:
        if config is None:
            options.setdefault("base_dir", os.getcwd())
            config = SweepConfig(**options)
        elif options:
            config = replace(config, **options)
        self.config = config
        self.name = config.name
        self._objective = resolve_objective(config.objective, config.base_dir)
        self.storage: Storage = open_storage(config.storage_location())
        self._prepare_record()
        self.mlflow_tracker: Any = None
        self._ready = False
        self._pid = -1
        self._finish_mlflow = True  # local workers leave the sweep summary to their parent

    # --- construction ----------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **overrides: Any) -> Sweep:
        """A sweep from a YAML sweep file; ``overrides`` replace file keys (e.g. n_workers)."""
        cfg = load_sweep_file(path)
        overrides = {k: v for k, v in overrides.items() if v is not None}
        return cls(replace(cfg, **overrides) if overrides else cfg)

    @classmethod
    def join(cls, storage: str, name: str, **overrides: Any) -> Sweep:
        """Join an existing sweep from its stored definition (``hpo-lightning worker``)."""
        store = open_storage(storage, create=False)
        d = store.get_sweep(name).definition
        store.close()
        tuner = d.get("tuner") or {}
        cfg = SweepConfig(
            name=name,
            objective=d["objective"],
            space=d["space"],
            monitor=d["monitor"],
            mode=d["mode"],
            tuner=tuner.get("name", "tpe"),
            tuner_options=tuner.get("options", {}),
            n_trials=int(d["n_trials"]),
            storage=storage,
            seed=d.get("seed"),
            objective_args=d.get("objective_args", {}),
            scheduler=d.get("scheduler"),
            base_dir=d.get("base_dir", "."),
            mlflow=d.get("mlflow"),
            heartbeat_s=float(d.get("heartbeat_s", SweepConfig.heartbeat_s)),
            lost_after_s=float(d.get("lost_after_s", SweepConfig.lost_after_s)),
        )
        overrides = {k: v for k, v in overrides.items() if v is not None}
        return cls(replace(cfg, **overrides) if overrides else cfg)

    def _prepare_record(self) -> None:
        cfg = self.config
        definition = cfg.definition()
        existing = {s.name: s for s in self.storage.list_sweeps()}.get(cfg.name)
        if existing is not None:
            check_same_definition(cfg.name, existing.definition, definition)
            stored_seed = existing.definition.get("seed")
            if cfg.seed is None and stored_seed is not None:
                self.config = cfg = cfg.with_seed(int(stored_seed))
            self.record = existing
            if cfg.n_trials > int(existing.definition.get("n_trials") or 0):
                # an extended rerun: workers that join (hpo-lightning worker) read the new size
                self.record = self.storage.raise_n_trials(existing.id, cfg.n_trials)
            return
        if cfg.seed is None:
            self.config = cfg = cfg.with_seed(new_seed())
        definition = cfg.definition()
        if cfg.mlflow:
            definition["mlflow"] = dict(cfg.mlflow)
        self.record = self.storage.create_sweep(cfg.name, definition, mode=cfg.mode)
        if self.record.definition.get("seed") != cfg.seed:  # another process created it first
            check_same_definition(cfg.name, self.record.definition, definition)
            self.config = cfg.with_seed(int(self.record.definition["seed"]))

    def _make_mlflow_tracker(self) -> Any:
        from hpo_lightning.tracking import MLflowTracker

        m = dict(self.config.mlflow or {})
        tracker = MLflowTracker(
            tracking_uri=m.get("tracking_uri"),
            experiment_name=m.get("experiment") or self.name,
            storage=self.storage,
        )
        tracker.sweep_started(self.name, self.record.definition)
        return tracker

    def _setup(self) -> None:
        """Build the tuner, scheduler and trackers (in the process that runs trials)."""
        if self._ready and self._pid == os.getpid():
            return
        cfg = self.config
        self._pid = os.getpid()
        options = dict(cfg.tuner_options)
        if cfg.tuner == "auto":
            options.setdefault("budget", cfg.n_trials)  # choose by the sweep's planned size
        self.tuner = make_tuner(
            cfg.tuner, SearchSpace.from_dict(cfg.space), mode=cfg.mode, seed=cfg.seed, **options
        )
        self._reported: set[int] = set()
        self.scheduler = None
        if cfg.scheduler:
            from hpo_lightning.schedulers import make_scheduler

            options = dict(cfg.scheduler)
            if "seed" not in options and _accepts_seed(options.get("name")):
                options["seed"] = cfg.seed  # e.g. Hyperband's bracket draws follow the sweep seed
            self.scheduler = make_scheduler(**options)
        self._store_tracker = ExperimentTracker(self.storage, sweep=cfg.name)
        self._observers: list[Any] = []
        if cfg.mlflow:
            self.mlflow_tracker = self._make_mlflow_tracker()
            self._observers.append(self.mlflow_tracker)
        self._bus = EventBus()
        self._bus.subscribe(self._store_tracker, critical=True)
        for obs in self._observers:
            self._bus.subscribe(obs)
        self._heartbeat = Heartbeat(self.storage, cfg.heartbeat_s)
        # Import the callback (Lightning, torch: seconds) before the first claim, not while a
        # claimed trial waits for it without heartbeats and looks lost to the other workers.
        import hpo_lightning.lightning  # noqa: F401

        self._started = time.monotonic()
        self._ready = True

    # --- claiming ---------------------------------------------------------------------------
    def _reap(self) -> None:
        self.storage.fail_stale_trials(
            self.record.id, older_than_s=self.config.lost_after_s, is_alive=worker_alive
        )

    def _sync_tuner(self, trials: list[TrialRecord]) -> None:
        tuner = self.tuner
        tuner.clear_pending()
        for t in trials:
            if t.state is TrialState.RUNNING:
                tuner.add_pending(t.params)
            elif t.number not in self._reported:
                self._reported.add(t.number)
                value = t.value if t.value is not None else math.nan
                step = max(t.epochs - 1, 0) if t.state is TrialState.PRUNED else None
                tuner.report_result(t.params, value, state=t.state, step=step)

    def _claim(self, limit: int | None = None) -> TrialRecord | _Next:
        self._reap()
        return self.storage.claim_with(self.record.id, lambda c: self._decide(c, limit))

    def _decide(self, claim: Claim, limit: int | None) -> TrialRecord | _Next:
        """Inside the claim transaction: stop, wait, retry a lost trial, or add a new one.

        Safe to run again on fresh trials (a store may replay it after a lost connection):
        the tuner's pending set is rebuilt and each finished trial is reported once.
        """
        cfg = self.config
        trials = claim.trials
        s = summarize(trials, cfg.mode)
        failures = sum(1 for t in trials if t.state is TrialState.FAILED and not is_retriable(t))
        if failures >= cfg.max_failures:
            return _Next.FAILURES
        target = cfg.n_trials if limit is None else min(cfg.n_trials, limit)
        if s["done"] >= target:
            return _Next.DONE
        if s["done"] + s["running"] >= target:
            return _Next.WAIT
        if cfg.retry_lost:
            retried = {t.attrs.get("retry_of") for t in trials}
            for t in trials:
                if is_retriable(t) and t.number not in retried:
                    return claim.add_trial(t.params, tuner=t.tuner, attrs={"retry_of": t.number})
        self._sync_tuner(trials)
        params = self.tuner.suggest()
        if params is None:
            return _Next.WAIT if s["running"] else _Next.EXHAUSTED
        return claim.add_trial(params, tuner=self.tuner.name)

    def _next_trial(self, limit: int | None = None) -> TrialRecord | _Next:
        """Claim the next trial, waiting while in-flight trials may still need a slot."""
        while True:
            timeout = self.config.timeout
            if timeout is not None and time.monotonic() - self._started > timeout:
                return _Next.TIMEOUT
            nxt = self._claim(limit)
            if nxt is not _Next.WAIT:
                return nxt
            time.sleep(0.05)

    # --- running trials -------------------------------------------------------------------
    def _handle(self, rec: TrialRecord) -> TrialHandle:
        from hpo_lightning.lightning import HPOCallback

        trial = Trial(sweep=self.name, number=rec.number, params=dict(rec.params), id=rec.id)
        callback = HPOCallback(
            None,
            monitor=self.config.monitor,
            mode=self.config.mode,
            tracker=self._store_tracker,
            observers=self._observers,
            scheduler=self.scheduler,
            trial=trial,
            sweep=self.name,
        )
        return TrialHandle(self, rec, callback, self._bus)

    def _finish_handle(self, handle: TrialHandle, returned: Any) -> None:
        if handle.finished:
            return
        if (isinstance(returned, (int, float)) and not isinstance(returned, bool)) or (
            returned is not None and hasattr(returned, "item")
        ):
            handle.report(returned)
        else:
            handle.finish(
                TrialState.FAILED,
                math.nan,
                "the objective neither fitted a Trainer with the callback nor "
                "returned a metric value",
            )

    def _run_one(self, rec: TrialRecord) -> None:
        self._heartbeat.add(rec.id)  # before anything slow: the trial is claimed already
        try:
            handle = self._handle(rec)
        except BaseException:
            self._heartbeat.remove(rec.id)
            raise
        in_main = _in_main_thread()
        sigint = signal.getsignal(signal.SIGINT) if in_main else None
        try:
            returned = self._objective(
                dict(rec.params), handle.callback, **dict(self.config.objective_args)
            )
        except (KeyboardInterrupt, SystemExit) as exc:
            interrupted = (
                isinstance(exc, KeyboardInterrupt)
                or "interrupt" in str(getattr(handle.callback, "message", "") or "").lower()
                or _lightning_interrupt(handle)
            )
            self._fail(
                handle,
                f"{INTERRUPTED}stopped by Ctrl-C"
                if interrupted
                else f"SystemExit({getattr(exc, 'code', '')}) raised by the objective",
            )
            if interrupted or isinstance(exc, KeyboardInterrupt):
                raise KeyboardInterrupt from None
        except UserInputError as exc:
            # a wrong monitor or metric type fails every trial alike: stop and say so
            self._fail(handle, f"{type(exc).__name__}: {exc}")
            raise
        except Exception as exc:
            tb = "".join(traceback.format_exception(exc)[-8:])
            self._fail(handle, f"{type(exc).__name__}: {exc}\n{tb}"[:4000])
        else:
            self._finish_handle(handle, returned)
        finally:
            self._heartbeat.remove(rec.id)
            if in_main and sigint is not None:
                signal.signal(signal.SIGINT, sigint)  # Lightning ignores SIGINT after Ctrl-C

    def _fail(self, handle: TrialHandle, message: str) -> None:
        if handle.finished:
            # the callback already recorded the failure; keep an interruption retriable
            if message.startswith(INTERRUPTED):
                self.storage.finish_trial(
                    handle.record.id, TrialState.FAILED, None, message=message
                )
            return
        handle.finish(TrialState.FAILED, math.nan, message)

    # --- public API ---------------------------------------------------------------------------
    def run(
        self, *, n_workers: int | None = None, progress: str = "auto", max_trials: int | None = None
    ) -> SweepResult:
        """Run until n_trials trials finished (or timeout / max_failures / Ctrl-C).

        Args:
            n_workers: local worker processes (default: the config's).
            progress: "auto", "bar", "lines" or "quiet".
            max_trials: stop this call after this many finished trials in total (workers).
        """
        workers = n_workers or self.config.n_workers
        display = ProgressDisplay(
            self.name, self.config.n_trials, self.config.monitor, self.config.mode, style=progress
        )
        stopped = "done"
        try:
            with display:
                if workers > 1:
                    stopped = self._run_parallel(workers, display)
                else:
                    stopped = self._run_serial(display, max_trials)
        except KeyboardInterrupt:
            stopped = "interrupted"
        finally:
            self._close_run()
        return self.result(stopped)

    def _run_serial(self, display: ProgressDisplay, limit: int | None) -> str:
        self._setup()
        display.update(self.storage.get_trials(self.record.id))
        while True:
            nxt = self._next_trial(limit)
            if isinstance(nxt, _Next):
                return nxt.value
            self._run_one(nxt)
            if display.style != "quiet":
                display.update(self.storage.get_trials(self.record.id))

    def _run_parallel(self, workers: int, display: ProgressDisplay) -> str:
        from hpo_lightning.sweep._workers import run_parallel

        return run_parallel(self, workers, display)

    def __iter__(self) -> Iterator[TrialHandle]:
        """Yield trials for a loop you write; each is finished when the loop moves on."""
        self._setup()
        try:
            while True:
                nxt = self._next_trial()
                if not isinstance(nxt, TrialRecord):
                    return
                self._heartbeat.add(nxt.id)
                try:
                    handle = self._handle(nxt)
                except BaseException:
                    self._heartbeat.remove(nxt.id)
                    raise
                try:
                    yield handle
                except GeneratorExit:
                    self._fail(handle, f"{INTERRUPTED}the loop stopped during this trial")
                    raise
                finally:
                    self._heartbeat.remove(nxt.id)
                self._finish_handle(handle, None)
        finally:
            self._close_run()

    def _close_run(self) -> None:
        if not self._ready:
            return
        self._heartbeat.stop()
        self._ready = False  # a later run() sets everything up again
        tracker, self.mlflow_tracker = self.mlflow_tracker, None
        if tracker is not None:
            try:
                if self._finish_mlflow:
                    tracker.sweep_finished(self.name)
                tracker.close()
            except Exception as exc:  # MLflow is a mirror; never fail the sweep for it
                import logging

                logging.getLogger("hpo_lightning").warning("MLflow at sweep end failed: %s", exc)

    def result(self, stopped: str = "done") -> SweepResult:
        trials = self.storage.get_trials(self.record.id)
        s = summarize(trials, self.config.mode)
        first_error = next(
            (t.message for t in trials if t.state is TrialState.FAILED and not is_retriable(t)),
            None,
        )
        if stopped == "done":
            stopped = stop_reason(self.config, trials)
        return SweepResult(
            name=self.name,
            stopped=stopped,
            n_complete=s["complete"],
            n_pruned=s["pruned"],
            n_failed=s["failed"],
            best=s["best"],
            first_error=first_error,
            storage_url=redact_url(self.storage.url),
        )

    def trials(self) -> list[TrialRecord]:
        return self.storage.get_trials(self.record.id)

    def close(self) -> None:
        self.storage.close()

    def __repr__(self) -> str:
        return f"Sweep({self.name!r}, storage={redact_url(self.storage.url)!r})"


def _accepts_seed(name: object) -> bool:
    import inspect

    from hpo_lightning.schedulers import _registry

    cls = _registry._REGISTRY.get(name) if isinstance(name, str) else None
    return cls is not None and "seed" in inspect.signature(cls).parameters


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _lightning_interrupt(handle: TrialHandle) -> bool:
    msg = getattr(handle.callback, "message", None) or ""
    return "KeyboardInterrupt" in msg or msg.startswith("interrupted")


def run_sweep(objective: Any, **options: Any) -> SweepResult:
    """Run a sweep of ``objective(params, callback)``; options are SweepConfig's fields.

    Example:
        >>> import hpo_lightning as hl
        >>> res = hl.run_sweep(lambda p, cb: p["x"] ** 2, name="q", space={"x": hl.Float(-1, 1)},
        ...                    monitor="loss", n_trials=4, storage=":memory:", progress="quiet")
        >>> res.n_complete
        4
    """
    progress = options.pop("progress", "auto")
    n_workers = options.pop("n_workers", None)
    sweep = Sweep(objective=objective, **options)
    try:
        return sweep.run(n_workers=n_workers, progress=progress)
    finally:
        sweep.close()
