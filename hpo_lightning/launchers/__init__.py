"""Launchers: where a sweep's workers run (local processes; Ray and Slurm with their extras).

A launcher only starts workers, watches them and stops them; every worker runs the same loop
(:func:`hpo_lightning.sweep.run_worker`), which claims trials from the store.
"""

from hpo_lightning.launchers._base import Exited, Launcher, WorkerExit, WorkerSpec
from hpo_lightning.launchers._local import LocalLauncher
from hpo_lightning.launchers._registry import launcher_names, make_launcher, register_launcher
from hpo_lightning.launchers._resources import Resources, visible_gpus

__all__ = [
    "Exited",
    "Launcher",
    "LocalLauncher",
    "Resources",
    "WorkerExit",
    "WorkerSpec",
    "launcher_names",
    "make_launcher",
    "register_launcher",
    "visible_gpus",
]
