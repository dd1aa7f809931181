"""What a sweep shows while it runs: a rich progress bar on a terminal, log lines otherwise."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import Any

from hpo_lightning._trial import TrialState
from hpo_lightning.storage import TrialRecord


def summarize(trials: Sequence[TrialRecord], mode: str) -> dict[str, Any]:
    """Counts per state and the best complete trial."""
    counts = {s: 0 for s in TrialState}
    best: TrialRecord | None = None
    for t in trials:
        counts[t.state] += 1
        if (
            t.state is TrialState.COMPLETE
            and t.value is not None
            and (
                best is None
                or best.value is None
                or (t.value < best.value if mode == "min" else t.value > best.value)
            )
        ):
            best = t
    return {
        "done": counts[TrialState.COMPLETE] + counts[TrialState.PRUNED],
        "complete": counts[TrialState.COMPLETE],
        "pruned": counts[TrialState.PRUNED],
        "failed": counts[TrialState.FAILED],
        "running": counts[TrialState.RUNNING],
        "interrupted": counts[TrialState.INTERRUPTED],
        "lost": counts[TrialState.LOST],
        "best": best,
    }


def _fmt(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.6g}"


class ProgressDisplay:
    """Shows trials done/total, running, failed and the best value so far.

    ``style`` is "bar" (rich, for terminals), "lines" (one line per finished trial, for logs
    and CI) or "quiet" (nothing). ``auto`` picks bar on a terminal, lines otherwise.
    """

    def __init__(self, name: str, total: int, monitor: str, mode: str, style: str = "auto") -> None:
        if style == "auto":
            style = "bar" if sys.stderr.isatty() else "lines"
        self.style = style
        self.name, self.total, self.monitor, self.mode = name, total, monitor, mode
        self._seen: set[int] = set()
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> ProgressDisplay:
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
        s = summarize(trials, self.mode)
        best = s["best"]
        info = (
            f"running {s['running']}  failed {s['failed']}  pruned {s['pruned']}  "
            f"best {self.monitor}={_fmt(best.value if best else None)}"
        )
        if self.style == "bar" and self._progress is not None:
            self._progress.update(self._task, completed=min(s["done"], self.total), info=info)
        elif self.style == "lines":
            for t in trials:
                if t.state is TrialState.RUNNING or t.number in self._seen:
                    continue
                self._seen.add(t.number)
                detail = f"{self.monitor}={_fmt(t.value)}"
                if t.state is TrialState.FAILED or t.state.requeued:
                    detail = (t.message or "").splitlines()[0][:120] if t.message else "failed"
                print(
                    f"[{self.name}] trial {t.number} {t.state.value}: {detail} "
                    f"(done {s['done']}/{self.total}, {info})",
                    file=sys.stderr,
                    flush=True,
                )
