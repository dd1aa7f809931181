"""The transport-free half of a served store: operations on a real store, claims as leases.

A :class:`Dispatcher` answers ``(operation, JSON arguments)`` with a JSON reply. The HTTP
server (``_server.py``) and the Ray store actor (``_ray.py``) are two fronts for it.

``Storage.claim_with`` runs ``decide`` in the worker, so a remote claim is a lease:
``claim_begin`` opens the store's claim transaction in a thread of its own and returns the
trials, ``claim_add`` inserts through it, ``claim_commit`` commits (``claim_abort`` rolls
back). A lease whose worker sends nothing for ``lease_s`` seconds is rolled back, so a worker
that dies holding it blocks the sweep's claims for at most that long. Every step carries the
lease id (and an add its sequence number), so a step retried after a lost answer is answered
again rather than applied twice.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from hpo_lightning._trial import FailureKind, TrialState
from hpo_lightning.exceptions import HPOError, StorageError
from hpo_lightning.storage._base import Storage, acting_for
from hpo_lightning.storage._served import _wire
from hpo_lightning.storage._served._wire import ClaimLostError

__all__ = ["DEFAULT_LEASE_S", "Dispatcher", "UnknownOperationError"]

_log = logging.getLogger(__name__)
DEFAULT_LEASE_S = 30.0


class _Session:
    """One remote claim: the store's claim transaction, held open in a thread of its own."""

    def __init__(
        self, store: Storage, sweep_id: int, worker: str, lease_s: float, since: int | None
    ) -> None:
        self.sweep_id, self.since = sweep_id, since
        self.lease_s = lease_s
        self.commands: queue.Queue[tuple[str, Any, queue.Queue[Any]]] = queue.Queue()
        self.opened: queue.Queue[Any] = queue.Queue()
        self.adds: dict[int, Any] = {}  # seq -> reply, so that a retried add is answered again
        self.outcome: str | None = None  # "committed", "aborted", "expired", "failed"
        self.lock = threading.Lock()
        self.thread = threading.Thread(
            target=self._run, args=(store, worker), name="hpo-claim", daemon=True
        )
        self.thread.start()

    def _run(self, store: Storage, worker: str) -> None:
        reply: queue.Queue[Any] | None = None
        try:
            with acting_for(worker), store.claim(self.sweep_id, since=self.since) as claim:
                trials = [_wire.trial_to(t) for t in claim.trials]
                self.opened.put({"result": {"trials": trials, "since": claim.since}})
                reply = self._serve(claim)
        except _Abort:
            pass
        except BaseException as exc:  # the store failed: the claim is rolled back
            self.outcome = self.outcome or "failed"
            _log.warning("a remote claim of sweep %s failed: %s", self.sweep_id, exc)
            self.opened.put(_wire.error_reply(exc))
            if reply is not None:
                reply.put(_wire.error_reply(exc))
            return
        if reply is not None:  # the transaction committed: answer the commit
            self.outcome = "committed"
            reply.put({"result": {"changes": claim.changes}})

    def _serve(self, claim: Any) -> queue.Queue[Any]:
        """Answer adds until a commit arrives (returned) or the lease runs out (raises)."""
        while True:
            try:
                kind, arg, reply = self.commands.get(timeout=self.lease_s)
            except queue.Empty:
                self.outcome = "expired"
                _log.warning(
                    "a remote claim of sweep %s sent nothing for %.0f s: rolled back",
                    self.sweep_id,
                    self.lease_s,
                )
                raise _Abort() from None
            if kind == "commit":
                return reply
            if kind == "abort":
                self.outcome = "aborted"
                reply.put({"result": None})
                raise _Abort()
            try:
                rec = _step(claim, kind, arg)
            except BaseException as exc:
                self.outcome = "failed"
                reply.put(_wire.error_reply(exc))
                raise
            answer = {"result": None if rec is None else _wire.trial_to(rec)}
            self.adds[int(arg["seq"])] = answer
            reply.put(answer)

    def send(self, kind: str, arg: Any) -> Any:
        """Pass a command to the claim's thread and wait for its answer."""
        reply: queue.Queue[Any] = queue.Queue()
        with self.lock:
            if self.outcome is not None or not self.thread.is_alive():
                return None
            self.commands.put((kind, arg, reply))
        while self.thread.is_alive() or not reply.empty():
            try:
                return reply.get(timeout=0.5)
            except queue.Empty:
                continue
        return None


