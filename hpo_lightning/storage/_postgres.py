"""The PostgreSQL store: the SQLite schema on a server, for workers on many machines.

* **Transactions.** The connection runs in autocommit mode, so a read never leaves a
  transaction open; every write is an explicit ``BEGIN ... COMMIT`` (READ COMMITTED).
* **Claims.** ``claim`` locks the sweep's row (``SELECT ... FOR UPDATE``) before it reads the
  trials, so claims of one sweep are serialised across machines while other sweeps, metric
  writes and heartbeats go on in parallel.
* **Schema.** Created on first use inside ``pg_advisory_xact_lock``, so eight processes opening a
  fresh database at once do not race on ``CREATE TABLE``; the version row refuses newer schemas.
* **Lost connections.** A dropped connection or a restarted server makes an operation reconnect
  and run again whole, with exponential backoff for up to ``retry_s`` seconds, then raise
  :class:`StorageError`. Write bodies compute their timestamps before the first attempt, so a
  retry after a commit whose acknowledgement was lost recognises its own write. A claim cannot
  re-run the caller's ``with`` block; it replays its inserts (same ids and numbers) in a new
  transaction when no other worker claimed meanwhile, and otherwise raises
  :class:`ClaimInterruptedError`; :meth:`PostgresStorage.claim_with` then decides again.
* **Processes and threads.** One connection per process (a forked child opens its own and never
  touches the parent's socket) guarded by a lock shared with the heartbeat thread; pickling
  drops the connection.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

from hpo_lightning._secrets import redact
from hpo_lightning.exceptions import InvalidStorageError, StorageError, missing_extra
from hpo_lightning.storage._base import Claim, TrialRecord, dumps
from hpo_lightning.storage._schema import ensure_schema
from hpo_lightning.storage._sql import SQLStorage

try:
    import psycopg
    from psycopg import conninfo as _conninfo
except ImportError as _exc:  # pragma: no cover - exercised only without the extra
    raise missing_extra("psycopg", "postgres", "A PostgreSQL store") from _exc

__all__ = ["ClaimInterruptedError", "PostgresStorage"]

T = TypeVar("T")
_log = logging.getLogger(__name__)

_RETRY_S = 60.0
_CONNECT_TIMEOUT_S = 10
_REPLAY = (
    "INSERT INTO hpo_trials (id, sweep_id, number, state, params, value, tuner, worker, "
    "created_at, finished_at, heartbeat_at, epochs, message, attrs, changed) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# Errors after which the connection is suspect and the whole operation may run again.
_TRANSIENT = (psycopg.OperationalError, psycopg.InterfaceError)


class ClaimInterruptedError(StorageError):
    """The connection dropped mid-claim while another worker claimed; nothing was written."""


@functools.lru_cache(maxsize=512)
def _to_pg(sql: str) -> str:
    """The shared SQL's ``?`` placeholders as psycopg's ``%s`` (the SQL has no literal ``?``)."""
    return sql.replace("%", "%%").replace("?", "%s")


class _Cursor:
    """A psycopg cursor that speaks the ``?`` placeholders of the shared SQL."""

    __slots__ = ("_cur",)

    def __init__(self, cur: psycopg.Cursor[Any]) -> None:
        self._cur = cur

    def execute(self, sql: str, params: Any = ()) -> _Cursor:
        self._cur.execute(_to_pg(sql), params)
        return self

    def executemany(self, sql: str, rows: Any) -> None:
        self._cur.executemany(_to_pg(sql), rows)

    def fetchone(self) -> Any:
        return self._cur.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cur.fetchall()

    @property
    def rowcount(self) -> int:
        return self._cur.rowcount


def _close_quietly(conn: psycopg.Connection[Any]) -> None:
    with suppress(psycopg.Error):
        conn.close()


def _dsn(url: str) -> str:
    """A libpq URL (SQLAlchemy's ``postgresql+psycopg://`` accepted) with a connect timeout."""
    if url.startswith("postgresql+psycopg://"):
        url = "postgresql://" + url[len("postgresql+psycopg://") :]
    params = _conninfo.conninfo_to_dict(url)
    if "connect_timeout" in params:
        return url
    return _conninfo.make_conninfo(url, connect_timeout=_CONNECT_TIMEOUT_S)


class PostgresStorage(SQLStorage):
    """Store on a PostgreSQL server, shared by workers on many machines.

    Args:
        url: ``postgresql://user@host[:port]/database`` or a libpq keyword string
            (``host=... dbname=... user=...``); a schema other than ``public`` with
            ``?options=-csearch_path%3Dname``. Give the password through ``PGPASSWORD`` or
            ``~/.pgpass`` (libpq reads both) rather than in the URL.
        retry_s: how long an operation keeps reconnecting after the server went away.
        create: create the schema when the database has none (False: refuse, for read-only
            commands and joining workers).

    ``url`` is kept with the password hidden; error messages never show the password.

    Example:
        >>> store = PostgresStorage("postgresql://hpo@db.example.org/hpo")  # doctest: +SKIP
        >>> sweep = store.create_sweep("lr-search", {"space": {}}, mode="min")  # doctest: +SKIP
    """

    def __init__(self, url: str, *, retry_s: float = _RETRY_S, create: bool = True) -> None:
        from hpo_lightning.storage import redact_url

        self.url = redact_url(url)
        self.retry_s = float(retry_s)
        self._no_connection_yet()
        self._password: str | None = None
        try:
            self._dsn = _dsn(url)
            password = _conninfo.conninfo_to_dict(self._dsn).get("password")
            self._password = str(password) if password else None
            self._connection()
        except psycopg.Error as exc:
            raise InvalidStorageError(
                f"cannot connect to the PostgreSQL store {self.url}: {self._say(exc)}; check the "
                "URL (postgresql://user@host:port/database), that the server runs and accepts "
                "this user from this host (pg_hba.conf)"
            ) from None
        self._init_schema(create=create)

    # --- connection -------------------------------------------------------------------
    def _say(self, exc: BaseException) -> str:
        """The first line of a driver error, with the password (if any) masked."""
        lines = str(exc).strip().splitlines()
        text = redact(lines[0] if lines else type(exc).__name__)
        return text.replace(self._password, "***") if self._password else text

    def _connection(self) -> psycopg.Connection[Any]:
        conn = self._own_connection()
        if conn is not None and not conn.closed:
            return conn
        self._drop_connection()
        return self._adopt(psycopg.connect(self._dsn, autocommit=True))

    def _drop_connection(self) -> None:
        # (psycopg too skips the close on garbage collection in a forked child)
        self._forget_connection(_close_quietly)

    def _retrying(
        self, what: str, attempt: Callable[[], T], *, error: type[StorageError] = StorageError
    ) -> T:
        """Run ``attempt`` until it succeeds, reconnecting after transient errors."""
        deadline = time.monotonic() + self.retry_s
        delay, tries = 0.05, 0
        jitter = random.Random(os.getpid() ^ time.monotonic_ns())
        while True:
            try:
                return attempt()
            except _TRANSIENT as exc:
                with self._lock:
                    self._drop_connection()
                tries += 1
                if time.monotonic() + delay > deadline:
                    raise error(
                        f"{what} on the PostgreSQL store {self.url} failed {tries} times over "
                        f"{self.retry_s:.0f} s: {self._say(exc)}; check that the server is up "
                        "and reachable from this machine"
                    ) from None
                if tries == 1:
                    _log.warning(
                        "%s on %s failed (%s); reconnecting for up to %.0f s",
                        what,
                        self.url,
                        self._say(exc),
                        self.retry_s,
                    )
                time.sleep(delay * (0.5 + jitter.random()))
                delay = min(delay * 2, 2.0)
            except psycopg.Error as exc:
                raise error(
                    f"{what} on the PostgreSQL store {self.url} failed: {self._say(exc)}"
                ) from None

    def _begin(self) -> _Cursor:
        """A cursor inside a fresh ``BEGIN`` (the caller holds ``_lock``)."""
        raw = self._connection().cursor()
        raw.execute("BEGIN")
        return _Cursor(raw)

    def _rollback_quietly(self) -> None:
        conn = self._conn
        if conn is None or conn.closed or self._pid != os.getpid():
            return
        try:
            conn.execute("ROLLBACK")
        except psycopg.Error:
            self._drop_connection()

    # --- transactions -------------------------------------------------------------------
    def _transaction(self, body: Callable[[Any], T]) -> T:
        return self._retrying("a write", functools.partial(self._attempt_write, body))

    def _attempt_write(self, body: Callable[[Any], T]) -> T:
        with self._lock:
            cur = self._begin()
            try:
                out = body(cur)
                cur.execute("COMMIT")
            except BaseException:
                self._rollback_quietly()
                raise
            return out

    def _query(self, body: Callable[[Any], T]) -> T:
        def attempt() -> T:
            with self._lock, self._connection().cursor() as raw:
                return body(_Cursor(raw))

        return self._retrying("a read", attempt)

    @contextmanager
    def _write(self) -> Iterator[_Cursor]:
        with self._lock:
            cur = self._begin()
            try:
                yield cur
                cur.execute("COMMIT")
            except BaseException:
                self._rollback_quietly()
                raise

    @contextmanager
    def _read(self) -> Iterator[_Cursor]:
        with self._lock, self._connection().cursor() as raw:
            yield _Cursor(raw)

    def _init_schema(self, *, create: bool = True) -> None:
        self._retrying(
            "creating the schema",
            functools.partial(
                self._attempt_write,
                functools.partial(
                    ensure_schema, dialect="postgresql", where=self.url, create=create
                ),
            ),
            error=InvalidStorageError,
        )

    # --- claims -------------------------------------------------------------------------
    def _lock_sweep(self, cur: Any, sweep_id: int) -> int:
        """Lock the sweep's row; its change count (see _schema.py)."""
        cur.execute("SELECT changes FROM hpo_sweeps WHERE id = ? FOR UPDATE", (sweep_id,))
        row = cur.fetchone()
        if row is None:
            raise StorageError(
                f"no sweep with id {sweep_id} in {self.url}; look the sweep up by name first"
            )
        return int(row[0])

    @contextmanager
    def claim(self, sweep_id: int, *, since: int | None = None) -> Iterator[Claim]:
        with self._lock:
            run = _ClaimRun(self, sweep_id, since)
            trials = self._retrying("a claim", run.start)
            try:
                run.claim = self._new_claim(trials, since, run.add, run.reopen)
                yield run.claim
                self._retrying("a claim", run.commit)
            except BaseException:
                self._rollback_quietly()
                raise

    def claim_with(
        self, sweep_id: int, decide: Callable[[Claim], T], *, since: int | None = None
    ) -> T:
        deadline = time.monotonic() + self.retry_s
        while True:
            try:
                with self.claim(sweep_id, since=since) as c:
                    return decide(c)
            except ClaimInterruptedError:
                if time.monotonic() > deadline:
                    raise

    # --- lifecycle ---------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            self._drop_connection()

    def __repr__(self) -> str:
        return f"PostgresStorage({self.url!r})"


class _ClaimRun:
    """The transaction of one claim, able to carry on after its connection dropped.

    Trial ids come from a sequence, so only this claim ever holds the ids it inserted: after a
    reconnect, finding them means the commit went through; finding the sweep's change count
    where it was means no other worker changed its trials and the inserts can be replayed as
    they were.
    """

    def __init__(self, store: PostgresStorage, sweep_id: int, since: int | None) -> None:
        self.store, self.sweep_id, self.since = store, sweep_id, since
        self.claim: Claim | None = None
        self.changes_at_start = -1
        self.cur: _Cursor | None = None
        self.added: list[TrialRecord] = []

    def start(self) -> list[TrialRecord]:
        self.cur = self.store._begin()
        self.changes_at_start = self.store._lock_sweep(self.cur, self.sweep_id)
        return self.store._claim_start(self.cur, self.sweep_id, self.since, locked=True)

    def add(self, params: Mapping[str, Any], **kw: Any) -> TrialRecord:
        def attempt() -> TrialRecord:
            cur = self.cur if self.cur is not None else self._resume()
            if cur is None:  # cannot happen: nothing was committed before this insert
                raise StorageError(f"a claim on {self.store.url} committed before its insert")
            try:
                return self.store._insert_trial(cur, self.sweep_id, params, **kw)
            except _TRANSIENT:
                self.cur = None
                raise

        rec = self.store._retrying("a claim", attempt)
        self.added.append(rec)
        return rec

    def reopen(self, trial: TrialRecord, *, attrs: Mapping[str, Any]) -> TrialRecord | None:
        """Reopen a requeued trial inside this claim; None (a new trial instead) when the
        connection dropped meanwhile, as a replay could not tell whether it happened."""
        if self.cur is None:
            return None
        try:
            return self.store._reopen(self.cur, trial, attrs)
        except _TRANSIENT:
            self.cur = None
            return None

    def commit(self) -> None:
        cur = self.cur if self.cur is not None else self._resume()
        if cur is None:
            return  # the earlier COMMIT went through; only its acknowledgement was lost
        try:
            cur.execute("COMMIT")
        except _TRANSIENT:
            self.cur = None
            raise

    def _resume(self) -> _Cursor | None:
        """Reopen the claim on a new connection; None when it had already committed."""
        cur = self.store._begin()
        changes = self.store._lock_sweep(cur, self.sweep_id)
        mine = [t.id for t in self.added]
        if mine:
            cur.execute(
                f"SELECT COUNT(*) FROM hpo_trials WHERE id IN ({', '.join('?' * len(mine))})",
                tuple(mine),
            )
            if int(cur.fetchone()[0]) == len(mine):
                cur.execute("ROLLBACK")
                return None
        if changes != self.changes_at_start:  # another worker changed the sweep's trials
            cur.execute("ROLLBACK")
            raise ClaimInterruptedError(
                f"the connection to {self.store.url} dropped during a claim while another "
                "worker claimed; this claim was rolled back -- claim again (claim_with does)"
            )
        if self.claim is not None:
            # the replayed inserts get new change counts, and other writers may have counted
            # changes meanwhile: the next claim reads everything changed since this one began
            self.claim.changes = self.since
        for t in self.added:
            stamp = self.store._bump(cur, sweep_id=self.sweep_id)
            cur.execute(
                _REPLAY,
                (
                    t.id,
                    t.sweep_id,
                    t.number,
                    t.state.value,
                    dumps(dict(t.params)),
                    t.value,
                    t.tuner,
                    t.worker,
                    t.created_at,
                    t.finished_at,
                    t.heartbeat_at,
                    t.epochs,
                    t.message,
                    dumps(dict(t.attrs)),
                    stamp,
                ),
            )
        self.cur = cur
        return cur
