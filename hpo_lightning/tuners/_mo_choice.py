"""What ``auto`` runs with several objectives: multi-objective GP, TPE or NSGA-II.

The rule (:func:`choose_multiobjective_tuner`), from ``benchmarks/bench_multiobjective.py``
(``benchmarks/README.md``, section 12):

* **GP** (ParEGO) when the budget is known and at most 200 trials, the space has at most 10
  parameters and at most half of them are categorical. At 60 trials it had the best median
  hypervolume on 5 of 6 problems (mean rank 1.93 of 8 methods, our TPE 3.33, Optuna's TPE
  3.78); at 200 trials it still led on ZDT1 (2 seeds), at ~300 ms per suggestion.
* **NSGA-II** for known budgets above 500 trials on unconditional spaces: at 500 trials it had
  the best hypervolume in all 6 ZDT1/ZDT3 runs (ahead of our TPE and Optuna's TPE and
  NSGA-II), at a few ms per suggestion; on 3-objective DTLZ2 our TPE was slightly ahead
  (median 9.998 vs 9.973, 3 seeds).
* **TPE** otherwise: unknown or medium budgets, many parameters or categoricals, conditional
  spaces; constant cost per suggestion and any mix of domains.
"""

from __future__ import annotations

from hpo_lightning.space import SearchSpace
from hpo_lightning.tuners._base import HyperparameterTuner
from hpo_lightning.tuners._mogp import MOGPTuner
from hpo_lightning.tuners._motpe import MOTPETuner
from hpo_lightning.tuners._nsga2 import NSGA2Tuner

MO_GP_MAX_TRIALS = 200
MO_GP_MAX_DIM = 10
MO_NSGA2_MIN_TRIALS = 500

MO_BUILDERS: dict[str, type[HyperparameterTuner]] = {
    "gp": MOGPTuner,
    "tpe": MOTPETuner,
    "nsga2": NSGA2Tuner,
}


def choose_multiobjective_tuner(space: SearchSpace, max_trials: int | None) -> tuple[str, str]:
    """The tuner name ``auto`` uses with several objectives, and the reason in words."""
    n_cat = sum(1 for d in space.values() if d.is_categorical)
    if max_trials is not None and max_trials <= MO_GP_MAX_TRIALS:
        if space.dim > MO_GP_MAX_DIM:
            return "tpe", f"{space.dim} parameters (> {MO_GP_MAX_DIM}) are many for the GP"
        if 2 * n_cat > space.dim:
            return "tpe", f"{n_cat} of {space.dim} parameters are categorical"
        return "gp", f"several objectives, a small budget ({max_trials} <= {MO_GP_MAX_TRIALS})"
    if max_trials is not None and max_trials > MO_NSGA2_MIN_TRIALS and not space.is_conditional:
        return "nsga2", f"several objectives, a large budget ({max_trials} trials)"
    budget = "an unknown budget" if max_trials is None else f"a budget of {max_trials} trials"
    return "tpe", f"several objectives, {budget}"
