"""The Pareto front of a multi-objective sweep: a scatter of the first two objectives with the
front highlighted, and parallel coordinates over every objective."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hpo_lightning._front import objective_vector, pareto_trials
from hpo_lightning._objectives import Objectives
from hpo_lightning._trial import TrialState
from hpo_lightning.plots._common import empty_note, new_figure, save
from hpo_lightning.plots._parallel import encode_axis
from hpo_lightning.storage import TrialRecord


def _scored(trials: Sequence[TrialRecord], k: int) -> list[tuple[TrialRecord, tuple[float, ...]]]:
    return [
        (t, v)
        for t in trials
        if t.state is TrialState.COMPLETE and (v := objective_vector(t, k)) is not None
    ]


def plot_pareto(
    trials: Sequence[TrialRecord],
    objectives: Objectives,
    path: str | Path,
    *,
    sweep: str | None = None,
) -> Path:
    """Save the first two objectives of the complete trials as a scatter PNG: the Pareto
    front's trials highlighted and joined, infeasible trials as crosses."""
    fig = new_figure(7.0, 5.0)
    k = len(objectives.names)
    points = _scored(trials, k)
    if not points or k < 2:
        empty_note(fig, "no complete trial with every objective yet")
        return save(fig, Path(path))
    front = {t.number for t in pareto_trials(trials, objectives)}
    ax = fig.add_subplot()
    groups: dict[tuple[bool, bool], list[tuple[float, float]]] = {}
    for t, v in points:
        groups.setdefault((t.number in front, t.feasible), []).append((v[0], v[1]))
    styles: dict[tuple[bool, bool], dict[str, Any]] = {
        (False, True): {"color": "0.6", "marker": "o", "label": "dominated"},
        (False, False): {"color": "0.6", "marker": "x", "label": "dominated, infeasible"},
        (True, True): {"color": "tab:red", "marker": "o", "label": "Pareto front", "s": 40},
        (True, False): {"color": "tab:orange", "marker": "x", "label": "front, infeasible"},
    }
    for key in sorted(groups):
        xs, ys = zip(*groups[key])
        ax.scatter(xs, ys, zorder=3 if key[0] else 2, **styles[key])
    line = sorted(v[:2] for t, v in points if t.number in front and t.feasible)
    if len(line) > 1:
        ax.plot(*zip(*line), color="tab:red", lw=1, alpha=0.6, zorder=1)
    names = [f"{n} ({m})" for n, m in zip(objectives.names, objectives.modes)]
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    where = f" of sweep '{sweep}'" if sweep else ""
    ax.set_title(f"Pareto front{where}")
    ax.legend(loc="best", fontsize=8)
    return save(fig, Path(path))


def plot_objectives_parallel(
    trials: Sequence[TrialRecord],
    objectives: Objectives,
    path: str | Path,
    *,
    sweep: str | None = None,
) -> Path:
    """Save parallel coordinates over every objective (one line per complete trial; the
    front's in colour, on top) as PNG."""
    k = len(objectives.names)
    points = _scored(trials, k)
    fig = new_figure(max(6.0, 1.8 * k), 4.5)
    if not points:
        empty_note(fig, "no complete trial with every objective yet")
        return save(fig, Path(path))
    front = {t.number for t in pareto_trials(trials, objectives)}
    columns = [encode_axis([v[i] for _, v in points]) for i in range(k)]
    ax = fig.add_subplot()
    xs = list(range(k))
    order = sorted(range(len(points)), key=lambda i: points[i][0].number in front)
    for i in order:
        on_front = points[i][0].number in front
        ax.plot(
            xs,
            [c[0][i] for c in columns],
            color="tab:red" if on_front else "0.7",
            lw=1.6 if on_front else 0.8,
            alpha=0.9 if on_front else 0.6,
        )
    for x, (_, lo, hi) in zip(xs, columns):
        ax.axvline(x, color="0.3", lw=0.8)
        ax.text(x, -0.06, lo, ha="center", va="top", fontsize=8)
        ax.text(x, 1.06, hi, ha="center", va="bottom", fontsize=8)
    ax.set_xticks(xs, [f"{n} ({m})" for n, m in zip(objectives.names, objectives.modes)])
    ax.set_yticks([])
    ax.set_ylim(-0.15, 1.15)
    where = f" of sweep '{sweep}'" if sweep else ""
    ax.set_title(f"Objectives{where} (red: Pareto front)", pad=18)
    return save(fig, Path(path))
