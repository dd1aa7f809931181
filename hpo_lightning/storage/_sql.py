"""SQL logic shared by the SQLite and PostgreSQL stores: one schema, parameterised queries only.

Subclasses provide connections and transactions (``_write``/``_read``), the DDL types, and how
a claim locks its sweep. SQL here uses ``?`` placeholders; the PostgreSQL store translates them.
"""

from __future__ import annotations

import difflib
import json
import math
import time
from abc import abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from hpo_lightning._trial import Mode, TrialState
from hpo_lightning.exceptions import StorageError, SweepNotFoundError
from hpo_lightning.storage._base import (
    Claim,
    Storage,
    SweepRecord,
    TrialRecord,
    dumps,
    worker_id,
)

SCHEMA_VERSION = 1
TABLES = ("hpo_schema", "hpo_sweeps", "hpo_trials", "hpo_metrics")

_TRIAL_COLS = (
    "id, sweep_id, number, state, params, value, tuner, worker, created_at, finished_at, "
    "heartbeat_at, epochs, message, attrs"
)


def schema_sql(pk: str, real: str) -> list[str]:
    """DDL of the schema, with the dialect's auto-increment key and float type."""
    return [
        "CREATE TABLE IF NOT EXISTS hpo_schema (version INTEGER NOT NULL)",
        f"""CREATE TABLE IF NOT EXISTS hpo_sweeps (
            id {pk}, name TEXT NOT NULL UNIQUE, definition TEXT NOT NULL, mode TEXT NOT NULL,
            created_at {real} NOT NULL, status TEXT NOT NULL DEFAULT 'running')""",
        f"""CREATE TABLE IF NOT EXISTS hpo_trials (
            id {pk}, sweep_id INTEGER NOT NULL REFERENCES hpo_sweeps(id) ON DELETE CASCADE,
            number INTEGER NOT NULL, state TEXT NOT NULL, params TEXT NOT NULL, value {real},
            tuner TEXT, worker TEXT, created_at {real} NOT NULL, finished_at {real},
            heartbeat_at {real}, epochs INTEGER NOT NULL DEFAULT 0, message TEXT,
            attrs TEXT NOT NULL DEFAULT '{{}}', UNIQUE (sweep_id, number))""",
        "CREATE INDEX IF NOT EXISTS hpo_trials_by_state ON hpo_trials (sweep_id, state)",
        f"""CREATE TABLE IF NOT EXISTS hpo_metrics (
            trial_id INTEGER NOT NULL REFERENCES hpo_trials(id) ON DELETE CASCADE,
            epoch INTEGER NOT NULL, name TEXT NOT NULL, value {real},
            PRIMARY KEY (trial_id, epoch, name))""",
    ]


