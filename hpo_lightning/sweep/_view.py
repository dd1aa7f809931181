"""A worker's view of its sweep's trials, kept up to date from what each claim read.

A claim reads only the trials changed since the worker's last claim (see ``Storage.claim``);
this view folds them in and keeps what the claim decision needs -- counts per state, the
running trials, the requeued trials not yet rerun, the finished trials not yet reported to
the tuner -- so that a claim costs the same at trial 10,000 as at trial 100.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hpo_lightning._trial import TrialState
from hpo_lightning.storage import Claim, TrialRecord
from hpo_lightning.sweep._progress import state_counts
from hpo_lightning.sweep._result import REQUEUED


class SweepView:
    """The trials of one sweep as this worker last read them.

    Folding in a trial twice, or an older read of it again, changes nothing: a claim that was
    rolled back leaves the view right, and the next claim reads from the last committed one.
    """

    def __init__(self) -> None:
        self.since: int | None = None  # the change count of the last committed claim
        self._trials: dict[int, TrialRecord] = {}  # by number
        self._counts = dict.fromkeys(TrialState, 0)
        self._running: dict[int, TrialRecord] = {}
        self._requeued: dict[int, TrialRecord] = {}
        self._retry_of: dict[int, Any] = {}  # trial number -> the number it reran
        self._retried: dict[Any, int] = {}  # number reran -> how many trials rerun it
        self.unreported: dict[int, TrialRecord] = {}  # finished, not yet told to the tuner

    def read(self, claim: Claim) -> None:
        """Fold in what a claim read (all trials, or only those changed, per ``claim.since``)."""
        if claim.since is None or claim.since != self.since:
            self._reset()
        self._fold(claim.trials)

    def committed(self, claim: Claim) -> None:
        """After the claim committed: fold in what it wrote; read from its count next time."""
        self._fold(claim.trials)
        self.since = claim.changes

    def _reset(self) -> None:
        unreported = self.unreported
        self.__init__()  # type: ignore[misc]
        self.unreported = unreported  # the tuner has not seen these either way

    def _fold(self, trials: Iterable[TrialRecord]) -> None:
        for t in trials:
            old = self._trials.get(t.number)
            if old is not None:
                if old.changed > t.changed > 0:
                    continue  # an older read of this trial
                self._drop(old)
            self._trials[t.number] = t
            self._counts[t.state] += 1
            if t.state is TrialState.RUNNING:
                self._running[t.number] = t
            elif t.state in REQUEUED:
                self._requeued[t.number] = t
            else:
                self.unreported[t.number] = t
            retry_of = t.attrs.get("retry_of")
            if retry_of is not None:
                self._retry_of[t.number] = retry_of
                self._retried[retry_of] = self._retried.get(retry_of, 0) + 1

    def _drop(self, t: TrialRecord) -> None:
        self._counts[t.state] -= 1
        self._running.pop(t.number, None)
        self._requeued.pop(t.number, None)
        self.unreported.pop(t.number, None)
        retry_of = self._retry_of.pop(t.number, None)
        if retry_of is not None:
            self._retried[retry_of] -= 1
            if not self._retried[retry_of]:
                del self._retried[retry_of]

    # --- what a claim decision reads ---------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """The counts of ``summarize`` (without ``best``)."""
        return state_counts(self._counts)

    def running(self) -> list[TrialRecord]:
        """RUNNING trials by number."""
        return [self._running[n] for n in sorted(self._running)]

    def pending_requeue(self) -> list[TrialRecord]:
        """Requeued trials (interrupted, lost) whose params have not run again yet, by number
        (as ``pending_requeue`` of the whole list)."""
        return [self._requeued[n] for n in sorted(self._requeued) if n not in self._retried]
