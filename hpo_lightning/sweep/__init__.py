"""Sweeps: YAML definitions, the Sweep façade, the per-process Worker loop, the trial loop."""

from hpo_lightning.sweep._config import SweepConfig, config_from_dict, load_sweep_file
from hpo_lightning.sweep._driver import Sweep, run_sweep
from hpo_lightning.sweep._result import StopReason, SweepResult
from hpo_lightning.sweep._run import run_worker
from hpo_lightning.sweep._runtime import TrialHandle
from hpo_lightning.sweep._stop import StopToken
from hpo_lightning.sweep._worker import Worker

__all__ = [
    "StopReason",
    "StopToken",
    "Sweep",
    "SweepConfig",
    "SweepResult",
    "TrialHandle",
    "Worker",
    "config_from_dict",
    "load_sweep_file",
    "run_sweep",
    "run_worker",
]
