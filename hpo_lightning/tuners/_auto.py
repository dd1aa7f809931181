"""The ``auto`` tuner: picks GP, TPE or CMA-ES from the space and the budget, then delegates.

The rule (:func:`choose_tuner`), from the benchmark in ``benchmarks/bench_tuners.py`` and the
cost of each method:

* **GP** when the budget is known and small (``max_trials <= 200``), the space has at most 20
  parameters and at most half of them are categorical: a Gaussian process is the most
  sample-efficient model there. Its first point is the centre of the space; past
  ``local_from(dim, continuous)`` completed trials (20 on a space of floats only, else 100 up
  to 10 parameters) it searches a trust region around the best point, with a model of the 50
  observations nearest to it once it has more (``_gp_local``), so its cost per suggestion
  stops growing. On ``benchmarks/bench_budgets.py`` (BBOB-like problems of 2-20 dimensions,
  held-out seeds, issue 17) it has the best mean rank at 60 and 200 trials; at 30
  it was second to Optuna's CMA-ES on one held-out set (2.34 vs 2.11) and first on another
  (2.07 vs 2.40; benchmarks/README.md, section 14).
* **CMA-ES** for larger known budgets on spaces without categoricals (2+ parameters), when the
  ``cmaes`` package is installed: with hundreds of trials the evolution strategy keeps
  improving where model-based search stalls, at constant cost per suggestion. At 500 trials on
  the same benchmark our CMA-ES ranked ahead of the GP with its local phase on all three
  held-out sets (e.g. 2.12 vs 2.88 on 10 seeds, above all on the rotated ellipsoid), level
  with Optuna's CMA-ES (2.08), so the threshold stays at 200. With the lq-CMA-ES surrogate
  (``CMAESTuner``'s default since issue 17: generations end early while a linear-quadratic
  model ranks the population well) it is first on held-out seeds 7500-7509 at 500 trials
  (2.05; Optuna's CMA-ES 2.33, TPE 2.75, GP 2.88) and at 200 inside a 500-trial run (2.17; GP
  2.55), the lead coming from the rotated ellipsoid (benchmarks/README.md, section 14).
* **TPE** otherwise: unknown or large budgets, many categoricals, many parameters. Its cost per
  suggestion is constant in the number of trials and it handles any mix of domains.
* **What counts as a trial:** a full training. The budget is the sweep's ``n_trials`` times
  the share of a full training one trial is expected to cost under the sweep's scheduler
  (``trial_cost``: the scheduler's ``expected_cost()``, 1.0 without one; ASHA and Hyperband
  derive it from their rungs and eta, 0.29 and 0.51 with their defaults; a scheduler that
  stops trials but cannot tell how early, the median rule, counts as :data:`UNKNOWN_COST`).
  So 300 trials with ASHA are about 87 full trainings and keep the GP, which learns from the
  stopped trials' partial values, where counting every trial as a full one chose CMA-ES, which
  cannot: on ``benchmarks/bench_multifidelity.py`` at 100 full trainings (300 planned trials)
  the GP was well ahead of CMA-ES with every scheduler (benchmarks/README.md, section 12).
  Inside the GP, though, only *completed* trials move it to its local phase (a pruned trial's
  partial value says little about where the optimum is); with many pruned trials it switches
  once ``3 * local_from(dim)`` trials of any kind are known, to bound its cost.
* **Conditional spaces** (choices with sub-spaces, ``when``) follow the same rule, except that
  CMA-ES is never chosen for them (it ignores the tree and only drifts on inactive
  coordinates): GP at small budgets (inactive coordinates imputed; it had the best mean rank
  on ``benchmarks/bench_conditional.py``'s analytic problems, seeds 100-109: GP 1.80, our
  TPE 2.60, Optuna's TPE with ``group=True`` 3.45), TPE with its tree-wide estimator
  otherwise.

On the benchmark's 14 problems (10 seeds, budgets 30 and 60) the GP had the best median of
our tuners on 12 (TPE on Styblinski-Tang-5 and Ackley-2) and the best mean rank of all 8
methods, ahead of Optuna's GPSampler (2.62 vs 3.06; 170 wins, 99 losses), TPE and CMA-ES
(4.8-5.5): the rule keeps the GP for every small budget.

Multi-fidelity: the chosen tuner's rule applies (GP: fitted at the highest fidelity with enough
points; TPE: BOHB's good set, from the highest fidelity with ``dim + 2`` trials, pruned trials
ranking after completed ones; CMA-ES: pruned rank after completed ones of their generation).
"""

