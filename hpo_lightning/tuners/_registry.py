"""The tuner factory: build a tuner from its name (CLI, YAML, Python)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from hpo_lightning._names import check_options, lookup
from hpo_lightning.exceptions import UserInputError
from hpo_lightning.space import SearchSpace
from hpo_lightning.tuners._auto import AutoTuner
from hpo_lightning.tuners._base import HyperparameterTuner, Modes, check_modes
from hpo_lightning.tuners._cmaes import CMAESTuner
from hpo_lightning.tuners._gp import GPTuner
from hpo_lightning.tuners._mogp import MOGPTuner
from hpo_lightning.tuners._motpe import MOTPETuner
from hpo_lightning.tuners._nsga2 import NSGA2Tuner
from hpo_lightning.tuners._simple import GridSearchTuner, RandomSearchTuner, SobolTuner
from hpo_lightning.tuners._tpe import TPETuner

TunerBuilder = Callable[..., HyperparameterTuner]

_REGISTRY: dict[str, TunerBuilder] = {
    "grid": GridSearchTuner,
    "random": RandomSearchTuner,
    "sobol": SobolTuner,
    "tpe": TPETuner,
    "gp": GPTuner,
    "cmaes": CMAESTuner,
    "auto": AutoTuner,
    "nsga2": NSGA2Tuner,
}
#: the builders used instead for two or more objectives, where a name has its own class
_MULTI: dict[str, TunerBuilder] = {"tpe": MOTPETuner, "gp": MOGPTuner}


def register_tuner(
    name: str, builder: TunerBuilder, *, multi_objective: TunerBuilder | None = None
) -> None:
    """Make a tuner class (or builder with the tuner signature) available by name.

    ``multi_objective``: the builder to use with several objectives, when ``builder`` (a class
    without ``multi_objective = True``) handles one only.
    """
    if not isinstance(name, str) or not name:
        raise UserInputError(f"a tuner name must be a non-empty string, got {name!r}")
    _REGISTRY[name] = builder
    _MULTI.pop(name, None)
    if multi_objective is not None:
        _MULTI[name] = multi_objective


def _builder(name: str, n_objectives: int) -> TunerBuilder:
    builder = lookup("tuner", name, _REGISTRY)
    if n_objectives > 1:
        return _MULTI.get(name, builder)
    return builder


def multiobjective_names() -> list[str]:
    """The names ``make_tuner`` accepts with several objectives."""
    return sorted(
        n for n in _REGISTRY if n in _MULTI or getattr(_REGISTRY[n], "multi_objective", False)
    )


def tuner_names() -> list[str]:
    """The names ``make_tuner`` accepts."""
    return sorted(_REGISTRY)


def make_tuner(
    name: str,
    space: SearchSpace | Mapping[str, Any],
    *,
    mode: Modes = "min",
    seed: int | None = None,
    max_trials: int | None = None,
    **options: Any,
) -> HyperparameterTuner:
    """Build a tuner by name: ``grid``, ``random``, ``sobol``, ``tpe`` (and registered ones).

    Unknown options raise an error that lists the tuner's options. ``mode`` may list one
    mode per objective; with two or more, the name's multi-objective tuner is built, and a
    tuner that handles one objective only is refused (see :func:`multiobjective_names`).

    Example:
        >>> from hpo_lightning import Float
        >>> make_tuner("tpe", {"x": Float(0, 1)}, mode="max", seed=0, max_trials=10).name
        'tpe'
    """
    modes = check_modes(mode)
    builder = _builder(name, len(modes))
    if len(modes) > 1 and not getattr(builder, "multi_objective", False) and name not in _MULTI:
        raise UserInputError(
            f"tuner '{name}' optimises one objective, but {len(modes)} were given; "
            f"use one of {', '.join(multiobjective_names())}"
        )
    check_options("tuner", name, builder, options, reserved=("mode", "seed", "max_trials"))
    return builder(space, mode=mode, seed=seed, max_trials=max_trials, **options)


class TunerFactory:
    """The seed's name for the tuner factory (see :func:`make_tuner`)."""

    make = staticmethod(make_tuner)

    @staticmethod
    def make_grid_search(candidates: Mapping[str, Any], **kwargs: Any) -> HyperparameterTuner:
        return GridSearchTuner(candidates, **kwargs)

    @staticmethod
    def make_random_search(
        ranges: SearchSpace | Mapping[str, Any], max_trials: int | None = None, **kwargs: Any
    ) -> HyperparameterTuner:
        """Random search; ``ranges`` may be the seed's ``{name: (min, max)}`` tuples."""
        if not isinstance(ranges, SearchSpace):
            from hpo_lightning.space import Float

            ranges = {
                k: Float(*v) if isinstance(v, tuple) and len(v) == 2 else v
                for k, v in ranges.items()
            }
        return RandomSearchTuner(ranges, max_trials=max_trials, **kwargs)
