"""Tuners: the strategies that decide what to try next. Framework-free (numpy, scipy)."""

from hpo_lightning.tuners._auto import AutoTuner, choose_tuner
from hpo_lightning.tuners._base import HyperparameterTuner, Observation
from hpo_lightning.tuners._cmaes import CMAESTuner
from hpo_lightning.tuners._gp import GPTuner
from hpo_lightning.tuners._mogp import MOGPTuner
from hpo_lightning.tuners._motpe import MOTPETuner
from hpo_lightning.tuners._nsga2 import NSGA2Tuner
from hpo_lightning.tuners._pareto import (
    crowding_distance,
    dominates,
    hypervolume,
    hypervolume_contributions,
    non_dominated_sort,
    pareto_front,
    to_losses,
)
from hpo_lightning.tuners._registry import (
    TunerFactory,
    make_tuner,
    multiobjective_names,
    register_tuner,
    tuner_names,
)
from hpo_lightning.tuners._simple import GridSearchTuner, RandomSearchTuner, SobolTuner
from hpo_lightning.tuners._tpe import TPETuner

__all__ = [
    "AutoTuner",
    "CMAESTuner",
    "GPTuner",
    "GridSearchTuner",
    "HyperparameterTuner",
    "MOGPTuner",
    "MOTPETuner",
    "NSGA2Tuner",
    "Observation",
    "RandomSearchTuner",
    "SobolTuner",
    "TPETuner",
    "TunerFactory",
    "choose_tuner",
    "crowding_distance",
    "dominates",
    "hypervolume",
    "hypervolume_contributions",
    "make_tuner",
    "multiobjective_names",
    "non_dominated_sort",
    "pareto_front",
    "register_tuner",
    "to_losses",
    "tuner_names",
]
