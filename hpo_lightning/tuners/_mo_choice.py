"""What ``auto`` runs with several objectives: multi-objective GP, TPE or NSGA-II.

The rule (:func:`choose_multiobjective_tuner`), from ``benchmarks/bench_multiobjective.py``:

* **GP** (ParEGO) when the budget is known and small (``max_trials <= 100``), the space has at
  most 10 parameters and at most half of them are categorical: the most sample-efficient, and
  its cost per suggestion (a GP fit) does not matter at that size.
* **NSGA-II** for large known budgets (``max_trials > 500``) on unconditional spaces: the
  evolution keeps spreading the front at constant cost per suggestion.
* **TPE** otherwise: unknown budgets, many parameters or categoricals, conditional spaces.
"""

from __future__ import annotations

from hpo_lightning.space import SearchSpace
from hpo_lightning.tuners._base import HyperparameterTuner
from hpo_lightning.tuners._mogp import MOGPTuner
from hpo_lightning.tuners._motpe import MOTPETuner
from hpo_lightning.tuners._nsga2 import NSGA2Tuner

MO_GP_MAX_TRIALS = 100
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
