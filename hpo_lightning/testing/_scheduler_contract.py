"""The scheduler contract (see ``hpo_lightning/schedulers/_base.py``), as a reusable test class.

Subclass :class:`SchedulerContract` in a test module and provide a ``scheduler`` fixture: a
fresh scheduler (parametrise it to check several). The checks feed it learning curves and
check what every scheduler promises: ``decide`` is a pure query that answers with a Decision
(or an Exploit), for any peers (none, fewer, more, with gaps, NaN), the same way for "max" as
for "min" on negated values (set ``mirrors_mode = False`` on the test class of a scheduler with
an absolute threshold, which has no such symmetry), ``options()`` rebuilds an equal
scheduler, and ``expected_cost()`` is None or a share of a full training in (0, 1].
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import numpy as np
import pytest

from hpo_lightning.schedulers import Decision, Exploit, LearningCurve, Scheduler

N_EPOCHS = 12


def population(seed: int = 0, n: int = 12) -> list[LearningCurve]:
    """``n`` decreasing learning curves of different quality and length (some stopped early,
    one with validation every other epoch, one that diverged)."""
    rng = np.random.default_rng(seed)
    curves = []
    for t in range(n):
        quality = float(rng.uniform(0.1, 1.0))
        length = int(rng.integers(1, N_EPOCHS + 1))
        values = {e: quality + 1.0 / (e + 1) for e in range(length)}
        if t == 3:
            values = {e: v for e, v in values.items() if e % 2 == 1}  # validated every 2 epochs
        if t == 5:
            values[length - 1] = math.nan  # diverged
        curves.append(LearningCurve.of(t, values))
    return curves


def negated(curve: LearningCurve) -> LearningCurve:
    return LearningCurve(curve.trial, tuple((e, -v) for e, v in curve.points))


def decisions(
    scheduler: Scheduler, curves: Sequence[LearningCurve], *, mode: str = "min"
) -> list[Decision | Exploit]:
    """The decision for each prefix of each curve, the others being every other curve."""
    out = []
    for c in curves:
        others = [o for o in curves if o.trial != c.trial]
        for k in range(1, len(c.points) + 1):
            prefix = LearningCurve(c.trial, c.points[:k])
            out.append(scheduler.decide(prefix, others, mode=mode))  # type: ignore[arg-type]
    return out


class SchedulerContract:
    """The checks every scheduler must pass. Needs a ``scheduler`` fixture."""

    mirrors_mode = True  # decisions for "max" equal those for "min" on negated values

    @pytest.fixture
    def scheduler(self) -> Scheduler:
        raise NotImplementedError("provide a `scheduler` fixture: a fresh scheduler")

    def test_answers_with_a_decision(self, scheduler: Scheduler) -> None:
        for d in decisions(scheduler, population()):
            assert isinstance(d, (Decision, Exploit)), f"decide returned {d!r}"

    def test_is_a_pure_query(self, scheduler: Scheduler) -> None:
        curves = population()
        before = copy.deepcopy(curves)
        first = decisions(scheduler, curves)
        # no state between calls: other questions in between change nothing
        decisions(scheduler, population(seed=1))
        assert decisions(scheduler, curves) == first
        assert curves == before  # it wrote nothing into the curves

    def test_any_peers_none_or_diverged(self, scheduler: Scheduler) -> None:
        curve = LearningCurve.of(0, [0.9, 0.8, 0.7])
        for others in ([], [LearningCurve(1)], [LearningCurve.of(1, [math.nan] * 3)]):
            assert isinstance(scheduler.decide(curve, others, mode="min"), (Decision, Exploit))
        nan = LearningCurve.of(7, [math.nan])
        assert isinstance(scheduler.decide(nan, population(), mode="min"), (Decision, Exploit))

    def test_max_mirrors_min(self, scheduler: Scheduler) -> None:
        if not self.mirrors_mode:
            pytest.skip("the scheduler has an absolute threshold (mirrors_mode = False)")
        curves = population(seed=2)
        assert decisions(scheduler, [negated(c) for c in curves], mode="max") == decisions(
            scheduler, curves, mode="min"
        )

    def test_options_rebuild_an_equal_scheduler(self, scheduler: Scheduler) -> None:
        again = type(scheduler)(**scheduler.options())
        assert again == scheduler
        assert decisions(again, population()) == decisions(scheduler, population())

    def test_expected_cost_is_a_share_or_none(self, scheduler: Scheduler) -> None:
        cost = scheduler.expected_cost()
        assert cost is None or (isinstance(cost, (int, float)) and 0 < cost <= 1), cost
