"""The tuner strategy: what to try next.

Contract for every :class:`HyperparameterTuner` (checked by
``hpo_lightning.testing.TunerContract``):

* ``suggest()`` returns a params dict inside the space, or ``None`` when the budget
  (``max_trials``) or the grid is exhausted. A suggestion stays *pending* (in flight) until it
  is reported; pending points are known to the tuner so parallel workers get different points.
* ``report_result(params, metric)`` records an evaluation. NaN or inf is recorded as a FAILED
  evaluation and never raises; a string or a multi-element tensor raises InvalidMetricError.
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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from hpo_lightning._trial import Mode, TrialState, check_int, check_mode, to_metric
from hpo_lightning.exceptions import UserInputError
from hpo_lightning.space import SearchSpace


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
    epoch a pruned trial reached.
    """

    params: Mapping[str, Any]
    value: float
    state: TrialState
    step: int | None = None
    loss: float = math.inf


class HyperparameterTuner(ABC):
    """Base class of the tuner strategies (grid, random, sobol, tpe, ...).

    Subclasses implement :meth:`_suggest` and may override :meth:`_on_report`.

    Args:
        space: the search space (a :class:`SearchSpace` or its plain dict shape).
        mode: ``"min"`` or ``"max"``: the direction of the reported metric.
        seed: seed of the tuner's random stream; ``None`` draws one (see ``seed`` attribute).
        max_trials: number of suggestions after which ``suggest()`` returns None.

    Example:
        >>> from hpo_lightning import SearchSpace, Float, RandomSearchTuner
        >>> tuner = RandomSearchTuner(SearchSpace({"x": Float(0, 1)}), seed=0, max_trials=2)
        >>> p = tuner.suggest(); tuner.report_result(p, 0.5)
    """

    name: ClassVar[str] = "base"

    def __init__(
        self,
        space: SearchSpace | Mapping[str, Any],
        *,
        mode: Mode = "min",
        seed: int | None = None,
        max_trials: int | None = None,
    ) -> None:
        self.space = space if isinstance(space, SearchSpace) else SearchSpace.from_dict(space)
        self.mode: Mode = check_mode(mode)
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
    ) -> None:
        """Record the metric of an evaluated params dict.

        Args:
            params: the params that were evaluated (usually a suggestion of this tuner).
            metric: the monitored value; NaN/inf records a failed evaluation.
            state: COMPLETE (default), PRUNED (stopped early at ``step``) or FAILED.
            step: for a pruned trial, the last epoch it reached.
        """
        value = to_metric(metric) if metric is not None else math.nan
        state = TrialState(state)
        if state is TrialState.RUNNING:
            raise UserInputError("report_result needs a finished state, not RUNNING")
        if not math.isfinite(value):
            state = TrialState.FAILED
        params = dict(params)
        self._remove_pending(params)
        loss = value if self.mode == "min" else -value
        if state is TrialState.FAILED:
            loss = math.inf
        obs = Observation(params=params, value=value, state=state, step=step, loss=loss)
        self._observations.append(obs)
        self._on_report(obs)

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
    def best(self) -> Observation | None:
        """The best COMPLETE observation so far, or None."""
        done = [o for o in self._observations if o.state is TrialState.COMPLETE]
        return min(done, key=lambda o: o.loss) if done else None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(dim={self.space.dim}, mode={self.mode!r}, seed={self.seed}, "
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
