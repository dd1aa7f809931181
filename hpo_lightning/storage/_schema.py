"""The stores' schema: its DDL, its version and the migrations from every earlier version.

One module for both SQL dialects (SQLite and PostgreSQL): ``schema_sql`` takes the dialect's
auto-increment key and float type. A store creates the tables of a new database with
``schema_sql`` and brings an older one up to :data:`SCHEMA_VERSION` with :func:`migrate`, inside
one transaction. Adding a version: bump SCHEMA_VERSION, add its statements to MIGRATIONS (and
the new shape to ``schema_sql``), and add a case to the migration test.
"""

from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 4
TABLES = ("hpo_schema", "hpo_sweeps", "hpo_trials", "hpo_metrics", "hpo_checkpoints")


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
            attrs TEXT NOT NULL DEFAULT '{{}}', failure TEXT, objective_values TEXT,
            violation {real}, UNIQUE (sweep_id, number))""",
        "CREATE INDEX IF NOT EXISTS hpo_trials_by_state ON hpo_trials (sweep_id, state)",
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
}


def migrate(cur: Any, version: int, *, real: str = "REAL") -> None:
    """Bring a schema of ``version`` up to SCHEMA_VERSION (inside the caller's transaction);
    ``real`` is the dialect's float type."""
    for target in range(version + 1, SCHEMA_VERSION + 1):
        for stmt in MIGRATIONS[target]:
            cur.execute(stmt.replace("{real}", real))
        cur.execute("UPDATE hpo_schema SET version = ?", (target,))
