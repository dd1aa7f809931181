"""A store served through Ray itself: an actor owns the store, workers call it (``hpo+ray://``).

The Ray launcher starts a :func:`start_store_actor` on the driver's node, next to the driver's
SQLite file; its actors open ``hpo+ray://NAME/`` and send the served-store operations (JSON
bytes, see ``_wire.py``) as actor calls. A Ray cluster then needs neither a database server
nor a shared filesystem, and no port is opened: Ray's own connections (and authentication)
carry the requests. The actor answers with the same :class:`Dispatcher` as the HTTP server, so
claims are leases here too.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from hpo_lightning.exceptions import InvalidStorageError, missing_extra
from hpo_lightning.storage._served import _wire
from hpo_lightning.storage._served._client import _CONNECT_S, _RETRY_S, RemoteStorage
from hpo_lightning.storage._served._dispatch import (
    DEFAULT_LEASE_S,
    Dispatcher,
    UnknownOperationError,
)

__all__ = ["RAY_SCHEME", "RayStorage", "start_store_actor"]

RAY_SCHEME = "hpo+ray://"
NAMESPACE = "hpo_lightning"
_CALL_TIMEOUT_S = 300.0


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise missing_extra("ray", "ray", "a store served through Ray (hpo+ray://)") from None
    return ray


class StoreActor:
    """The actor's class: a store and a dispatcher (wrapped by ``ray.remote`` when started)."""

    def __init__(self, location: str, lease_s: float) -> None:
        from hpo_lightning.storage import open_storage

        self.store = open_storage(location)
        self.dispatcher = Dispatcher(self.store, lease_s=lease_s)

    def answer(self, op: str, body: bytes) -> tuple[int, bytes]:
        try:
            args = _wire.decode(body)
            return 200, _wire.encode(self.dispatcher.answer(op, args))
        except (UnknownOperationError, ValueError, KeyError, TypeError) as exc:
            return 400, _wire.encode({"error": {"kind": "request", "message": str(exc)}})

    def close(self) -> None:
        self.dispatcher.close()
        self.store.close()


def start_store_actor(location: str, *, lease_s: float = DEFAULT_LEASE_S) -> tuple[str, Any]:
    """Start a store actor on this (the driver's) node for ``location``; its URL and handle.

    Ray must be initialised. The actor takes no CPU and lives until the caller kills it.
    """
    ray = _ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    name = f"hpo-store-{uuid.uuid4().hex[:12]}"
    here = ray.get_runtime_context().get_node_id()
    actor = (
        ray.remote(StoreActor)
        .options(
            name=name,
            namespace=NAMESPACE,
            num_cpus=0,
            max_concurrency=64,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=False),
        )
        .remote(location, lease_s)
    )
    url = f"{RAY_SCHEME}{name}/"
    RayStorage(url, actor=actor).close()  # waits until it answers (or raises)
    return url, actor


class RayStorage(RemoteStorage):
    """A store owned by a Ray actor (see the module docstring); usable inside Ray workers.

    Args:
        url: ``hpo+ray://NAME/`` as :func:`start_store_actor` returned it.
        actor: the actor's handle, when the caller has it (else it is looked up by name).
    """

    def __init__(
        self,
        url: str,
        *,
        actor: Any = None,
        retry_s: float = _RETRY_S,
        connect_s: float = _CONNECT_S,
    ) -> None:
        ray = _ray()
        name = url[len(RAY_SCHEME) :].strip("/")
        if not url.startswith(RAY_SCHEME) or not name or "/" in name:
            raise InvalidStorageError(f"bad Ray store URL {url!r}; use hpo+ray://NAME/")
        self.url = f"{RAY_SCHEME}{name}/"
        self.retry_s = float(retry_s)
        self._transport_errors = (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError)
        if actor is None:
            if not ray.is_initialized():
                raise InvalidStorageError(
                    f"{self.url} is a store served inside a Ray cluster; open it from a Ray "
                    "worker of the sweep that serves it"
                )
            try:
                actor = ray.get_actor(name, namespace=NAMESPACE)
            except ValueError:
                raise InvalidStorageError(
                    f"no store actor {name!r} in this Ray cluster; the sweep that served "
                    f"{self.url} has ended -- start the sweep again"
                ) from None
        self._actor = actor
        self._hello(connect_s)

    def _exchange(self, op: str, args: Mapping[str, Any]) -> tuple[int, Any]:
        ray = _ray()
        ref = self._actor.answer.remote(op, _wire.encode(dict(args)))
        status, body = ray.get(ref, timeout=_CALL_TIMEOUT_S)
        return int(status), _wire.decode(body)

    def __repr__(self) -> str:
        return f"RayStorage({self.url!r})"
