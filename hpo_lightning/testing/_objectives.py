"""Objectives the contract suites run (importable wherever hpo_lightning is installed)."""

from __future__ import annotations

import time
from typing import Any


def sleeper(params: dict[str, Any], callback: Any, seconds: float = 1.0) -> float:
    """Sleep ``seconds`` (a trial that takes time), then return ``params["x"]``."""
    time.sleep(seconds)
    return float(params["x"])
