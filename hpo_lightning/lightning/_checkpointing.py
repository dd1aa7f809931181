"""The checkpoint side of HPOCallback: a trial's checkpoints, resuming it, PBT steps.

A mixin of the callback's implementation (same object, same attributes); the file-level work
is in :mod:`hpo_lightning.sweep._checkpoints`.
"""

from __future__ import annotations

import logging
from typing import Any

from hpo_lightning.schedulers import Exploit
from hpo_lightning.tracking import Tracker

log = logging.getLogger("hpo_lightning")
_WARNED: set[str] = set()  # process-wide one-time warnings, by key


def _warn_once(key: str, message: str) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        log.warning(message)


class CheckpointHooks:
    """Checkpoint methods of the callback (see ``_callback.py`` for the attributes used)."""

    trial: Any
    tracker: Tracker | None
    scheduler: Any
    checkpoints: Any
    resume: str | None
    explored: bool
    mode: Any
    monitor: str
    epochs: int
    _ckpt: Any
    _sweep_id: int | None

    def _record_value(self, epoch: int, value: float, *, restored: bool = False) -> None:
        # defined by the callback
        raise NotImplementedError

    def _start_checkpoints(self, trainer: Any, pl_module: Any) -> None:
        """Set up this trial's checkpoints; a resumed trial loads its latest one (on every
        rank, before Lightning restores anything) and continues its stored curve."""
        from hpo_lightning.sweep._checkpoints import TrialCheckpointer, remove_files

        assert self.trial is not None
        if trainer.is_global_zero and getattr(trainer, "checkpoint_callbacks", None):
            _warn_once(
                "double-checkpoint",
                "the Trainer writes checkpoints with its own ModelCheckpoint and the sweep's "
                "`checkpoints:` writes the trial's too; pass enable_checkpointing=False (and no "
                "ModelCheckpoint) to write each epoch once, or drop `checkpoints:`",
            )
        storage: Any = getattr(self.tracker, "storage", None) if trainer.is_global_zero else None
        records: list[Any] = []
        if storage is not None and self.trial.id is not None:
            sweep_id = storage.get_sweep(self.trial.sweep).id
            records = storage.get_checkpoints(sweep_id).get(self.trial.number, [])
        self._ckpt = TrialCheckpointer(
            self.checkpoints,
            storage=storage,
            mode=self.mode,
            records=records,
            retain=getattr(self.scheduler, "keeps_checkpoint", None),
        )
        if not self.resume:
            return
        resumed = self._ckpt.restore(trainer, pl_module, self.resume, explored=self.explored)
        if storage is None or self.trial.id is None:
            return
        if not resumed:  # restart from epoch 0: what the trial stored before is trained again
            storage.discard_epochs(self.trial.id, -1)
            remove_files([r.path for r in records])
            self._ckpt.records = []
            return
        last = max((r.epoch for r in records), default=-1)
        for epoch, metrics in sorted(storage.get_metrics(self.trial.id).items()):
            if epoch <= last and self.monitor in metrics:
                self._record_value(epoch, metrics[self.monitor], restored=True)
        self.epochs = last + 1

    def _can_exploit(self, trainer: Any, step: Exploit) -> bool:
        """Whether an epoch is left to train and the donor's checkpoint of that epoch is
        recorded (else the trial goes on)."""
        storage: Any = getattr(self._ckpt, "storage", None)
        last = getattr(trainer, "max_epochs", None)
        if storage is None or self.trial is None or (last and 0 < last <= step.epoch + 1):
            return False
        if self._sweep_id is None:
            self._sweep_id = storage.get_sweep(self.trial.sweep).id
        records = storage.get_checkpoints(self._sweep_id).get(step.donor, [])
        return any(r.epoch == step.epoch for r in records)
