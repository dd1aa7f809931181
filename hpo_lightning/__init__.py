"""hpo_lightning: hyper-parameter optimisation for PyTorch Lightning.

One callback gives a tuner, early stopping and experiment tracking::

    import hpo_lightning as hl
    space = hl.SearchSpace({"lr": hl.Float(1e-4, 1e-1, log=True)})
    tuner = hl.make_tuner("tpe", space, mode="max", seed=0, max_trials=30)
    callback = hl.HPOCallback(tuner, monitor="val_acc", tracker=hl.ExperimentTracker("exp.db"))

The core (space, tuners, schedulers, events) is imported with the package and needs only
numpy; the edge (stores, sweeps, trackers, the Lightning callback) is loaded on first use, so
``import hpo_lightning.tuners`` opens no database driver and imports no framework.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hpo_lightning import exceptions
from hpo_lightning._trial import Mode, Trial, TrialState
from hpo_lightning.events import (
    EpochEnd,
    EpochStart,
    TrainingEvent,
    TrainingFinish,
    TrainingObserver,
    TunerObserver,
)
from hpo_lightning.schedulers import (
    ASHAScheduler,
    Decision,
    EarlyStopper,
    HyperbandScheduler,
    MedianStoppingScheduler,
    Scheduler,
    make_scheduler,
    scheduler_names,
)
from hpo_lightning.space import Categorical, Conditional, Float, Int, SearchSpace
from hpo_lightning.tuners import (
    AutoTuner,
    CMAESTuner,
    GPTuner,
    GridSearchTuner,
    HyperparameterTuner,
    MOGPTuner,
    MOTPETuner,
    NSGA2Tuner,
    RandomSearchTuner,
    SobolTuner,
    TPETuner,
    TunerFactory,
    make_tuner,
    tuner_names,
)

if TYPE_CHECKING:
    from hpo_lightning.lightning import HPOCallback
    from hpo_lightning.storage import Storage, open_storage
    from hpo_lightning.sweep import Sweep, SweepConfig, SweepResult, TrialHandle, run_sweep
    from hpo_lightning.sweep._checkpoints import load_best
    from hpo_lightning.tracking import ExperimentRecord, ExperimentTracker, MLflowTracker, Tracker

__version__ = "0.1.0"

# the edge, imported on first use: name -> module
_LAZY = {
    "HPOCallback": "hpo_lightning.lightning",
    "MLflowTracker": "hpo_lightning.tracking",
    "ExperimentRecord": "hpo_lightning.tracking",
    "ExperimentTracker": "hpo_lightning.tracking",
    "Tracker": "hpo_lightning.tracking",
    "Storage": "hpo_lightning.storage",
    "open_storage": "hpo_lightning.storage",
    "Sweep": "hpo_lightning.sweep",
    "SweepConfig": "hpo_lightning.sweep",
    "SweepResult": "hpo_lightning.sweep",
    "TrialHandle": "hpo_lightning.sweep",
    "run_sweep": "hpo_lightning.sweep",
    "load_best": "hpo_lightning.sweep._checkpoints",
}

__all__ = [
    "ASHAScheduler",
    "AutoTuner",
    "CMAESTuner",
    "Categorical",
    "Conditional",
    "Decision",
    "EarlyStopper",
    "EpochEnd",
    "EpochStart",
    "ExperimentRecord",
    "ExperimentTracker",
    "Float",
    "GPTuner",
    "GridSearchTuner",
    "HPOCallback",
    "HyperbandScheduler",
    "HyperparameterTuner",
    "Int",
    "MLflowTracker",
    "MOGPTuner",
    "MOTPETuner",
    "MedianStoppingScheduler",
    "Mode",
    "NSGA2Tuner",
    "RandomSearchTuner",
    "Scheduler",
    "SearchSpace",
    "SobolTuner",
    "Storage",
    "Sweep",
    "SweepConfig",
    "SweepResult",
    "TPETuner",
    "Tracker",
    "TrainingEvent",
    "TrainingFinish",
    "TrainingObserver",
    "Trial",
    "TrialHandle",
    "TrialState",
    "TunerFactory",
    "TunerObserver",
    "__version__",
    "exceptions",
    "load_best",
    "make_scheduler",
    "make_tuner",
    "open_storage",
    "run_sweep",
    "scheduler_names",
    "tuner_names",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'hpo_lightning' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
