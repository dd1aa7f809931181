"""The storage contract (see ``hpo_lightning/storage/_base.py``), as a reusable test class.

Subclass :class:`StorageContract` in a test module and provide a ``location`` fixture: the
path or URL of a fresh, empty store that ``open_storage`` accepts, usable from other processes
(the concurrency checks open it again in forked workers). The ``store`` fixture opens it.

Example::

    class TestSQLiteStorage(StorageContract):
        @pytest.fixture
        def location(self, tmp_path):
            return str(tmp_path / "store.db")
"""

from __future__ import annotations

import math
import multiprocessing
import os
import pickle
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from hpo_lightning._trial import FailureKind, TrialState
from hpo_lightning.exceptions import StorageError, SweepNotFoundError
from hpo_lightning.storage import Storage, open_storage, worker_id

DEFINITION = {"space": {"lr": {"type": "float", "low": 1e-4, "high": 0.1}}, "n_trials": 8}

#: params a JSON round trip must keep exactly: unicode, nesting, every scalar type
ODD_PARAMS: dict[str, Any] = {
    "name": "Grüße, 世界 🚀",
    "quote": 'it\'s "quoted" ? % %s',
    "nested": {"layers": [64, 32], "act": None, "flag": True},
    "tiny": 1e-300,
    "neg": -3,
    "big": 2**53,
}

_FORK = multiprocessing.get_context("fork")


def _claim_until(location: str, sweep_name: str, n_trials: int, start_at: float, out: Any) -> None:
    """Worker: claim until the sweep holds n_trials; report (number, trials seen) per claim."""
    store = open_storage(location)
    sweep = store.get_sweep(sweep_name)
    time.sleep(max(0.0, start_at - time.time()))  # all workers start claiming together
    mine = []
    while True:
        with store.claim(sweep.id) as c:
            if len(c.trials) >= n_trials:
                break
            seen = len(c.trials)
            rec = c.add_trial({"worker": os.getpid(), "seen": seen})
        mine.append((rec.number, seen))
        store.log_metrics(rec.id, 0, {"loss": float(rec.number)})
        store.finish_trial(rec.id, TrialState.COMPLETE, float(rec.number), epochs=1)
    store.close()
    out.put(mine)


def _claim_one_and_exit(location: str, sweep_id: int, out: Any) -> None:
    store = open_storage(location)
    with store.claim(sweep_id) as c:
        out.put(c.add_trial({"orphan": True}).id)
    store.close()