from __future__ import annotations

import importlib.util
import logging
import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from hpo_lightning._trial import TrialState, check_int
from hpo_lightning.exceptions import UserInputError
from hpo_lightning.space import SearchSpace
from hpo_lightning.tuners._base import HyperparameterTuner, Modes, Observation
from hpo_lightning.tuners._cmaes import CMAESTuner
from hpo_lightning.tuners._gp import GPTuner, is_continuous
from hpo_lightning.tuners._gp_local import local_from
from hpo_lightning.tuners._mo_choice import MO_BUILDERS, choose_multiobjective_tuner
from hpo_lightning.tuners._tpe import TPETuner

logger = logging.getLogger("hpo_lightning")

GP_MAX_TRIALS = 200
GP_MAX_DIM = 20
#: what a trial counts as when a scheduler stops trials but cannot tell how early (the median
#: rule): half a full training (its trials cost 0.41-0.65 on benchmarks/bench_multifidelity.py)
UNKNOWN_COST = 0.5

_BUILDERS: dict[str, type[HyperparameterTuner]] = {
    "gp": GPTuner,
    "tpe": TPETuner,
    "cmaes": CMAESTuner,
}


def choose_tuner(
    space: SearchSpace, max_trials: int | None, *, trial_cost: float | None = 1.0
) -> tuple[str, str]:
    """The tuner name ``auto`` uses for this space and budget, and the reason in words.

    ``trial_cost``: the share of a full training one trial is expected to cost (a sweep passes
    its scheduler's ``expected_cost()``); None: trials are stopped early, at a cost the
    scheduler cannot tell (counted as :data:`UNKNOWN_COST`). The budget is counted in full
    trainings with it.
    """
    cost = UNKNOWN_COST if trial_cost is None else check_cost(trial_cost)
    if max_trials is None:
        return "tpe", "an unknown budget"
    full = max(1, math.ceil(max_trials * cost - 1e-9))
    small = full <= GP_MAX_TRIALS
    size = f"{max_trials} trials"
    if cost < 1.0:
        size += f", about {full} full trainings with early stopping"
    budget = f"a {'small' if small else 'large'} budget ({size})"
    n_cat = sum(1 for d in space.values() if d.is_categorical)
    if space.dim > GP_MAX_DIM:
        why = f"{space.dim} parameters (> {GP_MAX_DIM}) are too many for the GP"
    elif 2 * n_cat > space.dim:
        why = f"{n_cat} of {space.dim} parameters are categorical"
    elif small:
        start = local_from(space.dim, is_continuous(space))
        return "gp", (
            f"{budget}: the GP is the most sample-efficient model there (past {start} "
            "completed trials it searches a trust region around the best point)"
        )
    else:
        why = budget + (" on a conditional space" if space.is_conditional else "")
    if (
        not small
        and n_cat == 0
        and space.dim >= 2
        and not space.is_conditional
        and importlib.util.find_spec("cmaes") is not None
    ):
        return "cmaes", (
            f"{budget} on a space without categoricals: CMA-ES (IPOP restarts) with the "
            "lq-CMA-ES surrogate, which skips evaluations while a quadratic model ranks well"
        )
    return "tpe", why


