"""The tuner factory: build a tuner from its name (CLI, YAML, Python)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from hpo_lightning._names import check_options, lookup
from hpo_lightning._trial import Mode, check_mode
from hpo_lightning.exceptions import UserInputError
from hpo_lightning.space import SearchSpace
from hpo_lightning.tuners._auto import AutoTuner
from hpo_lightning.tuners._base import HyperparameterTuner
from hpo_lightning.tuners._cmaes import CMAESTuner
from hpo_lightning.tuners._gp import GPTuner
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
}


def register_tuner(name: str, builder: TunerBuilder) -> None:
    """Make a tuner class (or builder with the tuner signature) available by name."""
    if not isinstance(name, str) or not name:
        raise UserInputError(f"a tuner name must be a non-empty string, got {name!r}")
    _REGISTRY[name] = builder


def tuner_names() -> list[str]:
    """The names ``make_tuner`` accepts."""
    return sorted(_REGISTRY)


def make_tuner(
    name: str,
    space: SearchSpace | Mapping[str, Any],
    *,
    mode: Mode = "min",
    seed: int | None = None,
    max_trials: int | None = None,
    **options: Any,
) -> HyperparameterTuner:
    """Build a tuner by name: ``grid``, ``random``, ``sobol``, ``tpe`` (and registered ones).

    Unknown options raise an error that lists the tuner's options.

    Example:
        >>> from hpo_lightning import Float
        >>> make_tuner("tpe", {"x": Float(0, 1)}, mode="max", seed=0, max_trials=10).name
        'tpe'
    """
    check_mode(mode)
    builder = lookup("tuner", name, _REGISTRY)
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
