"""Non-adaptive tuners: grid, random and Sobol (quasi-random) search."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from hpo_lightning.exceptions import InvalidSpaceError
from hpo_lightning.space import Categorical, SearchSpace
from hpo_lightning.tuners._base import HyperparameterTuner, Modes, Observation, params_key


def _grid_space(candidates: SearchSpace | Mapping[str, Any]) -> SearchSpace:
    if isinstance(candidates, SearchSpace):
        return candidates
    if not isinstance(candidates, Mapping) or not candidates:
        raise InvalidSpaceError(
            "grid search needs a non-empty mapping of parameter names to candidate lists, "
            f"but got {candidates!r}"
        )
    spec: dict[str, Any] = {}
    for name, values in candidates.items():
        if isinstance(values, Sequence) and not isinstance(values, str):
            if len(values) == 0:
                raise InvalidSpaceError(
                    f"the grid is empty: parameter '{name}' has no candidate values"
                )
            spec[name] = Categorical(values)
        else:
            spec[name] = values
    return SearchSpace(spec)


class GridSearchTuner(HyperparameterTuner):
    """Exhaustive search over the Cartesian product of discrete candidate values.

    Accepts several objectives (it ignores the values).

    Accepts the seed's dict of candidate lists (``{"lr": [0.01, 0.001], ...}``) or a
    SearchSpace of Categorical/Int domains. Points that are pending or already reported (by
    this tuner or, after ``add_pending``/``report_result``, by other workers) are never
    suggested again; ``suggest()`` returns None once every point is taken.

    Args:
        shuffle: visit the grid in a seeded random order instead of row-major order.

    Example:
        >>> t = GridSearchTuner({"a": [1.0, 2.0], "b": [10.0]})
        >>> [t.suggest(), t.suggest(), t.suggest()]
        [{'a': 1.0, 'b': 10.0}, {'a': 2.0, 'b': 10.0}, None]
    """

    name: ClassVar[str] = "grid"
    multi_objective: ClassVar[bool] = True

    def __init__(
        self,
        candidates: SearchSpace | Mapping[str, Any],
        *,
        mode: Modes = "min",
        seed: int | None = None,
        max_trials: int | None = None,
        shuffle: bool = False,
    ) -> None:
        space = _grid_space(candidates)
        super().__init__(space, mode=mode, seed=seed, max_trials=max_trials)
        self._grid = list(self.space.grid())
        if not self._grid:
            raise InvalidSpaceError("the grid is empty; give every parameter at least one value")
        if shuffle:
            order = np.random.default_rng(self.seed).permutation(len(self._grid))
            self._grid = [self._grid[i] for i in order]
        self._keys = [params_key(p) for p in self._grid]
        self._taken: set[str] = set()
        self._cursor = 0

    @property
    def grid_size(self) -> int:
        return len(self._grid)

    def _suggest(self, rng: np.random.Generator) -> dict[str, Any] | None:
        while self._cursor < len(self._grid) and self._keys[self._cursor] in self._taken:
            self._cursor += 1
        if self._cursor >= len(self._grid):
            return None
        return dict(self._grid[self._cursor])

    def _add_pending(self, params: dict[str, Any]) -> None:
        self._taken.add(params_key(params))
        super()._add_pending(params)

    def _on_report(self, obs: Observation) -> None:
        self._taken.add(params_key(obs.params))


class RandomSearchTuner(HyperparameterTuner):
    """Uniform random search in the unit cube (log scales and int steps via the space).

    Accepts several objectives (it ignores the values).

    Example:
        >>> from hpo_lightning import SearchSpace, Float
        >>> t = RandomSearchTuner(SearchSpace({"x": Float(0, 1)}), seed=0, max_trials=5)
        >>> 0 <= t.suggest()["x"] <= 1
        True
    """

    name: ClassVar[str] = "random"
    multi_objective: ClassVar[bool] = True

    def _suggest(self, rng: np.random.Generator) -> dict[str, Any] | None:
        return self.space.decode(rng.random(self.space.dim))


class SobolTuner(HyperparameterTuner):
    """Scrambled Sobol' sequence (``scipy.stats.qmc``): even coverage of the cube.

    The k-th suggestion is the k-th point of the sequence scrambled with ``seed``, so a
    resumed or parallel sweep continues the same sequence. Accepts several objectives (it
    ignores the values).

    Example:
        >>> from hpo_lightning import SearchSpace, Float
        >>> t = SobolTuner(SearchSpace({"x": Float(0, 1), "y": Float(0, 1)}), seed=0)
        >>> len(t.suggest())
        2
    """

    name: ClassVar[str] = "sobol"
    multi_objective: ClassVar[bool] = True

    def __init__(
        self,
        space: SearchSpace | Mapping[str, Any],
        *,
        mode: Modes = "min",
        seed: int | None = None,
        max_trials: int | None = None,
    ) -> None:
        super().__init__(space, mode=mode, seed=seed, max_trials=max_trials)
        self._engine: Any = None
        self._position = 0

    def point(self, k: int) -> np.ndarray:
        """The k-th point of this tuner's scrambled Sobol' sequence."""
        from scipy.stats import qmc

        if self._engine is None or self._position > k:
            self._engine = qmc.Sobol(self.space.dim, scramble=True, seed=self.seed % 2**32)
            self._position = 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # balance warning for n not 2**m
            if k > self._position:
                self._engine.fast_forward(k - self._position)
            u = self._engine.random(1)[0]
        self._position = k + 1
        return np.asarray(u, dtype=float)

    def _suggest(self, rng: np.random.Generator) -> dict[str, Any] | None:
        return self.space.decode(self.point(self.n_known))