def check_cost(trial_cost: Any) -> float:
    """``trial_cost`` validated: a number in (0, 1]."""
    ok = isinstance(trial_cost, (int, float)) and not isinstance(trial_cost, bool)
    if not (ok and 0 < trial_cost <= 1):
        raise UserInputError(
            "`trial_cost` (the share of a full training one trial costs) must be a number in "
            f"(0, 1], but got {trial_cost!r}"
        )
    return float(trial_cost)


class AutoTuner(HyperparameterTuner):
    """Chooses GP, TPE or CMA-ES for the space and budget (see :func:`choose_tuner`).

    With several objectives (``mode`` a list) it chooses the multi-objective GP, TPE or
    NSGA-II instead (``_mo_choice.choose_multiobjective_tuner``).

    Every call is passed to the chosen tuner, exposed as ``tuner``; ``chosen`` is its name, and
    the choice is logged on the ``hpo_lightning`` logger at INFO level.

    Example:
        >>> from hpo_lightning import SearchSpace, Float
        >>> AutoTuner(SearchSpace({"x": Float(0, 1)}), seed=0, max_trials=30).chosen
        'gp'
        >>> AutoTuner(SearchSpace({"x": Float(0, 1)}), seed=0).chosen
        'tpe'
    """

    name: ClassVar[str] = "auto"
    multi_objective: ClassVar[bool] = True  # several objectives: _mo_choice's rule

    def __init__(
        self,
        space: SearchSpace | Mapping[str, Any],
        *,
        mode: Modes = "min",
        seed: int | None = None,
        max_trials: int | None = None,
        budget: int | None = None,
        trial_cost: float | None = 1.0,
    ) -> None:
        """``budget``: the planned number of trials, used only to choose (a sweep passes its
        n_trials here, so failed trials can still be replaced); defaults to ``max_trials``.
        ``trial_cost``: the share of a full training a trial is expected to cost (a sweep
        passes its scheduler's ``expected_cost()``; see :func:`choose_tuner`)."""
        super().__init__(space, mode=mode, seed=seed, max_trials=max_trials)
        check_int("budget", budget, at_least=1, allow_none=True)
        planned = max_trials if max_trials is not None else budget
        builders: Mapping[str, type[HyperparameterTuner]] = _BUILDERS
        if self.n_objectives > 1:
            builders = MO_BUILDERS
            self.chosen, self.reason = choose_multiobjective_tuner(self.space, planned)
        else:
            self.chosen, self.reason = choose_tuner(self.space, planned, trial_cost=trial_cost)
        self.tuner: HyperparameterTuner = builders[self.chosen](
            self.space, mode=mode, seed=self.seed, max_trials=max_trials
        )
        logger.info("tuner 'auto' chose '%s': %s", self.chosen, self.reason)

    # --- everything goes to the chosen tuner -------------------------------------------
    def suggest(self) -> dict[str, Any] | None:
        return self.tuner.suggest()

    def report_result(
        self,
        params: Mapping[str, Any],
        metric: Any,
        *,
        state: TrialState = TrialState.COMPLETE,
        step: int | None = None,
        violation: float = 0.0,
    ) -> None:
        self.tuner.report_result(params, metric, state=state, step=step, violation=violation)

    def add_pending(self, params: Mapping[str, Any]) -> None:
        self.tuner.add_pending(params)

    def clear_pending(self) -> None:
        self.tuner.clear_pending()

    @property
    def n_known(self) -> int:
        return self.tuner.n_known

    @property
    def observations(self) -> list[Observation]:
        return self.tuner.observations

    @property
    def pending(self) -> list[dict[str, Any]]:
        return self.tuner.pending

    @property
    def best(self) -> Observation | None:
        return self.tuner.best

    @property
    def pareto(self) -> list[Observation]:
        return self.tuner.pareto

    def __repr__(self) -> str:
        return f"AutoTuner(chosen={self.chosen!r}, tuner={self.tuner!r})"

    def _suggest(self, rng: np.random.Generator) -> dict[str, Any] | None:
        return self.tuner._suggest(rng)  # never reached: suggest() is delegated whole
