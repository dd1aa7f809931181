"""The launcher interface: *where* a sweep's workers run (the role beside tuner and scheduler).

Contract for every :class:`Launcher` (checked by ``hpo_lightning.testing.LauncherContract``):

* ``validate`` refuses, with a one-line :class:`~hpo_lightning.exceptions.UserInputError`, what
  cannot run (resources no machine has, an engine that is not installed or not reachable) before
  the driver writes anything.
* ``start`` starts one worker per :class:`WorkerSpec`; each runs
  :func:`hpo_lightning.sweep.run_worker` (the same loop as a serial sweep) and nothing else. A
  launcher never claims trials, never reads or writes the store and never decides anything.
* ``wait`` returns the workers that exited since the last call (soon after they exit).
* ``stop()`` asks every worker to stop: no new trial starts, running trials end at their next
  epoch boundary and are requeued (stored INTERRUPTED). ``stop(now=True)`` ends them at once.
  After ``stop`` and ``wait`` returned every worker, no worker process is left.
* No worker outlives the process that started it (the parent being killed included).
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from hpo_lightning.sweep._config import SweepConfig


class WorkerExit(enum.IntEnum):
    """How a worker ended: its process exit code, as data."""

    DONE = 0  # the sweep (or this worker's limit) is done, or the tuner is exhausted
    FAILURES = 1  # the sweep reached max_failures
    BAD_INPUT = 2  # a wrong monitor or metric type: every trial would fail alike
    INTERRUPTED = 130  # stopped by a stop request (Ctrl-C, SIGTERM, the launcher's stop)
    TERMINATED = 143  # SIGTERM (the same stop as INTERRUPTED, reported as the shell does)
    CRASHED = 255  # the worker died (killed, segfault, an unexpected error)

    @classmethod
    def of(cls, code: int | None) -> WorkerExit:
        """The exit of a process exit code (negative: killed by a signal)."""
        try:
            return cls(code if code is not None else cls.CRASHED)
        except ValueError:
            return cls.CRASHED


@dataclass(frozen=True)
class WorkerSpec:
    """What one worker needs. A remote worker may rebuild ``config`` from the store instead.

    Attributes:
        config: the sweep (its ``objective`` may be a Python callable).
        index: 0-based index of the worker in this launch.
        max_trials: stop once the sweep has this many finished trials (None: n_trials).
        env: environment variables to set in the worker (e.g. ``CUDA_VISIBLE_DEVICES``).
        cpus: CPU cores this worker may use for its math threads (None: all).
    """

    config: SweepConfig
    index: int
    max_trials: int | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    cpus: int | None = None


@dataclass(frozen=True)
class Exited:
    """A worker that exited: its index and how it ended."""

    index: int
    exit: WorkerExit
    code: int | None = None  # the raw exit code, when there is one


class Launcher(ABC):
    """Starts, watches and stops a sweep's workers. See the module docstring for the contract.

    Example:
        >>> from hpo_lightning.launchers import make_launcher
        >>> make_launcher("local").name
        'local'
    """

    name: ClassVar[str]

    def plan(self, config: SweepConfig, n_workers: int | str) -> list[WorkerSpec]:
        """Validate and lay out ``n_workers`` workers (an int or "auto") for ``config``.

        The default lays out ``n_workers`` identical workers ("auto": one); launchers that
        place work on devices override it. Raises UserInputError for what cannot run.
        """
        n = n_workers if isinstance(n_workers, int) else 1
        self.validate(config, n)
        return [WorkerSpec(config=config, index=i) for i in range(n)]

    @abstractmethod
    def validate(self, config: SweepConfig, n_workers: int | str) -> None:
        """Refuse (UserInputError, one line) what cannot run, before anything is written.

        Cheap: it must not start an engine; ``plan`` and ``start`` may connect to one."""

    @abstractmethod
    def start(self, specs: Sequence[WorkerSpec]) -> None:
        """Start one worker per spec."""

    @abstractmethod
    def wait(self, timeout: float) -> list[Exited]:
        """Workers that exited since the last call; returns early when one exits."""

    @abstractmethod
    def running(self) -> int:
        """How many started workers have not been returned by ``wait`` yet."""

    @abstractmethod
    def stop(self, *, now: bool = False, signum: int | None = None) -> None:
        """Ask every worker to stop (see the contract); ``now`` ends running trials at once.

        ``signum``: the signal that stopped the driver (Ctrl-C's SIGINT, SIGTERM), if one
        did; a launcher that signals its workers sends that one where it can, so that a
        worker's interrupted trials name the real cause (None: SIGTERM)."""

    def describe(self) -> dict[str, Any]:
        """What ``status`` may show of this launch (e.g. job ids); JSON values."""
        return {"launcher": self.name}

    def close(self) -> None:
        """Release what the launcher holds (connections, temp files)."""

    def __enter__(self) -> Launcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
