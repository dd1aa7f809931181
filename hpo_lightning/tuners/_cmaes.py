"""CMA-ES through the ``cmaes`` package (an optional extra), in the unit cube of the space.

CMA-ES (Hansen 2016, "The CMA Evolution Strategy: A Tutorial") samples a generation of
``population_size`` points from a Gaussian, ranks them, and moves the mean and covariance
towards the better ones. We use ``cmaes.CMA`` (Nomura & Shibata 2024, "cmaes: A Simple yet
Practical Python Library for CMA-ES") and only translate between its ask/tell and our
suggest/report:

* **Generations:** a generation is a list of asked points; suggestions hand them out in order
  (the surrogate's, see below). When ``population_size`` of them have been reported (or the
  surrogate ends it early), the generation is told to CMA-ES and the next one is asked. More
  parallel workers than the population get further points asked from the same distribution;
  any ``population_size`` reported points of a generation complete it.
* **Surrogate (lq-CMA-ES, Hansen 2019, "A Global Surrogate Assisted CMA-ES", GECCO; on by
  default):** each generation's population is asked at once and ranked by a linear-quadratic
  regression of the most recent evaluated points (``_lq_surrogate.py``); suggestions hand out
  the best-ranked members first. After each report the model is refitted; once its Kendall
  tau against the true values on the most recent evaluated points reaches 0.85, the
  generation is told with surrogate values for the members not evaluated (shifted to rank
  after the evaluated ones) and those members are dropped. On quadratic-like problems a
  generation then costs one or two trials instead of ``population_size``; on rugged ones the
  model ranks poorly and every member is evaluated, as in plain CMA-ES. A generation with a
  pruned or failed member is always evaluated in full. The decision depends only on the
  reported history, so replaying it re-asks and re-decides the same. Measured on
  ``benchmarks/bench_budgets.py`` (benchmarks/README.md, section 14): far ahead on the rotated
  ellipsoids, about level with plain CMA-ES on Rastrigin-like, Gallagher and Katsuura
  problems; mean rank at 500 trials on held-out seeds 7500-7509 2.05, Optuna's CMA-ES 2.33.
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
from hpo_lightning.tuners._lq_surrogate import TAU_TRUSTED, LQModel, kendall_tau, max_points


@dataclass
class _Member:
    """One asked point of the current generation."""

    x: np.ndarray
    key: str
    issued: bool = False
    result: Observation | None = None
    pred: float = 0.0  # the surrogate's value: suggestions go best-first


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
        surrogate: end generations early when the lq-CMA-ES surrogate ranks well (default
            True; False is plain CMA-ES).

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
        surrogate: bool = True,
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
        if not isinstance(surrogate, bool):
            raise UserInputError(
                f"`surrogate` must be true or false (the lq-CMA-ES surrogate on or off), "
                f"got {surrogate!r}"
            )
        self.surrogate = surrogate
        self._gen: list[_Member] = []
        self._stale: dict[str, np.ndarray] = {}  # in flight when their generation was told
        self._archive: list[tuple[np.ndarray, float]] = []  # evaluated points of this restart
        self._frame: tuple[np.ndarray, float] = (np.full(self.space.dim, 0.5), 1.0)

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
            self._archive = []
        return self._cma

    def _ask(self) -> _Member:
        x = np.asarray(self._optimizer().ask(), dtype=float)
        member = _Member(x=x, key=params_key(self.space.decode(x)))
        self._gen.append(member)
        return member

    def _new_generation(self) -> None:
        """Asks the whole population and ranks it by the surrogate (if it can be fitted)."""
        pop = self._optimizer().population_size
        xs = np.array([self._ask().x for _ in range(pop)])
        center = np.asarray(self._cma.mean, dtype=float)
        spread = math.sqrt(float(np.mean(np.sum((xs - center) ** 2, axis=1))) / self.space.dim)
        self._frame = (center, max(spread, 1e-300))
        model = self._model()
        if model is not None:
            self._rank(model)

    def _model(self) -> LQModel | None:
        if not self.surrogate or len(self._archive) < self.space.dim + 2:
            return None
        x = np.array([a[0] for a in self._archive])
        y = np.array([a[1] for a in self._archive])
        return LQModel.fit(x, y, *self._frame)

    def _rank(self, model: LQModel) -> None:
        fresh = [m for m in self._gen if m.result is None]
        for m, p in zip(fresh, model.predict(np.array([m.x for m in fresh]))):
            m.pred = float(p)

    @property
    def restarts(self) -> int:
        """IPOP restarts so far."""
        return self._restarts

    @property
    def generation(self) -> int:
        """Generations told to CMA-ES so far (since the last restart)."""
        return 0 if self._cma is None else int(self._cma.generation)

    # --- suggest / report ----------------------------------------------------------
    def _suggest(self, rng: np.random.Generator) -> dict[str, Any] | None:
        if not self._gen:
            self._new_generation()
        pop = self._cma.population_size
        ranked = sorted(range(len(self._gen)), key=lambda i: (self._gen[i].pred, i))
        for member in (self._gen[i] for i in ranked):
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
        if not self._gen:
            self._new_generation()
        pop = self._cma.population_size
        member = self._find(key)
        while member is None and key not in self._stale and len(self._gen) < 3 * pop:
            asked = self._ask()  # replaying history into a fresh tuner: re-ask the same points
            member = asked if asked.key == key else None
        if member is None:  # not ours, or of a generation already told
            if key in self._stale:
                self._remember(self._stale.pop(key), obs)
            return
        member.issued, member.result = True, obs
        self._remember(member.x, obs)
        done = [m for m in self._gen if m.result is not None]
        if len(done) == pop:
            self._tell(done, [], None)
            return
        model = self._model()
        if model is not None and self._trusted(model, done):
            rest = [m for m in self._gen if m.result is None][: pop - len(done)]
            self._tell(done, rest, model)
        elif model is not None:
            self._rank(model)

    def _remember(self, x: np.ndarray, obs: Observation) -> None:
        """Archive a completed point of this restart for the surrogate."""
        if self.surrogate and obs.state is TrialState.COMPLETE and math.isfinite(obs.loss):
            self._archive.append((x, obs.loss))
            del self._archive[: -max_points(self.space.dim)]

    def _trusted(self, model: LQModel, done: list[_Member]) -> bool:
        """lq-CMA-ES's test: Kendall's tau on the most recent evaluated points >= 0.85."""
        results = [m.result for m in done if m.result is not None]
        if any(o.state is not TrialState.COMPLETE or not math.isfinite(o.loss) for o in results):
            return False
        pop = self._cma.population_size
        n = max(15, min(int(1.2 * len(done)), int(0.75 * pop)))
        if len(self._archive) < n:
            return False
        x = np.array([a[0] for a in self._archive[-n:]])
        y = np.array([a[1] for a in self._archive[-n:]])
        return kendall_tau(model.predict(x), y) >= TAU_TRUSTED

    def _tell(self, done: list[_Member], rest: list[_Member], model: LQModel | None) -> None:
        """Tells the generation; unevaluated members get the surrogate's values, shifted to
        rank after every evaluated one (their surrogate ranks are behind them anyway)."""
        values = tell_values([m.result for m in done if m.result is not None])
        told = [(m.x, v) for m, v in zip(done, values)]
        if rest and model is not None:
            pred = model.predict(np.array([m.x for m in rest]))
            worst = max(values)
            shift = worst - float(pred.min()) + 1e-9 * (1 + abs(worst))
            told += [(m.x, float(p) + shift) for m, p in zip(rest, pred)]
        self._cma.tell(told)
        self._stale = {m.key: m.x for m in self._gen if m.result is None}
        self._gen = []
        if self._cma.should_stop():
            self._restarts += 1
            self._cma = None

    def _find(self, key: str) -> _Member | None:
        for member in self._gen:
            if member.result is None and member.key == key:
                return member
        return None
