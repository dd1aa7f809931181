"""The SQLite store against the storage contract, plus what is SQLite's own."""

from __future__ import annotations

from pathlib import Path

import pytest
from contract.storage_contract import StorageContract

from hpo_lightning.storage import SQLiteStorage, open_storage


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
