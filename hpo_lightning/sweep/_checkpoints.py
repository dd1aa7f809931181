"""Per-trial checkpoints: where they go, writing and resuming them, and what is kept.

The callback writes a checkpoint with ``trainer.save_checkpoint`` (every rank calls it: it is
collective under DDP, and rank 0 writes the file) after every ``every``-th epoch, records it in
the store on rank 0, and keeps, while the trial runs, only its latest checkpoint (to resume from)
and the one of its best epoch. When a trial ends, :func:`settle_checkpoints` applies ``keep``
across the sweep. Files are named ``<directory>/trial-<number>/epoch-<epoch>.ckpt``; the
directory may be any fsspec URL (``s3://bucket/sweeps/x``). Nothing is pickled into the store:
it holds paths, epochs and values.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from hpo_lightning._trial import Mode, TrialState, best_trial, check_int, is_better
from hpo_lightning.exceptions import ConfigError

log = logging.getLogger("hpo_lightning")
Keep = Literal["best", "last", "none"]
_KEEP = ("best", "last", "none")


@dataclass(frozen=True)
class CheckpointPolicy:
    """Where a sweep's checkpoints go and which survive.

    Attributes:
        directory: the sweep's checkpoint folder, a local path or an fsspec URL.
        keep: ``best``: only the sweep's best trial's checkpoint of its best epoch stays;
            ``last``: every complete trial keeps the checkpoint of its last epoch; ``none``:
            a trial's files are deleted when it ends (checkpoints then only serve resuming).
            Pruned and failed trials' files are always deleted.
        every: write after every ``every``-th epoch (and resume from the latest written).

    Example:
        >>> p = CheckpointPolicy("/tmp/ckpts", keep="best", every=1)
        >>> p.path(3, 7)
        '/tmp/ckpts/trial-00003/epoch-0007.ckpt'
    """

    directory: str
    keep: Keep = "best"
    every: int = 1

    def __post_init__(self) -> None:
        if self.keep not in _KEEP:
            raise ConfigError(
                f"`checkpoints.keep` must be one of best, last, none, but got {self.keep!r}"
            )
        check_int("checkpoints.every", self.every, at_least=1, error=ConfigError)
        if not isinstance(self.directory, str) or not self.directory:
            raise ConfigError(
                f"`checkpoints.dir` must be a folder path or URL, but got {self.directory!r}"
            )

    def path(self, number: int, epoch: int) -> str:
        return f"{self.directory.rstrip('/')}/trial-{number:05d}/epoch-{epoch:04d}.ckpt"

    def due(self, epoch: int) -> bool:
        """Whether the checkpoint of ``epoch`` (0-based) is written."""
        return (epoch + 1) % self.every == 0

    def to_dict(self) -> dict[str, Any]:
        return {"dir": self.directory, "keep": self.keep, "every": self.every}


def policy_from(section: Any, *, default_dir: str) -> CheckpointPolicy | None:
    """The policy of a ``checkpoints:`` section (``true``/mapping; None/false: no checkpoints)."""
    if section is None or section is False:
        return None
    if section is True:
        section = {}
    if not isinstance(section, Mapping):
        raise ConfigError(
            f"`checkpoints` must be true or a mapping (dir, keep, every), got {section!r}"
        )
    unknown = set(section) - {"dir", "keep", "every"}
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(f"`checkpoints`: unknown key {key!r} (keys: dir, keep, every)")
    return CheckpointPolicy(
        directory=str(section.get("dir") or default_dir),
        keep=section.get("keep", "best"),
        every=section.get("every", 1),
    )


def remove_files(paths: Sequence[str]) -> None:
    """Delete checkpoint files (local or fsspec URLs); a missing file is no error."""
    for path in paths:
        try:
            if "://" in path:
                import fsspec

                fs, inner = fsspec.core.url_to_fs(path)
                fs.rm(inner)
            else:
                os.remove(path)
                _remove_empty(os.path.dirname(path))
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("could not delete checkpoint %s: %s", path, exc)


@contextlib.contextmanager
def local_copy(path: str) -> Iterator[str]:
    """A local file with the checkpoint's bytes (the file itself when it is local)."""
    if "://" not in path:
        yield path
        return
    import tempfile

    import fsspec

    with tempfile.TemporaryDirectory(prefix="hpo-ckpt-") as tmp:
        local = os.path.join(tmp, os.path.basename(path))
        with fsspec.open(path, "rb") as src, open(local, "wb") as dst:
            dst.write(src.read())
        yield local