def _step(claim: Any, kind: str, arg: Any) -> Any:
    """One insert (``add``) or reopen of a requeued trial (``reopen``) inside the claim."""
    if kind == "reopen":
        return claim.reopen_trial(_wire.trial_from(arg["trial"]), attrs=arg.get("attrs") or {})
    return claim.add_trial(
        arg["params"],
        tuner=arg.get("tuner"),
        state=TrialState(arg.get("state", "running")),
        attrs=arg.get("attrs"),
    )


class _Abort(Exception):
    """Ends a claim's transaction with a rollback."""


class UnknownOperationError(Exception):
    """A request named an operation this server does not have."""


class Dispatcher:
    """Answers the served-store operations on ``store`` (see the module docstring)."""

    def __init__(self, store: Storage, *, lease_s: float = DEFAULT_LEASE_S) -> None:
        self.store = store
        self.lease_s = float(lease_s)
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._sessions_lock = threading.Lock()

    def close(self) -> None:
        """Roll back the claims still open."""
        with self._sessions_lock:
            sessions = list(self._sessions.values())
        for s in sessions:
            s.send("abort", None)

    def answer(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        handler = _OPS.get(op)
        if handler is None:
            raise UnknownOperationError(f"unknown operation {op!r}")
        try:
            return handler(self, args)
        except (HPOError, ValueError) as exc:
            return _wire.error_reply(exc)
        except Exception as exc:
            _log.exception("the served store failed on %s", op)
            return _wire.error_reply(StorageError(f"the store server failed on {op}: {exc}"))

    # --- claims ------------------------------------------------------------------------
    def claim_begin(self, args: dict[str, Any]) -> dict[str, Any]:
        lease = str(args["lease"])
        with self._sessions_lock:
            session = self._sessions.get(lease)
            if session is None:
                since = args.get("since")
                session = _Session(
                    self.store,
                    int(args["sweep_id"]),
                    str(args["worker"]),
                    self.lease_s,
                    None if since is None else int(since),
                )
                self._sessions[lease] = session
                while len(self._sessions) > 256:  # ended leases are remembered for a while
                    oldest = next(iter(self._sessions))
                    if self._sessions[oldest].thread.is_alive():
                        break
                    self._sessions.popitem(last=False)
        first = session.opened.get()
        session.opened.put(first)  # a retried begin reads it again
        return first

    def claim_step(self, args: dict[str, Any], kind: str) -> dict[str, Any]:
        lease = str(args["lease"])
        with self._sessions_lock:
            session = self._sessions.get(lease)
        if session is None:
            raise ClaimLostError(_lost(lease, "is unknown here (the store server restarted?)"))
        if kind in ("add", "reopen") and int(args["seq"]) in session.adds:
            return session.adds[int(args["seq"])]
        answer = session.send(kind, args)
        if answer is not None:
            return answer
        outcome = session.outcome
        if kind == "commit" and outcome == "committed":
            return {"result": None}
        if kind == "abort":
            return {"result": None}
        raise ClaimLostError(_lost(lease, f"ended ({outcome or 'rolled back'})"))


def _lost(lease: str, why: str) -> str:
    return f"this claim's lease {lease[:8]} {why}; nothing was written -- claim again"


def _result(fn: Callable[[Dispatcher, dict[str, Any]], Any]) -> Callable[..., dict[str, Any]]:
    return lambda server, args: {"result": fn(server, args)}


def _fail_stale(dispatcher: Dispatcher, a: dict[str, Any]) -> list[dict[str, Any]]:
    verdicts: dict[str, bool | None] = a.get("verdicts") or {}
    failed = dispatcher.store.fail_stale_trials(
        int(a["sweep_id"]),
        older_than_s=float(a["older_than_s"]),
        is_alive=verdicts.get,
        max_losses=int(a.get("max_losses", 2)),
    )
    return [_wire.trial_to(t) for t in failed]


_OPS: dict[str, Callable[[Dispatcher, dict[str, Any]], dict[str, Any]]] = {
    "hello": _result(lambda s, a: {"protocol": _wire.PROTOCOL}),
    "create_sweep": _result(
        lambda s, a: _wire.sweep_to(
            s.store.create_sweep(a["name"], a["definition"], mode=a["mode"])
        )
    ),
    "get_sweep": _result(lambda s, a: _wire.sweep_to(s.store.get_sweep(a["name"]))),
    "list_sweeps": _result(lambda s, a: [_wire.sweep_to(r) for r in s.store.list_sweeps()]),
    "raise_n_trials": _result(
        lambda s, a: _wire.sweep_to(s.store.raise_n_trials(int(a["sweep_id"]), int(a["n_trials"])))
    ),
    "set_sweep_status": _result(
        lambda s, a: s.store.set_sweep_status(int(a["sweep_id"]), str(a["status"]))
    ),
    "delete_sweep": _result(lambda s, a: s.store.delete_sweep(int(a["sweep_id"]))),
    "claim_begin": lambda s, a: s.claim_begin(a),
    "claim_add": lambda s, a: s.claim_step(a, "add"),
    "claim_reopen": lambda s, a: s.claim_step(a, "reopen"),
    "add_checkpoint": _result(
        lambda s, a: s.store.add_checkpoint(
            int(a["trial_id"]), int(a["epoch"]), str(a["path"]), a.get("value")
        )
    ),
    "delete_checkpoints": _result(
        lambda s, a: s.store.delete_checkpoints(int(a["trial_id"]), [int(e) for e in a["epochs"]])
    ),
    "set_trial_attrs": _result(
        lambda s, a: s.store.set_trial_attrs(int(a["trial_id"]), dict(a["attrs"]))
    ),
    "discard_epochs": _result(
        lambda s, a: s.store.discard_epochs(int(a["trial_id"]), int(a["after"]))
    ),
    "get_checkpoints": _result(
        lambda s, a: {
            str(n): [asdict(c) for c in cks]
            for n, cks in s.store.get_checkpoints(int(a["sweep_id"])).items()
        }
    ),
    "claim_commit": lambda s, a: s.claim_step(a, "commit"),
    "claim_abort": lambda s, a: s.claim_step(a, "abort"),
    "log_metrics": _result(
        lambda s, a: s.store.log_metrics(int(a["trial_id"]), int(a["epoch"]), a["metrics"])
    ),
    "finish_trial": _result(
        lambda s, a: s.store.finish_trial(
            int(a["trial_id"]),
            TrialState(a["state"]),
            a.get("value"),
            epochs=a.get("epochs"),
            message=a.get("message"),
            failure=None if a.get("failure") is None else FailureKind(a["failure"]),
            objective_values=a.get("objective_values"),
            violation=a.get("violation"),
        )
    ),
    "heartbeat": _result(lambda s, a: s.store.heartbeat([int(i) for i in a["trial_ids"]])),
    "get_trials": _result(
        lambda s, a: [
            _wire.trial_to(t)
            for t in s.store.get_trials(
                int(a["sweep_id"]),
                states=None if a.get("states") is None else [TrialState(x) for x in a["states"]],
            )
        ]
    ),
    "get_metrics": _result(lambda s, a: s.store.get_metrics(int(a["trial_id"]))),
    "get_curves": _result(lambda s, a: s.store.get_curves(int(a["sweep_id"]), str(a["metric"]))),
    "fail_stale_trials": _result(_fail_stale),
}
