"""Checkpoint records and resumed trials in SQL (the part of SQLStorage for issue 13).

A requeued trial with a checkpoint is *reopened*: its own row goes back to RUNNING, and what it
recorded after the checkpoint's epoch (metrics, later checkpoints) is dropped, so the resumed fit
continues one curve without a gap or a duplicate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from hpo_lightning._trial import TrialState
from hpo_lightning.storage._base import CheckpointRecord, TrialRecord, dumps, worker_id

T = TypeVar("T")


def _value(v: Any) -> float | None:
    return None if v is None or not math.isfinite(float(v)) else float(v)


def reopen_trial(
    cur: Any, trial: TrialRecord, attrs: Mapping[str, Any], cols: str, stamp: int
) -> tuple[Any, ...] | None:
    """Inside a claim: reopen ``trial`` from its latest checkpoint; its new row, or None.

    ``stamp``: the sweep's change count for this write (see ``SQLStorage._bump``)."""
    cur.execute("SELECT MAX(epoch) FROM hpo_checkpoints WHERE trial_id = ?", (trial.id,))
    row = cur.fetchone()
    if row is None or row[0] is None:
        return None
    epoch = int(row[0])
    now = time.time()
    cur.execute("DELETE FROM hpo_metrics WHERE trial_id = ? AND epoch > ?", (trial.id, epoch))
    cur.execute(
        "UPDATE hpo_trials SET state = ?, value = NULL, finished_at = NULL, message = NULL, "
        "failure = NULL, worker = ?, heartbeat_at = ?, epochs = ?, attrs = ?, changed = ? "
        "WHERE id = ? AND state = ?",
        (
            TrialState.RUNNING.value,
            worker_id(),
            now,
            epoch + 1,
            dumps({**attrs, "resumed_epochs": epoch + 1}),
            stamp,
            trial.id,
            trial.state.value,
        ),
    )
    if not cur.rowcount:
        return None
    cur.execute(f"SELECT {cols} FROM hpo_trials WHERE id = ?", (trial.id,))
    return tuple(cur.fetchone())


class CheckpointSQL:
    """Checkpoint methods of SQLStorage (mixed in; uses its ``_transaction``/``_query``)."""

    _transaction: Callable[..., Any]
    _query: Callable[..., Any]
    _bump: Callable[..., int]

    def add_checkpoint(self, trial_id: int, epoch: int, path: str, value: float | None) -> None:
        row = (trial_id, int(epoch), str(path), _value(value), time.time())
        self._transaction(
            lambda cur: cur.execute(
                "INSERT INTO hpo_checkpoints (trial_id, epoch, path, value, created_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (trial_id, epoch) DO UPDATE SET "
                "path = excluded.path, value = excluded.value, created_at = excluded.created_at",
                row,
            )
        )

    def delete_checkpoints(self, trial_id: int, epochs: Sequence[int]) -> None:
        rows = [(trial_id, int(e)) for e in epochs]
        if rows:
            self._transaction(
                lambda cur: cur.executemany(
                    "DELETE FROM hpo_checkpoints WHERE trial_id = ? AND epoch = ?", rows
                )
            )

    def set_trial_attrs(self, trial_id: int, attrs: Mapping[str, Any]) -> None:
        """Replace a running trial's attrs (e.g. its PBT lineage)."""
        self._transaction(
            lambda cur: cur.execute(
                "UPDATE hpo_trials SET attrs = ?, changed = ? WHERE id = ? AND state = ?",
                (
                    dumps(dict(attrs)),
                    self._bump(cur, trial_id=trial_id),
                    trial_id,
                    TrialState.RUNNING.value,
                ),
            )
        )

    def discard_epochs(self, trial_id: int, after: int) -> None:
        """Drop a running trial's metrics and checkpoint records of epochs after ``after``
        (a resume that had to restart: its epochs are trained again)."""

        def body(cur: Any) -> None:
            for table in ("hpo_metrics", "hpo_checkpoints"):
                cur.execute(
                    f"DELETE FROM {table} WHERE trial_id = ? AND epoch > ?", (trial_id, after)
                )
            cur.execute("UPDATE hpo_trials SET epochs = ? WHERE id = ?", (after + 1, trial_id))

        self._transaction(body)

    def get_checkpoints(self, sweep_id: int) -> dict[int, list[CheckpointRecord]]:
        def body(cur: Any) -> list[Any]:
            cur.execute(
                "SELECT t.number, c.trial_id, c.epoch, c.path, c.value FROM hpo_checkpoints c "
                "JOIN hpo_trials t ON t.id = c.trial_id WHERE t.sweep_id = ? "
                "ORDER BY t.number, c.epoch",
                (sweep_id,),
            )
            return list(cur.fetchall())

        out: dict[int, list[CheckpointRecord]] = {}
        for number, trial_id, epoch, path, value in self._query(body):
            out.setdefault(int(number), []).append(
                CheckpointRecord(int(trial_id), int(epoch), path, _value(value))
            )
        return out