def _remove_empty(folder: str) -> None:
    with contextlib.suppress(OSError):
        os.rmdir(folder)  # only succeeds when empty


def best_epoch(records: Sequence[Any], mode: Mode) -> Any:
    """The checkpoint record with the best value (the latest one when none has a value)."""
    best = records[-1]
    for rec in records:
        if is_better(rec.value, best.value, mode) or (best.value is None and rec.value is not None):
            best = rec
    return best


def settle_checkpoints(
    storage: Any,
    sweep_id: int,
    *,
    mode: Mode,
    keep: Keep,
    retain: Callable[[int], bool] | None = None,
) -> int:
    """Apply ``keep`` to the sweep's finished trials; return how many files were deleted.

    ``retain(epoch)`` keeps those epochs' files too (PBT donors, until the sweep ends).
    Safe to run from several workers at once: a finished trial that is not the sweep's best now
    can never become it (values of finished trials do not change), so deletions only ever
    concern files nobody will ask for. Requeued trials keep their files (they resume from them).
    """
    trials = {t.number: t for t in storage.get_trials(sweep_id)}
    ckpts = storage.get_checkpoints(sweep_id)
    top = best_trial((t for t in trials.values() if t.number in ckpts), mode)
    best = None if top is None else top.number
    doomed: list[Any] = []
    for number, records in ckpts.items():
        t = trials.get(number)
        if t is None or t.state is TrialState.RUNNING or t.state.requeued:
            continue
        if t.state is not TrialState.COMPLETE or keep == "none":
            doomed.extend(records)
        elif keep == "last":
            doomed.extend(records[:-1])
        elif number == best:
            chosen = best_epoch(records, mode)
            doomed.extend(r for r in records if r is not chosen)
        else:
            doomed.extend(records)
    if retain is not None:
        doomed = [r for r in doomed if not retain(r.epoch)]
    for rec in doomed:
        remove_files([rec.path])
        storage.delete_checkpoints(rec.trial_id, [rec.epoch])
    return len(doomed)


def best_checkpoint(storage: Any, sweep_id: int, *, mode: Mode) -> str | None:
    """The path of the best complete trial's checkpoint (its best epoch), or None. With
    constraints the best is the best feasible trial; with several objectives, the front's
    first trial as ``best`` lists it (feasible, then the first objective)."""
    found = best_checkpoint_of(storage, sweep_id, mode=mode)
    return None if found is None else found[1]


def best_checkpoint_of(storage: Any, sweep_id: int, *, mode: Mode) -> tuple[int, str] | None:
    """``(trial number, path)`` of the best complete trial's checkpoint, or None."""
    trials = storage.get_trials(sweep_id)
    ckpts = storage.get_checkpoints(sweep_id)
    best = best_trial((t for t in trials if t.number in ckpts), mode)
    if best is None:
        return None
    return best.number, str(best_epoch(ckpts[best.number], mode).path)


