"""The client half of a served store: a :class:`Storage` that forwards to a :class:`StoreServer`.

Open it as ``hpo+http://HOST:PORT/`` with the server's token in ``HPO_LIGHTNING_STORE_TOKEN``.
While the server cannot be reached, every operation retries with backoff for up to
``retry_s`` seconds, then raises :class:`StorageError`; a write retried after its answer was
lost is applied once (metrics are upserts, a finish is recognised, a claim's steps carry ids).
"""

from __future__ import annotations

import http.client
import os
import random
import threading
import time
import uuid
from abc import abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any, TypeVar
from urllib.parse import urlsplit

from hpo_lightning._trial import FailureKind, Mode, TrialState
from hpo_lightning.exceptions import InvalidStorageError, StorageError
from hpo_lightning.storage._base import (
    CheckpointRecord,
    Claim,
    Storage,
    SweepRecord,
    TrialRecord,
    worker_id,
)
from hpo_lightning.storage._served import _wire
from hpo_lightning.storage._served._wire import ClaimLostError

__all__ = ["RemoteStorage", "ServedStorage"]

T = TypeVar("T")
_RETRY_S = 120.0
_CONNECT_S = 10.0
_READ_TIMEOUT_S = 300.0  # a claim_begin waits for other claims; the server bounds them
_TRANSPORT_ERRORS = (OSError, http.client.HTTPException)


