"""The trials table: one row per trial, the one builder behind ``export``, MLflow's
``trials.csv`` and the plots.

Columns: :data:`COLUMNS` (``value`` is the monitored value; in a multi-objective sweep the
first objective), then for a multi-objective sweep one column per objective, named by its
metric, ``pareto`` (on the front, see ``hpo_lightning._front``) and, with constraints,
``violation`` (0: feasible); then one ``param_<name>`` column per parameter. The JSON form
(:func:`json_rows`) nests the params as a mapping instead (``"params": {"lr": 0.01}``) and
the objectives as ``"objectives": {"val_acc": 0.9, ...}``.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hpo_lightning._objectives import Objectives
from hpo_lightning._secrets import redact
from hpo_lightning.storage import Storage, TrialRecord

COLUMNS = [
    "number",
    "state",
    "value",
    "epochs",
    "duration_s",
    "started",
    "finished",
    "worker",
    "failure",
    "message",
]
PARAM_PREFIX = "param_"


def _iso(ts: float | None) -> str:
    if not ts:
        return ""
    return dt.datetime.fromtimestamp(ts, tz=dt.timezone.utc).isoformat(timespec="seconds")


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float)):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def objective_columns(objectives: Objectives | None) -> list[str]:
    """The extra columns of a multi-objective sweep (none for a single objective)."""
    if objectives is None or not objectives.multi:
        return []
    reserved = {*COLUMNS, "pareto", "violation"}
    names = [
        f"objective_{n}" if n in reserved or n.startswith(PARAM_PREFIX) else n
        for n in objectives.names
    ]
    return [*names, "pareto"] + (["violation"] if objectives.constraints else [])


def _base_row(t: TrialRecord) -> dict[str, Any]:
    duration = (t.finished_at - t.created_at) if t.finished_at and t.created_at else None
    return {
        "number": t.number,
        "state": t.state.value,
        "value": t.value,
        "epochs": t.epochs,
        "duration_s": round(duration, 3) if duration is not None else None,
        "started": _iso(t.created_at),
        "finished": _iso(t.finished_at),
        "worker": t.worker or "",
        "failure": t.failure.value if t.failure is not None else "",
        "message": redact((t.message or "").splitlines()[0][:200]) if t.message else "",
    }


def _objective_cells(t: TrialRecord, objectives: Objectives, on_front: set[int]) -> dict[str, Any]:
    vector = list(t.objective_values or ())
    cols = objective_columns(objectives)
    out: dict[str, Any] = {
        col: (vector[i] if i < len(vector) else None)
        for i, col in enumerate(cols[: len(objectives.names)])
    }
    out["pareto"] = t.number in on_front
    if objectives.constraints:
        out["violation"] = t.violation
    return out


def _front_numbers(trials: Sequence[TrialRecord], objectives: Objectives | None) -> set[int]:
    if objectives is None or not objectives.multi:
        return set()
    from hpo_lightning._front import pareto_trials

    return {t.number for t in pareto_trials(trials, objectives)}


def table_rows(
    trials: Sequence[TrialRecord], objectives: Objectives | None = None
) -> list[dict[str, Any]]:
    """One flat dict per trial (by number): the columns of the module docstring.

    Example:
        >>> from hpo_lightning import TrialState
        >>> rec = TrialRecord(1, 1, 0, TrialState.COMPLETE, {"lr": 0.1}, value=0.5, epochs=3)
        >>> table_rows([rec])[0]["param_lr"]
        0.1
    """
    names = sorted({k for t in trials for k in t.params})
    front = _front_numbers(trials, objectives)
    rows = []
    for t in sorted(trials, key=lambda r: r.number):
        row = _base_row(t)
        if objectives is not None and objectives.multi:
            row.update(_objective_cells(t, objectives, front))
        row.update({f"{PARAM_PREFIX}{n}": _cell(t.params.get(n)) for n in names})
        rows.append(row)
    return rows


def json_rows(
    trials: Sequence[TrialRecord], objectives: Objectives | None = None
) -> list[dict[str, Any]]:
    """One dict per trial for JSON: :data:`COLUMNS`, ``params`` as a mapping and, for several
    objectives, ``objectives`` as a mapping of metric to value, ``pareto`` and ``violation``."""
    front = _front_numbers(trials, objectives)
    rows = []
    for t in sorted(trials, key=lambda r: r.number):
        row = _base_row(t)
        if objectives is not None and objectives.multi:
            vector = list(t.objective_values or ())
            row["objectives"] = {
                n: (vector[i] if i < len(vector) else None) for i, n in enumerate(objectives.names)
            }
            row["pareto"] = t.number in front
            row["violation"] = t.violation
        row["params"] = dict(t.params)
        rows.append(row)
    return rows


def header(trials: Sequence[TrialRecord], objectives: Objectives | None = None) -> list[str]:
    """The CSV header: every column, even with no trials."""
    names = sorted({k for t in trials for k in t.params})
    return COLUMNS + objective_columns(objectives) + [f"{PARAM_PREFIX}{n}" for n in names]


def stored_objectives(storage: Storage, sweep_name: str) -> Objectives:
    from hpo_lightning._objectives import objectives_of

    sweep = storage.get_sweep(sweep_name)
    return objectives_of(sweep.definition, sweep.mode)


def trials_table(storage: Storage, sweep_name: str) -> list[dict[str, Any]]:
    """The stored sweep's trials as rows (see :func:`table_rows`)."""
    sweep = storage.get_sweep(sweep_name)
    return table_rows(storage.get_trials(sweep.id), stored_objectives(storage, sweep_name))


def write_trials_csv(
    trials: Sequence[TrialRecord], path: str | Path, objectives: Objectives | None = None
) -> Path:
    """Write the trials table as CSV (header always, even with no trials); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        write_csv(fh, trials, objectives)
    return path


def write_csv(out: Any, trials: Sequence[TrialRecord], objectives: Objectives | None) -> None:
    """The trials table as CSV into the text stream ``out``."""
    writer = csv.DictWriter(out, fieldnames=header(trials, objectives))
    writer.writeheader()
    writer.writerows(table_rows(trials, objectives))
