"""The scheduler factory: build a scheduler from its name (CLI, YAML ``scheduler:``, Python)."""

from __future__ import annotations

from typing import Any

from hpo_lightning._names import check_options, lookup
from hpo_lightning.exceptions import UserInputError
from hpo_lightning.schedulers._asha import ASHAScheduler
from hpo_lightning.schedulers._auto import AutoScheduler
from hpo_lightning.schedulers._base import NoScheduler, Scheduler
from hpo_lightning.schedulers._hyperband import HyperbandScheduler
from hpo_lightning.schedulers._median import MedianStoppingScheduler
from hpo_lightning.schedulers._pbt import PBTScheduler

_REGISTRY: dict[str, type[Scheduler]] = {
    "none": NoScheduler,
    "median": MedianStoppingScheduler,
    "asha": ASHAScheduler,
    "hyperband": HyperbandScheduler,
    "pbt": PBTScheduler,
    "auto": AutoScheduler,
}


def scheduler_names() -> list[str]:
    """The names ``make_scheduler`` accepts."""
    return sorted(_REGISTRY)


def register_scheduler(name: str, cls: type[Scheduler]) -> None:
    """Make a scheduler class available by name (a sweep file's ``scheduler: {name: ...}``).

    The class takes its options as keyword-only arguments (after ``*``). Register it in the
    module of the sweep's objective: a sweep file is checked after that module is imported,
    and every worker imports it.
    """
    if not isinstance(name, str) or not name:
        raise UserInputError(f"a scheduler name must be a non-empty string, got {name!r}")
    if not (isinstance(cls, type) and issubclass(cls, Scheduler)):
        raise UserInputError(
            f"register_scheduler('{name}', ...) needs a Scheduler subclass, got {cls!r}"
        )
    _REGISTRY[name] = cls


def make_scheduler(name: str, **options: Any) -> Scheduler:
    """Build a scheduler by name: ``none``, ``median``, ``asha``, ``hyperband``, ``pbt`` or
    ``auto`` (picks one from ``max_epochs`` and says which and why; see :class:`AutoScheduler`).

    A sweep file's ``scheduler:`` mapping is passed as it is: ``make_scheduler(**mapping)``.
    Unknown names list the known ones; unknown options list the scheduler's options.

    Example:
        >>> make_scheduler("median", warmup_epochs=2)
        MedianStoppingScheduler(warmup_epochs=2, min_trials=3)
        >>> make_scheduler("asha", max_epochs=20).rungs
        (3, 9)
    """
    cls = lookup("scheduler", name, _REGISTRY)
    check_options("scheduler", name, cls.__init__, options)
    return cls(**options)
