"""Stores: the single source of truth for sweeps, trials and metrics (SQLite, PostgreSQL)."""

from __future__ import annotations

import os

from hpo_lightning.exceptions import InvalidStorageError
from hpo_lightning.storage._base import Claim, Storage, SweepRecord, TrialRecord, worker_id
from hpo_lightning.storage._served import TOKEN_ENV, ServedStorage, StoreServer
from hpo_lightning.storage._sqlite import SQLiteStorage

__all__ = [
    "TOKEN_ENV",
    "Claim",
    "SQLiteStorage",
    "ServedStorage",
    "Storage",
    "StoreServer",
    "SweepRecord",
    "TrialRecord",
    "open_storage",
    "redact_url",
    "worker_id",
]


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (safe for logs and messages)."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    if ":" in creds:
        creds = creds.split(":", 1)[0] + ":***"
    return f"{scheme}://{creds}@{host}"


def open_storage(location: str | os.PathLike[str] | Storage, *, create: bool = True) -> Storage:
    """Open a store from a path or URL.

    Accepts a file path or ``sqlite:///path.db`` (SQLite), ``:memory:``, or
    ``postgresql://user@host:port/db`` (needs the ``[postgres]`` extra), or
    ``hpo+http://host:port/``: a store served by a sweep's process (:class:`StoreServer`), with
    its token in ``$HPO_LIGHTNING_STORE_TOKEN``.
    ``create=False`` refuses to create a new SQLite file (for read-only commands).
    """
    if isinstance(location, Storage):
        return location
    raw = os.fspath(location)
    if raw.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        from hpo_lightning.storage._postgres import PostgresStorage

        return PostgresStorage(raw)
    if raw.startswith("hpo+http://"):
        return ServedStorage(raw)
    if raw.startswith("hpo+ray://"):
        from hpo_lightning.storage._served._ray import RayStorage

        return RayStorage(raw)
    if "://" in raw and not raw.startswith("sqlite:///"):
        scheme = raw.split("://", 1)[0]
        raise InvalidStorageError(
            f"unsupported store URL scheme '{scheme}://' in {redact_url(raw)}; use a file path, "
            "sqlite:///path.db, postgresql://user@host:port/db or hpo+http://host:port/"
        )
    return SQLiteStorage(raw, create=create)
