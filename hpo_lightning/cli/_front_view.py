"""What the read commands show of a sweep's objectives: ``status``'s value columns and notes,
``best``'s Pareto front (one JSON object per trial)."""

from __future__ import annotations

import json
from typing import Any

from hpo_lightning._objectives import Objectives
from hpo_lightning.storage import TrialRecord


def fmt_value(v: float | None) -> str:
    return "-" if v is None else f"{v:.6g}"


def value_columns(objectives: Objectives) -> list[str]:
    """``status``'s value columns: the monitored metric, or one per objective (+ violation)."""
    return [*objectives.names] + (["violation"] if objectives.constraints else [])


def value_cells(t: TrialRecord, objectives: Objectives) -> list[str]:
    if not objectives.multi:
        cells = [fmt_value(t.value)]
    else:
        vector = list(t.objective_values or ())
        cells = [
            fmt_value(vector[i] if i < len(vector) else None) for i in range(len(objectives.names))
        ]
    if objectives.constraints:
        cells.append(fmt_value(t.violation))
    return cells


def marked(
    trials: list[TrialRecord], objectives: Objectives, best: TrialRecord | None
) -> dict[int, str]:
    """The note of the best trial, or of each trial on the Pareto front (several objectives)."""
    if not objectives.multi:
        out = {} if best is None else {best.number: "best"}
        if best is not None and not best.feasible:
            out[best.number] = "best (infeasible)"
        return out
    from hpo_lightning._front import pareto_trials

    return {
        t.number: "pareto" if t.feasible else "pareto (infeasible)"
        for t in pareto_trials(trials, objectives)
    }


def front_lines(trials: list[TrialRecord], objectives: Objectives) -> list[str]:
    """``best`` of a multi-objective sweep: one JSON object per trial on the Pareto front,
    feasible first (see ``hpo_lightning._front``)."""
    from hpo_lightning._front import pareto_trials

    lines = []
    for t in pareto_trials(trials, objectives):
        vector = list(t.objective_values or (t.value,))
        entry: dict[str, Any] = {
            "number": t.number,
            "objectives": dict(zip(objectives.names, vector)),
            "feasible": t.feasible,
        }
        if objectives.constraints:
            entry["violation"] = t.violation
        entry["params"] = dict(t.params)
        lines.append(json.dumps(entry, sort_keys=False))
    return lines
