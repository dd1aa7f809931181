"""Optimisation history: each trial's value by trial number, and the best so far."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hpo_lightning._trial import Mode, TrialState
from hpo_lightning.plots._common import empty_note, new_figure, save, scored
from hpo_lightning.storage import TrialRecord


def best_so_far(values: Sequence[float], mode: Mode) -> list[float]:
    """Running best of ``values`` (min or max).

    Example:
        >>> best_so_far([3.0, 1.0, 2.0], "min")
        [3.0, 1.0, 1.0]
    """
    out: list[float] = []
    for v in values:
        if not out:
            out.append(v)
        else:
            out.append(min(out[-1], v) if mode == "min" else max(out[-1], v))
    return out


def plot_history(
    trials: Sequence[TrialRecord],
    mode: Mode,
    path: str | Path,
    *,
    monitor: str | None = None,
    sweep: str | None = None,
) -> Path:
    """Save the optimisation history (complete trials as dots, pruned as crosses) as PNG.

    ``monitor`` names the y axis (the monitored metric), ``sweep`` goes into the title.
    """
    return save(history_figure(trials, mode, monitor=monitor, sweep=sweep), Path(path))


def history_figure(
    trials: Sequence[TrialRecord], mode: Mode, *, monitor: str | None, sweep: str | None
) -> Any:
    """The figure :func:`plot_history` saves (a matplotlib Figure)."""
    from matplotlib.ticker import MaxNLocator

    fig = new_figure()
    done = scored(trials)
    pruned = [
        t
        for t in trials
        if t.state is TrialState.PRUNED and t.value is not None and math.isfinite(t.value)
    ]
    if not done and not pruned:
        empty_note(fig, "no trial with a value yet")
        return fig
    ax = fig.add_subplot()
    if done:
        ax.plot([t.number for t in done], [t.value for t in done], "o", label="complete")
        best = best_so_far([float(t.value or 0.0) for t in done], mode)
        label = f"best so far ({'lowest' if mode == 'min' else 'highest'})"
        ax.step([t.number for t in done], best, where="post", color="C3", label=label)
    if pruned:
        xs = [t.number for t in pruned]
        ax.plot(xs, [t.value for t in pruned], "x", color="0.5", label="pruned (last value)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial number")
    ax.set_ylabel(f"{monitor} ({mode})" if monitor else "objective value")
    ax.set_title(f"Optimisation history of sweep '{sweep}'" if sweep else "Optimisation history")
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    return fig
