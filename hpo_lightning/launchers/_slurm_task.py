"""What one task of the Slurm launcher's job array runs: a Worker, then its exit code on disk.

submitit calls :class:`SlurmTask` in the job. Its ``checkpoint`` makes the task requeueable:
when Slurm warns of a timeout or a preemption (``USR2`` ahead of the kill), submitit calls it,
the running trial is stopped (stored INTERRUPTED, so its params go back to the queue), and
submitit requeues the task, which then joins the sweep again. SIGTERM (``scancel``) stops the
worker by the stop contract. The exit code is written as JSON (``exits/<task>.json`` in the
job folder) for the driver, which does not depend on Slurm's accounting (``sacct``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from hpo_lightning.launchers._base import WorkerExit, WorkerSpec


def exit_file(folder: str | Path, index: int) -> Path:
    return Path(folder) / "exits" / f"{index}.json"


class SlurmTask:
    """The callable submitted per array task (picklable: it holds only the job folder)."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self._token: Any = None
        self._requeued = False

    def __call__(self, spec: WorkerSpec) -> int:
        from hpo_lightning.sweep._run import run_worker
        from hpo_lightning.sweep._stop import StopToken

        self._token = StopToken()
        code = int(WorkerExit.CRASHED)
        try:
            code = run_worker(spec, token=self._token)
        finally:
            path = exit_file(self.folder, spec.index)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"code": code, "job": os.environ.get("SLURM_JOB_ID")}))
            tmp.replace(path)
        if self._requeued:
            # submitit ended the trial with SystemExit to requeue the task; the worker stored
            # the trial INTERRUPTED and returned, so say "requeue me" as submitit would have
            sys.exit(_requeue_code())
        return code

    def checkpoint(self, spec: WorkerSpec) -> Any:
        """Called by submitit on a timeout or preemption warning: requeue this task.

        The running trial is asked to stop now; submitit then exits the process (SystemExit
        inside the trial), which stores the trial INTERRUPTED.
        """
        from submitit.helpers import DelayedSubmission

        if self._token is not None:
            self._token.request(now=True, reason="Slurm timeout or preemption: task requeued")
        self._requeued = True
        return DelayedSubmission(SlurmTask(self.folder), spec)

    def __getstate__(self) -> dict[str, Any]:
        return {"folder": self.folder}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.folder = state["folder"]
        self._token = None
        self._requeued = False


def _requeue_code() -> int:
    """The exit code by which a task asks submitit's controller to run it again."""
    if os.environ.get("SUBMITIT_EXECUTOR") == "local":
        from submitit.local.local import LOCAL_REQUEUE_RETURN_CODE

        return int(LOCAL_REQUEUE_RETURN_CODE)
    return -1  # Slurm: `scontrol requeue` (done by submitit) already put the task back
