"""PostgreSQL for tests: a throw-away schema (or database) per test on the local server.

The server comes from ``HPO_TEST_PG_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``);
tests that need it are skipped, with the reason, when it cannot be reached.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import pytest

ADMIN_URL = os.environ.get("HPO_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
_reachable: str | None = None


def require_server() -> None:
    """Skip the calling test when psycopg is missing or the server is unreachable."""
    global _reachable
    psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed ([postgres] extra)")
    if _reachable is None:
        try:
            with psycopg.connect(ADMIN_URL, connect_timeout=3):
                _reachable = ""
        except psycopg.Error as exc:
            _reachable = str(exc).splitlines()[0]
    if _reachable:
        pytest.skip(
            f"PostgreSQL is not reachable at {ADMIN_URL} ({_reachable}); start it or point "
            "HPO_TEST_PG_URL at a server where this user may create schemas and databases"
        )


def admin(sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Run one statement on the admin connection (autocommit) and return its rows."""
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else []


def with_params(url: str, **params: str) -> str:
    sep = "&" if "?" in url else "?"
    return url + sep + "&".join(f"{k}={quote(v)}" for k, v in params.items())


@contextmanager
def fresh_schema(prefix: str = "hpo_t") -> Iterator[str]:
    """URL of the test database with ``search_path`` on a new schema, dropped afterwards."""
    require_server()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin(f'CREATE SCHEMA "{name}"')
    try:
        yield with_params(ADMIN_URL, options=f"-csearch_path={name}", application_name=name)
    finally:
        admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (name,),
        )
        admin(f'DROP SCHEMA "{name}" CASCADE')


@contextmanager
def fresh_database(prefix: str = "hpo_t") -> Iterator[tuple[str, str]]:
    """(URL, name) of a new database, dropped afterwards (slower than a schema)."""
    require_server()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin(f'CREATE DATABASE "{name}"')
    base, _, _ = ADMIN_URL.rpartition("/")
    try:
        yield with_params(f"{base}/{name}", application_name=name), name
    finally:
        admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        admin(f'DROP DATABASE "{name}" WITH (FORCE)')


def terminate(application_name: str) -> int:
    """Kill every server backend of that application name (as a crash or restart would)."""
    rows = admin(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = %s AND pid <> pg_backend_pid()",
        (application_name,),
    )
    return sum(bool(r[0]) for r in rows)