class TrialCheckpointer:
    """Writes, records and prunes one trial's checkpoints during its fit; resumes it.

    Every rank calls :meth:`restore` and :meth:`after_epoch` (saving is collective under DDP);
    only global rank 0 touches the store and deletes files.
    """

    def __init__(
        self,
        policy: CheckpointPolicy,
        *,
        storage: Any,
        mode: Mode,
        records: Sequence[Any] = (),
        retain: Callable[[int], bool] | None = None,
    ) -> None:
        self.policy = policy
        self.storage = storage
        self.mode = mode
        self.records: list[Any] = list(records)
        self.retain = retain  # epochs whose checkpoint stays while the sweep runs (PBT donors)

    def restore(self, trainer: Any, pl_module: Any, path: str, *, explored: bool = False) -> bool:
        """Load ``path`` into the model, optimizers, schedulers and loops, as
        ``trainer.fit(ckpt_path=path)`` would; False (and a warning) when it cannot be read.

        ``explored``: the file is a PBT donor's and the params were explored, so the optimizers
        keep the hyper-parameters they were built with (lr, weight_decay...) and the learning
        rate schedulers start anew.
        """
        try:
            # our own file (written by this sweep), holding optimizer and loop state
            ckpt = trainer.strategy.load_checkpoint(path, weights_only=False)
            trainer.strategy.load_model_state_dict(ckpt)
            pl_module.on_load_checkpoint(ckpt)
            fresh = [
                [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
                for opt in trainer.optimizers
            ]
            trainer.strategy.load_optimizer_state_dict(ckpt)
            if explored:
                for opt, groups in zip(trainer.optimizers, fresh):
                    for group, hparams in zip(opt.param_groups, groups):
                        group.update(hparams)
            schedulers = [] if explored else ckpt.get("lr_schedulers", [])
            for config, state in zip(trainer.lr_scheduler_configs, schedulers):
                config.scheduler.load_state_dict(state)
            plugin = trainer.precision_plugin
            if type(plugin).__qualname__ in ckpt:
                plugin.load_state_dict(ckpt[type(plugin).__qualname__])
            trainer.fit_loop.load_state_dict(ckpt["loops"]["fit_loop"])
        except Exception as exc:
            log.warning(
                "could not resume from checkpoint %s (%s: %s); the trial restarts from epoch 0",
                path,
                type(exc).__name__,
                exc,
            )
            return False
        return True

    def after_epoch(self, trainer: Any, trial: Any, epoch: int, value: float | None) -> None:
        """Write the checkpoint of ``epoch`` when due; on rank 0 record it and drop older ones
        except the trial's best (kept for ``keep: best``)."""
        if not self.policy.due(epoch):
            return
        path = self.policy.path(trial.number, epoch)
        trainer.save_checkpoint(path)
        if not trainer.is_global_zero or self.storage is None or trial.id is None:
            return
        from hpo_lightning.storage import CheckpointRecord

        self.storage.add_checkpoint(trial.id, epoch, path, value)
        self.records = [r for r in self.records if r.epoch != epoch]
        self.records.append(CheckpointRecord(trial.id, epoch, path, value))
        keep = {id(self.records[-1]), id(best_epoch(self.records, self.mode))}
        if self.retain is not None:
            keep |= {id(r) for r in self.records if self.retain(r.epoch)}
        stale = [r for r in self.records if id(r) not in keep]
        if stale:
            self.storage.delete_checkpoints(trial.id, [r.epoch for r in stale])
            remove_files([r.path for r in stale])
            self.records = [r for r in self.records if id(r) in keep]


def load_best(storage: Any, name: str, model_class: Any = None, **load_options: Any) -> Any:
    """The best trial's checkpoint of sweep ``name``: its path, or loaded into ``model_class``.

    Args:
        storage: a store path/URL or an open Storage.
        name: the sweep's name.
        model_class: a LightningModule class; when given, returns
            ``model_class.load_from_checkpoint(path, **load_options)``.

    Raises:
        CheckpointNotFoundError: the sweep has no complete trial with a kept checkpoint.

    Example::

        model = hl.load_best("hpo_lightning.db", "digits", DigitsMLP)
    """
    from hpo_lightning.exceptions import CheckpointNotFoundError
    from hpo_lightning.storage import open_storage

    store = open_storage(storage, create=False)
    try:
        sweep = store.get_sweep(name)
        path = best_checkpoint(store, sweep.id, mode=sweep.mode)
    finally:
        if store is not storage:
            store.close()
    if path is None:
        raise CheckpointNotFoundError(
            f"sweep '{name}' has no checkpoint of a complete trial; run it with a "
            "`checkpoints:` section (keep: best or last)"
        )
    if model_class is None:
        return path
    return model_class.load_from_checkpoint(path, **load_options)