def _finite_or_none(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


class SQLStorage(Storage):
    """Storage over a DB-API connection; see :class:`Storage` for the contract."""

    # --- provided by subclasses -------------------------------------------------
    @abstractmethod
    def _write(self) -> Any:
        """Context manager: a write transaction yielding a cursor (serialised with writers)."""

    @abstractmethod
    def _read(self) -> Any:
        """Context manager: a cursor for reads."""

    def _lock_sweep(self, cur: Any, sweep_id: int) -> None:
        """Serialise claims of one sweep (the SQLite write lock already does)."""

    # --- helpers ----------------------------------------------------------------------
    @staticmethod
    def _sweep(row: Sequence[Any]) -> SweepRecord:
        return SweepRecord(
            id=int(row[0]),
            name=row[1],
            definition=json.loads(row[2]),
            mode=row[3],
            created_at=float(row[4]),
            status=row[5],
        )

    @staticmethod
    def _trial(row: Sequence[Any]) -> TrialRecord:
        return TrialRecord(
            id=int(row[0]),
            sweep_id=int(row[1]),
            number=int(row[2]),
            state=TrialState(row[3]),
            params=json.loads(row[4]),
            value=_finite_or_none(row[5]),
            tuner=row[6],
            worker=row[7],
            created_at=float(row[8]),
            finished_at=None if row[9] is None else float(row[9]),
            heartbeat_at=None if row[10] is None else float(row[10]),
            epochs=int(row[11]),
            message=row[12],
            attrs=json.loads(row[13] or "{}"),
        )

    def _insert_trial(
        self,
        cur: Any,
        sweep_id: int,
        params: Mapping[str, Any],
        *,
        tuner: str | None,
        state: TrialState,
        attrs: Mapping[str, Any] | None,
    ) -> TrialRecord:
        cur.execute(
            "SELECT COALESCE(MAX(number), -1) + 1 FROM hpo_trials WHERE sweep_id = ?", (sweep_id,)
        )
        number = int(cur.fetchone()[0])
        now = time.time()
        cur.execute(
            f"INSERT INTO hpo_trials (sweep_id, number, state, params, tuner, worker, created_at, "
            f"heartbeat_at, attrs) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {_TRIAL_COLS}",
            (
                sweep_id,
                number,
                state.value,
                dumps(dict(params)),
                tuner,
                worker_id(),
                now,
                now,
                dumps(dict(attrs or {})),
            ),
        )
        return self._trial(cur.fetchone())

    # --- sweeps -------------------------------------------------------------------------
    def create_sweep(self, name: str, definition: Mapping[str, Any], *, mode: Mode) -> SweepRecord:
        with self._write() as cur:
            cur.execute(
                "SELECT id, name, definition, mode, created_at, status FROM hpo_sweeps "
                "WHERE name = ?",
                (name,),
            )
            row = cur.fetchone()
            if row is not None:
                return self._sweep(row)
            cur.execute(
                "INSERT INTO hpo_sweeps (name, definition, mode, created_at) VALUES (?, ?, ?, ?) "
                "RETURNING id, name, definition, mode, created_at, status",
                (name, dumps(dict(definition)), mode, time.time()),
            )
            return self._sweep(cur.fetchone())

    def get_sweep(self, name: str) -> SweepRecord:
        with self._read() as cur:
            cur.execute(
                "SELECT id, name, definition, mode, created_at, status FROM hpo_sweeps "
                "WHERE name = ?",
                (name,),
            )
            row = cur.fetchone()
            if row is not None:
                return self._sweep(row)
            cur.execute("SELECT name FROM hpo_sweeps ORDER BY name")
            names = [r[0] for r in cur.fetchall()]
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        known = ", ".join(names) if names else "none yet"
        raise SweepNotFoundError(
            f"no sweep named '{name}' in {self.url} (sweeps there: {known}){hint}"
        )

    def list_sweeps(self) -> list[SweepRecord]:
        with self._read() as cur:
            cur.execute(
                "SELECT id, name, definition, mode, created_at, status FROM hpo_sweeps ORDER BY id"
            )
            return [self._sweep(r) for r in cur.fetchall()]

    def set_sweep_status(self, sweep_id: int, status: str) -> None:
        with self._write() as cur:
            cur.execute("UPDATE hpo_sweeps SET status = ? WHERE id = ?", (status, sweep_id))

    # --- trials ---------------------------------------------------------------------------
    @contextmanager
    def claim(self, sweep_id: int) -> Iterator[Claim]:
        with self._write() as cur:
            self._lock_sweep(cur, sweep_id)
            cur.execute(
                f"SELECT {_TRIAL_COLS} FROM hpo_trials WHERE sweep_id = ? ORDER BY number",
                (sweep_id,),
            )
            trials = [self._trial(r) for r in cur.fetchall()]

            def add(params: Mapping[str, Any], **kw: Any) -> TrialRecord:
                return self._insert_trial(cur, sweep_id, params, **kw)

            yield Claim(trials, add)

    def log_metrics(self, trial_id: int, epoch: int, metrics: Mapping[str, float]) -> None:
        rows = [(trial_id, epoch, k, _finite_or_none(float(v))) for k, v in metrics.items()]
        with self._write() as cur:
            if rows:
                cur.executemany(
                    "INSERT INTO hpo_metrics (trial_id, epoch, name, value) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (trial_id, epoch, name) DO UPDATE SET value = excluded.value",
                    rows,
                )
            cur.execute(
                "UPDATE hpo_trials SET heartbeat_at = ?, epochs = CASE WHEN epochs > ? "
                "THEN epochs ELSE ? END WHERE id = ?",
                (time.time(), epoch + 1, epoch + 1, trial_id),
            )

    def finish_trial(
        self,
        trial_id: int,
        state: TrialState,
        value: float | None,
        *,
        epochs: int | None = None,
        message: str | None = None,
    ) -> bool:
        state = TrialState(state)
        if state is TrialState.RUNNING:
            raise StorageError("finish_trial needs a final state, not RUNNING")
        now = time.time()
        with self._write() as cur:
            cur.execute(
                "UPDATE hpo_trials SET state = ?, value = ?, finished_at = ?, heartbeat_at = ?, "
                "message = ?, epochs = COALESCE(?, epochs) WHERE id = ? AND state = ?",
                (
                    state.value,
                    _finite_or_none(value),
                    now,
                    now,
                    message,
                    epochs,
                    trial_id,
                    TrialState.RUNNING.value,
                ),
            )
            return bool(cur.rowcount)

    def heartbeat(self, trial_ids: Sequence[int]) -> None:
        if not trial_ids:
            return
        now = time.time()
        with self._write() as cur:
            cur.executemany(
                "UPDATE hpo_trials SET heartbeat_at = ? WHERE id = ? AND state = ?",
                [(now, i, TrialState.RUNNING.value) for i in trial_ids],
            )

    def get_trials(
        self, sweep_id: int, *, states: Sequence[TrialState] | None = None
    ) -> list[TrialRecord]:
        with self._read() as cur:
            cur.execute(
                f"SELECT {_TRIAL_COLS} FROM hpo_trials WHERE sweep_id = ? ORDER BY number",
                (sweep_id,),
            )
            rows = [self._trial(r) for r in cur.fetchall()]
        if states is not None:
            wanted = {TrialState(s) for s in states}
            rows = [r for r in rows if r.state in wanted]
        return rows

    def get_metrics(self, trial_id: int) -> dict[int, dict[str, float]]:
        out: dict[int, dict[str, float]] = {}
        with self._read() as cur:
            cur.execute(
                "SELECT epoch, name, value FROM hpo_metrics WHERE trial_id = ? "
                "ORDER BY epoch, name",
                (trial_id,),
            )
            for epoch, name, value in cur.fetchall():
                out.setdefault(int(epoch), {})[name] = math.nan if value is None else float(value)
        return out

    def fail_stale_trials(
        self, sweep_id: int, *, older_than_s: float, is_alive: Callable[[str], bool | None]
    ) -> list[TrialRecord]:
        now = time.time()
        failed: list[TrialRecord] = []
        with self._write() as cur:
            cur.execute(
                f"SELECT {_TRIAL_COLS} FROM hpo_trials WHERE sweep_id = ? AND state = ?",
                (sweep_id, TrialState.RUNNING.value),
            )
            for rec in (self._trial(r) for r in cur.fetchall()):
                alive = is_alive(rec.worker or "")
                last = rec.heartbeat_at or rec.created_at
                if alive is False:
                    reason = f"its worker {rec.worker} is no longer running (killed or crashed)"
                elif alive is None and now - last > older_than_s:
                    reason = (
                        f"its worker {rec.worker} sent no heartbeat for "
                        f"{now - last:.0f} s (limit {older_than_s:.0f} s)"
                    )
                else:
                    continue
                cur.execute(
                    "UPDATE hpo_trials SET state = ?, finished_at = ?, message = ? "
                    "WHERE id = ? AND state = ?",
                    (
                        TrialState.FAILED.value,
                        now,
                        f"lost: {reason}",
                        rec.id,
                        TrialState.RUNNING.value,
                    ),
                )
                failed.append(rec)
        return failed
