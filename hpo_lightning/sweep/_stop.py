"""The stop contract of a worker: Ctrl-C, SIGTERM, a launcher's stop, a parent that died.

1. The first stop request (Ctrl-C, SIGTERM, ``Worker.stop()``, the parent's death) starts no
   new trial; a trial inside a Lightning fit stops at its next epoch boundary (Lightning itself
   stops a fit at the next batch on SIGTERM) and is stored INTERRUPTED; a plain-Python
   objective, which has no epoch boundary, is interrupted at once.
2. A second request ends the running trial at once (KeyboardInterrupt), also INTERRUPTED.
3. INTERRUPTED trials are requeued: the next run starts with their params and never counts
   them as failures. The process exits 130 after SIGINT, 143 after SIGTERM.

The token is plain data shared by the worker loop, the signal handlers and the callback; the
callback reads it through ``requested``/``now`` and marks its fit with ``in_fit``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator

SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}


class StopToken:
    """How far a stop was requested: 0 run on, 1 stop at the next boundary, 2 stop now."""

    def __init__(self) -> None:
        self._level = 0
        self.signum: int | None = None  # the first signal that asked, if a signal did
        self.reason = ""
        self.in_fit = False  # a Lightning fit is running (set by the callback)
        self.in_objective = False  # the objective is running (set by the worker)
        self._lock = threading.Lock()

    @property
    def requested(self) -> bool:
        return self._level >= 1

    @property
    def now(self) -> bool:
        return self._level >= 2

    def request(self, *, now: bool = False, signum: int | None = None, reason: str = "") -> None:
        with self._lock:
            self._level = max(self._level + 1 if self._level else 1, 2 if now else 1)
            self._level = min(self._level, 2)
            if self.signum is None and signum is not None:
                self.signum = signum
            if not self.reason:
                self.reason = reason or _describe(signum)

    def exit_code(self) -> int:
        """130 after SIGINT (or a stop without a signal), 143 after SIGTERM."""
        return SIGNAL_EXIT.get(signal.Signals(self.signum), 130) if self.signum else 130

    def message(self) -> str:
        return f"interrupted: {self.reason or 'stop requested'}"


def _describe(signum: int | None) -> str:
    if signum == signal.SIGINT:
        return "stopped by Ctrl-C (SIGINT)"
    if signum == signal.SIGTERM:
        return "stopped by SIGTERM"
    return "stop requested"


@contextlib.contextmanager
def stop_on_signals(token: StopToken) -> Iterator[None]:
    """Route SIGINT and SIGTERM to ``token`` while the block runs (main thread only).

    A signal whose disposition is SIG_IGN (e.g. SIGINT under ``nohup ... &``) stays ignored.
    Only the objective is ever interrupted (KeyboardInterrupt): by the first signal when no
    Lightning fit is running (a plain objective has no epoch boundary), by the second in any
    case. Outside the objective (claiming, recording) a signal only sets the token, which the
    worker loop reads before its next claim, so no store write is cut in half.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        token.request(signum=signum)
        if token.in_objective and (token.now or not token.in_fit):
            raise KeyboardInterrupt

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        current = signal.getsignal(sig)
        if current is signal.SIG_IGN:
            continue
        previous[sig] = current
        signal.signal(sig, handler)
    token.handler = handler  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def reinstall(token: StopToken) -> None:
    """Put the token's handlers back (Lightning sets SIGINT to SIG_IGN after a Ctrl-C)."""
    handler = getattr(token, "handler", None)
    if handler is None or threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is not handler:
            signal.signal(sig, handler)


def die_with_parent() -> None:
    """Ask Linux to send this process SIGTERM when its parent dies (prctl PR_SET_PDEATHSIG).

    Elsewhere this does nothing; :class:`ParentWatch` covers every platform.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        return


class ParentWatch:
    """A daemon thread that requests a stop when this process's parent is gone."""

    def __init__(self, token: StopToken, parent_pid: int, interval_s: float = 1.0) -> None:
        self.token, self.parent_pid, self.interval_s = token, parent_pid, interval_s
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hpo-parent-watch", daemon=True)

    def start(self) -> ParentWatch:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._done.wait(self.interval_s):
            if os.getppid() != self.parent_pid:
                self.token.request(reason="its parent process is gone")
                if self.token.in_objective and not self.token.in_fit:
                    # a plain objective has no epoch boundary: stop the worker's main thread
                    os.kill(os.getpid(), signal.SIGTERM)
                return

    def stop(self) -> None:
        self._done.set()
