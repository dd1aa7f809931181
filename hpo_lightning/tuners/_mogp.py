"""Multi-objective GP: ParEGO, a random Chebyshev scalarisation per suggestion on ``_gp``.

Knowles 2006 ("ParEGO: A Hybrid Algorithm With On-Line Landscape Approximation for Expensive
Multiobjective Optimization Problems", Sec. III-B): each objective is normalised to [0, 1]
over the observations, a weight vector ``w`` is drawn uniformly from the simplex, and the
losses are combined by the augmented Chebyshev function

    f_w(x) = max_j w_j f_j(x) + 0.05 * sum_j w_j f_j(x)        (Knowles 2006, Eq. 2)

whose minima are Pareto-optimal for every ``w`` (also on concave parts of the front, unlike a
weighted sum). The single-objective GP of ``_gp`` (log EI, pending trials as believers, Sobol'
start-up, conditional spaces) then suggests a point for ``f_w``; drawing a new ``w`` at every
suggestion spreads the suggestions along the front.

* **Constraints:** an infeasible trial's scalarised loss is ``1.1 + violation / max
  violation``: above every feasible one (at most 1.05), ordered by how much it violates.
* **Kernel hyper-parameters** are fitted cold at every suggestion (two starts), since the
  target changes with ``w``; the fit is a function of the history and the suggestion's
  random stream, so a tuner rebuilt from the store continues identically.
* **Failed and pruned trials** enter as in ``_gp``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from hpo_lightning._trial import TrialState
from hpo_lightning.tuners._base import Observation
from hpo_lightning.tuners._gp import GPTuner
from hpo_lightning.tuners._gp_model import fit_theta

_RHO = 0.05


def chebyshev(losses: np.ndarray, weights: np.ndarray, violation: np.ndarray) -> np.ndarray:
    """Augmented Chebyshev scalarisation of rows of losses (NaN rows stay NaN).

    Each column is normalised to [0, 1] over the finite rows; infeasible rows are put above
    every feasible one, ordered by violation.
    """
    ok = np.isfinite(losses).all(axis=1)
    out = np.full(len(losses), math.nan)
    if not ok.any():
        return out
    lo, hi = losses[ok].min(axis=0), losses[ok].max(axis=0)
    z = (losses[ok] - lo) / np.where(hi > lo, hi - lo, 1.0)
    wz = z * weights
    out[ok] = wz.max(axis=1) + _RHO * wz.sum(axis=1)
    bad = ok & (violation > 0)
    if bad.any():
        out[bad] = 1.1 + violation[bad] / violation[bad].max()
    return out


class MOGPTuner(GPTuner):
    """GP Bayesian optimisation for several objectives (``make_tuner("gp", ..., mode=[...])``).

    Same options as :class:`GPTuner`; see the module docstring for the scalarisation.

    Example:
        >>> from hpo_lightning import SearchSpace, Float
        >>> t = MOGPTuner(SearchSpace({"x": Float(0, 1)}), mode=["min", "min"], seed=0)
        >>> while (p := t.suggest()) is not None and len(t.observations) < 12:
        ...     t.report_result(p, (p["x"], (1 - p["x"]) ** 2))
        >>> len(t.pareto) > 1
        True
    """

    name: ClassVar[str] = "gp"
    multi_objective: ClassVar[bool] = True

    def _on_report(self, obs: Observation) -> None:
        super()._on_report(obs)
        if not hasattr(self, "_mo_losses"):
            self._mo_losses: list[tuple[float, ...]] = []
            self._mo_violation: list[float] = []
        usable = obs.state is not TrialState.FAILED
        self._mo_losses.append(obs.losses if usable else (math.nan,) * self.n_objectives)
        self._mo_violation.append(obs.violation)

    def _suggest(self, rng: np.random.Generator) -> dict[str, Any] | None:
        if getattr(self, "_mo_losses", None):
            weights = rng.dirichlet(np.ones(self.n_objectives))
            scal = chebyshev(
                np.array(self._mo_losses), weights, np.array(self._mo_violation, dtype=float)
            )
            # GPTuner models self._loss: the scalarised losses for this suggestion's weights
            # (rebuilt from every objective at each suggestion; failed ones stay NaN)
            self._loss = [float(v) for v in scal]
        return super()._suggest(rng)

    def _fit(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        """A cold MAP fit: the target changes with the weights, so no anchor is reused."""
        return fit_theta(X, y, self._cat, self._cold_starts())
