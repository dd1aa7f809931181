"""The scheduler strategy: whether a running trial goes on.

Contract for every :class:`Scheduler`:

* ``decide(curve, others, mode=...)`` is a pure query. It reads the learning curve of the trial
  being decided and the curves of the other trials of the sweep (running, complete, pruned or
  failed) and returns a :class:`Decision`. It writes nothing, keeps no state between calls and
  gives the same answer for the same arguments; the caller (the Lightning callback or the sweep
  driver) applies the decision and writes the trial's state.
* ``curve`` ends at the epoch just reported: ``curve.last_epoch`` is the epoch being decided.
  ``others`` never contains ``curve``'s own trial.
* Epochs are 0-based: the value at epoch ``e`` was reported after ``e + 1`` epochs of training.
  A decision to stop at epoch ``e`` means the trial trained ``e + 1`` epochs.
* A NaN value (a diverged trial) ranks after every finite value.
* A scheduler that moves trials rather than stopping them (PBT) may return an :class:`Exploit`
  value instead: "continue from trial ``donor``'s checkpoint of ``epoch``". The caller applies it
  (the callback ends the fit, the worker copies the checkpoint and continues the trial); a caller
  that cannot (no checkpoints) treats it as CONTINUE.
* Options are validated in the constructor (errors name the option, the value and the rule),
  so a bad scheduler fails before any training starts.
"""

from __future__ import annotations

import bisect
import enum
import functools
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from hpo_lightning._trial import Mode, TrialState
from hpo_lightning.exceptions import UserInputError


class Decision(str, enum.Enum):
    """What a scheduler says about a running trial."""

    CONTINUE = "continue"
    STOP = "stop"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Exploit:
    """Continue the trial from trial ``donor``'s checkpoint of ``epoch`` with explored params
    (a PBT decision; see the contract above)."""

    donor: int
    epoch: int


@dataclass(frozen=True)
class LearningCurve:
    """The monitored value of one trial at each epoch it reported, as an immutable value.

    Attributes:
        trial: the trial's number in its sweep (Hyperband assigns brackets by it).
        points: ``(epoch, value)`` pairs, epochs strictly increasing; epochs without a report
            (e.g. with ``check_val_every_n_epoch > 1``) are absent.

    Example:
        >>> c = LearningCurve.of(3, [0.5, 0.4, 0.35])
        >>> c.last_epoch, c.at(1), c.at(7)
        (2, 0.4, None)
    """

    trial: int
    points: tuple[tuple[int, float], ...] = ()
    _index: dict[int, float] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        previous = -1
        for epoch, _ in self.points:
            if not isinstance(epoch, int) or epoch <= previous:
                raise UserInputError(
                    f"a learning curve's epochs must be increasing integers >= 0, but trial "
                    f"{self.trial} has epoch {epoch!r} after {previous}"
                )
            previous = epoch
        object.__setattr__(self, "_index", dict(self.points))

    @classmethod
    def of(cls, trial: int, values: Mapping[int, float] | Sequence[float]) -> LearningCurve:
        """Build a curve from ``{epoch: value}`` or from a dense list (index = epoch)."""
        items = sorted(values.items()) if isinstance(values, Mapping) else enumerate(values)
        return cls(trial, tuple((int(e), float(v)) for e, v in items))

    @property
    def last_epoch(self) -> int | None:
        """The last epoch with a value, or None for an empty curve."""
        return self.points[-1][0] if self.points else None

    @property
    def last(self) -> float | None:
        """The last reported value, or None for an empty curve."""
        return self.points[-1][1] if self.points else None

    def at(self, epoch: int) -> float | None:
        """The value reported at ``epoch``, or None when the trial reported none there."""
        return self._index.get(epoch)

    def mean_upto(self, epoch: int) -> float | None:
        """The mean of the finite values at epochs ``<= epoch`` (None if there is none).

        Prefix sums are built once per curve, so a scheduler asking every epoch about many
        finished trials pays a bisection per trial, not a pass over its curve.
        """
        epochs, sums, counts = self._prefix
        i = bisect.bisect_right(epochs, epoch)
        return sums[i - 1] / counts[i - 1] if i and counts[i - 1] else None

    @functools.cached_property
    def _prefix(self) -> tuple[list[int], list[float], list[int]]:
        epochs, sums, counts, total, n = [], [], [], 0.0, 0
        for e, v in self.points:
            if math.isfinite(v):
                total, n = total + v, n + 1
            epochs.append(e)
            sums.append(total)
            counts.append(n)
        return epochs, sums, counts

    def upto(self, epoch: int) -> list[float]:
        """The values reported at epochs ``<= epoch``, in epoch order."""
        return [v for e, v in self.points if e <= epoch]


