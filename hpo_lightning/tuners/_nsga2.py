"""NSGA-II-style evolution for one or several objectives, for large budgets.

Deb et al. 2002 ("A Fast and Elitist Multiobjective Genetic Algorithm: NSGA-II"), run as a
steady-state algorithm so that parallel workers never wait for a generation to finish:

* **Start-up:** the first ``population_size`` suggestions are scrambled Sobol' points.
* **Elite:** at every suggestion, the ``population_size`` best COMPLETE trials of the whole
  history, by constrained non-dominated rank (``_pareto``: feasible first, then smaller
  violation) and, within the front that does not fit whole, by crowding distance (Sec. III-B,
  C). The elite is a function of the history only, so a rebuilt tuner continues identically.
* **Child:** two binary tournaments on (rank, crowding) pick the parents (Sec. III-C); numeric
  coordinates (floats and ints, in the unit cube) are recombined by simulated binary crossover
  and changed by polynomial mutation (Deb & Agrawal 1995; Deb & Goyal 1996), categoricals by
  uniform crossover and a uniform redraw with the mutation probability.
* **Conditional spaces:** a coordinate one parent lacks (its parameter was inactive there)
  comes from the other parent, or is drawn fresh when both lack it; the child's own choices
  then decide which parameters it runs.
* **In flight:** each suggestion has its own random stream, and a child equal to an observed
  or pending point is mutated again (up to 20 times), so parallel workers get distinct points.
* **Pruned and failed trials** never enter the elite (they still count as known trials).
* **Cost** per suggestion: one non-dominated sort of the completed trials, O(n^2 m).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from hpo_lightning._trial import TrialState, check_int
from hpo_lightning.exceptions import UserInputError
from hpo_lightning.space import SearchSpace
from hpo_lightning.tuners._base import HyperparameterTuner, Modes, Observation, params_key
from hpo_lightning.tuners._pareto import crowding_distance, non_dominated_sort
from hpo_lightning.tuners._simple import SobolTuner

_RETRIES = 20


def elite(losses: np.ndarray, violation: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the ``size`` best points and their tournament key (rank, -crowding), rows."""
    chosen: list[np.ndarray] = []
    keys: list[np.ndarray] = []
    for rank, front in enumerate(non_dominated_sort(losses, violation, limit=size)):
        crowd = crowding_distance(losses[front])
        left = size - sum(len(c) for c in chosen)
        if len(front) > left:
            keep = np.argsort(-crowd, kind="stable")[:left]
            front, crowd = front[keep], crowd[keep]
        chosen.append(front)
        keys.append(np.stack([np.full(len(front), float(rank)), -crowd], axis=1))
        if sum(len(c) for c in chosen) >= size:
            break
    return np.concatenate(chosen), np.concatenate(keys)


