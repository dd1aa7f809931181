"""Schedulers: whether a running trial goes on (median stopping, ASHA, Hyperband, PBT, auto).

``decide(curve, others, mode=...)`` is a pure query on reported per-epoch values;
:class:`EarlyStopper` applies it to the epochs a training loop reports (the Lightning callback
and ``trial.report_epoch`` use it). This package imports only the standard library and numpy.
"""

from hpo_lightning.schedulers._asha import ASHAScheduler
from hpo_lightning.schedulers._auto import AutoScheduler, choose_scheduler
from hpo_lightning.schedulers._base import (
    Decision,
    Exploit,
    LearningCurve,
    NoScheduler,
    Scheduler,
    reported_value,
)
from hpo_lightning.schedulers._early_stopping import EarlyStopper
from hpo_lightning.schedulers._hyperband import HyperbandScheduler
from hpo_lightning.schedulers._median import MedianStoppingScheduler
from hpo_lightning.schedulers._pbt import PBTScheduler
from hpo_lightning.schedulers._registry import make_scheduler, register_scheduler, scheduler_names

__all__ = [
    "ASHAScheduler",
    "AutoScheduler",
    "Decision",
    "EarlyStopper",
    "Exploit",
    "HyperbandScheduler",
    "LearningCurve",
    "MedianStoppingScheduler",
    "NoScheduler",
    "PBTScheduler",
    "Scheduler",
    "choose_scheduler",
    "make_scheduler",
    "register_scheduler",
    "reported_value",
    "scheduler_names",
]