def loss_of(value: float, mode: Mode) -> float:
    """``value`` as "lower is better" for ``mode``; NaN becomes +inf (ranks last)."""
    if math.isnan(value):
        return math.inf
    return value if mode == "min" else -value


class Scheduler(ABC):
    """Base class of the early-stopping strategies; see the module docstring for the contract.

    Subclasses implement :meth:`decide` and list their constructor options in :meth:`options`
    (so ``make_scheduler(s.name, **s.options())`` rebuilds an equal scheduler).

    Example:
        >>> class StopAfter(Scheduler):
        ...     name = "stop-after"
        ...     def __init__(self, *, epochs: int = 3) -> None:
        ...         self.epochs = epochs
        ...     def decide(self, curve, others, *, mode):
        ...         done = (curve.last_epoch or 0) + 1 >= self.epochs
        ...         return Decision.STOP if done else Decision.CONTINUE
        ...     def options(self):
        ...         return {"epochs": self.epochs}
        >>> StopAfter(epochs=2).decide(LearningCurve.of(0, [1.0, 0.9]), [], mode="min")
        <Decision.STOP: 'stop'>
    """

    name: ClassVar[str] = "base"

    @abstractmethod
    def decide(
        self, curve: LearningCurve, others: Sequence[LearningCurve], *, mode: Mode
    ) -> Decision | Exploit:
        """Whether the trial of ``curve`` trains another epoch (pure; see the contract)."""

    @abstractmethod
    def options(self) -> dict[str, Any]:
        """The constructor options of this scheduler, by name."""

    def expected_cost(self) -> float | None:
        """The share of a full training (``max_epochs``) one trial is expected to cost here.

        1.0 for a scheduler that never stops a trial; None (this default) when the scheduler
        cannot tell from its options (the median rule stops wherever a trial falls behind).
        The ``auto`` tuner counts a sweep's budget in full trainings with it.
        """
        return None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Scheduler) or type(other) is not type(self):
            return NotImplemented
        return other.options() == self.options()

    def __hash__(self) -> int:
        return hash((type(self), tuple(sorted(self.options().items()))))

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        return f"{type(self).__name__}({opts})"


class NoScheduler(Scheduler):
    """Never stops a trial (the default: every trial trains to the Trainer's ``max_epochs``).

    Example:
        >>> NoScheduler().decide(LearningCurve.of(0, [9.0]), [], mode="min")
        <Decision.CONTINUE: 'continue'>
    """

    name: ClassVar[str] = "none"

    def decide(
        self, curve: LearningCurve, others: Sequence[LearningCurve], *, mode: Mode
    ) -> Decision:
        return Decision.CONTINUE

    def options(self) -> dict[str, Any]:
        return {}

    def expected_cost(self) -> float:
        return 1.0


def reported_value(curve: LearningCurve, state: TrialState, *, mode: Mode) -> float:
    """The value a finished trial is reported with (to the tuner and the store).

    A trial that trained in full counts by its best epoch (the checkpoint a user keeps); a
    trial stopped by a scheduler counts by its last value, what it reached when it was judged,
    not by an earlier best. NaN when the curve has no finite value.
    """
    finite = [v for _, v in curve.points if math.isfinite(v)]
    if not finite:
        return math.nan
    if state is TrialState.PRUNED:
        last = curve.last
        return math.nan if last is None else last
    return min(finite) if mode == "min" else max(finite)
