"""Trackers: observers that record training events (SQLite/PostgreSQL store, MLflow)."""

from hpo_lightning.tracking._base import Tracker
from hpo_lightning.tracking._experiment import ExperimentRecord, ExperimentTracker

__all__ = ["ExperimentRecord", "ExperimentTracker", "Tracker"]
