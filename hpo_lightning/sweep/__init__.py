"""Sweeps: YAML definitions, the driver (serial, parallel, resumable), the trial loop."""

from hpo_lightning.sweep._config import SweepConfig, config_from_dict, load_sweep_file
from hpo_lightning.sweep._driver import Sweep, run_sweep
from hpo_lightning.sweep._result import SweepResult
from hpo_lightning.sweep._runtime import TrialHandle

__all__ = [
    "Sweep",
    "SweepConfig",
    "SweepResult",
    "TrialHandle",
    "config_from_dict",
    "load_sweep_file",
    "run_sweep",
]
