"""Population-Based Training as a scheduler (Jaderberg et al., 2017, arXiv:1711.09846).

Trials are grouped into populations of ``population`` consecutive trial numbers. At the end of
every ``interval``-th epoch a trial compares its value at that epoch with those of the other
members of its population that reached the same epoch. A trial in the bottom ``quantile`` is told
to *exploit*: :meth:`PBTScheduler.decide` returns an :class:`Exploit` naming a member of the top
``quantile`` (drawn with a generator seeded by the sweep seed, the trial and the epoch, so the same
curves give the same answer). The worker then applies it: it copies the donor's checkpoint of
that epoch, *explores* (:meth:`PBTScheduler.explore`: each mutated parameter is resampled with
probability ``resample_probability``, else multiplied by one of ``factors`` and clipped to its
domain) and continues the same trial with the new params. ``decide`` stays a pure query.

Members that run one after another (one worker) still form a population: a later member
exploits earlier ones at the same epoch (asynchronous PBT, as in Li et al., 2019,
arXiv:1902.01894).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from hpo_lightning._trial import Mode, check_int
from hpo_lightning.exceptions import UserInputError
from hpo_lightning.schedulers._base import Decision, Exploit, LearningCurve, Scheduler, loss_of


class PBTScheduler(Scheduler):
    """Population-Based Training: bottom trials copy top trials' weights and perturb params.

    Args:
        population: trials per population (consecutive trial numbers).
        interval: epochs between exploit/explore steps.
        quantile: the fraction of a population that is "bottom" (and "top"), in (0, 0.5].
        mutations: the parameters explored (default: all).
        resample_probability: chance that a mutated parameter is drawn anew from its domain.
        factors: the factors a numeric parameter is multiplied by otherwise.
        seed: seeds the donor draws and the exploration.

    Example:
        >>> pbt = PBTScheduler(population=4, interval=2, seed=0)
        >>> curves = [LearningCurve.of(n, [0.9, v]) for n, v in enumerate([0.2, 0.3, 0.5])]
        >>> pbt.decide(LearningCurve.of(3, [0.9, 0.8]), curves, mode="min")
        Exploit(donor=0, epoch=1)
    """

    name: ClassVar[str] = "pbt"

    def __init__(
        self,
        *,
        population: int = 8,
        interval: int = 2,
        quantile: float = 0.25,
        mutations: Sequence[str] | None = None,
        resample_probability: float = 0.25,
        factors: Sequence[float] = (0.8, 1.2),
        seed: int = 0,
    ) -> None:
        self.population = check_int("population", population, at_least=2)
        self.interval = check_int("interval", interval, at_least=1)
        if isinstance(quantile, bool) or not isinstance(quantile, (int, float)):
            raise UserInputError(f"`quantile` must be a number in (0, 0.5], but got {quantile!r}")
        if not 0 < quantile <= 0.5:
            raise UserInputError(f"`quantile` must be in (0, 0.5], but got {quantile!r}")
        if mutations is not None and (
            isinstance(mutations, str) or not all(isinstance(m, str) for m in mutations)
        ):
            raise UserInputError(
                f"`mutations` must be a list of parameter names, but got {mutations!r}"
            )
        if not 0 <= resample_probability <= 1:
            raise UserInputError(
                f"`resample_probability` must be in [0, 1], but got {resample_probability!r}"
            )
        if not factors or not all(isinstance(f, (int, float)) and f > 0 for f in factors):
            raise UserInputError(f"`factors` must be positive numbers, but got {factors!r}")
        self.quantile = float(quantile)
        self.mutations = None if mutations is None else list(mutations)
        self.resample_probability = float(resample_probability)
        self.factors = [float(f) for f in factors]
        self.seed = check_int("seed", seed, at_least=0)

    def options(self) -> dict[str, Any]:
        return {
            "population": self.population,
            "interval": self.interval,
            "quantile": self.quantile,
            "mutations": None if self.mutations is None else tuple(self.mutations),
            "resample_probability": self.resample_probability,
            "factors": tuple(self.factors),
            "seed": self.seed,
        }

    def expected_cost(self) -> float:
        """1.0: every member trains in full (an exploit moves it, it never stops it)."""
        return 1.0

    def keeps_checkpoint(self, epoch: int) -> bool:
        """Whether the checkpoint of ``epoch`` must stay while the sweep runs (a donor's)."""
        return (epoch + 1) % self.interval == 0

    def _rng(self, trial: int, epoch: int, salt: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, trial, epoch, salt])

    def decide(
        self, curve: LearningCurve, others: Sequence[LearningCurve], *, mode: Mode
    ) -> Decision | Exploit:
        epoch = curve.last_epoch
        if epoch is None or not self.keeps_checkpoint(epoch) or curve.last is None:
            return Decision.CONTINUE
        group = curve.trial // self.population
        members = [(curve.trial, loss_of(curve.last, mode))]
        for other in others:
            v = other.at(epoch)
            if other.trial // self.population == group and v is not None:
                members.append((other.trial, loss_of(v, mode)))
        if len(members) < 2:
            return Decision.CONTINUE
        members.sort(key=lambda m: (m[1], m[0]))
        k = max(1, math.floor(len(members) * self.quantile))
        bottom = {n for n, _ in members[-k:]}
        top = [n for n, loss in members[:k] if math.isfinite(loss)]
        if curve.trial not in bottom or curve.trial in top or not top:
            return Decision.CONTINUE
        donor = top[int(self._rng(curve.trial, epoch, 0).integers(len(top)))]
        return Exploit(donor=donor, epoch=epoch)

    def explore(
        self, params: Mapping[str, Any], *, space: Any, trial: int, epoch: int
    ) -> dict[str, Any]:
        """The donor's ``params`` perturbed for ``trial`` at ``epoch`` (pure, seeded)."""
        rng = self._rng(trial, epoch, 1)
        out = dict(params)
        names = self.mutations if self.mutations is not None else sorted(space.names)
        for name in names:
            domain = space[name]
            if name not in out:
                continue
            if domain.is_categorical or rng.random() < self.resample_probability:
                out[name] = domain.from_unit(float(rng.random()))
                continue
            value = out[name] * self.factors[int(rng.integers(len(self.factors)))]
            out[name] = domain.from_unit(domain.to_unit(min(max(value, domain.low), domain.high)))
        return out
