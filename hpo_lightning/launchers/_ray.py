"""The Ray launcher: one long-lived Ray actor per concurrent trial slot, each running a Worker.

``launcher: {name: ray, address: auto}`` (extra ``[ray]``). Ray Core only, not Ray Tune: an
actor starts once and runs the same worker loop as a local process (claim, run, record), so a
trial costs a claim, not a new process. ``resources:`` become each actor's resource request
(``cpus_per_trial`` -> ``num_cpus``, default 1; ``gpus_per_trial`` -> ``num_gpus``, fractions
allowed), so Ray places the actors and sets ``CUDA_VISIBLE_DEVICES`` for each.

* **Cluster.** ``address:`` connects to a running cluster (``auto``, ``HOST:PORT``,
  ``ray://HOST:PORT``); without it a Ray instance already initialised in this process is used,
  else a local one is started (``num_cpus``/``num_gpus`` size it) and shut down at the end.
* **Store.** A ``postgresql://`` store (or a served ``hpo+http://`` one) is opened by every
  actor. A SQLite file is served to the actors *through Ray itself*: a store actor on the
  driver's node owns the file and the workers call it (``hpo+ray://``, see
  ``storage/_served/_ray.py``), so the cluster needs neither a database server nor a shared
  filesystem. (With ``ray://`` the driver is outside the cluster and its file cannot be
  reached: use PostgreSQL there.)
* **Failures.** An actor (or node) that dies loses its trial; the driver marks it LOST and
  starts another actor, and the trial's params run again. ``stop()`` (Ctrl-C on the driver)
  ends trials at their next epoch boundary, INTERRUPTED; after a second stop and ``grace_s``
  the remaining actors are killed. No actor outlives the driver: Ray ends the actors of a
  driver that exits.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, ClassVar
from urllib.parse import urlsplit

from hpo_lightning.exceptions import ConfigError, missing_extra
from hpo_lightning.launchers._base import Exited, Launcher, WorkerExit, WorkerSpec
from hpo_lightning.launchers._resources import Resources, visible_gpus

log = logging.getLogger("hpo_lightning")

# Whether this process's Ray connection was opened by a Ray launcher (which then shuts it
# down), as opposed to the user's own ray.init. One connection per process is Ray's model.
_OWNED = {"ray": False}
_SHARED_STORES = ("postgresql://", "postgres://", "postgresql+psycopg://", "hpo+http://")


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise missing_extra("ray", "ray", "the ray launcher") from None
    return ray


@contextmanager
def _keep_signal_handlers() -> Iterator[None]:
    """ray.init installs its own SIGTERM handler in the driver; the sweep's stop contract
    owns SIGINT and SIGTERM, so put back what was there."""
    main = threading.current_thread() is threading.main_thread()
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)} if main else {}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            if handler is not None:
                signal.signal(sig, handler)


def _reachable(address: str) -> str | None:
    """Why ``HOST:PORT`` (or ``ray://HOST:PORT``) cannot be reached, or None."""
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or port is None:
        return "it is not HOST:PORT, ray://HOST:PORT or auto"
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as exc:
        return f"nothing answers there ({exc.strerror or exc})"
    return None


class RayLauncher(Launcher):
    """Workers as Ray actors (see the module docstring).

    Args:
        address: the Ray cluster to use (``auto``, ``HOST:PORT``, ``ray://HOST:PORT``); None:
            the Ray instance of this process, else a new local one.
        num_cpus / num_gpus: size of a local instance started here (default: this machine's).
        runtime_env: Ray's runtime environment for the actors (e.g. ``{working_dir: .}`` to
            ship the objective's code to other nodes).
        grace_s: after a second stop request, seconds the actors get before they are killed.
        lease_s: how long a silent claim holds the served store (see the served store).

    Example:
        >>> RayLauncher(address="auto").name
        'ray'
    """

    name: ClassVar[str] = "ray"

    def __init__(
        self,
        *,
        address: str | None = None,
        num_cpus: int | None = None,
        num_gpus: float | None = None,
        runtime_env: Mapping[str, Any] | None = None,
        grace_s: float = 30.0,
        lease_s: float = 30.0,
    ) -> None:
        if address is not None and (not isinstance(address, str) or not address.strip()):
            raise ConfigError(
                f"launcher 'ray': `address` must be auto, HOST:PORT or ray://HOST:PORT, "
                f"but got {address!r}"
            )
        for key, value in (("num_cpus", num_cpus), ("num_gpus", num_gpus)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0
            ):
                raise ConfigError(f"launcher 'ray': `{key}` must be >= 0, but got {value!r}")
        for key, value in (("grace_s", grace_s), ("lease_s", lease_s)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError(f"launcher 'ray': `{key}` must be > 0 seconds, got {value!r}")
        if runtime_env is not None and not isinstance(runtime_env, Mapping):
            raise ConfigError(f"launcher 'ray': `runtime_env` must be a mapping: {runtime_env!r}")
        self.address = address
        self.num_cpus, self.num_gpus = num_cpus, num_gpus
        self.runtime_env = dict(runtime_env) if runtime_env else None
        self.grace_s, self.lease_s = float(grace_s), float(lease_s)
        self._running: dict[Any, tuple[int, Any]] = {}  # ObjectRef of run() -> (index, actor)
        self._store: tuple[str, str, Any] | None = None  # (location, served URL, store actor)
        self._stops = 0
        self._stopped_at: float | None = None

    # --- checks -------------------------------------------------------------------------
    def validate(self, config: Any, n_workers: int | str) -> None:
        ray = import_ray()
        res = Resources.from_mapping(config.resources)
        location = config.storage_location()
        if location == ":memory:":
            raise ConfigError(
                "launcher 'ray': an in-memory store (':memory:') cannot be shared with Ray "
                "actors; give a SQLite file path or a postgresql:// URL"
            )
        address = self.address
        if str(address).startswith("ray://") and not location.startswith(_SHARED_STORES):
            raise ConfigError(
                f"launcher 'ray': with address {address!r} this process runs outside the "
                f"cluster, whose actors cannot reach the store {location}; give a "
                "postgresql:// store they can reach (or run the sweep on the head node with "
                "address: auto)"
            )
        if address is not None and address != "auto" and not ray.is_initialized():
            why = _reachable(address)
            if why:
                raise ConfigError(
                    f"launcher 'ray': cannot reach the Ray cluster at address {address!r}: "
                    f"{why}; start it (ray start --head) or fix `address`"
                )
        if address is not None or ray.is_initialized():
            self._connect()  # an existing cluster: its nodes say what fits
        _check_fits(res, self._nodes())

    def plan(self, config: Any, n_workers: int | str) -> list[WorkerSpec]:
        """One spec per actor; ``auto``: as many actors as the cluster's nodes fit at once."""
        self.validate(config, n_workers)
        res = Resources.from_mapping(config.resources)
        fits = sum(_fits(res, node) for node in self._nodes())
        n = fits if n_workers == "auto" else int(n_workers)
        if n > fits:
            log.warning(
                "launcher 'ray': %d workers asked, the cluster fits %d at once "
                "(resources per trial: %s); the others wait for room",
                n,
                fits,
                _request(res),
            )
        return [WorkerSpec(config=config, index=i, cpus=res.cpus_per_trial) for i in range(n)]

    def _nodes(self) -> list[Mapping[str, float]]:
        """Each node's total resources (the planned local instance before it is started)."""
        ray = import_ray()
        if ray.is_initialized():
            return [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        cpus = self.num_cpus if self.num_cpus is not None else os.cpu_count() or 1
        gpus = self.num_gpus if self.num_gpus is not None else len(visible_gpus()[0])
        return [{"CPU": float(cpus), "GPU": float(gpus)}]

    # --- the engine -----------------------------------------------------------------------
    def _connect(self) -> Any:
        ray = import_ray()
        if ray.is_initialized():
            return ray
        options: dict[str, Any] = {"configure_logging": False, "log_to_driver": True}
        if self.address is not None:
            options["address"] = self.address
        else:
            options.update(num_cpus=self.num_cpus, num_gpus=self.num_gpus)
            options["include_dashboard"] = False
        try:
            with _keep_signal_handlers():
                ray.init(**options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(
                f"launcher 'ray': cannot connect to Ray at address {self.address!r}: {first}"
            ) from None
        _OWNED["ray"] = True
        return ray

    def _store_url(self, location: str) -> str:
        """The store the actors open: the same URL, or the SQLite file served through Ray."""
        if location.startswith((*_SHARED_STORES, "hpo+ray://")):
            return location
        if self._store is None or self._store[0] != location:
            from hpo_lightning.storage._served._ray import start_store_actor

            path = location.removeprefix("sqlite:///")
            url, actor = start_store_actor(os.path.abspath(path), lease_s=self.lease_s)
            self._store = (location, url, actor)
        return self._store[1]

    # --- running ----------------------------------------------------------------------------
    def start(self, specs: Sequence[WorkerSpec]) -> None:
        ray = self._connect()
        from hpo_lightning.launchers._ray_actor import WorkerActor
        from hpo_lightning.storage import TOKEN_ENV

        actor_cls = ray.remote(WorkerActor)
        for spec in specs:
            url = self._store_url(spec.config.storage_location())
            env = dict(spec.env)
            if url.startswith("hpo+http://") and os.environ.get(TOKEN_ENV):
                env[TOKEN_ENV] = os.environ[TOKEN_ENV]  # travels with the call, never stored
            res = Resources.from_mapping(spec.config.resources)
            shipped = replace(spec, config=replace(spec.config, storage=url), env=env)
            options: dict[str, Any] = {
                "num_cpus": res.cpus_per_trial or 1,
                "num_gpus": res.gpus_per_trial,
                "max_concurrency": 2,  # run() and stop() side by side
                "max_restarts": 0,
                "name": None,
            }
            if self.runtime_env:
                options["runtime_env"] = self.runtime_env
            actor = actor_cls.options(**options).remote(list(sys.path))
            self._running[actor.run.remote(shipped)] = (spec.index, actor)

    def wait(self, timeout: float) -> list[Exited]:
        if not self._running:
            self._release()
            return []
        ray = import_ray()
        refs = list(self._running)
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        if ready:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        out = []
        for ref in ready:
            index, actor = self._running.pop(ref)
            try:
                code: int | None = int(ray.get(ref))
                how = WorkerExit.of(code)
            except ray.exceptions.RayError as exc:  # the actor (or its node) died
                log.warning("ray worker %d died: %s", index, str(exc).strip().splitlines()[0])
                code, how = None, WorkerExit.CRASHED
            ray.kill(actor)  # its process ends and its resources are free again
            out.append(Exited(index, how, code))
        stopped = self._stopped_at
        if stopped is not None and self._stops >= 2 and time.monotonic() - stopped > self.grace_s:
            self._kill_all()
        if not self._running:
            self._release()
        return out

    def running(self) -> int:
        return len(self._running)

    def stop(self, *, now: bool = False, signum: int | None = None) -> None:
        self._stops = 2 if now else self._stops + 1
        if self._stopped_at is None or now:
            self._stopped_at = time.monotonic()
        for _, actor in self._running.values():
            actor.stop.remote(self._stops >= 2)

    def describe(self) -> dict[str, Any]:
        return {"launcher": self.name, "address": self.address, "actors": len(self._running)}

    def _kill_all(self) -> None:
        ray = import_ray()
        for _, actor in self._running.values():
            ray.kill(actor)

    def _release(self) -> None:
        """End the store actor, and the local Ray instance this launcher started."""
        ray = sys.modules.get("ray")
        if ray is None or not ray.is_initialized():
            return
        if self._store is not None:
            ray.kill(self._store[2])
            self._store = None
        if _OWNED["ray"]:
            _OWNED["ray"] = False
            ray.shutdown()

    def close(self) -> None:
        if self._running:
            self._kill_all()
            self._running.clear()
        self._release()


def _request(res: Resources) -> dict[str, float]:
    return {"CPU": float(res.cpus_per_trial or 1), "GPU": float(res.gpus_per_trial)}


def _fits(res: Resources, node: Mapping[str, float]) -> int:
    """How many actors of ``res`` one node holds at once."""
    counts = [
        math.floor(node.get(kind, 0.0) / need + 1e-9)
        for kind, need in _request(res).items()
        if need > 0
    ]
    return min(counts) if counts else 0


def _check_fits(res: Resources, nodes: list[Mapping[str, float]]) -> None:
    if any(_fits(res, n) for n in nodes):
        return
    largest = max(nodes, key=lambda n: (n.get("GPU", 0.0), n.get("CPU", 0.0)), default={})
    raise ConfigError(
        f"launcher 'ray': no node of the Ray cluster can hold one trial's resources "
        f"(cpus_per_trial: {res.cpus_per_trial or 1}, gpus_per_trial: {res.gpus_per_trial}); "
        f"the largest has {largest.get('CPU', 0):g} CPUs and {largest.get('GPU', 0):g} GPUs -- "
        "lower `resources` or add nodes"
    )
