"""The Pareto front of a sweep's stored trials, as ``best``, the plots and MLflow show it.

The front is every COMPLETE trial with finite objective values that no other trial of its
group dominates, feasible trials first (by the first objective, best first), then the
infeasible ones (by violation, smallest first). So with constraints, a trial that breaks one
is kept and shown, but always after every feasible trial of the front. Dominance is
``hpo_lightning.tuners._pareto``'s (no worse in every objective, better in one).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from hpo_lightning._objectives import Objectives
from hpo_lightning._trial import TrialState
from hpo_lightning.storage import TrialRecord


def objective_vector(trial: TrialRecord, n_objectives: int) -> tuple[float, ...] | None:
    """A trial's objective values (a single-objective trial's ``value``), or None when it has
    no finite value for every objective."""
    if trial.objective_values is not None:
        vector = tuple(trial.objective_values)
    elif trial.value is not None:
        vector = (trial.value,)
    else:
        return None
    if len(vector) != n_objectives or not all(math.isfinite(v) for v in vector):
        return None
    return vector


def pareto_trials(trials: Sequence[TrialRecord], objectives: Objectives) -> list[TrialRecord]:
    """The front: non-dominated COMPLETE trials, the feasible ones first (see module doc).

    Example:
        >>> from hpo_lightning._objectives import Objectives
        >>> o = Objectives.of(["acc", "size"], ["max", "min"])
        >>> ts = [TrialRecord(i, 1, i, TrialState.COMPLETE, {}, objective_values=v)
        ...       for i, v in enumerate([(0.9, 10.0), (0.8, 20.0), (0.7, 5.0)])]
        >>> [t.number for t in pareto_trials(ts, o)]
        [0, 2]
    """
    from hpo_lightning.tuners._pareto import pareto_front, to_losses

    k = len(objectives.names)
    scored = [
        (t, v)
        for t in trials
        if t.state is TrialState.COMPLETE and (v := objective_vector(t, k)) is not None
    ]
    out: list[TrialRecord] = []
    for feasible in (True, False):
        group = [(t, v) for t, v in scored if t.feasible is feasible]
        if not group:
            continue
        losses = to_losses([v for _, v in group], objectives.modes)
        front = [group[i] for i in pareto_front(losses)]
        sign = 1.0 if objectives.modes[0] == "min" else -1.0
        front.sort(key=lambda tv: (tv[0].violation or 0.0, sign * tv[1][0], tv[0].number))
        out.extend(t for t, _ in front)
    return out
