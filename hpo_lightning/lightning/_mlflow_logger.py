"""Lightning's MLFlowLogger bound to a trial's MLflow run (``MLflowTracker.logger_for``).

It lives here, not in ``tracking/``, so that this folder stays the only place that imports
Lightning; the tracker imports this module when a logger is asked for.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from typing import Any

from hpo_lightning.exceptions import MissingDependencyError, UserInputError

_LOGGERS = {
    "pytorch_lightning": "pytorch_lightning.loggers",
    "lightning": "lightning.pytorch.loggers",
}


def trial_mlflow_logger(
    *,
    experiment_name: str,
    tracking_uri: str | None,
    run_id: str,
    prefix: str,
    package: str | None,
    after_finalize: Callable[[], None],
) -> Any:
    """A Lightning ``MLFlowLogger`` that logs into ``run_id`` and calls ``after_finalize``
    once Lightning finalised it (the tracker then restores the trial's real status).

    ``package``: "pytorch_lightning" or "lightning" (default: the first one installed).
    """
    logger = mlflow_logger_class(package)(
        experiment_name=experiment_name, tracking_uri=tracking_uri, run_id=run_id, prefix=prefix
    )
    logger.hpo_after_finalize = after_finalize
    return logger


def mlflow_logger_class(package: str | None) -> type:
    """A subclass of Lightning's MLFlowLogger that hands the run's status back to the tracker."""
    names = [package] if package else list(_LOGGERS)
    base = None
    for name in names:
        if name not in _LOGGERS:
            raise UserInputError(
                f"`package` must be 'pytorch_lightning' or 'lightning', but got {name!r}"
            )
        if importlib.util.find_spec(name) is not None:
            base = importlib.import_module(_LOGGERS[name]).MLFlowLogger
            break
    if base is None:
        raise MissingDependencyError(
            f"MLflowTracker.logger_for needs {package or 'Lightning'}, which is not installed (a "
            "dependency of hpo_lightning: the install was incomplete); install it with: "
            f"pip install {'lightning' if package == 'lightning' else 'pytorch-lightning'}"
        )

    class TrialMLFlowLogger(base):  # type: ignore[misc,valid-type]
        """MLFlowLogger bound to a trial's run; the tracker keeps the trial's status."""

        hpo_after_finalize: Callable[[], None] | None = None

        def finalize(self, status: str = "success") -> None:
            super().finalize(status)
            if self.hpo_after_finalize is not None:
                self.hpo_after_finalize()

    return TrialMLFlowLogger
