"""Hyperband as several asynchronous successive-halving brackets.

Li et al. 2018, "Hyperband: A Novel Bandit-Based Approach to Hyperparameter Optimization"
(JMLR 18), Algorithm 1: with ``s_max = floor(log_eta(R / r))``, bracket ``s`` (s = s_max .. 0)
starts ``n_s = ceil((s_max + 1) / (s + 1) * eta**s)`` configurations at ``R * eta**-s``
resource and halves them by successive halving. Asynchronously (Li et al. 2020, Sec. 3.3) each
trial is assigned one bracket and runs ASHA inside it against the trials of the same bracket
only. We draw the bracket with probability proportional to ``n_s``, from a hash of
``(seed, trial number)``, so the assignment is a pure function of the trial and the seed.
Bracket ``b`` judges at the ASHA rungs ``min_epochs * eta**k`` for ``k >= b``; there is one
bracket more than rungs, and the last one (the paper's ``s = 0``) never stops a trial, whatever
``max_epochs`` is (a bracket whose first rung was merely ``<= max_epochs`` used to stop trials at
epoch 27 of 52).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from typing import Any, ClassVar

from hpo_lightning._trial import Mode
from hpo_lightning.exceptions import UserInputError
from hpo_lightning.schedulers._asha import (
    ASHAScheduler,
    check_budget,
    check_min_peers,
    check_noise_margin,
    rung_epochs,
)
from hpo_lightning.schedulers._base import Decision, LearningCurve, Scheduler


class HyperbandScheduler(Scheduler):
    """Hyperband: ASHA brackets from aggressive (first rung at ``min_epochs``) to none.

    Bracket ``b`` (0 = most aggressive) runs :class:`ASHAScheduler` with
    ``min_epochs * reduction_factor**b`` as its first rung, so later brackets give every trial
    more epochs before judging it; a trial is only compared with trials of its own bracket.

    Args:
        min_epochs, reduction_factor, max_epochs, min_peers, noise_margin: as for
            :class:`ASHAScheduler`
            (by default the first rung of the first bracket is
            ``ceil(max_epochs / reduction_factor**2)``).
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
        min_epochs: int | None = None,
        reduction_factor: int = 3,
        max_epochs: int = 100,
        min_peers: int | None = None,
        noise_margin: float | None = None,
        seed: int = 0,
    ) -> None:
        r, eta, big_r = check_budget(min_epochs, reduction_factor, max_epochs)
        self.min_peers = check_min_peers(min_peers, min_epochs, eta)
        self.noise_margin = check_noise_margin(noise_margin, min_epochs)
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise UserInputError(f"`seed` must be a non-negative integer, but got {seed!r}")
        self.min_epochs, self.reduction_factor, self.max_epochs, self.seed = r, eta, big_r, seed
        # brackets 0 .. s_max: bracket b judges at the ASHA rungs from the b-th on, so the
        # last bracket (s = 0 in the paper) has no rung and trains every trial in full
        s_max = len(rung_epochs(r, eta, big_r))
        self.brackets = tuple(
            ASHAScheduler(
                min_epochs=min(r * eta**b, big_r),
                reduction_factor=eta,
                max_epochs=big_r,
                min_peers=self.min_peers,
                noise_margin=self.noise_margin,
            )
            for b in range(s_max + 1)
        )
        # Hyperband's n_s with s = s_max - b: how many configurations each bracket starts
        n = [
            math.ceil((s_max + 1) / (s_max - b + 1) * eta ** (s_max - b)) for b in range(s_max + 1)
        ]
        self.bracket_weights = tuple(w / sum(n) for w in n)
        self._cumulative = tuple(itertools.accumulate(self.bracket_weights))
        self._memo: dict[int, int] = {}

    def options(self) -> dict[str, Any]:
        return {
            "min_epochs": self.min_epochs,
            "reduction_factor": self.reduction_factor,
            "max_epochs": self.max_epochs,
            "min_peers": self.min_peers,
            "noise_margin": self.noise_margin,
            "seed": self.seed,
        }

    def expected_cost(self) -> float:
        """The brackets' :func:`halving_cost` weighted by their share of the trials (0.51
        with the defaults and ``max_epochs=30``)."""
        return sum(w * b.expected_cost() for w, b in zip(self.bracket_weights, self.brackets))

    def bracket_of(self, trial: int) -> int:
        """The bracket of trial number ``trial`` (0 = most aggressive), fixed by the seed.

        A uniform number from a hash of ``(seed, trial)`` (SplitMix64, Steele et al. 2014)
        picks the bracket by its weight: a pure function, and a few integer operations.
        """
        b = self._memo.get(trial)
        if b is None:  # a memo of a pure function: the answer never changes
            u = _splitmix64(_splitmix64(self.seed) ^ int(trial)) / 2.0**64
            b = min(bisect.bisect_right(self._cumulative, u), len(self.brackets) - 1)
            self._memo[trial] = b
        return b

    def decide(
        self, curve: LearningCurve, others: Sequence[LearningCurve], *, mode: Mode
    ) -> Decision:
        b = self.bracket_of(curve.trial)
        bracket = self.brackets[b]
        epoch = curve.last_epoch
        if epoch is None or epoch + 1 not in bracket.rungs:
            return Decision.CONTINUE  # only a rung epoch looks at the other trials
        peers = [o for o in others if self.bracket_of(o.trial) == b]
        return bracket.decide(curve, peers, mode=mode)


_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    """One step of SplitMix64: a well-mixed 64-bit integer from ``x``."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)
