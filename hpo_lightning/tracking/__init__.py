"""Trackers: observers that record training events (SQLite/PostgreSQL store, MLflow)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hpo_lightning.tracking._base import Tracker
from hpo_lightning.tracking._experiment import ExperimentRecord, ExperimentTracker

if TYPE_CHECKING:
    from hpo_lightning.tracking._mlflow import MLflowTracker

__all__ = ["ExperimentRecord", "ExperimentTracker", "MLflowTracker", "Tracker"]


def __getattr__(name: str) -> Any:
    # MLflowTracker's module is loaded on first use (it is the only one that talks to mlflow)
    if name == "MLflowTracker":
        from hpo_lightning.tracking._mlflow import MLflowTracker

        return MLflowTracker
    raise AttributeError(f"module 'hpo_lightning.tracking' has no attribute {name!r}")
