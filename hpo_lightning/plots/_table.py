"""The trials table: one row per trial (number, state, value, params, epochs, ...) and its CSV."""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hpo_lightning.storage import Storage, TrialRecord

COLUMNS = ["number", "state", "value", "epochs", "duration_s", "started", "worker", "message"]


def _iso(ts: float | None) -> str:
    if not ts:
        return ""
    return dt.datetime.fromtimestamp(ts, tz=dt.timezone.utc).isoformat(timespec="seconds")


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float)):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def table_rows(trials: Sequence[TrialRecord]) -> list[dict[str, Any]]:
    """One dict per trial: the :data:`COLUMNS`, then ``param.<name>`` for every param.

    Example:
        >>> from hpo_lightning import TrialState
        >>> rec = TrialRecord(1, 1, 0, TrialState.COMPLETE, {"lr": 0.1}, value=0.5, epochs=3)
        >>> table_rows([rec])[0]["param.lr"]
        0.1
    """
    names = sorted({k for t in trials for k in t.params})
    rows = []
    for t in sorted(trials, key=lambda r: r.number):
        duration = (t.finished_at - t.created_at) if t.finished_at and t.created_at else None
        row: dict[str, Any] = {
            "number": t.number,
            "state": t.state.value,
            "value": t.value,
            "epochs": t.epochs,
            "duration_s": round(duration, 3) if duration is not None else None,
            "started": _iso(t.created_at),
            "worker": t.worker or "",
            "message": (t.message or "").splitlines()[0][:200] if t.message else "",
        }
        row.update({f"param.{n}": _cell(t.params.get(n)) for n in names})
        rows.append(row)
    return rows


def trials_table(storage: Storage, sweep_name: str) -> list[dict[str, Any]]:
    """The stored sweep's trials as rows (see :func:`table_rows`)."""
    sweep = storage.get_sweep(sweep_name)
    return table_rows(storage.get_trials(sweep.id))


def write_trials_csv(trials: Sequence[TrialRecord], path: str | Path) -> Path:
    """Write the trials table as CSV (header always, even with no trials); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = table_rows(trials)
    names = sorted({k for t in trials for k in t.params})
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS + [f"param.{n}" for n in names])
        writer.writeheader()
        writer.writerows(rows)
    return path
