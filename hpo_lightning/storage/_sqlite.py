"""The SQLite store: WAL journal, ``BEGIN IMMEDIATE`` writes, a long busy timeout.

Several processes may write one file: each write takes SQLite's write lock up front
(``BEGIN IMMEDIATE``), so a transaction never has to upgrade a read lock and fail with
"database is locked"; waiting writers sleep in SQLite's busy handler. A connection is opened
per process (a forked worker reconnects) and guarded by a lock for the heartbeat thread.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hpo_lightning.exceptions import InvalidStorageError, StorageError
from hpo_lightning.storage._schema import TABLES, ensure_schema, schema_version
from hpo_lightning.storage._sql import SQLStorage

_BUSY_TIMEOUT_S = 120.0
_HEADER = b"SQLite format 3\x00"


def _check_file(path: Path, *, create: bool) -> None:
    parent = path.parent
    if not parent.is_dir():
        raise InvalidStorageError(
            f"cannot open the store {path}: directory {parent} does not exist; "
            "create it first or choose another path"
        )
    if not path.exists():
        if not create:
            raise InvalidStorageError(
                f"no store at {path}: the file does not exist; check the path or run a sweep first"
            )
        return
    if path.is_dir():
        raise InvalidStorageError(f"the store path {path} is a directory; give a file path")
    if path.stat().st_size == 0:
        if not create:  # a read-only command must not turn an empty file into a store
            raise InvalidStorageError(
                f"{path} is an empty file, not an hpo_lightning store; check the path or run a "
                "sweep first"
            )
        return
    with open(path, "rb") as fh:
        header = fh.read(16)
    if header != _HEADER:
        raise InvalidStorageError(
            f"{path} is not a SQLite database (it may be corrupt or another kind of file); "
            "give the path of an hpo_lightning store or of a new file"
        )


class SQLiteStorage(SQLStorage):
    """Store in one SQLite file (or ``":memory:"`` for a single process).

    Args:
        path: file path, ``sqlite:///relative.db`` / ``sqlite:////abs.db`` URL, or ``":memory:"``.
        create: create the file when it does not exist (False for read-only commands).
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        raw = os.fspath(path)
        if raw.startswith("sqlite:///"):
            raw = raw[len("sqlite:///") :]
        self.memory = raw == ":memory:"
        self.path = Path(raw) if not self.memory else Path(":memory:")
        self.url = raw if self.memory else f"sqlite:///{self.path}"
        self._create = create
        if not self.memory:
            _check_file(self.path, create=create)
        self._no_connection_yet()
        self._connect(init=True)

    # --- connection --------------------------------------------------------------
    def _connect(self, *, init: bool = False) -> sqlite3.Connection:
        own = self._own_connection()
        if own is not None:
            return own
        try:
            conn = sqlite3.connect(
                str(self.path),
                timeout=_BUSY_TIMEOUT_S,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT_S * 1000)}")
            if init:
                self._check_foreign(conn)
            if not self.memory:
                self._retry(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone())
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.DatabaseError as exc:
            raise InvalidStorageError(
                f"cannot use {self.path} as a store: {exc}; give the path of an hpo_lightning "
                "store or of a new file"
            ) from exc
        self._adopt(conn)
        if init:
            self._init_schema()
        return conn

    def _check_foreign(self, conn: sqlite3.Connection) -> None:
        names = {
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        }
        if not names & set(TABLES) and not self._create and not self.memory:
            raise InvalidStorageError(
                f"{self.path} holds no hpo_lightning store (no hpo_ tables); check the path or "
                "run a sweep first"
            )
        if names and not names & set(TABLES):
            shown = ", ".join(sorted(names)[:5])
            raise InvalidStorageError(
                f"{self.path} is a SQLite database of another application (tables: {shown}); "
                "hpo_lightning will not write into it -- give a new file path"
            )
        if "hpo_schema" in names:  # refuse a newer schema before touching the file (WAL)
            schema_version(conn.cursor(), "sqlite", str(self.path))

    @staticmethod
    def _retry(fn: object) -> object:
        deadline = time.monotonic() + _BUSY_TIMEOUT_S
        delay = 0.005
        while True:
            try:
                return fn()  # type: ignore[operator]
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() > deadline:
                    raise StorageError(
                        f"the store stayed locked for {_BUSY_TIMEOUT_S:.0f} s: {exc}"
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 2, 0.2)

    def _init_schema(self) -> None:
        with self._write() as cur:
            ensure_schema(cur, "sqlite", where=str(self.path))

    # --- pickling (DDP spawn sends the store to worker processes) ----------------------
    def __getstate__(self) -> dict[str, object]:
        if self.memory:
            raise InvalidStorageError(
                "an in-memory store (':memory:') cannot be sent to another process (e.g. "
                "Trainer(strategy='ddp_spawn')); give the store a file path"
            )
        return super().__getstate__()

    # --- transactions ------------------------------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            conn = self._connect()
            cur = conn.cursor()
            self._retry(lambda: cur.execute("BEGIN IMMEDIATE"))
            try:
                yield cur
            except sqlite3.DatabaseError as exc:
                conn.rollback()
                if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                    raise
                # one error contract for every store: StorageError, never sqlite3's own
                raise StorageError(f"{self.url}: the write was refused: {exc}") from exc
            except BaseException:
                conn.rollback()
                raise
            else:
                self._retry(lambda: conn.commit())
            finally:
                cur.close()

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            cur = self._connect().cursor()
            try:
                yield cur
            finally:
                cur.close()

    def close(self) -> None:
        with self._lock:
            self._forget_connection(lambda conn: conn.close())

    def __repr__(self) -> str:
        return f"SQLiteStorage({str(self.path)!r})"
