"""The server half of a served store: a real store behind HTTP, for workers that cannot reach it.

A sweep whose store is a SQLite file (or that has no database server the workers can reach)
serves its store from its own process; workers elsewhere open ``hpo+http://HOST:PORT/`` with
the token in ``HPO_LIGHTNING_STORE_TOKEN`` (see :class:`~hpo_lightning.storage.ServedStorage`).

* **Authentication.** Every request carries ``Authorization: Bearer TOKEN``, compared in
  constant time; a request without the right token gets 401 and touches nothing. The token is
  never logged, never part of a URL and never stored.
* **Address.** The server binds only to the address it is given (default ``127.0.0.1``).
  Traffic is plain HTTP: bind to a private network, or tunnel it (``ssh -L``).
* **Claims** are leases that a silent worker loses after ``lease_s`` (see ``_dispatch.py``).
"""

from __future__ import annotations

import hmac
import logging
import secrets
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from hpo_lightning.exceptions import UserInputError
from hpo_lightning.storage._base import Storage
from hpo_lightning.storage._served import _wire
from hpo_lightning.storage._served._dispatch import (
    DEFAULT_LEASE_S,
    Dispatcher,
    UnknownOperationError,
)

__all__ = ["StoreServer"]

_log = logging.getLogger(__name__)


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
        lease_s: float = DEFAULT_LEASE_S,
    ) -> None:
        if token is not None and len(token) < 16:
            raise UserInputError(
                f"a store token must have at least 16 characters, but got {len(token)}; "
                "leave it out to get a random one"
            )
        self.store = store
        self.token = token or secrets.token_urlsafe(32)
        self.dispatcher = Dispatcher(store, lease_s=lease_s)
        try:
            server_cls = _HTTPServer6 if ":" in host else _HTTPServer
            self._httpd = server_cls((host, port), _Handler)
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
        self.dispatcher.close()

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


class _BadRequest(Exception):
    pass


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    owner: StoreServer


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def do_POST(self) -> None:
        owner = self.server.owner
        if not owner.authorised(self.headers.get("Authorization")):
            _log.warning(
                "refused a request without the right token from %s", self.client_address[0]
            )
            self.close_connection = True  # its body is not read: the connection cannot go on
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
            reply = owner.dispatcher.answer(op, args)
        except (_BadRequest, UnknownOperationError, ValueError, KeyError, TypeError) as exc:
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
