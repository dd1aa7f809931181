"""What the plots share: matplotlib loaded lazily (Agg canvas, no pyplot), trial selection."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hpo_lightning._trial import TrialState
from hpo_lightning.exceptions import missing_extra
from hpo_lightning.storage import TrialRecord


def new_figure(width: float = 8.0, height: float = 4.5) -> Any:
    """A matplotlib Figure on an Agg canvas (pyplot's global backend is left alone)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise missing_extra("matplotlib", "plots", "plotting") from exc
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def scored(trials: Sequence[TrialRecord]) -> list[TrialRecord]:
    """Complete trials with a finite value, by number (what the tuner learnt from)."""
    return sorted(
        (
            t
            for t in trials
            if t.state is TrialState.COMPLETE and t.value is not None and math.isfinite(t.value)
        ),
        key=lambda t: t.number,
    )


def empty_note(fig: Any, text: str) -> None:
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center")
