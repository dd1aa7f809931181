"""What a sweep optimises: one or several logged metrics, their directions, and constraints.

Framework-free (standard library only). A sweep with one ``monitor`` string is single-objective
exactly as before; ``monitor: [val_acc, latency_ms]`` with ``mode: [max, min]`` makes it
multi-objective. ``constraints: {params_m: "<= 5"}`` adds metrics whose bound a feasible trial
meets; a trial that misses one is kept (COMPLETE) with its summed violation, never failed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from hpo_lightning._trial import FailureKind, Mode, TrialState, check_mode
from hpo_lightning.exceptions import UserInputError

_BOUND = re.compile(r"^\s*(<=|>=)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
CONSTRAINT_FORMS = '"<= x" or ">= x" with a finite number x, e.g. "<= 5" or ">= 0.9"'


@dataclass(frozen=True)
class Constraint:
    """``metric <= bound`` (op "<=") or ``metric >= bound`` (op ">=").

    Example:
        >>> c = Constraint.parse("params_m", "<= 5")
        >>> c.violation(7.5), c.violation(3.0)
        (2.5, 0.0)
    """

    metric: str
    op: Literal["<=", ">="]
    bound: float

    @classmethod
    def parse(cls, metric: Any, text: Any) -> Constraint:
        if not isinstance(metric, str) or not metric:
            raise UserInputError(
                f"`constraints` keys must be metric names, but got {metric!r}; "
                'write e.g. constraints: {params_m: "<= 5"}'
            )
        match = _BOUND.match(text) if isinstance(text, str) else None
        if match is None or not math.isfinite(float(match.group(2))):
            raise UserInputError(
                f"`constraints.{metric}` must be {CONSTRAINT_FORMS}, but got {text!r}"
            )
        op: Literal["<=", ">="] = "<=" if match.group(1) == "<=" else ">="
        return cls(metric, op, float(match.group(2)))

    def violation(self, value: float) -> float:
        """How far ``value`` is past the bound (0 when met; inf for NaN)."""
        if math.isnan(value):
            return math.inf
        gap = value - self.bound if self.op == "<=" else self.bound - value
        return max(gap, 0.0)

    def text(self) -> str:
        return f"{self.op} {self.bound:g}"


@dataclass(frozen=True)
class Objectives:
    """The metrics a sweep optimises, their modes, its constraints and the metric that
    early-stopping schedulers decide on.

    Example:
        >>> o = Objectives.of(["val_acc", "latency_ms"], ["max", "min"])
        >>> o.multi, o.names, o.scheduler_metric
        (True, ('val_acc', 'latency_ms'), 'val_acc')
        >>> Objectives.of("val_loss", "min").multi
        False
    """

    names: tuple[str, ...]
    modes: tuple[Mode, ...]
    constraints: tuple[Constraint, ...] = ()
    scheduler_metric: str = ""

    @classmethod
    def of(
        cls,
        monitor: Any,
        mode: Any,
        *,
        constraints: Mapping[str, Any] | None = None,
        scheduler_objective: str | None = None,
    ) -> Objectives:
        """Validate ``monitor``/``mode`` (a string each, or sequences of the same length),
        ``constraints`` (metric -> "<= x" / ">= x") and ``scheduler_objective`` (one of the
        monitored names; default: the first). Raises UserInputError naming the rule."""
        names = _names(monitor)
        modes = _modes(mode, names, single=isinstance(monitor, str))
        if constraints is not None and not isinstance(constraints, Mapping):
            raise UserInputError(
                f'`constraints` must be a mapping of metric to "<= x" / ">= x", got {constraints!r}'
            )
        parsed = tuple(Constraint.parse(k, v) for k, v in (constraints or {}).items())
        chosen = names[0] if scheduler_objective is None else scheduler_objective
        if chosen not in names:
            raise UserInputError(
                f"`scheduler_objective` must be one of the monitored metrics {list(names)}, "
                f"but got {scheduler_objective!r}"
            )
        return cls(names, modes, parsed, chosen)

    @property
    def multi(self) -> bool:
        return len(self.names) > 1

    @property
    def scheduler_mode(self) -> Mode:
        return self.modes[self.names.index(self.scheduler_metric)]

    @property
    def metrics(self) -> tuple[str, ...]:
        """Every metric a trial must log: the objectives, then the constrained ones."""
        extra = [c.metric for c in self.constraints if c.metric not in self.names]
        return self.names + tuple(dict.fromkeys(extra))

    def missing(self, logged: Mapping[str, Any]) -> list[str]:
        return [m for m in self.metrics if m not in logged]

    def values(self, logged: Mapping[str, float]) -> tuple[float, ...]:
        return tuple(float(logged[n]) for n in self.names)

    def violation(self, logged: Mapping[str, float]) -> float | None:
        """The summed violation of the constraints (0: feasible), None without constraints."""
        if not self.constraints:
            return None
        return float(sum(c.violation(float(logged[c.metric])) for c in self.constraints))

    def constraints_dict(self) -> dict[str, str] | None:
        return {c.metric: c.text() for c in self.constraints} or None


def _names(monitor: Any) -> tuple[str, ...]:
    if isinstance(monitor, str):
        names: tuple[Any, ...] = (monitor,)
    elif isinstance(monitor, Sequence) and monitor:
        names = tuple(monitor)
    else:
        names = (monitor,)
    for n in names:
        if not isinstance(n, str) or not n:
            raise UserInputError(
                f"`monitor` must be the name of a logged metric or a list of names, got {monitor!r}"
            )
    if len(set(names)) != len(names):
        raise UserInputError(f"`monitor` names a metric twice: {list(names)}")
    return names


@dataclass(frozen=True)
class Outcome:
    """How a trial of several objectives (or with constraints) ends, from its final metrics:
    the fields of its TrainingFinish."""

    state: TrialState
    value: float
    objective_values: tuple[float, ...] | None = None
    violation: float | None = None
    message: str | None = None
    failure: FailureKind | None = None


def final_outcome(
    objectives: Objectives,
    logged: Mapping[str, float],
    *,
    state: TrialState = TrialState.COMPLETE,
    message: str | None = None,
) -> Outcome:
    """The outcome of a trial that ended ``state`` (COMPLETE or PRUNED) with the metrics
    ``logged`` last: FAILED (no_metric) when a monitored or constrained metric is missing
    (a PRUNED trial stays PRUNED then, without objective values), FAILED (diverged) when an
    objective is not finite, else ``state`` with every objective and the violation (an
    infeasible trial is not failed).

    Example:
        >>> o = Objectives.of(["acc", "size"], ["max", "min"], constraints={"size": "<= 10"})
        >>> out = final_outcome(o, {"acc": 0.9, "size": 12.0})
        >>> out.state.value, out.objective_values, out.violation
        ('complete', (0.9, 12.0), 2.0)
    """
    missing = objectives.missing(logged)
    if missing and state is TrialState.PRUNED:  # stopped before the end-of-fit metrics
        first = logged.get(objectives.names[0], math.nan)
        return Outcome(state, first, message=message)
    if missing:
        return Outcome(
            TrialState.FAILED,
            math.nan,
            message=missing_metrics_message(missing, list(logged)),
            failure=FailureKind.NO_METRIC,
        )
    values = objectives.values(logged)
    bad = [f"'{n}' was {v}" for n, v in zip(objectives.names, values) if not math.isfinite(v)]
    if bad:
        return Outcome(
            TrialState.FAILED,
            math.nan,
            message=f"{', '.join(bad)} (diverged)",
            failure=FailureKind.DIVERGED,
        )
    return Outcome(
        state,
        values[0],
        objective_values=values if objectives.multi else None,
        violation=objectives.violation(logged),
        message=message,
    )


def _modes(mode: Any, names: tuple[str, ...], *, single: bool) -> tuple[Mode, ...]:
    """One mode per monitored name: a string for a single ``monitor``, else a list."""
    if isinstance(mode, str) or mode is None:
        if not single and len(names) > 1:
            raise UserInputError(
                f"`mode` must be a list of {len(names)} directions (one per `monitor` "
                f"metric, e.g. {['max'] + ['min'] * (len(names) - 1)}), but got {mode!r}"
            )
        return (check_mode(mode),)
    if not isinstance(mode, Sequence):
        raise UserInputError(f"`mode` must be 'min', 'max' or a list of them, got {mode!r}")
    modes = tuple(check_mode(m) for m in mode)
    if len(modes) != len(names):
        raise UserInputError(
            f"`monitor` and `mode` must have the same length, but got {len(names)} "
            f"metrics {list(names)} and {len(modes)} modes {list(modes)}"
        )
    return modes


def missing_metrics_message(missing: Sequence[str], logged: Sequence[str]) -> str:
    """A FAILED trial's message when objectives or constrained metrics were never logged."""
    which = ", ".join(f"'{m}'" for m in missing)
    keys = ", ".join(sorted(logged)) or "none"
    return (
        f"the metric(s) {which} were never logged (logged: {keys}); log each monitored and "
        "constrained metric with self.log(...) by the end of fit"
    )


def objectives_of(definition: Mapping[str, Any], mode: Any) -> Objectives:
    """The objectives of a stored sweep (its definition; ``mode``: the sweep record's, for
    stores whose definition has none). A definition without ``monitor`` reads as one
    objective named ``value``."""
    monitor = definition.get("monitor") or "value"
    stored_mode = definition.get("mode") or mode
    constraints = definition.get("constraints")
    try:
        return Objectives.of(
            monitor,
            stored_mode,
            constraints=constraints if isinstance(constraints, Mapping) else None,
            scheduler_objective=definition.get("scheduler_objective"),
        )
    except UserInputError:  # a definition written by hand or an older version: best effort
        return Objectives.of(monitor if isinstance(monitor, str) else "value", mode)
