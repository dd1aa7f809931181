"""Stores: the single source of truth for sweeps, trials and metrics (SQLite, PostgreSQL)."""

from __future__ import annotations

import os
import re

from hpo_lightning._secrets import is_keyword_dsn, redact
from hpo_lightning.exceptions import InvalidStorageError
from hpo_lightning.storage._base import (
    CheckpointRecord,
    Claim,
    Storage,
    SweepRecord,
    TrialRecord,
    worker_id,
)
from hpo_lightning.storage._served import TOKEN_ENV, ServedStorage, StoreServer
from hpo_lightning.storage._sqlite import SQLiteStorage

__all__ = [
    "TOKEN_ENV",
    "CheckpointRecord",
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

_SCHEMELESS_URL = re.compile(r"^[^/\\\s:@]+:[^/\s]*@[^/\s]")


def redact_url(url: str) -> str:
    """The URL (or connection string, or text quoting one) with every password as ``***``.

    Covers ``user:password@``, ``?password=`` (and tokens, keys) and libpq keyword strings
    (``host=db password=...``); safe for logs, messages and anything stored or exported.
    """
    return redact(url)


def open_storage(location: str | os.PathLike[str] | Storage, *, create: bool = True) -> Storage:
    """Open a store from a path or URL.

    Accepts a file path or ``sqlite:///path.db`` (SQLite), ``:memory:``, or PostgreSQL as
    ``postgresql://user@host:port/db`` or a libpq keyword string ``host=... dbname=...``
    (needs the ``[postgres]`` extra; give the password through ``PGPASSWORD`` or
    ``~/.pgpass`` rather than in the URL), or ``hpo+http://host:port/``: a store served by a
    sweep's process (:class:`StoreServer`), with its token in ``$HPO_LIGHTNING_STORE_TOKEN``.
    ``create=False`` opens only an existing store and never creates a file or a schema (for
    read-only commands and joining workers).
    """
    if isinstance(location, Storage):
        return location
    raw = os.fspath(location)
    if raw.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")) or (
        is_keyword_dsn(raw)
    ):
        from hpo_lightning.storage._postgres import PostgresStorage

        return PostgresStorage(raw, create=create)
    if raw.startswith("hpo+http://"):
        return ServedStorage(raw)
    if raw.startswith("hpo+ray://"):
        from hpo_lightning.storage._served._ray import RayStorage

        return RayStorage(raw)
    if _SCHEMELESS_URL.match(raw):
        raise InvalidStorageError(
            "the store location looks like a database URL without its scheme (user:...@host); "
            "write postgresql://user@host:port/database, or give a file path without ':' and '@'"
        )
    if "://" in raw and not raw.startswith("sqlite:///"):
        scheme = raw.split("://", 1)[0]
        raise InvalidStorageError(
            f"unsupported store URL scheme '{scheme}://' in {redact_url(raw)}; use a file path, "
            "sqlite:///path.db, postgresql://user@host:port/db or hpo+http://host:port/"
        )
    return SQLiteStorage(raw, create=create)