def _parse(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    problem = ""
    try:
        port = parts.port
    except ValueError:
        port, problem = None, "its port is not a number"
    if parts.username or parts.password:
        problem = "it holds credentials (give the token in $" + _wire.TOKEN_ENV + ")"
    elif not parts.hostname or port is None:
        problem = problem or "it needs a host and a port"
    elif parts.path not in ("", "/") or parts.query:
        problem = "it has a path or a query"
    if problem:
        raise InvalidStorageError(
            f"bad served store URL {parts.scheme}://{parts.hostname or ''}:...: {problem}; "
            "use hpo+http://HOST:PORT/"
        )
    return str(parts.hostname), int(port)  # type: ignore[arg-type]


class RemoteStorage(Storage):
    """A :class:`Storage` whose operations a :class:`Dispatcher` answers elsewhere.

    Subclasses say how a request travels (:meth:`_exchange`) and which errors mean that it did
    not arrive (:attr:`_transport_errors`, retried with backoff for up to ``retry_s``).
    """

    retry_s: float = _RETRY_S
    _transport_errors: tuple[type[BaseException], ...] = _TRANSPORT_ERRORS

    @abstractmethod
    def _exchange(self, op: str, args: Mapping[str, Any]) -> tuple[int, Any]:
        """Send one request; its HTTP-like status (200, 401, 400...) and its JSON reply."""

    def _call(
        self,
        op: str,
        args: Mapping[str, Any],
        *,
        retry_s: float | None = None,
        opening: bool = False,
    ) -> Any:
        """Send one operation; retry while the server cannot be reached; return its result."""
        limit = self.retry_s if retry_s is None else retry_s
        deadline = time.monotonic() + limit
        delay, tries = 0.05, 0
        jitter = random.Random(os.getpid() ^ time.monotonic_ns())
        while True:
            tries += 1
            try:
                status, reply = self._exchange(op, args)
                break
            except self._transport_errors as exc:
                if time.monotonic() + delay > deadline:
                    cls = InvalidStorageError if opening else StorageError
                    raise cls(
                        f"cannot reach the store server at {self.url} ({op} failed {tries} "
                        f"times over {limit:.0f} s: {exc or type(exc).__name__}); check that "
                        "the sweep that serves it is running and reachable from this machine"
                    ) from None
                time.sleep(delay * (0.5 + jitter.random()))
                delay = min(delay * 2, 2.0)
        if status == 401:
            raise InvalidStorageError(
                f"the store server at {self.url} refused the token; set ${_wire.TOKEN_ENV} to "
                "the token of the process that serves it"
            )
        if status != 200:
            message = (reply.get("error") or {}).get("message") if isinstance(reply, dict) else ""
            raise StorageError(
                f"the store server at {self.url} answered {status} to {op}: {message}"
            )
        if "error" in reply:
            _wire.raise_error(reply["error"], self.url)
        return reply.get("result")

    def _hello(self, connect_s: float) -> None:
        hello = self._call("hello", {}, retry_s=connect_s, opening=True)
        if hello.get("protocol") != _wire.PROTOCOL:
            raise InvalidStorageError(
                f"the store server at {self.url} speaks protocol {hello.get('protocol')}, this "
                f"hpo_lightning speaks {_wire.PROTOCOL}; use the same version on both sides"
            )

    # --- sweeps --------------------------------------------------------------------------
    def create_sweep(self, name: str, definition: Mapping[str, Any], *, mode: Mode) -> SweepRecord:
        args = {"name": name, "definition": dict(definition), "mode": mode}
        return _wire.sweep_from(self._call("create_sweep", args))

    def get_sweep(self, name: str) -> SweepRecord:
        return _wire.sweep_from(self._call("get_sweep", {"name": name}))

    def list_sweeps(self) -> list[SweepRecord]:
        return [_wire.sweep_from(d) for d in self._call("list_sweeps", {})]

    def raise_n_trials(self, sweep_id: int, n_trials: int) -> SweepRecord:
        args = {"sweep_id": sweep_id, "n_trials": n_trials}
        return _wire.sweep_from(self._call("raise_n_trials", args))

    def set_sweep_status(self, sweep_id: int, status: str) -> None:
        self._call("set_sweep_status", {"sweep_id": sweep_id, "status": status})

    def delete_sweep(self, sweep_id: int) -> int:
        return int(self._call("delete_sweep", {"sweep_id": sweep_id}))

    # --- claims --------------------------------------------------------------------------
    @contextmanager
    def claim(self, sweep_id: int, *, since: int | None = None) -> Iterator[Claim]:
        lease = uuid.uuid4().hex
        opened = self._call(
            "claim_begin",
            {"sweep_id": sweep_id, "lease": lease, "worker": worker_id(), "since": since},
        )
        seq = iter(range(1 << 62))

        def add(params: Mapping[str, Any], **kw: Any) -> TrialRecord:
            state = TrialState(kw.get("state") or TrialState.RUNNING)
            args = {
                "lease": lease,
                "seq": next(seq),
                "params": dict(params),
                "tuner": kw.get("tuner"),
                "state": state.value,
                "attrs": dict(kw.get("attrs") or {}),
            }
            return _wire.trial_from(self._call("claim_add", args))

        def reopen(trial: TrialRecord, *, attrs: Mapping[str, Any]) -> TrialRecord | None:
            args = {
                "lease": lease,
                "seq": next(seq),
                "trial": _wire.trial_to(trial),
                "attrs": dict(attrs),
            }
            rec = self._call("claim_reopen", args)
            return None if rec is None else _wire.trial_from(rec)

        # a server that counts no changes answers with every trial and no "since"
        claim = Claim(
            [_wire.trial_from(t) for t in opened["trials"]], add, reopen, since=opened.get("since")
        )
        try:
            yield claim
        except BaseException:
            # if the abort is not heard, the server rolls the claim back when its lease ends
            with suppress(StorageError):
                self._call("claim_abort", {"lease": lease}, retry_s=min(self.retry_s, 5.0))
            raise
        done = self._call("claim_commit", {"lease": lease})
        # the server's count after its commit (None, e.g. after a lost acknowledgement: the
        # next claim then reads every trial)
        claim.changes = done.get("changes") if isinstance(done, dict) else None

    def claim_with(
        self, sweep_id: int, decide: Callable[[Claim], T], *, since: int | None = None
    ) -> T:
        deadline = time.monotonic() + self.retry_s
        while True:
            try:
                with self.claim(sweep_id, since=since) as c:
                    return decide(c)
            except ClaimLostError:
                if time.monotonic() > deadline:
                    raise

    # --- trials --------------------------------------------------------------------------
    def log_metrics(self, trial_id: int, epoch: int, metrics: Mapping[str, float]) -> None:
        values = {k: float(v) for k, v in metrics.items()}
        self._call("log_metrics", {"trial_id": trial_id, "epoch": epoch, "metrics": values})

    def finish_trial(
        self,
        trial_id: int,
        state: TrialState,
        value: float | None,
        *,
        epochs: int | None = None,
        message: str | None = None,
        failure: FailureKind | None = None,
        objective_values: Sequence[float] | None = None,
        violation: float | None = None,
    ) -> bool:
        state = TrialState(state)
        if state is TrialState.RUNNING:
            raise StorageError("finish_trial needs a final state, not RUNNING")
        vector = None if objective_values is None else [float(v) for v in objective_values]
        args = {
            "objective_values": vector,
            "violation": None if violation is None else float(violation),
            "trial_id": trial_id,
            "state": state.value,
            "value": None if value is None else float(value),
            "epochs": epochs,
            "message": message,
            "failure": None if failure is None else FailureKind(failure).value,
        }
        return bool(self._call("finish_trial", args))

    def heartbeat(self, trial_ids: Sequence[int]) -> None:
        if trial_ids:
            self._call("heartbeat", {"trial_ids": [int(i) for i in trial_ids]})

    def get_trials(
        self, sweep_id: int, *, states: Sequence[TrialState] | None = None
    ) -> list[TrialRecord]:
        wanted = None if states is None else [TrialState(s).value for s in states]
        rows = self._call("get_trials", {"sweep_id": sweep_id, "states": wanted})
        return [_wire.trial_from(d) for d in rows]

    def get_metrics(self, trial_id: int) -> dict[int, dict[str, float]]:
        return _wire.int_keys(self._call("get_metrics", {"trial_id": trial_id}))

    def get_curves(self, sweep_id: int, metric: str) -> dict[int, dict[int, float]]:
        curves = self._call("get_curves", {"sweep_id": sweep_id, "metric": metric})
        return {int(n): _wire.int_keys(c) for n, c in curves.items()}

    # --- checkpoints -----------------------------------------------------------------------
    def add_checkpoint(self, trial_id: int, epoch: int, path: str, value: float | None) -> None:
        args = {"trial_id": trial_id, "epoch": epoch, "path": path, "value": value}
        self._call("add_checkpoint", args)

    def delete_checkpoints(self, trial_id: int, epochs: Sequence[int]) -> None:
        self._call("delete_checkpoints", {"trial_id": trial_id, "epochs": [int(e) for e in epochs]})

    def set_trial_attrs(self, trial_id: int, attrs: Mapping[str, Any]) -> None:
        self._call("set_trial_attrs", {"trial_id": trial_id, "attrs": dict(attrs)})

    def discard_epochs(self, trial_id: int, after: int) -> None:
        self._call("discard_epochs", {"trial_id": trial_id, "after": after})

    def get_checkpoints(self, sweep_id: int) -> dict[int, list[CheckpointRecord]]:
        got = self._call("get_checkpoints", {"sweep_id": sweep_id})
        return {int(n): [CheckpointRecord(**c) for c in cks] for n, cks in got.items()}

    def fail_stale_trials(
        self,
        sweep_id: int,
        *,
        older_than_s: float,
        is_alive: Callable[[str], bool | None],
        max_losses: int = 2,
    ) -> list[TrialRecord]:
        # Liveness is judged here (it may look at this machine's processes); the server
        # applies the verdicts, and a worker it has no verdict for is judged by its heartbeat.
        running = self.get_trials(sweep_id, states=[TrialState.RUNNING])
        verdicts = {w: is_alive(w) for w in {t.worker or "" for t in running}}
        args = {
            "sweep_id": sweep_id,
            "older_than_s": older_than_s,
            "verdicts": verdicts,
            "max_losses": max_losses,
        }
        return [_wire.trial_from(d) for d in self._call("fail_stale_trials", args)]

    def close(self) -> None:
        """Nothing to release by default (the HTTP store closes its connection)."""


class ServedStorage(RemoteStorage):
    """A store served over HTTP by another process (:class:`~hpo_lightning.storage.StoreServer`).

    Args:
        url: ``hpo+http://HOST:PORT/``.
        token: the server's token; ``$HPO_LIGHTNING_STORE_TOKEN`` when not given.
        retry_s: how long an operation keeps retrying while the server cannot be reached.
        connect_s: how long opening the store waits for the server to answer.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        retry_s: float = _RETRY_S,
        connect_s: float = _CONNECT_S,
    ) -> None:
        self.host, self.port = _parse(url)
        shown = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 address
        self.url = f"{_wire.SCHEME}{shown}:{self.port}/"
        token = token if token is not None else os.environ.get(_wire.TOKEN_ENV)
        if not token:
            raise InvalidStorageError(
                f"the served store {self.url} needs its token: set ${_wire.TOKEN_ENV} to the "
                "token of the process that serves it"
            )
        self._token = token
        self.retry_s = float(retry_s)
        self._local = threading.local()
        self._hello(connect_s)

    def _conn(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            conn = http.client.HTTPConnection(self.host, self.port, timeout=_READ_TIMEOUT_S)
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            conn.close()
        self._local.conn = None

    def _exchange(self, op: str, args: Mapping[str, Any]) -> tuple[int, Any]:
        conn = self._conn()
        try:
            conn.request(
                "POST",
                f"/v{_wire.PROTOCOL}/{op}",
                body=_wire.encode(dict(args)),
                headers={
                    "Authorization": f"Bearer {self._token}",
                    "Content-Type": "application/json",
                },
            )
            resp = conn.getresponse()
            data = resp.read()
        except BaseException:
            self._drop()
            raise
        return resp.status, _wire.decode(data) if data else {}

    def close(self) -> None:
        self._drop()

    # --- pickling (DDP spawn, Ray and submitit send the store to other processes) ---------
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_local"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"ServedStorage({self.url!r})"
