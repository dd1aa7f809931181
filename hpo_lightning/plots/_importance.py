"""Parameter importance as the share of the value's variance each param explains alone.

Method (first-order, fANOVA-like, no surrogate model): for each param, the complete trials are
grouped into bins -- categories as they are, numbers into at most ``max_bins`` equal-count
(quantile) bins, so the result does not depend on log or linear scaling -- and the importance is
the bias-corrected correlation ratio epsilon-squared,
``(SS_between - (k - 1) * MS_within) / SS_total`` clipped at 0: the fraction of the variance of
the value explained by that param's main effect (Kelley 1935; cf. Hutter et al. 2014, fANOVA,
which fits a random forest first). Interactions are not counted, so the shares need not sum to 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hpo_lightning.plots._common import empty_note, new_figure, save, scored
from hpo_lightning.storage import TrialRecord


def _bins(values: Sequence[Any], max_bins: int) -> list[str]:
    numeric = all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values
    )
    if not numeric or len(set(values)) <= max_bins:
        return [repr(v) for v in values]
    ranked = sorted(range(len(values)), key=lambda i: float(values[i]))
    labels = [""] * len(values)
    for rank, i in enumerate(ranked):
        labels[i] = str(rank * max_bins // len(values))
    return labels


def epsilon_squared(groups: Sequence[str], y: Sequence[float]) -> float:
    """Bias-corrected share of the variance of ``y`` explained by the grouping (0..1).

    Example:
        >>> round(epsilon_squared(["a", "a", "b", "b"], [1.0, 1.0, 3.0, 3.0]), 3)
        1.0
    """
    n = len(y)
    mean = sum(y) / n
    total = sum((v - mean) ** 2 for v in y)
    if n < 3 or total <= 0:
        return 0.0
    members: dict[str, list[float]] = {}
    for g, v in zip(groups, y):
        members.setdefault(g, []).append(v)
    k = len(members)
    if k < 2 or n <= k:
        return 0.0
    between = sum(len(m) * (sum(m) / len(m) - mean) ** 2 for m in members.values())
    within_ms = (total - between) / (n - k)
    return max(0.0, (between - (k - 1) * within_ms) / total)


def param_importance(trials: Sequence[TrialRecord], *, max_bins: int = 8) -> dict[str, float]:
    """``{param: epsilon-squared}`` over the complete trials, most important first."""
    done = scored(trials)
    y = [float(t.value or 0.0) for t in done]
    names = sorted({k for t in done for k in t.params})
    scores = {
        n: epsilon_squared(_bins([t.params.get(n) for t in done], max_bins), y) for n in names
    }
    return dict(sorted(scores.items(), key=lambda kv: -kv[1]))


def plot_importance(
    trials: Sequence[TrialRecord],
    path: str | Path,
    *,
    monitor: str | None = None,
    sweep: str | None = None,
) -> Path:
    """Save a bar chart of :func:`param_importance` as PNG, in percent of the variance of the
    monitored value (``monitor``) that each param explains alone; ``sweep`` goes into the title.
    """
    return save(importance_figure(trials, monitor=monitor, sweep=sweep), Path(path))


def importance_figure(
    trials: Sequence[TrialRecord], *, monitor: str | None, sweep: str | None
) -> Any:
    """The figure :func:`plot_importance` saves (a matplotlib Figure)."""
    scores = param_importance(trials)
    fig = new_figure(7.0, max(2.5, 0.5 * len(scores) + 1.8))
    if not scores or len(scored(trials)) < 3:
        empty_note(fig, "parameter importance needs 3 or more complete trials")
        return fig
    ax = fig.add_subplot()
    names = list(scores)[::-1]
    shares = [100.0 * scores[n] for n in names]
    bars = ax.barh(names, shares, color="C0")
    ax.bar_label(bars, labels=[f"{v:.0f}%" for v in shares], padding=3, fontsize=9)
    ax.set_xlim(0, 110)
    what = monitor or "the objective value"
    ax.set_xlabel(f"% of the variance of {what} explained by the parameter alone")
    title = "Parameter importance" + (f" in sweep '{sweep}'" if sweep else "")
    ax.set_title(f"{title}\n(first-order, over binned values; shares need not sum to 100%)")
    ax.grid(axis="x", alpha=0.3)
    return fig
