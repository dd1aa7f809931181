"""Multi-objective TPE: the TPE of ``_tpe`` with a good set chosen by Pareto rank.

Ozaki et al. 2020 ("Multiobjective Tree-Structured Parzen Estimator for Computationally
Expensive Optimization Problems", Sec. 3.2): the observations are split into "good" and "bad"
not by one loss but by non-dominated rank; the good set is filled front by front, and the front
that does not fit whole is cut by each point's hypervolume contribution (the points that add
the most to the front's hypervolume stay), so l(x) keeps a spread-out front rather than one
end of it. Everything else (Sobol' start-up, the multivariate and tree-structured Parzen
estimators, constant liar for pending trials, failed trials in the bad set) is TPE's.

* **Constraints:** the fronts are those of constrained dominance (``_pareto``): feasible
  trials rank before infeasible ones, which rank by their violation.
* **Pruned trials** rank after every completed one, deeper ones first; failed ones last.
* **Cut of a front:** hypervolume contributions with 2 objectives (exact sweep, any size) and
  with 3 up to 200 points on the front; crowding distance beyond that and for 4 or more
  objectives (cheaper, same intent).
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from hpo_lightning._trial import TrialState
from hpo_lightning.tuners._base import Observation
from hpo_lightning.tuners._pareto import (
    crowding_distance,
    hypervolume_contributions,
    non_dominated_sort,
)
from hpo_lightning.tuners._tpe import TPETuner, default_gamma

# 3-D contributions cost one small hypervolume per point: cheap up to a few hundred points
_HV3_MAX_POINTS = 200


def spread_order(losses: np.ndarray) -> np.ndarray:
    """Indices of one front's points, the ones that spread the front most first.

    By hypervolume contribution (reference: 10% beyond the front's worst corner) for 2
    objectives, and for 3 up to 200 points on the front; else by crowding distance (cheaper,
    same intent); ties keep index order.
    """
    n, m = losses.shape
    if n <= 1:
        return np.arange(n)
    if m == 2 or (m == 3 and n <= _HV3_MAX_POINTS):
        lo, hi = losses.min(axis=0), losses.max(axis=0)
        span = np.where(hi > lo, hi - lo, 1.0)
        z = (losses - lo) / span
        score = hypervolume_contributions(z, np.full(m, 1.1))
    else:
        score = crowding_distance(losses)
    return np.argsort(-score, kind="stable")


def pareto_ranking(losses: np.ndarray, violation: np.ndarray, n_first: int) -> np.ndarray:
    """Every index, the best ``n_first`` first: front by front, the front that straddles
    ``n_first`` by spread; the points after the best ones in index order."""
    out: list[np.ndarray] = []
    taken = 0
    for front in non_dominated_sort(losses, violation, limit=n_first):
        if taken < n_first < taken + len(front):
            front = front[spread_order(losses[front])]
        out.append(front)
        taken += len(front)
    ranked = np.concatenate(out) if out else np.zeros(0, dtype=int)
    rest = np.setdiff1d(np.arange(len(losses)), ranked)
    return np.concatenate([ranked, rest]).astype(int)


class MOTPETuner(TPETuner):
    """TPE for several objectives (``make_tuner("tpe", ..., mode=["max", "min"])``).

    Same options as :class:`TPETuner`; see the module docstring for the split.

    Example:
        >>> from hpo_lightning import SearchSpace, Float
        >>> t = MOTPETuner(SearchSpace({"x": Float(0, 1)}), mode=["min", "min"], seed=0)
        >>> while (p := t.suggest()) is not None and len(t.observations) < 20:
        ...     t.report_result(p, (p["x"], (1 - p["x"]) ** 2))
        >>> len(t.pareto) > 1
        True
    """

    name: ClassVar[str] = "tpe"
    multi_objective: ClassVar[bool] = True

    def _on_report(self, obs: Observation) -> None:
        i = self._n
        super()._on_report(obs)
        if not hasattr(self, "_losses"):
            self._losses = np.empty((0, self.n_objectives))
            self._violation = np.empty(0)
        if i >= len(self._losses):
            grow = max(16, len(self._losses))
            self._losses = np.concatenate([self._losses, np.empty((grow, self.n_objectives))])
            self._violation = np.concatenate([self._violation, np.empty(grow)])
        finite = obs.state is TrialState.COMPLETE and all(math.isfinite(v) for v in obs.losses)
        self._losses[i] = obs.losses if finite else np.inf
        self._violation[i] = obs.violation

    def _ranking(self, n: int) -> np.ndarray:
        r0, r1 = self._rank0[:n], self._rank1[:n]
        complete = np.flatnonzero(r0 == 0)
        n_good = default_gamma(int((r0 < 2).sum()))
        ranked = complete[pareto_ranking(self._losses[complete], self._violation[complete], n_good)]
        pruned = np.flatnonzero(r0 == 1)
        pruned = pruned[np.argsort(r1[pruned], kind="stable")]
        return np.concatenate([ranked, pruned, np.flatnonzero(r0 == 2)]).astype(int)
