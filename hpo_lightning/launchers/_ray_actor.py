"""What runs inside a Ray actor of the Ray launcher: one long-lived Worker per actor.

The actor is threaded (two concurrent calls): ``run`` runs the worker loop, ``stop`` arrives
beside it and sets the worker's stop token. A Lightning trial then stops at its next epoch
boundary; a plain-Python objective (no epoch boundary), or any trial after a second stop, is
interrupted by raising KeyboardInterrupt in the worker's thread -- what a signal does to a
local worker's main thread. Either way the trial is stored INTERRUPTED and requeued.
"""

from __future__ import annotations

import ctypes
import os
import socket
import sys
import threading
from collections.abc import Sequence
from typing import Any

from hpo_lightning.launchers._base import WorkerExit, WorkerSpec


class WorkerActor:
    """The actor's class (wrapped by ``ray.remote`` in the launcher)."""

    def __init__(self, driver_path: Sequence[str]) -> None:
        # The driver's import path (its cwd, a sweep file's directory): on the driver's own
        # machine the actor then imports what the driver imports. Elsewhere those paths do not
        # exist and change nothing (ship the code with Ray's runtime_env there).
        for entry in driver_path:
            if entry and entry not in sys.path and os.path.isdir(entry):
                sys.path.append(entry)
        from hpo_lightning.sweep._stop import StopToken

        self.token = StopToken()
        self._thread_id: int | None = None

    def where(self) -> dict[str, Any]:
        """Where this actor runs (host, pid, the GPUs Ray gave it)."""
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        }

    def run(self, spec: WorkerSpec) -> int:
        from hpo_lightning.sweep._run import run_worker

        self._thread_id = threading.get_ident()
        try:
            return run_worker(spec, token=self.token)
        except KeyboardInterrupt:  # raised by stop() between two trials
            return int(WorkerExit.INTERRUPTED)
        finally:
            self._thread_id = None

    def stop(self, now: bool) -> None:
        token = self.token
        token.request(now=now, reason="stopped by the sweep's driver")
        if token.now or (token.in_objective and not token.in_fit):
            self._interrupt()

    def _interrupt(self) -> None:
        """Raise KeyboardInterrupt in the worker's thread (at its next Python instruction)."""
        ident = self._thread_id
        if ident is not None:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(ident), ctypes.py_object(KeyboardInterrupt)
            )
