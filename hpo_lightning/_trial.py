"""Values shared by the core: trial states, optimisation mode, trial identity, metric checks."""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from hpo_lightning.exceptions import InvalidMetricError, UserInputError

Mode = Literal["min", "max"]


class TrialState(str, enum.Enum):
    """Life cycle of a trial. RUNNING is the only non-final state.

    COMPLETE and PRUNED trials count towards ``n_trials``; FAILED ones towards
    ``max_failures``. INTERRUPTED (stopped by Ctrl-C/SIGTERM or a stop request) and LOST (its
    worker died) are *requeued*: the sweep runs their params again and counts them as neither.
    """

    RUNNING = "running"
    COMPLETE = "complete"
    PRUNED = "pruned"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    LOST = "lost"

    @property
    def is_finished(self) -> bool:
        return self is not TrialState.RUNNING

    @property
    def requeued(self) -> bool:
        """Cut short through no fault of its params: run again, never a failure."""
        return self in (TrialState.INTERRUPTED, TrialState.LOST)

    def __str__(self) -> str:
        return self.value


class FailureKind(str, enum.Enum):
    """Why a FAILED trial failed, stored with it (never parsed from its message)."""

    ERROR = "error"  # the objective raised
    DIVERGED = "diverged"  # the monitored value was NaN or infinite
    NO_METRIC = "no_metric"  # the objective neither reported nor logged the monitored value
    BAD_INPUT = "bad_input"  # a wrong monitor or metric type: every trial would fail alike
    CRASHED = "crashed"  # its worker died more than once on these params (segfault, OOM...)

    def __str__(self) -> str:
        return self.value


def check_mode(mode: Any) -> Mode:
    """Validate an optimisation mode ("min" or "max", Lightning's convention)."""
    if mode not in ("min", "max"):
        raise UserInputError(f"`mode` must be 'min' or 'max', but got {mode!r}")
    return mode  # type: ignore[no-any-return,unused-ignore]


def to_metric(value: Any, name: str = "metric") -> float:
    """Turn a reported metric (float, int, numpy or torch scalar) into a Python float.

    NaN and inf are returned as they are (the caller marks the trial failed); strings,
    booleans and tensors with more than one element raise :class:`InvalidMetricError`.
    """
    if isinstance(value, (bool, str, bytes)) or value is None:
        raise InvalidMetricError(
            f"metric '{name}' must be a real number, but got {value!r} "
            f"of type {type(value).__name__}; log a float or a one-element tensor"
        )
    numel = getattr(value, "numel", None) or getattr(value, "size", None)
    if numel is not None and not isinstance(value, (int, float)):
        n = numel() if callable(numel) else numel
        if n != 1:
            raise InvalidMetricError(
                f"metric '{name}' must be a scalar, but got a tensor/array with {n} elements; "
                "reduce it (e.g. .mean()) before logging"
            )
        value = value.item() if hasattr(value, "item") else value
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise InvalidMetricError(
            f"metric '{name}' must be a real number, but got {value!r} "
            f"of type {type(value).__name__}"
        ) from exc


def check_int(
    name: str,
    value: Any,
    *,
    at_least: int,
    allow_none: bool = False,
    error: type[UserInputError] = UserInputError,
) -> Any:
    """Validate an integer option (bools are refused) and return it; None if allowed."""
    if value is None and allow_none:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < at_least:
        rule = f"an integer >= {at_least}" + (" or None" if allow_none else "")
        raise error(f"`{name}` must be {rule}, but got {value!r}")
    return value


def is_better(a: float | None, b: float | None, mode: Mode) -> bool:
    """Whether value ``a`` beats ``b`` under ``mode`` (the one comparison of results).

    A value that is None, NaN or infinite beats nothing (a diverged or missing result never
    becomes the best), and any finite value beats one of those.

    Example:
        >>> is_better(0.1, 0.2, "min"), is_better(0.1, 0.2, "max"), is_better(0.1, None, "max")
        (True, False, True)
    """
    if a is None or not math.isfinite(a):
        return False
    if b is None or not math.isfinite(b):
        return True
    return a < b if mode == "min" else a > b


def is_better_trial(a: Any, b: Any | None, mode: Mode) -> bool:
    """Whether finished trial ``a`` ranks before ``b`` (objects with ``value`` and
    ``violation``): a feasible trial before an infeasible one, the smaller violation among
    infeasible ones, then :func:`is_better` on the values. So the best of a sweep with
    constraints is its best feasible trial, as ``best`` and the Pareto front rank it.

    Example:
        >>> from types import SimpleNamespace as T
        >>> is_better_trial(T(value=0.9, violation=0.0), T(value=0.1, violation=2.0), "min")
        True
        >>> is_better_trial(T(value=0.1, violation=None), T(value=0.2, violation=None), "min")
        True
    """
    if a.value is None or not math.isfinite(a.value):
        return False
    if b is None:
        return True
    va, vb = a.violation or 0.0, b.violation or 0.0
    if va != vb:
        return va < vb
    return is_better(a.value, b.value, mode)


def best_trial(trials: Iterable[Any], mode: Mode) -> Any | None:
    """The best COMPLETE trial of ``trials`` by :func:`is_better_trial` (the first of equals),
    or None: the one rule for a sweep's best (progress, ``best``, the best checkpoint)."""
    best = None
    for t in trials:
        if t.state is TrialState.COMPLETE and is_better_trial(t, best, mode):
            best = t
    return best


def is_finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


@dataclass(frozen=True)
class Trial:
    """Identity of one evaluation of a params dict: which sweep, which number.

    Attributes:
        sweep: name of the sweep the trial belongs to.
        number: 0-based index of the trial inside its sweep.
        params: the hyper-parameters evaluated.
        id: the store's row id, when the trial is stored.
    """

    sweep: str
    number: int
    params: Mapping[str, Any] = field(default_factory=dict)
    id: int | None = None
