"""The connection lifecycle that the SQLite and PostgreSQL stores share.

One connection per process, opened lazily and guarded by ``_lock`` (the heartbeat thread shares
it); a forked child opens its own and never touches (nor closes) its parent's; pickling (DDP
spawn sends the store to worker processes) leaves the connection and the lock behind.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any


class PerProcessConnection:
    """Mixin: this process's connection (``_conn``), its lock and pickling."""

    _lock: threading.RLock
    _conn: Any = None
    _pid: int = -1

    def _no_connection_yet(self) -> None:
        self._lock = threading.RLock()
        self._conn, self._pid = None, -1

    def _own_connection(self) -> Any:
        """This process's connection, or None (never the parent's after a fork)."""
        return self._conn if self._conn is not None and self._pid == os.getpid() else None

    def _adopt(self, conn: Any) -> Any:
        self._conn, self._pid = conn, os.getpid()
        return conn

    def _forget_connection(self, close: Callable[[Any], None]) -> None:
        """Close this process's connection with ``close``; only forget a parent's (closing it
        would end the parent's session)."""
        conn, self._conn = self._own_connection(), None
        if conn is not None:
            close(conn)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_conn=None, _pid=-1, _lock=None)  # a connection and a lock stay behind
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()
