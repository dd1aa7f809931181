"""The server half of a served store: a real store behind HTTP, for workers that cannot reach it.

A sweep whose store is a SQLite file (or that has no database server the workers can reach)
serves its store from its own process; workers elsewhere open ``hpo+http://HOST:PORT/`` with
the token in ``HPO_LIGHTNING_STORE_TOKEN`` (see :class:`~hpo_lightning.storage.ServedStorage`).

* **Authentication.** Every request carries ``Authorization: Bearer TOKEN``, compared in
  constant time; a request without the right token gets 401 and touches nothing. The token is
  never logged, never part of a URL and never stored.
* **Address.** The server binds only to the address it is given (default ``127.0.0.1``).
  Traffic is plain HTTP: bind to a private network, or tunnel it (``ssh -L``).
* **Claims.** ``Storage.claim_with`` runs ``decide`` in the worker, so a remote claim is a
  lease: ``claim_begin`` opens the store's claim transaction in a thread of its own and returns
  the trials, ``claim_add`` inserts through it, ``claim_end`` commits (or rolls back). A lease
  whose worker sends nothing for ``lease_s`` seconds is rolled back, so a worker that dies
  holding it blocks the sweep's claims for at most that long.
"""

from __future__ import annotations

import hmac
import logging
import queue
import secrets
import socket
import threading
from collections import OrderedDict
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from hpo_lightning._trial import TrialState
from hpo_lightning.exceptions import HPOError, StorageError, UserInputError
from hpo_lightning.storage._base import Storage, acting_for
from hpo_lightning.storage._served import _wire
from hpo_lightning.storage._served._wire import ClaimLostError

__all__ = ["StoreServer"]

_log = logging.getLogger(__name__)
_DEFAULT_LEASE_S = 30.0


class _Session:
    """One remote claim: the store's claim transaction, held open in a thread of its own."""

    def __init__(self, store: Storage, sweep_id: int, worker: str, lease_s: float) -> None:
        self.sweep_id = sweep_id
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
            with acting_for(worker), store.claim(self.sweep_id) as claim:
                self.opened.put({"result": {"trials": [_wire.trial_to(t) for t in claim.trials]}})
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
            reply.put({"result": None})

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
                rec = claim.add_trial(
                    arg["params"],
                    tuner=arg.get("tuner"),
                    state=TrialState(arg.get("state", "running")),
                    attrs=arg.get("attrs"),
                )
            except BaseException as exc:
                self.outcome = "failed"
                reply.put(_wire.error_reply(exc))
                raise
            answer = {"result": _wire.trial_to(rec)}
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


class _Abort(Exception):
    """Ends a claim's transaction with a rollback."""


class StoreServer:
    """Serve ``store`` over HTTP to workers that open ``hpo+http://HOST:PORT/``.

    Args:
        store: the real store (owned by this process; the server does not close it).
        host: the address to bind (and the one workers connect to); ``127.0.0.1`` by default.
            ``0.0.0.0`` binds every interface and advertises this machine's host name.
        port: the port; 0 picks a free one.
        token: the shared secret; a random one when not given (read it from :attr:`token`).
        lease_s: how long a remote claim may stay silent before it is rolled back.

    Example:
        >>> from hpo_lightning.storage import open_storage
        >>> with StoreServer(open_storage(":memory:")) as server:
        ...     server.url.startswith("hpo+http://127.0.0.1:")
        True
    """

    def __init__(
        self,
        store: Storage,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        lease_s: float = _DEFAULT_LEASE_S,
    ) -> None:
        if token is not None and len(token) < 16:
            raise UserInputError(
                f"a store token must have at least 16 characters, but got {len(token)}; "
                "leave it out to get a random one"
            )
        self.store = store
        self.token = token or secrets.token_urlsafe(32)
        self.lease_s = float(lease_s)
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._sessions_lock = threading.Lock()
        try:
            self._httpd = _HTTPServer((host, port), _Handler)
        except OSError as exc:
            raise UserInputError(
                f"cannot serve the store on {host}:{port}: {exc.strerror or exc}; "
                "give an address of this machine and a free port (0 picks one)"
            ) from None
        self._httpd.owner = self
        bound = self._httpd.server_address
        shown = socket.getfqdn() if host in ("0.0.0.0", "::", "") else host
        if ":" in shown:
            shown = f"[{shown}]"
        self.host, self.port = shown, int(bound[1])
        self.url = f"{_wire.SCHEME}{shown}:{self.port}/"
        self._thread: threading.Thread | None = None
        self.start()

    def env(self) -> dict[str, str]:
        """The environment a worker needs besides the URL (the token)."""
        return {_wire.TOKEN_ENV: self.token}

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.2},
                name="hpo-store-server",
                daemon=True,
            )
            self._thread.start()

    def close(self) -> None:
        """Stop serving (open claims are rolled back); the store itself stays open."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._httpd.server_close()
        with self._sessions_lock:
            sessions = list(self._sessions.values())
        for s in sessions:
            s.send("abort", None)

    def __enter__(self) -> StoreServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"StoreServer({self.url!r}, store={self.store!r})"

    # --- requests ----------------------------------------------------------------------
    def authorised(self, header: str | None) -> bool:
        if not header or not header.startswith("Bearer "):
            return False
        return hmac.compare_digest(header[len("Bearer ") :].encode(), self.token.encode())

    def answer(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        handler = _OPS.get(op)
        if handler is None:
            raise _BadRequest(f"unknown operation {op!r}")
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
                session = _Session(
                    self.store, int(args["sweep_id"]), str(args["worker"]), self.lease_s
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
        if kind == "add" and int(args["seq"]) in session.adds:
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


class _BadRequest(Exception):
    pass


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    owner: StoreServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def do_POST(self) -> None:
        owner = self.server.owner
        if not owner.authorised(self.headers.get("Authorization")):
            _log.warning(
                "refused a request without the right token from %s", self.client_address[0]
            )
            self._reply(
                HTTPStatus.UNAUTHORIZED, {"error": {"kind": "auth", "message": "bad token"}}
            )
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > _wire.MAX_BODY:
            self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": {"kind": "size"}})
            self.close_connection = True
            return
        op = self.path.strip("/").removeprefix(f"v{_wire.PROTOCOL}/")
        try:
            args = _wire.decode(self.rfile.read(length)) if length else {}
            if not isinstance(args, dict):
                raise _BadRequest("the body must be a JSON object")
            reply = owner.answer(op, args)
        except (_BadRequest, ValueError, KeyError, TypeError) as exc:
            self._reply(HTTPStatus.BAD_REQUEST, {"error": {"kind": "request", "message": str(exc)}})
            return
        self._reply(HTTPStatus.OK, reply)

    def _reply(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        data = _wire.encode(body)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # requests are not logged (and their headers, with the token, never are)


def _result(fn: Callable[[StoreServer, dict[str, Any]], Any]) -> Callable[..., dict[str, Any]]:
    return lambda server, args: {"result": fn(server, args)}


def _fail_stale(server: StoreServer, a: dict[str, Any]) -> list[dict[str, Any]]:
    verdicts: dict[str, bool | None] = a.get("verdicts") or {}
    failed = server.store.fail_stale_trials(
        int(a["sweep_id"]), older_than_s=float(a["older_than_s"]), is_alive=verdicts.get
    )
    return [_wire.trial_to(t) for t in failed]


_OPS: dict[str, Callable[[StoreServer, dict[str, Any]], dict[str, Any]]] = {
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
    "claim_begin": lambda s, a: s.claim_begin(a),
    "claim_add": lambda s, a: s.claim_step(a, "add"),
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
