"""What a sweep shows while it runs: a rich progress bar on a terminal, log lines otherwise."""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from hpo_lightning._trial import Mode, TrialState, best_trial
from hpo_lightning.storage import TrialRecord


def state_counts(counts: Mapping[TrialState, int]) -> dict[str, int]:
    """The counts a sweep reports (``done`` is complete + pruned), from counts per state."""
    return {
        "done": counts[TrialState.COMPLETE] + counts[TrialState.PRUNED],
        "complete": counts[TrialState.COMPLETE],
        "pruned": counts[TrialState.PRUNED],
        "failed": counts[TrialState.FAILED],
        "running": counts[TrialState.RUNNING],
        "interrupted": counts[TrialState.INTERRUPTED],
        "lost": counts[TrialState.LOST],
    }


def summarize(trials: Sequence[TrialRecord], mode: Mode) -> dict[str, Any]:
    """Counts per state and the best complete trial (the best feasible one when the sweep
    has constraints: :func:`~hpo_lightning._trial.is_better_trial`)."""
    counts = {s: 0 for s in TrialState}
    for t in trials:
        counts[t.state] += 1
    return {**state_counts(counts), "best": best_trial(trials, mode)}


def _fmt(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.6g}"


class ProgressDisplay:
    """Shows trials done/total, running, failed and the best value so far.

    ``style`` is "bar" (rich, for terminals), "lines" (one line per finished trial, for logs
    and CI) or "quiet" (nothing). ``auto`` picks bar on a terminal, lines otherwise.
    """

    def __init__(
        self,
        name: str,
        total: int,
        monitor: str,
        mode: Mode,
        style: str = "auto",
        *,
        objectives: Sequence[str] = (),
    ) -> None:
        if style == "auto":
            style = "bar" if sys.stderr.isatty() else "lines"
        self.style = style
        self.name, self.total, self.monitor, self.mode = name, total, monitor, mode
        self.objectives = tuple(objectives)  # several: each trial's line shows every one
        self._seen: set[int] = set()
        self._first = True
        self._since = time.time()  # trials finished before this are summed up in one line
        self._lock = threading.Lock()
        self._progress: Any = None
        self._task: Any = None
        self.info = ""  # the last status text shown (running / failed / pruned / best)

    def __enter__(self) -> ProgressDisplay:
        self._since = time.time()
        if self.style == "bar":
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.name, total=self.total, info="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, trials: Sequence[TrialRecord]) -> None:
        """Show the state of ``trials`` (every trial of the sweep). Thread-safe.

        In "lines" style each finished trial is printed once; the trials that had finished
        before the display started (a resumed sweep, a joining worker) are summed up in one
        line at the first update.
        """
        s = summarize(trials, self.mode)
        best = s["best"]
        info = (
            f"running {s['running']}  failed {s['failed']}  pruned {s['pruned']}  "
            f"best {self.monitor}={_fmt(best.value if best else None)}"
        )
        with self._lock:
            self.info = info
            if self.style == "bar" and self._progress is not None:
                self._progress.update(self._task, completed=min(s["done"], self.total), info=info)
            elif self.style == "lines":
                self._print_lines(trials, s, info)
            self._first = False

    def _print_lines(self, trials: Sequence[TrialRecord], s: dict[str, Any], info: str) -> None:
        finished = [t for t in trials if t.state is not TrialState.RUNNING]
        if self._first:
            earlier = [t for t in finished if (t.finished_at or 0.0) < self._since]
            if earlier:
                self._summarize_earlier(earlier)
        for t in finished:
            if t.number in self._seen:
                continue
            self._seen.add(t.number)
            detail = f"{self.monitor}={_fmt(t.value)}"
            if len(self.objectives) > 1 and t.objective_values is not None:
                detail = ", ".join(
                    f"{n}={_fmt(v)}" for n, v in zip(self.objectives, t.objective_values)
                )
            if t.violation:
                detail += f" (infeasible, violation {_fmt(t.violation)})"
            if t.state is TrialState.FAILED or t.state.requeued:
                detail = (t.message or "").splitlines()[0][:120] if t.message else "failed"
            print(
                f"[{self.name}] trial {t.number} {t.state.value}: {detail} "
                f"(done {s['done']}/{self.total}, {info})",
                file=sys.stderr,
                flush=True,
            )

    def _summarize_earlier(self, earlier: Sequence[TrialRecord]) -> None:
        self._seen.update(t.number for t in earlier)
        s = summarize(earlier, self.mode)
        best = s["best"]
        cut = s["interrupted"] + s["lost"]  # cut short and requeued
        print(
            f"[{self.name}] {len(earlier)} trials had finished before this run: "
            f"{s['complete']} complete, {s['pruned']} pruned, {s['failed']} failed"
            + (f", {cut} cut short" if cut else "")
            + f"; best {self.monitor}={_fmt(best.value if best else None)}",
            file=sys.stderr,
            flush=True,
        )

    @contextmanager
    def follow(
        self, read_trials: Callable[[], Sequence[TrialRecord]], *, interval_s: float = 1.0
    ) -> Iterator[None]:
        """Refresh the display from ``read_trials()`` every ``interval_s`` on a daemon thread
        while the block runs, so the bar shows a trial as running while it trains (the serial
        loop itself only updates between trials). Only the "bar" style polls; a failed read
        is skipped (the next one retries).

        Example::

            with display, display.follow(lambda: store.get_trials(sweep_id)):
                run_trials()
        """
        if self.style != "bar":
            yield
            return
        stop = threading.Event()

        def poll() -> None:
            while not stop.wait(interval_s):
                try:
                    self.update(read_trials())
                except Exception:  # a busy or reconnecting store: show the next read
                    continue

        thread = threading.Thread(target=poll, name="hpo-progress", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)
