"""The tuner strategy: what to try next.

Contract for every :class:`HyperparameterTuner` (checked by
``hpo_lightning.testing.TunerContract``):

* ``suggest()`` returns a params dict inside the space, or ``None`` when the budget
  (``max_trials``) or the grid is exhausted. A suggestion stays *pending* (in flight) until it
  is reported; pending points are known to the tuner so parallel workers get different points.
* ``report_result(params, metric)`` records an evaluation. NaN or inf is recorded as a FAILED
  evaluation and never raises; a string or a multi-element tensor raises InvalidMetricError.
* **Several objectives:** ``mode`` may be a sequence of "min"/"max" (two or more make the
  tuner multi-objective, ``n_objectives``). ``metric`` is then a sequence of that many numbers
  (any NaN/inf records a FAILED evaluation; a wrong length raises InvalidMetricError), and
  ``violation`` (>= 0, 0 = feasible) is by how much the user's constraints are violated.
  Tuners whose class does not set ``multi_objective = True`` refuse several objectives when
  built. The Pareto rules are those of ``_pareto`` (constrained dominance).
* ``add_pending(params)`` tells the tuner of a trial that runs elsewhere (another worker).
* The same space, seed and history give the same suggestions. The random stream of the k-th
  suggestion depends only on ``(seed, k)`` where k is the number of trials the tuner knows
  (finished + pending), so a tuner rebuilt from the store continues where it was.
* Tuners do no I/O and keep no global state.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from hpo_lightning._trial import Mode, TrialState, check_int, check_mode, to_metric
from hpo_lightning.exceptions import InvalidMetricError, UserInputError
from hpo_lightning.space import SearchSpace
from hpo_lightning.tuners._pareto import pareto_front

#: one mode ("min"/"max") or one per objective
Modes = Mode | Sequence[Mode]


def check_modes(mode: Any) -> tuple[Mode, ...]:
    """Validate one mode or a sequence of them (one per objective); return them as a tuple."""
    if isinstance(mode, str):
        return (check_mode(mode),)
    if not isinstance(mode, Sequence) or len(mode) == 0:
        raise UserInputError(
            "`mode` must be 'min', 'max' or a non-empty list of them (one per objective), "
            f"but got {mode!r}"
        )
    return tuple(check_mode(m) for m in mode)


def multiobjective_tuner_names() -> list[str]:
    """Names of the registered tuners that accept several objectives."""
    from hpo_lightning.tuners._registry import multiobjective_names

    return multiobjective_names()


def params_key(params: Mapping[str, Any]) -> str:
    """A canonical string for a params dict (used to match reports with suggestions)."""
    return json.dumps(dict(params), sort_keys=True, default=str)


def new_seed() -> int:
    """A fresh 63-bit seed from the OS, for objects created with ``seed=None``."""
    return int(np.random.SeedSequence().generate_state(1, dtype=np.uint64)[0] >> 1)


@dataclass(frozen=True)
class Observation:
    """One evaluation the tuner knows of.

    ``value`` is the metric as reported (not sign-flipped); ``loss`` is the value turned into
    "lower is better" for the tuner's mode, ``inf`` for failed evaluations. ``step`` is the last
    epoch a pruned trial reached. With several objectives, ``values`` and ``losses`` hold every
    objective (``value``/``loss`` are the first one); ``violation`` (>= 0, 0 = feasible) is by
    how much the trial violated the constraints.
    """

    params: Mapping[str, Any]
    value: float
    state: TrialState
    step: int | None = None
    loss: float = math.inf
    values: tuple[float, ...] = ()
    losses: tuple[float, ...] = ()
    violation: float = 0.0

    @property
    def feasible(self) -> bool:
        return self.violation == 0.0


class HyperparameterTuner(ABC):
    """Base class of the tuner strategies (grid, random, sobol, tpe, ...).

    Subclasses implement :meth:`_suggest` and may override :meth:`_on_report`.

    Args:
        space: the search space (a :class:`SearchSpace` or its plain dict shape).
        mode: ``"min"`` or ``"max"``: the direction of the reported metric; or a sequence of
            them, one per objective (two or more make the tuner multi-objective, if its class
            sets ``multi_objective``). ``self.mode`` is then the first objective's mode and
            ``self.modes`` all of them.
        seed: seed of the tuner's random stream; ``None`` draws one (see ``seed`` attribute).
        max_trials: number of suggestions after which ``suggest()`` returns None.

    Example:
        >>> from hpo_lightning import SearchSpace, Float, RandomSearchTuner
        >>> tuner = RandomSearchTuner(SearchSpace({"x": Float(0, 1)}), seed=0, max_trials=2)
        >>> p = tuner.suggest(); tuner.report_result(p, 0.5)
    """

    name: ClassVar[str] = "base"
    #: whether the tuner accepts several objectives (``mode`` a sequence of two or more)
    multi_objective: ClassVar[bool] = False

    def __init__(
        self,
        space: SearchSpace | Mapping[str, Any],
        *,
        mode: Modes = "min",
        seed: int | None = None,
        max_trials: int | None = None,
    ) -> None:
        self.space = space if isinstance(space, SearchSpace) else SearchSpace.from_dict(space)
        self.modes: tuple[Mode, ...] = check_modes(mode)
        self.mode: Mode = self.modes[0]
        if self.n_objectives > 1 and not self.multi_objective:
            raise UserInputError(
                f"tuner '{self.name}' optimises one objective, but {self.n_objectives} were "
                f"given; use one of {', '.join(multiobjective_tuner_names())}"
            )
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
            raise UserInputError(f"`seed` must be a non-negative integer or None, got {seed!r}")
        self.seed: int = new_seed() if seed is None else seed
        check_int("max_trials", max_trials, at_least=1, allow_none=True)
        self.max_trials = max_trials
        self._observations: list[Observation] = []
        self._pending: dict[str, list[dict[str, Any]]] = {}
        self._n_pending = 0
        self._n_suggested = 0

    # --- public API ------------------------------------------------------------
    def suggest(self) -> dict[str, Any] | None:
        """The next params to evaluate, or None when nothing is left to try."""
        if self.max_trials is not None and self._n_suggested >= self.max_trials:
            return None
        rng = np.random.default_rng([self.seed, self.n_known])
        params = self._suggest(rng)
        if params is None:
            return None
        self._n_suggested += 1
        self._add_pending(params)
        return params

    def report_result(
        self,
        params: Mapping[str, Any],
        metric: Any,
        *,
        state: TrialState = TrialState.COMPLETE,
        step: int | None = None,
        violation: float = 0.0,
    ) -> None:
        """Record the metric of an evaluated params dict.

        Args:
            params: the params that were evaluated (usually a suggestion of this tuner).
            metric: the monitored value (a sequence of ``n_objectives`` values for several
                objectives); NaN/inf records a failed evaluation.
            state: COMPLETE (default), PRUNED (stopped early at ``step``) or FAILED.
            step: for a pruned trial, the last epoch it reached.
            violation: by how much the constraints are violated (>= 0; 0 = feasible).
        """
        values = self._metric_values(metric)
        state = TrialState(state)
        if state is TrialState.RUNNING:
            raise UserInputError("report_result needs a finished state, not RUNNING")
        violation = self._check_violation(violation)
        if not all(math.isfinite(v) for v in values):
            state = TrialState.FAILED
        params = dict(params)
        self._remove_pending(params)
        if state is TrialState.FAILED:
            losses = tuple(math.inf for _ in values)
        else:
            losses = tuple(v if m == "min" else -v for v, m in zip(values, self.modes))
        obs = Observation(
            params=params,
            value=values[0],
            state=state,
            step=step,
            loss=losses[0],
            values=values,
            losses=losses,
            violation=violation,
        )
        self._observations.append(obs)
        self._on_report(obs)

    def _metric_values(self, metric: Any) -> tuple[float, ...]:
        """The reported metric as one float per objective (NaN for a missing metric)."""
        k = self.n_objectives
        if metric is None:
            return tuple(math.nan for _ in range(k))
        if k == 1:
            return (to_metric(metric),)
        if isinstance(metric, (str, bytes)) or not hasattr(metric, "__len__"):
            raise InvalidMetricError(
                f"the tuner has {k} objectives, so the metric must be a sequence of {k} "
                f"numbers, but got {metric!r}"
            )
        if len(metric) != k:
            raise InvalidMetricError(
                f"the tuner has {k} objectives ({', '.join(self.modes)}), but the metric has "
                f"{len(metric)} values: {metric!r}"
            )
        return tuple(to_metric(v, name=f"objective {i}") for i, v in enumerate(metric))

    @staticmethod
    def _check_violation(violation: Any) -> float:
        try:
            v = float(violation)
        except (TypeError, ValueError):
            v = math.nan
        if isinstance(violation, bool) or not v >= 0:
            raise UserInputError(
                f"`violation` must be a number >= 0 (0 = feasible), but got {violation!r}"
            )
        return v

    def add_pending(self, params: Mapping[str, Any]) -> None:
        """Tell the tuner of a trial in flight that it did not suggest (e.g. another worker's)."""
        self._add_pending(dict(params))

    def clear_pending(self) -> None:
        """Forget every pending point (a driver re-adds the store's RUNNING trials after this)."""
        self._pending.clear()
        self._n_pending = 0

    # --- state -----------------------------------------------------------------
    @property
    def n_known(self) -> int:
        """Trials the tuner knows of: finished ones plus pending ones."""
        return len(self._observations) + self._n_pending

    @property
    def observations(self) -> list[Observation]:
        return list(self._observations)

    @property
    def pending(self) -> list[dict[str, Any]]:
        return [p for group in self._pending.values() for p in group]

    @property
    def n_objectives(self) -> int:
        return len(self.modes)

    @property
    def best(self) -> Observation | None:
        """The best COMPLETE observation so far, or None.

        Feasible observations come first (then the smallest violation). With several
        objectives this is the Pareto-optimal one that is best in the first objective (ties
        broken by the next ones); :attr:`pareto` is the whole front.
        """
        done = [o for o in self._observations if o.state is TrialState.COMPLETE]
        return min(done, key=lambda o: (o.violation, *o.losses)) if done else None

    @property
    def pareto(self) -> list[Observation]:
        """The COMPLETE observations no other COMPLETE one dominates, in report order.

        Dominance is constrained dominance (``_pareto``'s module docstring): a feasible point
        beats every infeasible one, and of two infeasible ones the smaller violation wins.
        With one objective this is every observation tied with :attr:`best`.
        """
        done = [o for o in self._observations if o.state is TrialState.COMPLETE]
        if not done:
            return []
        losses = np.array([o.losses for o in done])
        front = pareto_front(losses, np.array([o.violation for o in done]))
        return [done[i] for i in front]

    def __repr__(self) -> str:
        mode = self.mode if self.n_objectives == 1 else list(self.modes)
        return (
            f"{type(self).__name__}(dim={self.space.dim}, mode={mode!r}, seed={self.seed}, "
            f"max_trials={self.max_trials}, known={self.n_known})"
        )

    # --- for subclasses ----------------------------------------------------------
    @abstractmethod
    def _suggest(self, rng: np.random.Generator) -> dict[str, Any] | None:
        """Return the next params (inside the space) or None when exhausted."""

    def _on_report(self, obs: Observation) -> None:
        """Hook called after an observation is recorded."""

    def _add_pending(self, params: dict[str, Any]) -> None:
        self._pending.setdefault(params_key(params), []).append(params)
        self._n_pending += 1

    def _remove_pending(self, params: Mapping[str, Any]) -> None:
        key = params_key(params)
        group = self._pending.get(key)
        if group:
            group.pop()
            self._n_pending -= 1
            if not group:
                del self._pending[key]