def local_pid_alive(worker: str) -> bool | None:
    """Liveness of a ``host:pid`` worker on this machine; None for other hosts."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    return True


def _create_same_sweep(location: str, out: Any) -> None:
    store = open_storage(location)
    out.put(store.create_sweep("race", DEFINITION, mode="min").id)
    store.close()


def run_workers(target: Any, args: tuple[Any, ...], n: int, *, timeout_s: float = 60) -> list[Any]:
    """Run ``target(*args, queue)`` in ``n`` forked processes; return what each put."""
    queue = _FORK.Queue()
    procs = [_FORK.Process(target=target, args=(*args, queue)) for _ in range(n)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=timeout_s) for _ in procs]
    for p in procs:
        p.join(timeout=timeout_s)
        assert p.exitcode == 0, f"worker {p.pid} exited with {p.exitcode}"
    return results


class StorageContract:
    """Checks every store must pass. Provide ``location`` (see the module docstring)."""

    @pytest.fixture
    def location(self) -> str:
        raise NotImplementedError("a storage contract test class must define `location`")

    @pytest.fixture
    def store(self, location: str) -> Iterator[Storage]:
        s = open_storage(location)
        yield s
        s.close()

    # --- sweeps -------------------------------------------------------------------------
    def test_create_get_list_sweeps(self, store: Storage) -> None:
        a = store.create_sweep("alpha", DEFINITION, mode="min")
        b = store.create_sweep("beta", {"other": [1, 2]}, mode="max")
        assert (a.name, a.mode, a.status, dict(a.definition)) == (
            "alpha",
            "min",
            "running",
            DEFINITION,
        )
        assert a.id != b.id
        assert store.get_sweep("beta") == b
        assert [s.name for s in store.list_sweeps()] == ["alpha", "beta"]
        # creating again returns the stored sweep unchanged; the caller compares definitions
        again = store.create_sweep("alpha", {"changed": True}, mode="max")
        assert again == a
        store.set_sweep_status(a.id, "done")
        assert store.get_sweep("alpha").status == "done"
        assert store.get_sweep("beta").status == "running"

    def test_raise_n_trials_only_raises(self, store: Storage) -> None:
        a = store.create_sweep("alpha", {**DEFINITION, "n_trials": 10}, mode="min")
        raised = store.raise_n_trials(a.id, 25)
        assert raised.definition == {**DEFINITION, "n_trials": 25}
        assert store.get_sweep("alpha") == raised
        assert store.raise_n_trials(a.id, 12) == raised  # smaller: nothing changes
        assert store.get_sweep("alpha").definition["n_trials"] == 25

    def test_delete_sweep_removes_it_with_its_trials_and_frees_the_name(
        self, store: Storage
    ) -> None:
        gone = store.create_sweep("typo", DEFINITION, mode="min")
        kept = store.create_sweep("kept", DEFINITION, mode="min")
        first = {}
        for sweep in (gone, kept):
            with store.claim(sweep.id) as c:
                first[sweep.name] = c.add_trial({"lr": 0.1})
                c.add_trial({"lr": 0.2})
            store.log_metrics(first[sweep.name].id, 0, {"loss": 1.0})
            store.finish_trial(first[sweep.name].id, TrialState.COMPLETE, 1.0, epochs=1)
        assert store.delete_sweep(gone.id) == 2
        assert [s.name for s in store.list_sweeps()] == ["kept"]
        with pytest.raises(SweepNotFoundError):
            store.get_sweep("typo")
        assert store.get_trials(gone.id) == [] and store.get_metrics(first["typo"].id) == {}
        kept_trials = store.get_trials(kept.id)  # the other sweep is untouched
        assert [t.state for t in kept_trials] == [TrialState.COMPLETE, TrialState.RUNNING]
        assert store.get_metrics(kept_trials[0].id) == {0: {"loss": 1.0}}
        with pytest.raises(StorageError):
            store.delete_sweep(gone.id)
        # the name is free: a new sweep under it starts at trial 0 with a new definition
        again = store.create_sweep("typo", {"other": 1}, mode="max")
        assert again.id != gone.id and dict(again.definition) == {"other": 1}
        with store.claim(again.id) as c:
            assert c.trials == [] and c.add_trial({"x": 1}).number == 0

    def test_missing_sweep_names_the_known_ones(self, store: Storage) -> None:
        with pytest.raises(SweepNotFoundError, match="none yet"):
            store.get_sweep("anything")
        store.create_sweep("resnet-lr", DEFINITION, mode="min")
        store.create_sweep("vit-wd", DEFINITION, mode="min")
        with pytest.raises(SweepNotFoundError) as err:
            store.get_sweep("resnet-rl")
        msg = str(err.value)
        assert "'resnet-rl'" in msg and "resnet-lr, vit-wd" in msg
        assert "did you mean 'resnet-lr'" in msg

    def test_concurrent_create_of_one_sweep_gives_one_sweep(self, location: str) -> None:
        ids = run_workers(_create_same_sweep, (location,), 4)
        assert len(set(ids)) == 1
        store = open_storage(location)
        assert [s.name for s in store.list_sweeps()] == ["race"]
        store.close()

    # --- claims -------------------------------------------------------------------------
    def test_claim_numbers_trials_and_sees_earlier_ones(self, store: Storage) -> None:
        sweep = store.create_sweep("s", DEFINITION, mode="min")
        other = store.create_sweep("other", DEFINITION, mode="min")
        numbers = []
        for i in range(3):
            with store.claim(sweep.id) as c:
                assert [t.number for t in c.trials] == list(range(i))
                rec = c.add_trial({"i": i}, tuner="random", attrs={"grid_index": i})
                assert c.trials[-1] == rec
            numbers.append(rec.number)
        assert numbers == [0, 1, 2]
        assert rec.state is TrialState.RUNNING and rec.worker == worker_id()
        assert (rec.tuner, dict(rec.attrs)) == ("random", {"grid_index": 2})
        with store.claim(other.id) as c:
            assert c.trials == []
            assert c.add_trial({}).number == 0  # numbering is per sweep
        with store.claim(sweep.id) as c:
            two = [c.add_trial({"k": k}, state=TrialState.PRUNED) for k in range(2)]
        assert [t.number for t in two] == [3, 4]
        assert [t.number for t in store.get_trials(sweep.id)] == [0, 1, 2, 3, 4]

    def test_claim_rolls_back_when_the_block_raises(self, store: Storage) -> None:
        sweep = store.create_sweep("s", DEFINITION, mode="min")
        with pytest.raises(RuntimeError, match="tuner crashed"), store.claim(sweep.id) as c:
            c.add_trial({"x": 1})
            raise RuntimeError("tuner crashed")
        assert store.get_trials(sweep.id) == []
        with store.claim(sweep.id) as c:
            assert c.add_trial({"x": 2}).number == 0

    def test_claim_with_returns_what_decide_returns(self, store: Storage) -> None:
        sweep = store.create_sweep("s", DEFINITION, mode="min")
        rec = store.claim_with(sweep.id, lambda c: c.add_trial({"x": len(c.trials)}))
        assert (rec.number, dict(rec.params)) == (0, {"x": 0})
        assert store.claim_with(sweep.id, lambda c: len(c.trials)) == 1

    def test_concurrent_claims_are_distinct_and_exact(self, location: str) -> None:
        store = open_storage(location)
        store.create_sweep("busy", DEFINITION, mode="min")
        n_trials, n_workers = 48, 6
        start_at = time.time() + 1.0
        per_worker = run_workers(_claim_until, (location, "busy", n_trials, start_at), n_workers)
        claims = [c for w in per_worker for c in w]
        # every claim saw all trials before it: its number equals the count it saw
        assert all(number == seen for number, seen in claims)
        assert sorted(n for n, _ in claims) == list(range(n_trials))
        trials = store.get_trials(store.get_sweep("busy").id)
        assert [t.number for t in trials] == list(range(n_trials))
        assert all(t.state is TrialState.COMPLETE for t in trials)
        # (no check that several workers got trials: SQLite's busy wait is not fair, and one
        # worker may legitimately win every claim while the others wait)
        store.close()

    # --- trial life cycle ---------------------------------------------------------------
    def test_finish_trial_never_reverts_a_finished_trial(self, store: Storage) -> None:
        sweep = store.create_sweep("s", DEFINITION, mode="min")
        with store.claim(sweep.id) as c:
            t = c.add_trial({"x": 1})
        assert store.finish_trial(t.id, TrialState.COMPLETE, 0.25, epochs=3) is True
        assert store.finish_trial(t.id, TrialState.FAILED, None, message="late") is False
        store.heartbeat([t.id])
        (stored,) = store.get_trials(sweep.id)
        assert (stored.state, stored.value, stored.epochs, stored.message) == (
            TrialState.COMPLETE,
            0.25,
            3,
            None,
        )
        assert stored.finished_at is not None and stored.finished_at >= stored.created_at
        with pytest.raises(StorageError, match="final state"):
            store.finish_trial(t.id, TrialState.RUNNING, None)

    def test_get_trials_filters_by_state(self, store: Storage) -> None:
        sweep = store.create_sweep("s", DEFINITION, mode="min")
        with store.claim(sweep.id) as c:
            ids = [c.add_trial({"i": i}).id for i in range(3)]
        store.finish_trial(ids[0], TrialState.COMPLETE, 1.0)
        store.finish_trial(ids[1], TrialState.PRUNED, 2.0, message="asha rung 1")
        running = store.get_trials(sweep.id, states=[TrialState.RUNNING])
        assert [t.number for t in running] == [2]
        done = store.get_trials(sweep.id, states=[TrialState.COMPLETE, TrialState.PRUNED])
        assert [(t.number, t.message) for t in done] == [(0, None), (1, "asha rung 1")]

    def test_metrics_upsert_and_refresh_the_heartbeat(self, store: Storage) -> None:
        sweep = store.create_sweep("s", DEFINITION, mode="min")
        with store.claim(sweep.id) as c:
            t = c.add_trial({})
        store.log_metrics(t.id, 0, {"val_loss": 1.0, "acc": 0.5})
        store.log_metrics(t.id, 1, {"val_loss": 0.8})
        time.sleep(0.01)
        store.log_metrics(t.id, 0, {"val_loss": 0.9})  # a re-logged epoch overwrites
        assert store.get_metrics(t.id) == {0: {"acc": 0.5, "val_loss": 0.9}, 1: {"val_loss": 0.8}}
        (stored,) = store.get_trials(sweep.id)
        assert stored.epochs == 2  # an old epoch re-logged does not shrink the count
        assert stored.heartbeat_at is not None and stored.heartbeat_at > t.created_at

    def test_curves_follow_running_trials_and_keep_finished_ones(self, store: Storage) -> None:
        sweep = store.create_sweep("s", DEFINITION, mode="min")
        with store.claim(sweep.id) as c:
            a, b, quiet = c.add_trial({"x": 0}), c.add_trial({"x": 1}), c.add_trial({"x": 2})
        store.log_metrics(a.id, 0, {"val_loss": 1.0})
        store.log_metrics(b.id, 0, {"val_loss": 2.0, "acc": 0.1})
        store.finish_trial(a.id, TrialState.PRUNED, 1.0, epochs=1)
        store.finish_trial(quiet.id, TrialState.FAILED, None, message="never logged")
        for _ in range(2):  # the second call answers finished trials from what it has read
            assert store.get_curves(sweep.id, "val_loss") == {0: {0: 1.0}, 1: {0: 2.0}}
        store.log_metrics(b.id, 1, {"val_loss": math.nan})
        store.log_metrics(b.id, 2, {"val_loss": 1.5})
        with store.claim(sweep.id) as c:
            late = c.add_trial({"x": 3})
        store.log_metrics(late.id, 0, {"val_loss": 3.0})
        store.finish_trial(late.id, TrialState.COMPLETE, 3.0, epochs=1)
        got = store.get_curves(sweep.id, "val_loss")
        assert list(got) == [0, 1, 3] and got[0] == {0: 1.0} and got[3] == {0: 3.0}
        assert list(got[1]) == [0, 1, 2] and math.isnan(got[1][1]) and got[1][2] == 1.5
        assert store.get_curves(sweep.id, "acc") == {1: {0: 0.1}}
        assert store.get_curves(sweep.id, "missing") == {}

    def test_heartbeat_touches_only_running_trials(self, store: Storage) -> None:
        sweep = store.create_sweep("s", DEFINITION, mode="min")
        with store.claim(sweep.id) as c:
            run, done = c.add_trial({}), c.add_trial({})
        store.finish_trial(done.id, TrialState.COMPLETE, 0.0)
        before = {t.id: t.heartbeat_at for t in store.get_trials(sweep.id)}
        time.sleep(0.01)
        store.heartbeat([run.id, done.id])
        store.heartbeat([])
        after = {t.id: t.heartbeat_at for t in store.get_trials(sweep.id)}
        assert after[run.id] > before[run.id]  # type: ignore[operator]
        assert after[done.id] == before[done.id]

    def test_fail_stale_trials(self, location: str, store: Storage) -> None:
        sweep = store.create_sweep("s", DEFINITION, mode="min")
        # a worker process claims a trial and dies without finishing it
        (orphan_id,) = run_workers(_claim_one_and_exit, (location, sweep.id), 1)
        with store.claim(sweep.id) as c:
            quiet, fresh = c.add_trial({"i": 1}), c.add_trial({"i": 2})
        # dead local pid: failed whatever its heartbeat; live pids are kept
        failed = store.fail_stale_trials(sweep.id, older_than_s=3600, is_alive=local_pid_alive)
        assert [t.id for t in failed] == [orphan_id]
        # unknown liveness (another host): failed once its heartbeat is too old
        time.sleep(0.3)
        store.heartbeat([fresh.id])
        failed = store.fail_stale_trials(sweep.id, older_than_s=0.2, is_alive=lambda w: None)
        assert [t.id for t in failed] == [quiet.id]
        assert store.fail_stale_trials(sweep.id, older_than_s=0.0, is_alive=lambda w: True) == []
        trials = {t.id: t for t in store.get_trials(sweep.id)}
        assert trials[orphan_id].state is TrialState.LOST
        assert "no longer running" in (trials[orphan_id].message or "")
        assert trials[quiet.id].state is TrialState.LOST
        assert "no heartbeat" in (trials[quiet.id].message or "")
        assert trials[fresh.id].state is TrialState.RUNNING
        # a lost trial stays lost
        assert store.finish_trial(orphan_id, TrialState.COMPLETE, 1.0) is False

    def test_params_lost_twice_fail_as_crashed(self, store: Storage) -> None:
        sweep = store.create_sweep("s", DEFINITION, mode="min")
        with store.claim(sweep.id) as c:
            first = c.add_trial({"i": 1})
            again = c.add_trial({"i": 1}, attrs={"retry_of": first.number, "losses": 1})
        dead = lambda w: False  # noqa: E731 - both workers are gone
        lost = store.fail_stale_trials(sweep.id, older_than_s=3600, is_alive=dead)
        by_id = {t.id: t for t in lost}
        assert by_id[first.id].state is TrialState.LOST and by_id[first.id].failure is None
        assert by_id[again.id].state is TrialState.FAILED
        assert by_id[again.id].failure is FailureKind.CRASHED
        stored = {t.id: t for t in store.get_trials(sweep.id)}
        assert stored[again.id].failure is FailureKind.CRASHED
        assert "2 times" in (stored[again.id].message or "")

    def test_a_refused_write_raises_storage_error(self, store: Storage) -> None:
        """Every store raises our StorageError, never its driver's own error class."""
        with pytest.raises(StorageError):
            store.log_metrics(987654, 0, {"loss": 1.0})  # no such trial

    def test_failure_kind_is_stored(self, store: Storage) -> None:
        sweep = store.create_sweep("s", DEFINITION, mode="min")
        with store.claim(sweep.id) as c:
            t = c.add_trial({"i": 1})
        store.finish_trial(
            t.id, TrialState.FAILED, None, message="nan", failure=FailureKind.DIVERGED
        )
        (stored,) = store.get_trials(sweep.id)
        assert stored.failure is FailureKind.DIVERGED and stored.message == "nan"

    def test_objective_values_and_violation_are_stored(self, store: Storage) -> None:
        """A multi-objective trial keeps every objective (non-finite ones read as NaN) and
        its constraint violation; a single-objective trial keeps neither."""
        sweep = store.create_sweep("s", DEFINITION, mode="max")
        with store.claim(sweep.id) as c:
            a, b, single = c.add_trial({"i": 0}), c.add_trial({"i": 1}), c.add_trial({"i": 2})
        store.finish_trial(
            a.id, TrialState.COMPLETE, 0.9, objective_values=[0.9, 12.5], violation=0.0
        )
        store.finish_trial(
            b.id, TrialState.COMPLETE, 0.8, objective_values=(0.8, math.inf), violation=2.5
        )
        store.finish_trial(single.id, TrialState.COMPLETE, 0.7)
        got = store.get_trials(sweep.id)
        assert got[0].objective_values == (0.9, 12.5) and got[0].violation == 0.0
        assert got[0].feasible and not got[1].feasible
        assert got[1].objective_values is not None and got[1].objective_values[0] == 0.8
        assert math.isnan(got[1].objective_values[1]) and got[1].violation == 2.5
        assert got[2].objective_values is None and got[2].violation is None and got[2].feasible

    # --- values -------------------------------------------------------------------------
    def test_params_round_trip_as_json(self, store: Storage) -> None:
        sweep = store.create_sweep("ünïcode ✓", {"space": ODD_PARAMS}, mode="max")
        with store.claim(sweep.id) as c:
            c.add_trial(ODD_PARAMS, attrs={"note": "日本語"})
        (t,) = store.get_trials(sweep.id)
        assert dict(t.params) == ODD_PARAMS
        assert dict(t.attrs) == {"note": "日本語"}
        assert dict(store.get_sweep("ünïcode ✓").definition) == {"space": ODD_PARAMS}

    def test_non_finite_values_are_stored_as_missing(self, store: Storage) -> None:
        sweep = store.create_sweep("s", DEFINITION, mode="min")
        with store.claim(sweep.id) as c:
            a, b = c.add_trial({}), c.add_trial({})
        store.log_metrics(a.id, 0, {"loss": math.nan, "acc": math.inf, "ok": 0.5})
        metrics = store.get_metrics(a.id)[0]
        assert math.isnan(metrics["loss"]) and math.isnan(metrics["acc"]) and metrics["ok"] == 0.5
        store.finish_trial(a.id, TrialState.FAILED, math.nan)
        store.finish_trial(b.id, TrialState.COMPLETE, -math.inf)
        assert [t.value for t in store.get_trials(sweep.id)] == [None, None]

    def test_a_pickled_store_works_in_the_receiving_process(self, store: Storage) -> None:
        sweep = store.create_sweep("s", DEFINITION, mode="min")
        copy = pickle.loads(pickle.dumps(store))
        with copy.claim(sweep.id) as c:
            c.add_trial({"from": "copy"})
        assert [dict(t.params) for t in store.get_trials(sweep.id)] == [{"from": "copy"}]
        copy.close()

    # --- checkpoints and resumed trials (schema 3) --------------------------------------------
    def test_checkpoints_are_recorded_by_epoch_and_forgotten(self, store: Storage) -> None:
        sweep = store.create_sweep("ck", DEFINITION, mode="min")
        with store.claim(sweep.id) as c:
            a, b = c.add_trial({"x": 0}), c.add_trial({"x": 1})
        store.add_checkpoint(a.id, 0, "/c/a0.ckpt", 0.5)
        store.add_checkpoint(a.id, 1, "/c/a1.ckpt", math.nan)
        store.add_checkpoint(a.id, 1, "s3://bucket/a1.ckpt", 0.25)  # an upsert
        store.add_checkpoint(b.id, 3, "/c/b3.ckpt", None)
        got = store.get_checkpoints(sweep.id)
        assert [(r.epoch, r.path, r.value) for r in got[0]] == [
            (0, "/c/a0.ckpt", 0.5),
            (1, "s3://bucket/a1.ckpt", 0.25),
        ]
        assert [(r.trial_id, r.epoch, r.value) for r in got[1]] == [(b.id, 3, None)]
        store.delete_checkpoints(a.id, [0])
        assert [r.epoch for r in store.get_checkpoints(sweep.id)[0]] == [1]

    def test_a_requeued_trial_with_a_checkpoint_is_reopened_where_it_was(
        self, store: Storage
    ) -> None:
        sweep = store.create_sweep("reopen", DEFINITION, mode="min")
        with store.claim(sweep.id) as c:
            t = c.add_trial({"x": 0})
            plain = c.add_trial({"x": 1})
        for epoch in range(4):
            store.log_metrics(t.id, epoch, {"loss": 1.0 - epoch / 10})
        store.add_checkpoint(t.id, 1, "/c/e1.ckpt", 0.9)
        store.get_curves(sweep.id, "loss")  # caches what a reader saw before
        for rec in (t, plain):
            store.finish_trial(rec.id, TrialState.LOST, None, message="killed")
        lost = {r.number: r for r in store.get_trials(sweep.id)}
        with store.claim(sweep.id) as c:
            assert c.reopen_trial(lost[1], attrs={"losses": 1}) is None  # no checkpoint
            again = c.reopen_trial(lost[0], attrs={"losses": 0, "resumes": 1})
            assert again is not None and c.trials[0] == again
        assert again.state is TrialState.RUNNING and again.number == 0 and again.epochs == 2
        assert dict(again.attrs) == {"losses": 0, "resumes": 1, "resumed_epochs": 2}
        assert again.message is None and again.finished_at is None
        assert sorted(store.get_metrics(t.id)) == [0, 1]  # epochs after the checkpoint dropped
        assert store.get_curves(sweep.id, "loss")[0] == {0: 1.0, 1: 0.9}
        store.log_metrics(t.id, 2, {"loss": 0.5})
        store.finish_trial(t.id, TrialState.COMPLETE, 0.5, epochs=3)
        (done,) = store.get_trials(sweep.id, states=[TrialState.COMPLETE])
        assert done.epochs == 3 and done.value == 0.5
        assert store.get_curves(sweep.id, "loss")[0] == {0: 1.0, 1: 0.9, 2: 0.5}
        with store.claim(sweep.id) as c:  # a finished trial is never reopened
            assert c.reopen_trial(done, attrs={}) is None

    def test_discard_epochs_and_set_trial_attrs(self, store: Storage) -> None:
        sweep = store.create_sweep("discard", DEFINITION, mode="min")
        with store.claim(sweep.id) as c:
            t = c.add_trial({"x": 0})
        for epoch in range(3):
            store.log_metrics(t.id, epoch, {"loss": 1.0})
            store.add_checkpoint(t.id, epoch, f"/c/{epoch}.ckpt", 1.0)
        store.discard_epochs(t.id, -1)
        assert store.get_metrics(t.id) == {} and store.get_checkpoints(sweep.id) == {}
        store.set_trial_attrs(t.id, {"lineage": [{"epoch": 1, "donor": 3}]})
        (rec,) = store.get_trials(sweep.id)
        assert rec.epochs == 0 and rec.attrs["lineage"] == [{"epoch": 1, "donor": 3}]
