"""The scheduler factory: build a scheduler from its name (CLI, YAML ``scheduler:``, Python)."""

from __future__ import annotations

import difflib
import inspect
from typing import Any

from hpo_lightning.exceptions import UnknownNameError, UserInputError
from hpo_lightning.schedulers._asha import ASHAScheduler
from hpo_lightning.schedulers._base import NoScheduler, Scheduler
from hpo_lightning.schedulers._hyperband import HyperbandScheduler
from hpo_lightning.schedulers._median import MedianStoppingScheduler

_REGISTRY: dict[str, type[Scheduler]] = {
    "none": NoScheduler,
    "median": MedianStoppingScheduler,
    "asha": ASHAScheduler,
    "hyperband": HyperbandScheduler,
}


def scheduler_names() -> list[str]:
    """The names ``make_scheduler`` accepts."""
    return sorted(_REGISTRY)


def make_scheduler(name: str, **options: Any) -> Scheduler:
    """Build a scheduler by name: ``none``, ``median``, ``asha`` or ``hyperband``.

    A sweep file's ``scheduler:`` mapping is passed as it is: ``make_scheduler(**mapping)``.
    Unknown names list the known ones; unknown options list the scheduler's options.

    Example:
        >>> make_scheduler("asha", min_epochs=1, reduction_factor=3, max_epochs=20)
        ASHAScheduler(min_epochs=1, reduction_factor=3, max_epochs=20)
    """
    cls = _REGISTRY.get(name) if isinstance(name, str) else None
    if cls is None:
        close = difflib.get_close_matches(str(name), _REGISTRY, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise UnknownNameError(
            f"unknown scheduler {name!r}; known schedulers: {', '.join(scheduler_names())}{hint}"
        )
    allowed = [
        k for k, p in inspect.signature(cls.__init__).parameters.items() if p.kind is p.KEYWORD_ONLY
    ]
    for key in options:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise UserInputError(
                f"scheduler '{name}' has no option {key!r} (its options: "
                f"{', '.join(allowed) or 'none'}){hint}"
            )
    return cls(**options)
