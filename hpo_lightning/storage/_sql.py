"""SQL logic shared by the SQLite and PostgreSQL stores: one schema, parameterised queries only.

Subclasses provide connections and transactions (``_write``/``_read``), the DDL types, and how
a claim locks its sweep. SQL here uses ``?`` placeholders; the PostgreSQL store translates them.
"""

from __future__ import annotations

import json
import math
import time
from abc import abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, TypeVar

from hpo_lightning._names import did_you_mean
from hpo_lightning._secrets import redact, redact_tree
from hpo_lightning._trial import FailureKind, Mode, TrialState
from hpo_lightning.exceptions import StorageError, SweepNotFoundError
from hpo_lightning.storage._base import (
    Claim,
    Storage,
    SweepRecord,
    TrialRecord,
    dumps,
    worker_id,
)
from hpo_lightning.storage._lifecycle import PerProcessConnection
from hpo_lightning.storage._sql_checkpoints import CheckpointSQL, reopen_trial

T = TypeVar("T")

_SWEEP_COLS = "id, name, definition, mode, created_at, status"
_TRIAL_COLS = (
    "id, sweep_id, number, state, params, value, tuner, worker, created_at, finished_at, "
    "heartbeat_at, epochs, message, attrs, failure, objective_values, violation, changed"
)


# The two reads of every claim whose cost must not grow with the sweep. Both are written so
# that their only cheap plan is a short walk of one index, whatever the planner knows:
# PostgreSQL keeps a prepared statement's generic plan, which it may make while the table holds
# a handful of rows, until something (VACUUM, ANALYZE, a cache reset) makes it plan again. With
# "MAX(number)" (aggregated over the (sweep_id, changed) index) and "changed > ? ORDER BY
# number" (the (sweep_id, number) index, changed as a filter) such plans read every trial of
# the sweep: ~0.2 ms more per claim at every 1,000 trials (issue 17).
LAST_NUMBER = "SELECT number FROM hpo_trials WHERE sweep_id = ? ORDER BY number DESC LIMIT 1"
# ordered by the (sweep_id, changed) index, so no plan can prefer the (sweep_id, number) index
CHANGED_SINCE = (
    f"SELECT {_TRIAL_COLS} FROM hpo_trials WHERE sweep_id = ? AND changed > ? "
    "ORDER BY sweep_id, changed"
)

_SETTLED = (TrialState.COMPLETE.value, TrialState.PRUNED.value, TrialState.FAILED.value)
_STATES = {s.value: s for s in TrialState}  # a dict lookup: 10,000 rows parse in ~0.1 s


