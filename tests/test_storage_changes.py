"""Change tracking (claims that read only what changed), the shared schema check and one error
contract, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _pg import admin, fresh_schema

from hpo_lightning._trial import TrialState
from hpo_lightning.exceptions import InvalidStorageError, StorageError
from hpo_lightning.storage import SQLiteStorage, Storage, TrialRecord, open_storage
from hpo_lightning.storage._schema import SCHEMA_VERSION
from hpo_lightning.sweep import SweepConfig, Worker
from hpo_lightning.sweep._view import SweepView


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "store.db")
    else:
        with fresh_schema() as url:
            yield url


def _claim(store: Storage, sweep_id: int, since: int | None, add: int = 0) -> tuple[list, int]:
    """Numbers of the trials a claim read, and its change count after adding ``add``."""
    with store.claim(sweep_id, since=since) as c:
        numbers = [t.number for t in c.trials]
        for _ in range(add):
            c.add_trial({"x": 1})
    assert c.changes is not None
    return numbers, c.changes


def test_a_claim_reads_only_the_trials_changed_since_the_last(location: str) -> None:
    store = open_storage(location)
    sweep = store.create_sweep("s", {}, mode="min")
    seen, since = _claim(store, sweep.id, None, add=3)
    assert seen == []
    assert _claim(store, sweep.id, since)[0] == []  # nothing changed
    trials = store.get_trials(sweep.id)
    store.heartbeat([t.id for t in trials])  # progress of running trials is no change
    store.log_metrics(trials[0].id, 0, {"loss": 1.0})
    assert _claim(store, sweep.id, since)[0] == []
    store.finish_trial(trials[1].id, TrialState.COMPLETE, 0.5, epochs=1)
    store.set_trial_attrs(trials[2].id, {"lineage": []})
    seen, since2 = _claim(store, sweep.id, since)
    assert seen == [1, 2] and since2 > since
    # another worker's reaping is seen too: the workers of trials 0 and 2 are gone
    store.fail_stale_trials(sweep.id, older_than_s=60, is_alive=lambda w: False)
    seen, since3 = _claim(store, sweep.id, since2)
    assert seen == [0, 2]
    assert store.get_trials(sweep.id)[0].state is TrialState.LOST
    assert _claim(store, sweep.id, since3)[0] == []
    assert _claim(store, sweep.id, None)[0] == [0, 1, 2]  # without since: every trial
    store.close()


def test_a_rolled_back_claim_leaves_the_count_where_it_was(location: str) -> None:
    store = open_storage(location)
    sweep = store.create_sweep("s", {}, mode="min")
    _, since = _claim(store, sweep.id, None, add=1)
    with pytest.raises(RuntimeError), store.claim(sweep.id, since=since) as c:
        c.add_trial({"x": 2})
        raise RuntimeError("decide failed")
    seen, after = _claim(store, sweep.id, since, add=1)
    assert seen == [] and after > since
    assert [t.number for t in store.get_trials(sweep.id)] == [0, 1]
    store.close()


# --- the claim's reads stay index walks at any sweep size ---------------------------------
def _numbered(sql: str) -> str:
    """The shared SQL's ``?`` placeholders as PostgreSQL's ``$1, $2, ...`` (for PREPARE)."""
    parts = sql.split("?")
    return "".join(f"{p}${i}" for i, p in enumerate(parts[:-1], 1)) + parts[-1]


def _rows_examined(plan: dict[str, Any]) -> int:
    """Rows every node of an EXPLAIN ANALYZE plan produced or filtered out."""
    own = plan["Actual Rows"] + plan.get("Rows Removed by Filter", 0)
    return int(own) + sum(_rows_examined(p) for p in plan.get("Plans", []))


def test_claim_reads_walk_few_rows_under_a_plan_made_at_sweep_start() -> None:
    """PostgreSQL keeps a prepared statement's generic plan, which it may make while the sweep
    holds a few trials; at 2,000 trials (each with the dead version its finish leaves) the
    claim's two reads must still examine a few rows: they scanned the whole sweep (issue 17)."""
    from hpo_lightning.storage._sql import CHANGED_SINCE, LAST_NUMBER

    with fresh_schema() as url:
        store = open_storage(url)
        sweep = store.create_sweep("s", {}, mode="min")
        _claim(store, sweep.id, None, add=3)
        store.close()
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SET plan_cache_mode = force_generic_plan")
            conn.execute(f"PREPARE last AS {_numbered(LAST_NUMBER)}")
            conn.execute(f"PREPARE changed AS {_numbered(CHANGED_SINCE)}")
            runs = {"last": f"last({sweep.id})", "changed": f"changed({sweep.id}, 4000)"}
            for call in runs.values():  # the generic plans are made now, on 3 trials
                conn.execute(f"EXECUTE {call}")
            conn.execute(
                "INSERT INTO hpo_trials (sweep_id, number, state, params, created_at, changed) "
                "SELECT %s, g, 'running', '{}', 0, g FROM generate_series(3, 2002) g",
                (sweep.id,),
            )
            conn.execute(
                "UPDATE hpo_trials SET state = 'complete', changed = changed + 2000 "
                "WHERE number >= 3"
            )
            assert conn.execute(f"EXECUTE {runs['last']}").fetchall() == [(2002,)]
            changed = conn.execute(f"EXECUTE {runs['changed']}").fetchall()
            assert [r[2] for r in changed] == [2001, 2002]  # numbers, changed 4001 and 4002
            for call in runs.values():
                (plan,) = conn.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE {call}").fetchone()
                assert _rows_examined(plan[0]["Plan"]) < 20, (call, plan)


