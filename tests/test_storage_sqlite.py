"""The SQLite store against the storage contract, plus what is SQLite's own."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpo_lightning.storage import SQLiteStorage, open_storage
from hpo_lightning.storage._schema import SCHEMA_VERSION
from hpo_lightning.testing import StorageContract


class TestSQLiteStorage(StorageContract):
    @pytest.fixture
    def location(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'store.db'}"


class TestSQLitePlainPath(StorageContract):
    """A bare file path reaches the same store as a sqlite:/// URL."""

    @pytest.fixture
    def location(self, tmp_path: Path) -> str:
        return str(tmp_path / "plain.db")

    def test_url_and_path_open_the_same_file(self, location: str) -> None:
        open_storage(location).create_sweep("s", {}, mode="min")
        store = open_storage(f"sqlite:///{location}")
        assert isinstance(store, SQLiteStorage)
        assert [s.name for s in store.list_sweeps()] == ["s"]
        store.close()


_V1_TRIALS = """CREATE TABLE hpo_trials (
    id INTEGER PRIMARY KEY AUTOINCREMENT, sweep_id INTEGER NOT NULL, number INTEGER NOT NULL,
    state TEXT NOT NULL, params TEXT NOT NULL, value REAL, tuner TEXT, worker TEXT,
    created_at REAL NOT NULL, finished_at REAL, heartbeat_at REAL,
    epochs INTEGER NOT NULL DEFAULT 0, message TEXT, attrs TEXT NOT NULL DEFAULT '{}',
    UNIQUE (sweep_id, number))"""


def test_a_version_1_store_is_migrated_to_typed_states(tmp_path: Path) -> None:
    """Version 1 kept lost and interrupted trials as FAILED with a message prefix."""
    import sqlite3

    from hpo_lightning._trial import FailureKind, TrialState

    path = tmp_path / "v1.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE hpo_schema (version INTEGER NOT NULL); INSERT INTO hpo_schema VALUES (1);"
        "CREATE TABLE hpo_sweeps (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL "
        "UNIQUE, definition TEXT NOT NULL, mode TEXT NOT NULL, created_at REAL NOT NULL, "
        "status TEXT NOT NULL DEFAULT 'running');"
        f"{_V1_TRIALS};"
        "INSERT INTO hpo_sweeps (name, definition, mode, created_at) VALUES ('s', '{}', 'min', 0);"
    )
    for number, state, message in [
        (0, "complete", None),
        (1, "failed", "lost: its worker h:1 is no longer running"),
        (2, "failed", "interrupted: stopped by Ctrl-C"),
        (3, "failed", "ValueError: boom"),
    ]:
        conn.execute(
            "INSERT INTO hpo_trials (sweep_id, number, state, params, created_at, message) "
            "VALUES (1, ?, ?, '{}', 0, ?)",
            (number, state, message),
        )
    conn.commit()
    conn.close()
    store = open_storage(path, create=False)
    trials = store.get_trials(store.get_sweep("s").id)
    assert [t.state for t in trials] == [
        TrialState.COMPLETE,
        TrialState.LOST,
        TrialState.INTERRUPTED,
        TrialState.FAILED,
    ]
    assert trials[3].failure is FailureKind.ERROR and trials[1].failure is None
    store.close()
    (version,) = sqlite3.connect(path).execute("SELECT MAX(version) FROM hpo_schema").fetchone()
    assert version == SCHEMA_VERSION  # through 2 (typed states), 3 (hpo_checkpoints) and on
