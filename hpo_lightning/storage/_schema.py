"""The stores' schema: its DDL, its version and the migrations from every earlier version.

One module for both SQL dialects (SQLite and PostgreSQL): ``schema_sql`` takes the dialect's
auto-increment key and float type. Both stores call :func:`ensure_schema` inside one write
transaction: it creates the tables of a new database, brings an older one up to
:data:`SCHEMA_VERSION` with the MIGRATIONS, and refuses a newer one. Adding a version: bump
SCHEMA_VERSION, add its statements to MIGRATIONS (and the new shape to ``schema_sql``; an index
on a new column goes last there, as indexes are created after the migrations), and add a case
to the migration test.

Change tracking (version 5): ``hpo_sweeps.changes`` counts the writes that changed a trial of
the sweep (insert, finish, reap, reopen, attrs) and each such write stamps the trial's
``changed`` with the new count, under the sweep's lock. A claim then reads only the trials with
``changed`` above the count it saw last (see ``Storage.claim``). Heartbeats and per-epoch
progress (``heartbeat_at``, ``epochs`` of a RUNNING trial) do not count: claims do not use them.
"""

from __future__ import annotations

from typing import Any, Literal

from hpo_lightning.exceptions import InvalidStorageError

Dialect = Literal["sqlite", "postgresql"]

SCHEMA_VERSION = 5
TABLES = ("hpo_schema", "hpo_sweeps", "hpo_trials", "hpo_metrics", "hpo_checkpoints")


# the few RUNNING trials of a sweep, which reaping reads before every claim (PostgreSQL's generic
# plan for "state = $2" scans the whole table; the reap query names the state literally)
_RUNNING_INDEX = (
    "CREATE INDEX IF NOT EXISTS hpo_trials_running ON hpo_trials (sweep_id) WHERE state = 'running'"
)


def schema_sql(pk: str, real: str) -> list[str]:
    """DDL of the schema, with the dialect's auto-increment key and float type."""
    return [
        "CREATE TABLE IF NOT EXISTS hpo_schema (version INTEGER NOT NULL)",
        f"""CREATE TABLE IF NOT EXISTS hpo_sweeps (
            id {pk}, name TEXT NOT NULL UNIQUE, definition TEXT NOT NULL, mode TEXT NOT NULL,
            created_at {real} NOT NULL, status TEXT NOT NULL DEFAULT 'running',
            changes INTEGER NOT NULL DEFAULT 0)""",
        f"""CREATE TABLE IF NOT EXISTS hpo_trials (
            id {pk}, sweep_id INTEGER NOT NULL REFERENCES hpo_sweeps(id) ON DELETE CASCADE,
            number INTEGER NOT NULL, state TEXT NOT NULL, params TEXT NOT NULL, value {real},
            tuner TEXT, worker TEXT, created_at {real} NOT NULL, finished_at {real},
            heartbeat_at {real}, epochs INTEGER NOT NULL DEFAULT 0, message TEXT,
            attrs TEXT NOT NULL DEFAULT '{{}}', failure TEXT, objective_values TEXT,
            violation {real}, changed INTEGER NOT NULL DEFAULT 0, UNIQUE (sweep_id, number))""",
        f"""CREATE TABLE IF NOT EXISTS hpo_metrics (
            trial_id INTEGER NOT NULL REFERENCES hpo_trials(id) ON DELETE CASCADE,
            epoch INTEGER NOT NULL, name TEXT NOT NULL, value {real},
            PRIMARY KEY (trial_id, epoch, name))""",
        # a trial's checkpoint files (paths or fsspec URLs), one per epoch written, with the
        # monitored value of that epoch (see hpo_lightning/sweep/_checkpoints.py)
        f"""CREATE TABLE IF NOT EXISTS hpo_checkpoints (
            trial_id INTEGER NOT NULL REFERENCES hpo_trials(id) ON DELETE CASCADE,
            epoch INTEGER NOT NULL, path TEXT NOT NULL, value {real},
            created_at {real} NOT NULL, PRIMARY KEY (trial_id, epoch))""",
        # indexes last: they are created after the migrations (a new column exists by then)
        "CREATE INDEX IF NOT EXISTS hpo_trials_by_state ON hpo_trials (sweep_id, state)",
        "CREATE INDEX IF NOT EXISTS hpo_trials_by_change ON hpo_trials (sweep_id, changed)",
        _RUNNING_INDEX,
    ]