def test_claim_reads_are_index_searches_on_sqlite(tmp_path: Path) -> None:
    from hpo_lightning.storage._sql import CHANGED_SINCE, LAST_NUMBER

    open_storage(tmp_path / "s.db").close()
    with sqlite3.connect(tmp_path / "s.db") as conn:
        for sql, args, index in (
            (LAST_NUMBER, (1,), "autoindex"),
            (CHANGED_SINCE, (1, 0), "by_change"),
        ):
            plan = " ".join(r[-1] for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", args))
            assert plan.startswith("SEARCH hpo_trials USING") and index in plan, plan
            assert "TEMP B-TREE" not in plan, plan  # no sort of the sweep's trials


def _record(number: int, state: TrialState, changed: int, **attrs: object) -> TrialRecord:
    return TrialRecord(0, 1, number, state, {"x": number}, changed=changed, attrs=attrs)


def test_the_view_folds_changes_and_ignores_older_reads() -> None:
    view = SweepView()
    running = _record(0, TrialState.RUNNING, 1)
    lost = _record(0, TrialState.LOST, 2)
    retry = _record(1, TrialState.RUNNING, 3, retry_of=0)
    view._fold([running])
    view._fold([lost])
    assert view.counts()["lost"] == 1 and view.pending_requeue() == [lost]
    view._fold([running])  # an older read of trial 0 changes nothing
    assert view.counts()["running"] == 0 and view.running() == []
    view._fold([retry])
    assert view.pending_requeue() == [] and view.running() == [retry]
    view._fold([_record(1, TrialState.COMPLETE, 4, retry_of=0)])
    assert view.counts()["done"] == 1 and sorted(view.unreported) == [1]


def test_a_worker_with_a_view_runs_a_sweep_like_one_that_reads_everything(tmp_path: Path) -> None:
    """The worker's view and a full read agree on every decision: same trials, same params."""
    import hpo_lightning as hl

    def run(store: Storage) -> list[tuple[int, str, dict]]:
        cfg = SweepConfig(
            name="w",
            objective=lambda p, cb: (p["x"] - 0.3) ** 2,
            space={"x": hl.Float(0, 1)},
            monitor="loss",
            n_trials=12,
            tuner="tpe",
            seed=3,
        )
        rec = store.create_sweep("w", cfg.definition(), mode="min")
        Worker(cfg, store, rec).run()
        return [(t.number, t.state.value, dict(t.params)) for t in store.get_trials(rec.id)]

    counting = run(open_storage(tmp_path / "a.db"))
    everything = run(_FullReads(tmp_path / "b.db"))
    assert counting == everything and len(counting) == 12


class _FullReads(SQLiteStorage):
    """A real SQLite store whose claims always read every trial (as a store without counts)."""

    def claim_with(self, sweep_id: int, decide: Any, *, since: int | None = None) -> Any:
        return super().claim_with(sweep_id, decide, since=None)


# --- one schema check, one error contract -------------------------------------------------
def _execute(location: str, statements: list[str]) -> None:
    """Run statements on the store's database behind its back (``{s}``: the schema prefix)."""
    if location.startswith("postgresql"):
        schema = location.split("search_path%3D")[-1].split("&")[0]
        for stmt in statements:
            admin(stmt.format(s=f'"{schema}".'))
    else:
        with sqlite3.connect(location) as conn:
            for stmt in statements:
                conn.execute(stmt.format(s=""))


def test_both_stores_refuse_a_newer_schema_with_one_message(location: str) -> None:
    open_storage(location).close()
    _execute(location, [f"UPDATE {{s}}hpo_schema SET version = {SCHEMA_VERSION + 1}"])
    with pytest.raises(InvalidStorageError) as err:
        open_storage(location)
    assert f"newer hpo_lightning (schema {SCHEMA_VERSION + 1}, this version reads" in str(err.value)
    assert str(err.value).endswith("upgrade hpo_lightning")


@pytest.mark.parametrize(
    "misuse",
    [
        lambda s, sweep: s.log_metrics(987654, 0, {"loss": 1.0}),  # no such trial
        lambda s, sweep: s.add_checkpoint(987654, 0, "/x.ckpt", 1.0),
        lambda s, sweep: s.delete_sweep(987654),
        lambda s, sweep: _claim(s, 987654, None, add=1),  # a trial of no sweep
    ],
    ids=["metrics-of-no-trial", "checkpoint-of-no-trial", "delete-no-sweep", "claim-no-sweep"],
)
def test_both_stores_raise_storage_error_for_the_same_misuse(location: str, misuse: object) -> None:
    store = open_storage(location)
    sweep = store.create_sweep("t", {}, mode="min")
    with pytest.raises(StorageError):
        misuse(store, sweep)  # type: ignore[operator]
    store.close()


def test_a_version_4_store_is_migrated_to_change_counts(location: str) -> None:
    """A store of version 4 (no counts) gets them; its existing trials count as changed at 0."""
    store = open_storage(location)
    sweep = store.create_sweep("s", {}, mode="min")
    _claim(store, sweep.id, None, add=2)
    store.close()
    _execute(
        location,
        [
            "DROP INDEX {s}hpo_trials_by_change",
            "ALTER TABLE {s}hpo_trials DROP COLUMN changed",
            "ALTER TABLE {s}hpo_sweeps DROP COLUMN changes",
            "UPDATE {s}hpo_schema SET version = 4",
        ],
    )
    store = open_storage(location)
    trials = store.get_trials(sweep.id)
    assert [t.changed for t in trials] == [0, 0]
    store.finish_trial(trials[0].id, TrialState.COMPLETE, 1.0)
    assert _claim(store, sweep.id, 0)[0] == [0]
    store.close()
