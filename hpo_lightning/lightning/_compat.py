"""The Lightning import site: base classes from ``pytorch_lightning`` and ``lightning.pytorch``.

HPOCallback derives from the Callback class of every Lightning namespace installed, so one
instance works with ``pytorch_lightning.Trainer`` and ``lightning.pytorch.Trainer`` alike.
"""

from __future__ import annotations

from typing import Any

from hpo_lightning.exceptions import MissingDependencyError


def callback_bases() -> tuple[type, ...]:
    bases: list[type] = []
    try:
        import pytorch_lightning

        bases.append(pytorch_lightning.Callback)
    except ImportError:
        pass
    try:
        import lightning.pytorch

        bases.append(lightning.pytorch.Callback)
    except ImportError:
        pass
    if not bases:
        raise MissingDependencyError(
            "HPOCallback needs Lightning, which is not installed (it is a dependency of "
            "hpo_lightning: the install was incomplete); install it with: "
            "pip install pytorch-lightning"
        )
    return tuple(bases)


def broadcast(trainer: Any, obj: Any) -> Any:
    """Rank 0's value of ``obj`` on every rank (identity without a distributed strategy)."""
    strategy = getattr(trainer, "strategy", None)
    if strategy is None or getattr(trainer, "world_size", 1) <= 1:
        return obj
    return strategy.broadcast(obj, src=0)
