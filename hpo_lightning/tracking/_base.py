"""The tracker interface: observers of training events that record them somewhere."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hpo_lightning._trial import Mode, Trial
from hpo_lightning.events import TrainingEvent

if TYPE_CHECKING:
    from hpo_lightning.storage import Storage


class Tracker(ABC):
    """An observer of :class:`~hpo_lightning.events.TrainingEvent` that records trials.

    Contract: ``on_event`` handles every event kind (ignoring those it does not record) and
    is cheap enough to run between epochs; ``sweep_started``/``sweep_finished`` bracket a
    sweep run by the driver; ``close`` releases connections and may be called twice.

    What :class:`~hpo_lightning.HPOCallback` asks of the tracker it is given: ``start_trial``
    (a tracker that numbers trials itself returns their identity; the default returns None and
    the callback numbers them) and ``storage`` (a store to read the sweep's learning curves
    from for early stopping; None: the callback uses the curves of the trials it ran).
    """

    storage: Storage | None = None

    @abstractmethod
    def on_event(self, event: TrainingEvent) -> None: ...

    def start_trial(
        self, params: Mapping[str, Any], *, mode: Mode = "min", tuner: str | None = None
    ) -> Trial | None:
        """Create and return the identity of a new trial of ``params``, or None."""
        return None

    def sweep_started(self, name: str, definition: Mapping[str, Any]) -> None:
        """A sweep starts (or resumes) in this process."""

    def sweep_finished(self, name: str) -> None:
        """A sweep run by this process ended."""

    def close(self) -> None:
        """Release resources."""
