"""Figures and tables from stored trials (matplotlib, imported only when a plot is drawn).

Example:
    >>> from hpo_lightning.plots import save_plots
    >>> save_plots(open_storage("sweeps.db"), "demo", "out/")  # doctest: +SKIP
"""

from hpo_lightning.plots._front import plot_objectives_parallel, plot_pareto
from hpo_lightning.plots._history import best_so_far, plot_history
from hpo_lightning.plots._importance import param_importance, plot_importance
from hpo_lightning.plots._parallel import plot_parallel
from hpo_lightning.plots._save import plot_trials, save_plots
from hpo_lightning.plots._table import json_rows, table_rows, trials_table, write_trials_csv

__all__ = [
    "best_so_far",
    "json_rows",
    "param_importance",
    "plot_history",
    "plot_importance",
    "plot_objectives_parallel",
    "plot_parallel",
    "plot_pareto",
    "plot_trials",
    "save_plots",
    "table_rows",
    "trials_table",
    "write_trials_csv",
]