def _finite_or_none(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


class SQLStorage(PerProcessConnection, CheckpointSQL, Storage):
    """Storage over a DB-API connection; see :class:`Storage` for the contract."""

    # --- provided by subclasses -------------------------------------------------
    @abstractmethod
    def _write(self) -> Any:
        """Context manager: a write transaction yielding a cursor (serialised with writers)."""

    @abstractmethod
    def _read(self) -> Any:
        """Context manager: a cursor for reads."""

    def _lock_sweep(self, cur: Any, sweep_id: int) -> Any:
        """Serialise claims of one sweep (the SQLite write lock already does)."""

    def _transaction(self, body: Callable[[Any], T]) -> T:
        """Run ``body(cur)`` in one write transaction and return its result.

        Every write goes through here. A store whose connection can drop (PostgreSQL) runs the
        body again whole after a rollback, so a body touches the database only through ``cur``
        and computes timestamps outside (a retry then writes the same values).
        """
        with self._write() as cur:
            return body(cur)

    def _query(self, body: Callable[[Any], T]) -> T:
        """Run ``body(cur)`` with a read cursor (retried like :meth:`_transaction`)."""
        with self._read() as cur:
            return body(cur)

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

    def _trial(self, row: Sequence[Any]) -> TrialRecord:
        # Finished trials never change (see the Storage contract), so their parsed records
        # are cached per process: a claim re-reads a sweep's rows but parses only new ones.
        cache: dict[int, TrialRecord] | None = self.__dict__.get("_finished_cache")
        if cache is None:
            cache = self.__dict__["_finished_cache"] = {}
        hit = cache.get(row[0])
        # the change stamp too: a requeued trial may be reopened (resumed) and finish again
        if hit is not None and hit.changed == row[17] and hit.state.value == row[3]:
            return hit
        rec = self._parse_trial(row)
        if rec.state is not TrialState.RUNNING:
            cache[rec.id] = rec
        return rec

    @staticmethod
    def _parse_trial(row: Sequence[Any]) -> TrialRecord:
        return TrialRecord(
            id=int(row[0]),
            sweep_id=int(row[1]),
            number=int(row[2]),
            state=_STATES.get(row[3]) or TrialState(row[3]),
            params=json.loads(row[4]),
            value=_finite_or_none(row[5]),
            tuner=row[6],
            worker=row[7],
            created_at=float(row[8]),
            finished_at=None if row[9] is None else float(row[9]),
            heartbeat_at=None if row[10] is None else float(row[10]),
            epochs=int(row[11]),
            message=row[12],
            attrs={} if row[13] in (None, "{}") else json.loads(row[13]),
            failure=None if row[14] is None else FailureKind(row[14]),
            objective_values=objective_values_from(row[15]),
            violation=None if row[16] is None else float(row[16]),
            changed=int(row[17] or 0),
        )

    @staticmethod
    def _bump(cur: Any, *, sweep_id: int | None = None, trial_id: int | None = None) -> int:
        """Count one change of a sweep's trials (the sweep given, or the trial's); the new
        count, with which the write stamps the trials it changes (``changed``).

        It locks the sweep's row first, before any trial row, as a claim does: writers of one
        sweep then take their locks in one order and cannot deadlock on PostgreSQL.
        """
        if sweep_id is not None:
            cur.execute(
                "UPDATE hpo_sweeps SET changes = changes + 1 WHERE id = ? RETURNING changes",
                (sweep_id,),
            )
        else:
            cur.execute(
                "UPDATE hpo_sweeps SET changes = changes + 1 WHERE id = "
                "(SELECT sweep_id FROM hpo_trials WHERE id = ?) RETURNING changes",
                (trial_id,),
            )
        row = cur.fetchone()
        return 0 if row is None else int(row[0])

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
        cur.execute(LAST_NUMBER, (sweep_id,))
        last = cur.fetchone()
        number = 0 if last is None else int(last[0]) + 1
        now = time.time()
        stamp = self._bump(cur, sweep_id=sweep_id)
        cur.execute(
            f"INSERT INTO hpo_trials (sweep_id, number, state, params, tuner, worker, created_at, "
            f"heartbeat_at, attrs, changed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            f"RETURNING {_TRIAL_COLS}",
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
                stamp,
            ),
        )
        return self._trial(cur.fetchone())

    def _reopen(self, cur: Any, trial: TrialRecord, attrs: Mapping[str, Any]) -> TrialRecord | None:
        row = reopen_trial(cur, trial, attrs, _TRIAL_COLS, self._bump(cur, trial_id=trial.id))
        return None if row is None else self._trial(row)

    # --- sweeps -------------------------------------------------------------------------
    def create_sweep(self, name: str, definition: Mapping[str, Any], *, mode: Mode) -> SweepRecord:
        now = time.time()

        def body(cur: Any) -> SweepRecord:
            # ON CONFLICT: two processes creating the same sweep at once both get the stored one.
            cur.execute(
                "INSERT INTO hpo_sweeps (name, definition, mode, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (name) DO NOTHING",
                (name, dumps(redact_tree(dict(definition))), mode, now),  # no password stored
            )
            cur.execute(f"SELECT {_SWEEP_COLS} FROM hpo_sweeps WHERE name = ?", (name,))
            return self._sweep(cur.fetchone())

        return self._transaction(body)

    def get_sweep(self, name: str) -> SweepRecord:
        def body(cur: Any) -> tuple[Any, list[str]]:
            cur.execute(f"SELECT {_SWEEP_COLS} FROM hpo_sweeps WHERE name = ?", (name,))
            row = cur.fetchone()
            if row is not None:
                return row, []
            cur.execute("SELECT name FROM hpo_sweeps ORDER BY name")
            return None, [r[0] for r in cur.fetchall()]

        row, names = self._query(body)
        if row is not None:
            return self._sweep(row)
        hint = did_you_mean(name, names)
        known = ", ".join(names) if names else "none yet"
        raise SweepNotFoundError(
            f"no sweep named '{name}' in {self.url} (sweeps there: {known}){hint}"
        )

    def list_sweeps(self) -> list[SweepRecord]:
        def body(cur: Any) -> list[SweepRecord]:
            cur.execute(f"SELECT {_SWEEP_COLS} FROM hpo_sweeps ORDER BY id")
            return [self._sweep(r) for r in cur.fetchall()]

        return self._query(body)

    def raise_n_trials(self, sweep_id: int, n_trials: int) -> SweepRecord:
        def body(cur: Any) -> SweepRecord:
            self._lock_sweep(cur, sweep_id)  # PostgreSQL: no lost update between two extenders
            cur.execute(f"SELECT {_SWEEP_COLS} FROM hpo_sweeps WHERE id = ?", (sweep_id,))
            row = cur.fetchone()
            if row is None:
                raise StorageError(f"no sweep with id {sweep_id} in {self.url}")
            record = self._sweep(row)
            if int(record.definition.get("n_trials") or 0) >= n_trials:
                return record
            definition = {**record.definition, "n_trials": int(n_trials)}
            cur.execute(
                "UPDATE hpo_sweeps SET definition = ? WHERE id = ?", (dumps(definition), sweep_id)
            )
            return replace(record, definition=definition)

        return self._transaction(body)

    def set_sweep_status(self, sweep_id: int, status: str) -> None:
        self._transaction(
            lambda cur: cur.execute(
                "UPDATE hpo_sweeps SET status = ? WHERE id = ?", (status, sweep_id)
            )
        )

    def delete_sweep(self, sweep_id: int) -> int:
        def body(cur: Any) -> int:
            self._lock_sweep(cur, sweep_id)  # PostgreSQL: wait for a claim in progress
            cur.execute("SELECT COUNT(*) FROM hpo_sweeps WHERE id = ?", (sweep_id,))
            if not int(cur.fetchone()[0]):
                raise StorageError(f"no sweep with id {sweep_id} in {self.url}")
            # explicit deletes, child tables first: no reliance on ON DELETE CASCADE
            cur.execute(
                "DELETE FROM hpo_metrics WHERE trial_id IN "
                "(SELECT id FROM hpo_trials WHERE sweep_id = ?)",
                (sweep_id,),
            )
            cur.execute("DELETE FROM hpo_trials WHERE sweep_id = ?", (sweep_id,))
            n_trials = int(cur.rowcount)
            cur.execute("DELETE FROM hpo_sweeps WHERE id = ?", (sweep_id,))
            return n_trials

        deleted = self._transaction(body)
        # cached curves are keyed by sweep id; a new sweep never reuses it, but be tidy
        for key in [k for k in self.__dict__.get("_curve_cache", {}) if k[0] == sweep_id]:
            del self.__dict__["_curve_cache"][key]
        return deleted

    # --- trials ---------------------------------------------------------------------------
    def _claim_start(
        self, cur: Any, sweep_id: int, since: int | None = None, *, locked: bool = False
    ) -> list[TrialRecord]:
        """Lock the sweep (unless ``locked``) and read its trials (only those changed after
        ``since`` when given): the first half of a claim (writes nothing)."""
        if not locked:
            self._lock_sweep(cur, sweep_id)
        if since is None:
            cur.execute(
                f"SELECT {_TRIAL_COLS} FROM hpo_trials WHERE sweep_id = ? ORDER BY number",
                (sweep_id,),
            )
            return [self._trial(r) for r in cur.fetchall()]
        cur.execute(CHANGED_SINCE, (sweep_id, int(since)))
        return sorted((self._trial(r) for r in cur.fetchall()), key=lambda t: t.number)

    @staticmethod
    def _new_claim(trials: list[TrialRecord], since: int | None, add: Any, reopen: Any) -> Claim:
        changes = max([since or 0, *(t.changed for t in trials)])
        return Claim(trials, add, reopen, since=since, changes=changes)

    @contextmanager
    def claim(self, sweep_id: int, *, since: int | None = None) -> Iterator[Claim]:
        with self._write() as cur:
            trials = self._claim_start(cur, sweep_id, since)

            def add(params: Mapping[str, Any], **kw: Any) -> TrialRecord:
                return self._insert_trial(cur, sweep_id, params, **kw)

            def reopen(trial: TrialRecord, *, attrs: Mapping[str, Any]) -> TrialRecord | None:
                return self._reopen(cur, trial, attrs)

            yield self._new_claim(trials, since, add, reopen)

    def log_metrics(self, trial_id: int, epoch: int, metrics: Mapping[str, float]) -> None:
        rows = [(trial_id, epoch, k, _finite_or_none(float(v))) for k, v in metrics.items()]
        now = time.time()

        def body(cur: Any) -> None:
            if rows:
                cur.executemany(
                    "INSERT INTO hpo_metrics (trial_id, epoch, name, value) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (trial_id, epoch, name) DO UPDATE SET value = excluded.value",
                    rows,
                )
            cur.execute(
                "UPDATE hpo_trials SET heartbeat_at = ?, epochs = CASE WHEN epochs > ? "
                "THEN epochs ELSE ? END WHERE id = ?",
                (now, epoch + 1, epoch + 1, trial_id),
            )

        self._transaction(body)

    def finish_trial(
        self,
        trial_id: int,
        state: TrialState,
        value: float | None,
        *,
        epochs: int | None = None,
        message: str | None = None,
        failure: FailureKind | None = None,
        objective_values: Sequence[float] | None = None,
        violation: float | None = None,
    ) -> bool:
        state = TrialState(state)
        vector = objective_values_text(objective_values)
        kind = None if failure is None else FailureKind(failure).value
        if state is TrialState.RUNNING:
            raise StorageError("finish_trial needs a final state, not RUNNING")
        now = time.time()
        final = _finite_or_none(value)
        message = redact(message) if message else message  # e.g. a URL quoted by an error

        def body(cur: Any) -> bool:
            stamp = self._bump(cur, trial_id=trial_id)
            cur.execute(
                "UPDATE hpo_trials SET state = ?, value = ?, finished_at = ?, heartbeat_at = ?, "
                "message = ?, failure = ?, epochs = COALESCE(?, epochs), objective_values = ?, "
                "violation = ?, changed = ? WHERE id = ? AND state = ?",
                (
                    state.value,
                    final,
                    now,
                    now,
                    message,
                    kind,
                    epochs,
                    vector,
                    None if violation is None else float(violation),
                    stamp,
                    trial_id,
                    TrialState.RUNNING.value,
                ),
            )
            if cur.rowcount:
                return True
            # A retry after a commit whose acknowledgement was lost finds its own write.
            cur.execute("SELECT state, finished_at FROM hpo_trials WHERE id = ?", (trial_id,))
            row = cur.fetchone()
            return row is not None and row[0] == state.value and row[1] == now

        return self._transaction(body)

    def heartbeat(self, trial_ids: Sequence[int]) -> None:
        if not trial_ids:
            return
        rows = [(time.time(), i, TrialState.RUNNING.value) for i in trial_ids]
        self._transaction(
            lambda cur: cur.executemany(
                "UPDATE hpo_trials SET heartbeat_at = ? WHERE id = ? AND state = ?", rows
            )
        )

    def get_trials(
        self, sweep_id: int, *, states: Sequence[TrialState] | None = None
    ) -> list[TrialRecord]:

        def body(cur: Any) -> list[TrialRecord]:
            cur.execute(
                f"SELECT {_TRIAL_COLS} FROM hpo_trials WHERE sweep_id = ? ORDER BY number",
                (sweep_id,),
            )
            return [self._trial(r) for r in cur.fetchall()]

        rows = self._query(body)
        if states is not None:
            wanted = {TrialState(s) for s in states}
            rows = [r for r in rows if r.state in wanted]
        return rows

    def get_metrics(self, trial_id: int) -> dict[int, dict[str, float]]:

        def body(cur: Any) -> list[Any]:
            cur.execute(
                "SELECT epoch, name, value FROM hpo_metrics WHERE trial_id = ? "
                "ORDER BY epoch, name",
                (trial_id,),
            )
            return list(cur.fetchall())

        out: dict[int, dict[str, float]] = {}
        for epoch, name, value in self._query(body):
            out.setdefault(int(epoch), {})[name] = math.nan if value is None else float(value)
        return out

    def get_curves(self, sweep_id: int, metric: str) -> dict[int, dict[int, float]]:
        # A scheduler asks at every epoch. Curves of finished trials never change, so they are
        # cached per process (a finished trial without the metric as an empty curve): each
        # call reads the sweep's trial states (a row per trial) and the metric rows of running
        # and newly finished trials only. The returned curves are shared: do not modify them.
        caches: dict[tuple[int, str], dict[int, dict[int, float]]] | None = self.__dict__.get(
            "_curve_cache"
        )
        if caches is None:
            caches = self.__dict__["_curve_cache"] = {}
        done = caches.setdefault((sweep_id, metric), {})

        def body(cur: Any) -> tuple[dict[int, bool], list[Any]]:
            cur.execute("SELECT number, state FROM hpo_trials WHERE sweep_id = ?", (sweep_id,))
            # requeued trials (interrupted, lost) may resume: only settled curves are cached
            finished = {int(n): state in _SETTLED for n, state in cur.fetchall()}
            wanted = [n for n, fin in finished.items() if not (fin and n in done)]
            rows: list[Any] = []
            for i in range(0, len(wanted), 500):  # bounded parameter lists
                chunk = wanted[i : i + 500]
                cur.execute(
                    "SELECT t.number, m.epoch, m.value FROM hpo_metrics m "
                    "JOIN hpo_trials t ON t.id = m.trial_id WHERE t.sweep_id = ? AND m.name = ? "
                    f"AND t.number IN ({', '.join('?' * len(chunk))}) ORDER BY t.number, m.epoch",
                    (sweep_id, metric, *chunk),
                )
                rows.extend(cur.fetchall())
            return finished, rows

        finished, rows = self._query(body)
        fresh: dict[int, dict[int, float]] = {}
        for number, epoch, value in rows:
            value = math.nan if value is None else float(value)
            fresh.setdefault(int(number), {})[int(epoch)] = value
        for number, fin in finished.items():
            if fin and number not in done:
                done[number] = fresh.get(number, {})
        return {
            n: curve
            for n in sorted(finished)
            if (curve := done[n] if finished[n] else fresh.get(n, {}))
        }

    def fail_stale_trials(
        self,
        sweep_id: int,
        *,
        older_than_s: float,
        is_alive: Callable[[str], bool | None],
        max_losses: int = 2,
    ) -> list[TrialRecord]:
        now = time.time()

        def body(cur: Any) -> list[TrialRecord]:
            # Returns what this attempt failed: after a lost commit acknowledgement the retry
            # finds those trials already FAILED and leaves them out (their state is right).
            # 'running' literally: the hpo_trials_running partial index answers it
            cur.execute(
                f"SELECT {_TRIAL_COLS} FROM hpo_trials WHERE sweep_id = ? AND state = 'running'",
                (sweep_id,),
            )
            failed = []
            stamp: int | None = None
            for rec in (self._trial(r) for r in cur.fetchall()):
                reason = _stale_reason(rec, now, older_than_s, is_alive)
                if reason is None:
                    continue
                state, failure = TrialState.LOST, None
                losses = int(rec.attrs.get("losses", 0)) + 1
                if losses >= max_losses:
                    state, failure = TrialState.FAILED, FailureKind.CRASHED.value
                    reason += (
                        f"; its worker died {losses} times running these params (killed, "
                        "segfault or out of memory?), so they are not run again"
                    )
                if stamp is None:  # one change count for all the trials this reaps
                    stamp = self._bump(cur, sweep_id=sweep_id)
                # The heartbeat guard keeps a trial whose worker reported meanwhile.
                cur.execute(
                    "UPDATE hpo_trials SET state = ?, finished_at = ?, message = ?, failure = ?, "
                    "changed = ? WHERE id = ? AND state = ? "
                    "AND (heartbeat_at IS NULL OR heartbeat_at <= ?)",
                    (
                        state.value,
                        now,
                        reason,
                        failure,
                        stamp,
                        rec.id,
                        TrialState.RUNNING.value,
                        rec.heartbeat_at if rec.heartbeat_at is not None else now,
                    ),
                )
                if cur.rowcount:
                    failed.append(
                        replace(
                            rec,
                            state=state,
                            message=reason,
                            failure=None if failure is None else FailureKind(failure),
                            changed=stamp,
                        )
                    )
            return failed

        return self._transaction(body)


def objective_values_text(values: Sequence[float] | None) -> str | None:
    """The JSON list stored in ``objective_values`` (non-finite values as null)."""
    if values is None:
        return None
    return json.dumps([_finite_or_none(float(v)) for v in values])


def objective_values_from(text: str | None) -> tuple[float, ...] | None:
    """The stored list back as floats (null as NaN), or None when none is stored."""
    if text is None:
        return None
    return tuple(math.nan if v is None else float(v) for v in json.loads(text))


def _stale_reason(
    rec: TrialRecord, now: float, older_than_s: float, is_alive: Callable[[str], bool | None]
) -> str | None:
    """Why a RUNNING trial's worker counts as gone, or None while it may still be alive."""
    alive = is_alive(rec.worker or "")
    last = rec.heartbeat_at or rec.created_at
    if alive is False:
        return f"its worker {rec.worker} is no longer running (killed or crashed)"
    if alive is None and now - last > older_than_s:
        return (
            f"its worker {rec.worker} sent no heartbeat for "
            f"{now - last:.0f} s (limit {older_than_s:.0f} s)"
        )
    return None
