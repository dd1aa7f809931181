"""Resolving a sweep's objective: a ``module:function`` import path or a callable."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from hpo_lightning.exceptions import ConfigError

#: Lightning's hint, printed by every Trainer on a machine where ``srun`` is installed but the
#: process was not started by it. In a sweep the launcher decides where trials run (``launcher:
#: slurm`` runs them under srun), so the hint's advice, to prepend ``srun`` to the command, is
#: wrong for a sweep, and it was printed once or twice for every trial.
SRUN_HINT = r"The `srun` command is available on your system but is not used"


@contextlib.contextmanager
def objective_warnings() -> Iterator[None]:
    """Around each call of the objective: Lightning's srun hint (:data:`SRUN_HINT`) is not
    shown; every other warning is, and the caller's filters are restored afterwards."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=SRUN_HINT)
        yield


def resolve_objective(
    objective: str | Callable[..., Any], base_dir: str = "."
) -> Callable[..., Any]:
    """Import ``module:function`` (``base_dir`` is searched first) and check it can be called.

    The objective is called as ``objective(params, callback, **objective_args)``.
    """
    if callable(objective):
        fn: Any = objective
    else:
        if not isinstance(objective, str) or objective.count(":") != 1:
            raise ConfigError(
                f"objective must be 'module:function' (e.g. 'digits:train'), got {objective!r}"
            )
        module_name, attr = objective.split(":")
        if base_dir and base_dir not in sys.path:
            sys.path.insert(0, base_dir)
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise ConfigError(
                f"objective '{objective}': module '{module_name}' cannot be imported "
                f"({type(exc).__name__}: {exc}); check the name and that it is importable "
                f"from {base_dir}"
            ) from None
        fn = module
        for part in attr.split("."):
            if not hasattr(fn, part):
                raise ConfigError(
                    f"objective '{objective}': module '{module_name}' has no attribute '{attr}'"
                )
            fn = getattr(fn, part)
        if not callable(fn):
            raise ConfigError(
                f"objective '{objective}' is a {type(fn).__name__}, not a function; point it at "
                "a function train(params, callback)"
            )
    try:
        sig = inspect.signature(fn)
        sig.bind(object(), object())
    except TypeError:
        raise ConfigError(
            f"objective {getattr(fn, '__name__', fn)!r} must accept (params, callback), "
            f"but its signature is {inspect.signature(fn)}"
        ) from None
    except ValueError:  # builtins without a signature: trust them
        pass
    return fn
