"""All the plots of a sweep at once."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hpo_lightning._objectives import Objectives, objectives_of
from hpo_lightning._trial import Mode
from hpo_lightning.plots._front import plot_objectives_parallel, plot_pareto
from hpo_lightning.plots._history import plot_history
from hpo_lightning.plots._importance import plot_importance
from hpo_lightning.plots._parallel import plot_parallel
from hpo_lightning.storage import Storage, TrialRecord


def plot_trials(
    trials: Sequence[TrialRecord],
    mode: Mode,
    out_dir: str | Path,
    *,
    monitor: str | None = None,
    sweep: str | None = None,
    objectives: Objectives | None = None,
) -> list[Path]:
    """Save history, parallel-coordinates and importance PNGs in ``out_dir``; return paths.

    ``monitor`` (the metric's name) labels the value axes; ``sweep`` goes into the titles.
    With several ``objectives`` (history and importance then follow the first), also the
    Pareto front (``pareto_front.png``: a scatter of the first two objectives) and, with more
    than two, parallel coordinates of the objectives (``pareto_objectives.png``).
    """
    out = Path(out_dir)
    multi = objectives is not None and objectives.multi
    if multi:
        assert objectives is not None
        monitor = objectives.names[0]
    names = {"monitor": monitor, "sweep": sweep}
    paths = [
        plot_history(trials, mode, out / "optimisation_history.png", **names),
        plot_parallel(trials, mode, out / "parallel_coordinates.png", **names),
        plot_importance(trials, out / "param_importance.png", **names),
    ]
    if multi:
        assert objectives is not None
        paths.append(plot_pareto(trials, objectives, out / "pareto_front.png", sweep=sweep))
        if len(objectives.names) > 2:
            paths.append(
                plot_objectives_parallel(
                    trials, objectives, out / "pareto_objectives.png", sweep=sweep
                )
            )
    return paths


def save_plots(storage: Storage, sweep_name: str, out_dir: str | Path) -> list[Path]:
    """Save the plots of a stored sweep in ``out_dir`` (created if missing); return the paths.

    Example:
        >>> from hpo_lightning.storage import open_storage
        >>> paths = save_plots(open_storage("sweeps.db"), "demo", "plots")  # doctest: +SKIP
    """
    sweep = storage.get_sweep(sweep_name)
    monitor = sweep.definition.get("monitor")
    return plot_trials(
        storage.get_trials(sweep.id),
        sweep.mode,
        out_dir,
        monitor=monitor if isinstance(monitor, str) else None,
        sweep=sweep.name,
        objectives=objectives_of(sweep.definition, sweep.mode),
    )