class NSGA2Tuner(HyperparameterTuner):
    """NSGA-II-style evolution (one or several objectives; see the module docstring).

    Args:
        space, mode, seed, max_trials: as for every tuner.
        population_size: size of the elite and of the Sobol' start-up (default 20).
        crossover_prob: probability that a child is a crossover of its parents (default 0.9).
        eta_crossover, eta_mutation: distribution indices of SBX and polynomial mutation
            (larger: children closer to their parents; defaults 15 and 20, Deb's).
        mutation_prob: per-coordinate mutation probability (default ``1 / dim``).

    Example:
        >>> from hpo_lightning import SearchSpace, Float
        >>> t = NSGA2Tuner(SearchSpace({"x": Float(0, 1)}), mode=["min", "min"], seed=0)
        >>> while (p := t.suggest()) is not None and len(t.observations) < 40:
        ...     t.report_result(p, (p["x"], (1 - p["x"]) ** 2))
        >>> len(t.pareto) > 10
        True
    """

    name: ClassVar[str] = "nsga2"
    multi_objective: ClassVar[bool] = True

    def __init__(
        self,
        space: SearchSpace | Mapping[str, Any],
        *,
        mode: Modes = "min",
        seed: int | None = None,
        max_trials: int | None = None,
        population_size: int = 20,
        crossover_prob: float = 0.9,
        eta_crossover: float = 15.0,
        eta_mutation: float = 20.0,
        mutation_prob: float | None = None,
    ) -> None:
        super().__init__(space, mode=mode, seed=seed, max_trials=max_trials)
        self.population_size = check_int("population_size", population_size, at_least=2)
        for label, p in (("crossover_prob", crossover_prob), ("mutation_prob", mutation_prob)):
            if p is not None and not (isinstance(p, (int, float)) and 0 <= p <= 1):
                raise UserInputError(f"`{label}` must be in [0, 1], but got {p!r}")
        for label, eta in (("eta_crossover", eta_crossover), ("eta_mutation", eta_mutation)):
            if not (isinstance(eta, (int, float)) and eta >= 0):
                raise UserInputError(f"`{label}` must be a number >= 0, but got {eta!r}")
        self.crossover_prob = float(crossover_prob)
        self.eta_crossover, self.eta_mutation = float(eta_crossover), float(eta_mutation)
        dim = self.space.dim
        self.mutation_prob = 1.0 / dim if mutation_prob is None else float(mutation_prob)
        self._cat = np.array([self.space[n].is_categorical for n in self.space.names])
        self._startup = SobolTuner(self.space, seed=self.seed)
        self._X: list[np.ndarray] = []
        self._L: list[tuple[float, ...]] = []
        self._V: list[float] = []
        self._seen: set[str] = set()

    def _on_report(self, obs: Observation) -> None:
        self._seen.add(params_key(obs.params))
        if obs.state is TrialState.COMPLETE:
            self._X.append(self.space.encode(obs.params))
            self._L.append(obs.losses)
            self._V.append(obs.violation)

    def _suggest(self, rng: np.random.Generator) -> dict[str, Any] | None:
        if len(self._L) < self.population_size:
            return self._fresh(self._startup.point(self.n_known), rng)
        idx, key = elite(np.array(self._L), np.array(self._V), self.population_size)
        X = np.array(self._X)[idx]
        a, b = X[self._tournament(key, rng)], X[self._tournament(key, rng)]
        child = self._mutate(self._crossover(a, b, rng), rng)
        for _ in range(_RETRIES):
            params = self.space.decode(child)
            if not self._taken(params):
                return params
            child = self._mutate(child, rng, force=True)
        return self._fresh(rng.random(self.space.dim), rng)

    def _taken(self, params: Mapping[str, Any]) -> bool:
        key = params_key(params)
        return key in self._seen or key in self._pending

    def _fresh(self, u: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
        """Decode u; if that point is taken, a random free one (a few tries)."""
        params = self.space.decode(u)
        for _ in range(_RETRIES):
            if not self._taken(params):
                break
            params = self.space.decode(rng.random(self.space.dim))
        return params

    @staticmethod
    def _tournament(key: np.ndarray, rng: np.random.Generator) -> int:
        i, j = rng.integers(len(key), size=2)
        return int(i) if tuple(key[i]) <= tuple(key[j]) else int(j)

    def _crossover(self, a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One child of parents a and b (unit-cube rows; NaN where inactive)."""
        fresh = rng.random(len(a))
        a = np.where(np.isnan(a), np.where(np.isnan(b), fresh, b), a)
        b = np.where(np.isnan(b), a, b)
        if rng.random() >= self.crossover_prob:
            return a.copy()
        # simulated binary crossover, bounded to [0, 1] (Deb & Agrawal 1995; Deb 2002's code)
        u = rng.random(len(a))
        eta = self.eta_crossover
        beta = np.where(
            u <= 0.5, (2 * u) ** (1 / (eta + 1)), (1 / (2 * (1 - u))) ** (1 / (eta + 1))
        )
        sign = np.where(rng.random(len(a)) < 0.5, -1.0, 1.0)
        child = np.clip(0.5 * ((a + b) + sign * beta * (b - a)), 0.0, 1.0)
        swap = rng.random(len(a)) < 0.5  # each coordinate takes part with probability 1/2
        child = np.where(swap, child, a)
        pick = np.where(rng.random(len(a)) < 0.5, a, b)
        return np.where(self._cat, pick, child)

    def _mutate(
        self, x: np.ndarray, rng: np.random.Generator, *, force: bool = False
    ) -> np.ndarray:
        """Polynomial mutation of numeric coordinates, uniform redraw of categorical ones
        (``force``: at least one coordinate, to move a child off a taken point)."""
        d = len(x)
        hit = rng.random(d) < self.mutation_prob
        if force:
            hit[rng.integers(d)] = True
        u = rng.random(d)
        eta = self.eta_mutation
        lo, hi = x, 1.0 - x  # distances to the bounds (Deb & Goyal 1996, bounded form)
        left = (2 * u + (1 - 2 * u) * (1 - lo) ** (eta + 1)) ** (1 / (eta + 1)) - 1
        right = 1 - (2 * (1 - u) + 2 * (u - 0.5) * (1 - hi) ** (eta + 1)) ** (1 / (eta + 1))
        delta = np.where(u < 0.5, left, right)
        moved = np.clip(x + delta, 0.0, 1.0)
        moved = np.where(self._cat, rng.random(d), moved)
        return np.where(hit, moved, x)
