"""Hyperband as several asynchronous successive-halving brackets.

Li et al. 2018, "Hyperband: A Novel Bandit-Based Approach to Hyperparameter Optimization"
(JMLR 18), Algorithm 1: with ``s_max = floor(log_eta(R / r))``, bracket ``s`` (s = s_max .. 0)
starts ``n_s = ceil((s_max + 1) / (s + 1) * eta**s)`` configurations at ``R * eta**-s``
resource and halves them by successive halving. Asynchronously (Li et al. 2020, Sec. 3.3) each
trial is assigned one bracket and runs ASHA inside it against the trials of the same bracket
only. We draw the bracket with probability proportional to ``n_s``, from a generator seeded by
``(seed, trial number)``, so the assignment is a pure function of the trial and the seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from hpo_lightning._trial import Mode
from hpo_lightning.exceptions import UserInputError
from hpo_lightning.schedulers._asha import ASHAScheduler, check_budget
from hpo_lightning.schedulers._base import Decision, LearningCurve, Scheduler


class HyperbandScheduler(Scheduler):
    """Hyperband: ASHA brackets from aggressive (first rung at ``min_epochs``) to none.

    Bracket ``b`` (0 = most aggressive) runs :class:`ASHAScheduler` with
    ``min_epochs * reduction_factor**b`` as its first rung, so later brackets give every trial
    more epochs before judging it; a trial is only compared with trials of its own bracket.

    Args:
        min_epochs, reduction_factor, max_epochs: as for :class:`ASHAScheduler`.
        seed: seeds the bracket assignment (a non-negative integer).

    Example:
        >>> s = HyperbandScheduler(min_epochs=1, reduction_factor=3, max_epochs=27, seed=0)
        >>> [b.rungs for b in s.brackets]
        [(1, 3, 9), (3, 9), (9,), ()]
        >>> s.bracket_of(0) == s.bracket_of(0)
        True
    """

    name: ClassVar[str] = "hyperband"

    def __init__(
        self,
        *,
        min_epochs: int = 1,
        reduction_factor: int = 3,
        max_epochs: int = 100,
        seed: int = 0,
    ) -> None:
        r, eta, big_r = check_budget(min_epochs, reduction_factor, max_epochs)
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise UserInputError(f"`seed` must be a non-negative integer, but got {seed!r}")
        self.min_epochs, self.reduction_factor, self.max_epochs, self.seed = r, eta, big_r, seed
        s_max = 0
        while r * eta ** (s_max + 1) <= big_r:
            s_max += 1
        self.brackets = tuple(
            ASHAScheduler(min_epochs=r * eta**b, reduction_factor=eta, max_epochs=big_r)
            for b in range(s_max + 1)
        )
        # Hyperband's n_s with s = s_max - b: how many configurations each bracket starts
        n = np.array(
            [
                math.ceil((s_max + 1) / (s_max - b + 1) * eta ** (s_max - b))
                for b in range(s_max + 1)
            ],
            dtype=float,
        )
        self.bracket_weights = tuple(float(w) for w in n / n.sum())

    def options(self) -> dict[str, Any]:
        return {
            "min_epochs": self.min_epochs,
            "reduction_factor": self.reduction_factor,
            "max_epochs": self.max_epochs,
            "seed": self.seed,
        }

    def bracket_of(self, trial: int) -> int:
        """The bracket of trial number ``trial`` (0 = most aggressive), fixed by the seed."""
        rng = np.random.default_rng([self.seed, int(trial)])
        return int(rng.choice(len(self.brackets), p=self.bracket_weights))

    def decide(
        self, curve: LearningCurve, others: Sequence[LearningCurve], *, mode: Mode
    ) -> Decision:
        bracket = self.bracket_of(curve.trial)
        peers = [o for o in others if self.bracket_of(o.trial) == bracket]
        return self.brackets[bracket].decide(curve, peers, mode=mode)
