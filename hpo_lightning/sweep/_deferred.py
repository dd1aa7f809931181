"""The trial's callback without importing Lightning until an objective uses it.

Importing Lightning (and torch) takes seconds and hundreds of MB. A worker whose objective is
plain Python (``def objective(params, callback): return ...``) never needs it, so while
Lightning is not imported the worker hands the objective a :class:`DeferredCallback`: the real
:class:`~hpo_lightning.lightning.HPOCallback`, built on first use. An objective that imports
Lightning at module level gets the real callback directly.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

# what the worker reads from a trial's callback, and the answer while it was never used
_UNUSED = {"finished": False, "epochs": 0, "exploit": None}


def lightning_loaded() -> bool:
    """Whether this process imported Lightning (e.g. the objective's module did)."""
    return "lightning" in sys.modules or "pytorch_lightning" in sys.modules


class DeferredCallback:
    """An HPOCallback that imports Lightning and builds itself when first used.

    Any attribute builds it; so does ``isinstance(cb, Callback)`` (``__class__`` answers the
    real class), as a ``Trainer(callbacks=[cb])`` in an objective that imports Lightning
    inside its body does. The attributes the worker reads after the trial (``finished``,
    ``epochs``, ``exploit``) answer "never used" without building it.
    """

    __slots__ = ("_build", "_real")

    def __init__(self, build: Callable[[], Any]) -> None:
        object.__setattr__(self, "_build", build)
        object.__setattr__(self, "_real", None)

    def _callback(self) -> Any:
        real = object.__getattribute__(self, "_real")
        if real is None:
            import hpo_lightning.lightning  # noqa: F401  (Lightning and torch: seconds)

            real = object.__getattribute__(self, "_build")()
            object.__setattr__(self, "_real", real)
        return real

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return type(self._callback())

    def __getattr__(self, name: str) -> Any:
        if object.__getattribute__(self, "_real") is None and name in _UNUSED:
            return _UNUSED[name]
        return getattr(self._callback(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._callback(), name, value)

    def __repr__(self) -> str:
        real = object.__getattribute__(self, "_real")
        return repr(real) if real is not None else "DeferredCallback(not built: Lightning unused)"
