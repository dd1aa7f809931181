"""The served store (``hpo+http://``) against the storage contract, plus its own failures."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpo_lightning.exceptions import InvalidStorageError, StorageError
from hpo_lightning.storage import TOKEN_ENV, ServedStorage, StoreServer, open_storage
from hpo_lightning.testing import StorageContract
from hpo_lightning.testing._storage_contract import DEFINITION


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StoreServer]:
    backing = open_storage(tmp_path / "served.db")
    with StoreServer(backing, lease_s=2.0) as srv:
        monkeypatch.setenv(TOKEN_ENV, srv.token)
        yield srv
    backing.close()


class TestServedStorage(StorageContract):
    @pytest.fixture
    def location(self, server: StoreServer) -> str:
        return server.url


def test_a_wrong_token_is_refused(server: StoreServer) -> None:
    with pytest.raises(InvalidStorageError, match=f"refused the token; set \\${TOKEN_ENV}"):
        ServedStorage(server.url, token="x" * 32)


def test_without_a_token_the_error_names_the_variable(
    server: StoreServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TOKEN_ENV)
    with pytest.raises(InvalidStorageError, match=f"needs its token: set \\${TOKEN_ENV}"):
        open_storage(server.url)


@pytest.mark.parametrize(
    "url", ["hpo+http://127.0.0.1/", "hpo+http://u:pw@127.0.0.1:9/", "hpo+http://h:9/db"]
)
def test_bad_urls_are_refused_in_one_line(url: str) -> None:
    with pytest.raises(InvalidStorageError, match="use hpo\\+http://HOST:PORT/") as err:
        ServedStorage(url, token="x" * 32)
    assert "pw" not in str(err.value)


def test_an_unreachable_server_is_reported_after_the_retries() -> None:
    started = time.monotonic()
    with pytest.raises(InvalidStorageError, match="cannot reach the store server"):
        ServedStorage("hpo+http://127.0.0.1:9/", token="x" * 32, connect_s=0.5)
    assert time.monotonic() - started < 5


def test_a_dead_claimers_lease_runs_out_and_is_rolled_back(server: StoreServer) -> None:
    store = open_storage(server.url)
    assert isinstance(store, ServedStorage)
    sweep = store.create_sweep("s", DEFINITION, mode="min")
    lease = store._call("claim_begin", {"sweep_id": sweep.id, "lease": "a" * 32, "worker": "h:1"})
    assert lease["trials"] == []
    store._call("claim_add", {"lease": "a" * 32, "seq": 0, "params": {"dead": 1}})
    # the claimer goes silent: another claim waits for the lease (2 s) and then gets in
    started = time.monotonic()
    with store.claim(sweep.id) as c:
        assert c.trials == []  # the silent claim's insert was rolled back
        c.add_trial({"alive": 1})
    assert 1.5 < time.monotonic() - started < 10
    assert [dict(t.params) for t in store.get_trials(sweep.id)] == [{"alive": 1}]
    with pytest.raises(StorageError, match=r"lease .* ended \(expired\)"):
        store._call("claim_commit", {"lease": "a" * 32})
    store.close()


def test_an_ipv6_server_gets_a_bracketed_url(tmp_path: Path) -> None:
    backing = open_storage(tmp_path / "v6.db")
    try:
        server = StoreServer(backing, host="::1")
    except Exception as exc:  # no IPv6 on this machine
        pytest.skip(f"no IPv6 loopback here: {exc}")
    with server:
        assert server.url == f"hpo+http://[::1]:{server.port}/"
        store = ServedStorage(server.url, token=server.token)
        assert store.url == server.url
        assert store.list_sweeps() == []
    backing.close()
