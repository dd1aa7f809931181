"""The PostgreSQL store: the storage contract, plus reconnects, schema races and bad URLs.

Every test works in its own schema (or database) on the local server; see ``tests/_pg.py``.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import pytest
from _pg import admin, fresh_database, fresh_schema, terminate

from hpo_lightning._trial import TrialState
from hpo_lightning.exceptions import InvalidStorageError, StorageError
from hpo_lightning.storage import open_storage
from hpo_lightning.storage._schema import SCHEMA_VERSION
from hpo_lightning.testing import StorageContract
from hpo_lightning.testing._storage_contract import DEFINITION, _claim_until, run_workers

if TYPE_CHECKING:
    from hpo_lightning.storage._postgres import PostgresStorage

pytestmark = pytest.mark.postgres


def _app(url: str) -> str:
    return parse_qs(urlsplit(url).query)["application_name"][0]


def _schema(url: str) -> str:
    return _app(url)  # fresh_schema names the application after the schema


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_schema() as url:
        yield url


class TestPostgresStorage(StorageContract):
    @pytest.fixture
    def location(self, pg_url: str) -> str:
        return pg_url


def _open(url: str, **kw: float) -> PostgresStorage:
    """The store class itself (psycopg imported only once the server check passed)."""
    from hpo_lightning.storage._postgres import PostgresStorage

    return PostgresStorage(url, **kw)


# --- schema -----------------------------------------------------------------------------
def _open_and_close(url: str, out: object) -> None:
    store = open_storage(url)
    store.close()
    out.put(type(store).__name__)  # type: ignore[attr-defined]


def test_eight_processes_create_the_schema_at_once(pg_url: str) -> None:
    assert run_workers(_open_and_close, (pg_url,), 8) == ["PostgresStorage"] * 8
    schema = _schema(pg_url)
    assert admin(f'SELECT version FROM "{schema}".hpo_schema') == [(SCHEMA_VERSION,)]
    types = dict(
        admin(
            "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s",
            (schema,),
        )
    )
    assert types["hpo_trials.id"] == "bigint"
    assert types["hpo_trials.value"] == types["hpo_metrics.value"] == "double precision"


def test_a_newer_schema_is_refused(pg_url: str) -> None:
    open_storage(pg_url).close()
    admin(f'UPDATE "{_schema(pg_url)}".hpo_schema SET version = 99')
    with pytest.raises(InvalidStorageError, match=r"newer hpo_lightning \(schema 99"):
        open_storage(pg_url)


def test_non_finite_values_are_sql_nulls(pg_url: str) -> None:
    store = open_storage(pg_url)
    sweep = store.create_sweep("s", DEFINITION, mode="min")
    with store.claim(sweep.id) as c:
        t = c.add_trial({})
    store.log_metrics(t.id, 0, {"loss": float("nan")})
    store.finish_trial(t.id, TrialState.FAILED, float("nan"))
    schema = _schema(pg_url)
    assert admin(f'SELECT value FROM "{schema}".hpo_metrics') == [(None,)]
    assert admin(f'SELECT value FROM "{schema}".hpo_trials') == [(None,)]
    store.close()


# --- coordination ------------------------------------------------------------------------
def test_eight_workers_share_one_sweep_fairly(pg_url: str) -> None:
    store = open_storage(pg_url)
    store.create_sweep("busy", DEFINITION, mode="min")
    start_at = time.time() + 1.0
    per_worker = run_workers(_claim_until, (pg_url, "busy", 80, start_at), 8)
    numbers = sorted(n for w in per_worker for n, _ in w)
    assert numbers == list(range(80))
    assert sum(bool(w) for w in per_worker) >= 4, "row locks should let most workers in"
    assert store.get_trials(store.get_sweep("busy").id, states=[TrialState.RUNNING]) == []
    store.close()


# --- lost connections --------------------------------------------------------------------
def test_operations_reconnect_after_the_backend_is_killed(pg_url: str) -> None:
    store = _open(pg_url)
    sweep = store.create_sweep("s", DEFINITION, mode="min")
    with store.claim(sweep.id) as c:
        t = c.add_trial({"x": 1})
    assert terminate(_app(pg_url)) == 1
    assert [x.id for x in store.get_trials(sweep.id)] == [t.id]  # a read reconnects
    assert terminate(_app(pg_url)) == 1
    store.log_metrics(t.id, 0, {"loss": 0.5})  # a write reconnects and runs whole
    assert terminate(_app(pg_url)) == 1
    assert store.finish_trial(t.id, TrialState.COMPLETE, 0.5) is True
    assert store.get_metrics(t.id) == {0: {"loss": 0.5}}
    store.close()


def test_a_claim_replays_its_inserts_after_the_backend_is_killed(pg_url: str) -> None:
    store = _open(pg_url)
    sweep = store.create_sweep("s", DEFINITION, mode="min")
    with store.claim(sweep.id) as c:
        assert terminate(_app(pg_url)) == 1  # killed before the insert
        first = c.add_trial({"i": 0})
        second = c.add_trial({"i": 1})
        assert terminate(_app(pg_url)) == 1  # killed before the commit
    stored = store.get_trials(sweep.id)
    assert stored == [first, second]  # same ids, numbers and timestamps as handed out
    store.close()


def test_a_claim_interrupted_while_another_worker_claims(pg_url: str) -> None:
    from hpo_lightning.storage._postgres import ClaimInterruptedError

    store, other = _open(pg_url), open_storage(pg_url)
    sweep = store.create_sweep("s", DEFINITION, mode="min")
    with pytest.raises(ClaimInterruptedError, match="claim again"), store.claim(sweep.id) as c:
        terminate(_app(pg_url))  # also ends `other`'s idle connection: it reconnects
        with other.claim(sweep.id) as oc:
            oc.add_trial({"by": "other"})
        c.add_trial({"by": "store"})  # decided on a stale view: must not be written
    assert [dict(t.params) for t in store.get_trials(sweep.id)] == [{"by": "other"}]

    calls: list[int] = []

    def decide(claim):  # type: ignore[no-untyped-def]
        calls.append(len(claim.trials))
        if len(calls) == 1:
            terminate(_app(pg_url))
            with other.claim(sweep.id) as oc:
                oc.add_trial({"by": "other"})
        return claim.add_trial({"by": "store", "seen": len(claim.trials)})

    rec = store.claim_with(sweep.id, decide)
    assert calls == [1, 2]
    assert (rec.number, dict(rec.params)) == (2, {"by": "store", "seen": 2})
    store.close()
    other.close()


def test_an_outage_is_waited_out_then_reported() -> None:
    with fresh_database() as (url, name):
        store = _open(url, retry_s=1.0)
        sweep = store.create_sweep("s", DEFINITION, mode="min")
        admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        terminate(_app(url))
        started = time.monotonic()
        with pytest.raises(StorageError, match=r"failed .* times over 1 s.*server is up"):
            store.get_trials(sweep.id)
        assert time.monotonic() - started < 5
        # the server comes back while the store is retrying: the operation succeeds
        timer = threading.Timer(0.5, admin, (f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true',))
        timer.start()
        store.retry_s = 20.0
        with store.claim(sweep.id) as c:
            c.add_trial({})
        timer.join()
        assert len(store.get_trials(sweep.id)) == 1
        store.close()


# --- bad locations -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("postgresql://bob:s3cr3t@127.0.0.1:1/test", "cannot connect"),
        ("postgresql://bob:s3cr3t@127.0.0.1:notaport/test", "cannot connect"),
        ("postgresql://postgres:s3cr3t@127.0.0.1/no_such_db_hpo", "no_such_db_hpo"),
    ],
)
def test_a_bad_url_names_the_problem_without_the_password(url: str, problem: str) -> None:
    pytest.importorskip("psycopg")
    with pytest.raises(InvalidStorageError) as err:
        open_storage(url)
    msg = str(err.value)
    assert problem in msg and "s3cr3t" not in msg and "***" in msg
    assert "\n" not in msg


def test_without_psycopg_the_error_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from hpo_lightning.exceptions import MissingDependencyError\n"
        "from hpo_lightning.storage import open_storage\n"
        "try:\n"
        "    open_storage('postgresql://u@127.0.0.1/db')\n"
        "except MissingDependencyError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'hpo_lightning[postgres]'" in out.stdout