# Version 1 had no failure column and kept requeued trials as FAILED with a message prefix.
MIGRATIONS: dict[int, list[str]] = {
    2: [
        "ALTER TABLE hpo_trials ADD COLUMN failure TEXT",
        "UPDATE hpo_trials SET state = 'lost' WHERE state = 'failed' AND message LIKE 'lost: %'",
        "UPDATE hpo_trials SET state = 'interrupted' "
        "WHERE state = 'failed' AND message LIKE 'interrupted: %'",
        "UPDATE hpo_trials SET failure = 'error' WHERE state = 'failed'",
    ],
    # Version 3 adds hpo_checkpoints, which schema_sql creates (CREATE TABLE IF NOT EXISTS)
    # before migrations run; nothing else changes.
    3: [],
    # Version 4: multi-objective sweeps keep every objective's value (a JSON list, in the
    # order of the sweep's `monitor`; `value` stays the first) and the summed constraint
    # violation (0: feasible; NULL: the sweep has no constraints).
    4: [
        "ALTER TABLE hpo_trials ADD COLUMN objective_values TEXT",
        "ALTER TABLE hpo_trials ADD COLUMN violation {real}",
    ],
    # Version 5: change tracking, so that a claim reads only what changed since the last one.
    # Existing trials keep 0: a worker's first claim reads every trial anyway.
    5: [
        "ALTER TABLE hpo_sweeps ADD COLUMN changes INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE hpo_trials ADD COLUMN changed INTEGER NOT NULL DEFAULT 0",
        "CREATE INDEX IF NOT EXISTS hpo_trials_by_change ON hpo_trials (sweep_id, changed)",
        _RUNNING_INDEX,
    ],
}


def migrate(cur: Any, version: int, *, real: str = "REAL") -> None:
    """Bring a schema of ``version`` up to SCHEMA_VERSION (inside the caller's transaction);
    ``real`` is the dialect's float type."""
    for target in range(version + 1, SCHEMA_VERSION + 1):
        for stmt in MIGRATIONS[target]:
            cur.execute(stmt.replace("{real}", real))
        cur.execute("UPDATE hpo_schema SET version = ?", (target,))


def newer_schema_error(where: str, version: int) -> InvalidStorageError:
    """The one-line refusal of a store written by a newer hpo_lightning (both stores)."""
    return InvalidStorageError(
        f"{where} was written by a newer hpo_lightning (schema {version}, this version reads "
        f"{SCHEMA_VERSION}); upgrade hpo_lightning"
    )


def schema_version(cur: Any, dialect: Dialect, where: str) -> int | None:
    """The stored schema version (None: no schema yet); refuses a newer one."""
    if dialect == "sqlite":
        cur.execute(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?", ("hpo_schema",)
        )
    else:
        cur.execute("SELECT to_regclass('hpo_schema') IS NOT NULL")
    if not cur.fetchone()[0]:
        return None
    cur.execute("SELECT MAX(version) FROM hpo_schema")
    version = cur.fetchone()[0]
    if version is not None and int(version) > SCHEMA_VERSION:
        raise newer_schema_error(where, int(version))
    return None if version is None else int(version)


_DDL_TYPES: dict[str, tuple[str, str]] = {
    "sqlite": ("INTEGER PRIMARY KEY AUTOINCREMENT", "REAL"),
    "postgresql": ("BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", "DOUBLE PRECISION"),
}
# PostgreSQL: eight processes opening a fresh database at once must not race on CREATE TABLE
# (SQLite's BEGIN IMMEDIATE already serialises them).
_PG_SCHEMA_LOCK = (
    "SELECT pg_advisory_xact_lock(hashtext('hpo_lightning.schema:' || current_schema()))"
)


def ensure_schema(cur: Any, dialect: Dialect, *, where: str, create: bool = True) -> None:
    """Create, migrate or accept the schema, inside the caller's write transaction.

    Raises InvalidStorageError for a schema newer than this version reads, and, with
    ``create=False``, for a database without one (``where`` names the store in messages).
    """
    version = schema_version(cur, dialect, where)
    if version == SCHEMA_VERSION:
        return  # the common case: no lock, no DDL
    if version is None and not create:
        raise InvalidStorageError(
            f"no hpo_lightning store in {where} (no hpo_schema table); check the location "
            "(and the PostgreSQL schema in its search_path), or run a sweep there first"
        )
    if dialect == "postgresql":
        cur.execute(_PG_SCHEMA_LOCK)
    ddl = schema_sql(*_DDL_TYPES[dialect])
    indexes = [s for s in ddl if s.startswith("CREATE INDEX")]
    for stmt in ddl:
        if stmt not in indexes:
            cur.execute(stmt)
    # read again after the DDL: another process may have created or migrated it meanwhile
    # (PostgreSQL sees its tables only after a statement that touches them, not the lock)
    version = schema_version(cur, dialect, where)
    if version is None:
        cur.execute("INSERT INTO hpo_schema (version) VALUES (?)", (SCHEMA_VERSION,))
    elif version < SCHEMA_VERSION:
        migrate(cur, version, real=_DDL_TYPES[dialect][1])
    for stmt in indexes:
        cur.execute(stmt)
