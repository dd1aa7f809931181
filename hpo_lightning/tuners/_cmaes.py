"""CMA-ES through the ``cmaes`` package (an optional extra), in the unit cube of the space.

CMA-ES (Hansen 2016, "The CMA Evolution Strategy: A Tutorial") samples a generation of
``population_size`` points from a Gaussian, ranks them, and moves the mean and covariance
towards the better ones. We use ``cmaes.CMA`` (Nomura & Shibata 2024, "cmaes: A Simple yet
Practical Python Library for CMA-ES") and only translate between its ask/tell and our
suggest/report:

* **Generations:** a generation is a list of asked points; suggestions hand them out in order.
  When ``population_size`` of them have been reported, the generation is told to CMA-ES and the
  next one is asked. More parallel workers than the population get further points asked from
  the same distribution; any ``population_size`` reported points of a generation complete it.
* **Parameters:** every coordinate of the unit cube is searched by CMA-ES; the space's decode
  rounds ints and maps categoricals to their cell (as Optuna's CmaEsSampler does for ints).
  For spaces with many categoricals the ``auto`` tuner prefers TPE.
* **Conditional spaces:** CMA-ES searches the full cube; the coordinates of parameters that
  the point's parents make inactive are simply not decoded, so they do not change the result
  and CMA-ES adapts on the active ones (the inactive ones drift as neutral coordinates). It
  works, but TPE models the branches and ``auto`` picks TPE for such spaces.
* **Pruned and failed trials** rank after every completed point of their generation (pruned
  deeper-first, then by the value reached; failed last). CMA-ES uses only the ranking.
* **Restarts:** when ``cmaes`` reports convergence, CMA-ES restarts from a random mean with a
  doubled population (IPOP-CMA-ES, Auger & Hansen 2005).
* **Reports of params it did not suggest** (another tuner's trials, a store written by someone
  else) are kept in the history but do not move the distribution. Replaying a tuner's own
  history into a fresh tuner with the same seed re-asks the same points, so the rebuilt tuner
  continues with the same distribution and the same next suggestions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from hpo_lightning._trial import Mode, TrialState, check_int
from hpo_lightning.exceptions import UserInputError, missing_extra
from hpo_lightning.space import SearchSpace
from hpo_lightning.tuners._base import HyperparameterTuner, Observation, params_key


@dataclass
class _Member:
    """One asked point of the current generation."""

    x: np.ndarray
    key: str
    issued: bool = False
    result: Observation | None = None


def tell_values(results: list[Observation]) -> list[float]:
    """Values for CMA-ES that keep the ranking: completed by loss, then pruned, then failed."""
    done = [o.loss for o in results if o.state is TrialState.COMPLETE and math.isfinite(o.loss)]
    hi = max(done) if done else 0.0
    span = max(hi - min(done), 1.0) if done else 1.0
    pruned = sorted(
        (o for o in results if o.state is TrialState.PRUNED and math.isfinite(o.loss)),
        key=lambda o: (-(o.step or 0), o.loss),
    )
    rank = {id(o): i for i, o in enumerate(pruned)}
    out = []
    for o in results:
        if o.state is TrialState.COMPLETE and math.isfinite(o.loss):
            out.append(o.loss)
        elif id(o) in rank:
            out.append(hi + span * (1 + rank[id(o)]))
        else:
            out.append(hi + span * (2 + len(pruned)))
    return out


class CMAESTuner(HyperparameterTuner):
    """Covariance Matrix Adaptation Evolution Strategy via the ``cmaes`` package.

    Best for continuous spaces and budgets of a few hundred trials or more; needs
    ``pip install 'hpo_lightning[cmaes]'``.

    Args:
        space, mode, seed, max_trials: as for every tuner.
        sigma0: initial step size in the unit cube (default 0.2).
        population_size: points per generation (default ``4 + floor(3 ln d)``).

    Example:
        >>> from hpo_lightning import SearchSpace, Float
        >>> t = CMAESTuner(SearchSpace({"x": Float(-5, 5), "y": Float(-5, 5)}), seed=0)
        >>> for _ in range(120):
        ...     p = t.suggest(); t.report_result(p, (p["x"] - 1) ** 2 + p["y"] ** 2)
        >>> abs(t.best.params["x"] - 1) < 0.1
        True
    """

    name: ClassVar[str] = "cmaes"

    def __init__(
        self,
        space: SearchSpace | Mapping[str, Any],
        *,
        mode: Mode = "min",
        seed: int | None = None,
        max_trials: int | None = None,
        sigma0: float = 0.2,
        population_size: int | None = None,
    ) -> None:
        super().__init__(space, mode=mode, seed=seed, max_trials=max_trials)
        try:
            import cmaes  # noqa: F401
        except ImportError:
            raise missing_extra("cmaes", "cmaes", "CMAESTuner") from None
        if not (isinstance(sigma0, (int, float)) and 0 < sigma0 <= 1):
            raise UserInputError(f"`sigma0` must be in (0, 1] (the unit cube), got {sigma0!r}")
        check_int("population_size", population_size, at_least=2, allow_none=True)
        self.sigma0 = float(sigma0)
        self.population_size = population_size
        self._restarts = 0
        self._cma: Any = None
        self._gen: list[_Member] = []
        self._stale: set[str] = set()  # in flight when their generation was told

    # --- the optimiser -------------------------------------------------------------
    def _optimizer(self) -> Any:
        if self._cma is None:
            from cmaes import CMA

            dim = self.space.dim
            rng = np.random.default_rng([self.seed, self._restarts])
            mean = np.full(dim, 0.5) if self._restarts == 0 else rng.uniform(0.25, 0.75, dim)
            pop = self.population_size or 4 + math.floor(3 * math.log(dim))
            self._cma = CMA(
                mean=mean,
                sigma=self.sigma0,
                bounds=np.array([[0.0, 1.0]] * dim),
                seed=int(rng.integers(2**31)),
                population_size=pop * 2**self._restarts,
            )
        return self._cma

    def _ask(self) -> _Member:
        x = np.asarray(self._optimizer().ask(), dtype=float)
        member = _Member(x=x, key=params_key(self.space.decode(x)))
        self._gen.append(member)
        return member

    @property
    def generation(self) -> int:
        """Generations told to CMA-ES so far (since the last restart)."""
        return 0 if self._cma is None else int(self._cma.generation)

    # --- suggest / report ----------------------------------------------------------
    def _suggest(self, rng: np.random.Generator) -> dict[str, Any] | None:
        pop = self._optimizer().population_size
        for member in self._gen:
            if not member.issued and member.key not in self._pending:
                member.issued = True
                return self.space.decode(member.x)
        for _ in range(4 * pop):  # more workers than the population: ask further points
            member = self._ask()
            if member.key not in self._pending:
                member.issued = True
                return self.space.decode(member.x)
        for _ in range(100):  # a discrete space crowded with pending points
            params = self.space.decode(rng.random(self.space.dim))
            if params_key(params) not in self._pending:
                return params
        return params

    def _on_report(self, obs: Observation) -> None:
        key = params_key(obs.params)
        pop = self._optimizer().population_size
        member = self._find(key)
        while member is None and key not in self._stale and len(self._gen) < 3 * pop:
            asked = self._ask()  # replaying history into a fresh tuner: re-ask the same points
            member = asked if asked.key == key else None
        if member is None:
            return  # not ours, or of a generation already told: kept in the history only
        member.issued, member.result = True, obs
        done = [m for m in self._gen if m.result is not None]
        if len(done) == pop:
            values = tell_values([m.result for m in done if m.result is not None])
            self._cma.tell([(m.x, v) for m, v in zip(done, values)])
            self._stale = {m.key for m in self._gen if m.issued and m.result is None}
            self._gen = []
            if self._cma.should_stop():
                self._restarts += 1
                self._cma = None

    def _find(self, key: str) -> _Member | None:
        for member in self._gen:
            if member.result is None and member.key == key:
                return member
        return None
