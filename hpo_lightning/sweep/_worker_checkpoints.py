"""The checkpoint side of the Worker: reopening requeued trials, keep, PBT continuations.

A mixin of :class:`~hpo_lightning.sweep.Worker` (same object); see docs/checkpoints.md.
"""

from __future__ import annotations

import logging
from typing import Any

from hpo_lightning.space import SearchSpace
from hpo_lightning.storage import Claim, Storage, SweepRecord, TrialRecord
from hpo_lightning.sweep._config import SweepConfig
from hpo_lightning.sweep._runtime import TrialHandle
from hpo_lightning.sweep._stop import StopToken

log = logging.getLogger("hpo_lightning")


class CheckpointingWorker:
    """Checkpoint methods of the Worker (its attributes are declared here for the checker)."""

    config: SweepConfig
    storage: Storage
    record: SweepRecord
    stop_token: StopToken
    checkpoints: Any  # the sweep's CheckpointPolicy, or None
    scheduler: Any

    def _where(self) -> dict[str, Any]:  # defined by the Worker
        raise NotImplementedError

    def handle(self, rec: TrialRecord, *, explored: bool = False) -> TrialHandle:  # the Worker's
        raise NotImplementedError

    def interrupt(self, handle: TrialHandle) -> None:  # the Worker's
        raise NotImplementedError

    def _reopen(self, claim: Claim, t: TrialRecord, losses: int) -> TrialRecord | None:
        """Resume requeued trial ``t`` from its checkpoint (None: it has none).

        A trial that trained an epoch since it was last resumed made progress: its losses start
        again from 0, so a trial preempted many times keeps resuming, while one that dies twice
        without progress still fails as CRASHED.
        """
        if t.epochs > int(t.attrs.get("resumed_epochs", 0)):
            losses = 0
        attrs = {
            **t.attrs,
            **self._where(),
            "losses": losses,
            "resumes": int(t.attrs.get("resumes", 0)) + 1,
        }
        return claim.reopen_trial(t, attrs=attrs)  # (the store adds resumed_epochs)

    def resume_path(self, number: int) -> str | None:
        """The latest checkpoint of trial ``number`` (a reopened trial resumes from it)."""
        if self.checkpoints is None:
            return None
        records = self.storage.get_checkpoints(self.record.id).get(number)
        return records[-1].path if records else None

    def settle_checkpoints(self, *, final: bool = False) -> None:
        """Apply ``keep`` to finished trials' checkpoints (a failure only logs a warning).

        Until the sweep is over (``final``), checkpoints a scheduler may still copy (PBT
        donors) stay.
        """
        if self.checkpoints is None:
            return
        from hpo_lightning.sweep._checkpoints import settle_checkpoints

        retain = None if final else getattr(self.scheduler, "keeps_checkpoint", None)
        try:
            settle_checkpoints(
                self.storage,
                self.record.id,
                mode=self.config.epoch_mode,
                keep=self.checkpoints.keep,
                retain=retain,
            )
        except Exception as exc:  # files left behind are no reason to stop the sweep
            log.warning("could not clean up checkpoints: %s: %s", type(exc).__name__, exc)

    def _continued(self, handle: TrialHandle) -> TrialHandle | None:
        """After a fit that a PBT step ended: the same trial with the donor's weights and
        explored params (see _exploit.py); None when the trial is over."""
        step = getattr(handle.callback, "exploit", None)
        if step is None or self.checkpoints is None:
            return None
        if self.stop_token.requested:
            self.interrupt(handle)
            return None
        from hpo_lightning.sweep._exploit import apply_exploit

        rec = apply_exploit(
            self.storage,
            self.record.id,
            handle.record,
            step,
            policy=self.checkpoints,
            scheduler=self.scheduler,
            space=SearchSpace.from_dict(self.config.space),
            monitor=self.config.epoch_monitor,
            attrs=handle.record.attrs,
        )
        return self.handle(rec, explored=True)
