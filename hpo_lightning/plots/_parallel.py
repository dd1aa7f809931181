"""Parallel coordinates: one line per complete trial across its params, coloured by value."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hpo_lightning._trial import Mode
from hpo_lightning.plots._common import empty_note, new_figure, save, scored
from hpo_lightning.storage import TrialRecord


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def encode_axis(values: Sequence[Any]) -> tuple[list[float], str, str]:
    """Values of one param on [0, 1], with the labels of the axis ends.

    Numbers are scaled min-max (on a log scale when all are positive and span over 100x);
    anything else is categorical, placed by the sorted order of its text.

    Example:
        >>> encode_axis([1, 3, 2])[0]
        [0.0, 1.0, 0.5]
        >>> encode_axis(["b", "a"])
        ([1.0, 0.0], 'a', 'b')
    """
    if values and all(_is_number(v) for v in values):
        nums = [float(v) for v in values]
        lo, hi = min(nums), max(nums)
        log = lo > 0 and hi / lo > 100
        f = math.log10 if log else (lambda x: x)
        a, b = f(lo), f(hi)
        span = (b - a) or 1.0
        return [(f(x) - a) / span for x in nums], f"{lo:.3g}", f"{hi:.3g}"
    labels = sorted({str(v) for v in values})
    pos = {s: i / max(len(labels) - 1, 1) for i, s in enumerate(labels)}
    return [pos[str(v)] for v in values], labels[0] if labels else "", labels[-1] if labels else ""


def plot_parallel(
    trials: Sequence[TrialRecord],
    mode: Mode,
    path: str | Path,
    *,
    monitor: str | None = None,
    sweep: str | None = None,
) -> Path:
    """Save a parallel-coordinates plot of the complete trials as PNG (best drawn on top);
    ``monitor`` names the value axis, ``sweep`` goes into the title."""
    done = scored(trials)
    names = sorted({k for t in done for k in t.params})
    fig = new_figure(max(6.0, 1.6 * (len(names) + 1)), 4.5)
    if not done or not names:
        empty_note(fig, "no complete trial with params yet")
        return save(fig, Path(path))
    import matplotlib as mpl

    axes_cols = [encode_axis([t.params.get(n) for t in done]) for n in names]
    values = [float(t.value or 0.0) for t in done]
    value_col = encode_axis(values)
    columns = [*axes_cols, value_col]
    norm = mpl.colors.Normalize(min(values), max(values))
    cmap = mpl.colormaps["viridis_r" if mode == "min" else "viridis"]
    ax = fig.add_subplot()
    # worst first, so the best lines end up on top
    order = sorted(range(len(done)), key=lambda i: values[i], reverse=mode == "min")
    xs = list(range(len(columns)))
    for i in order:
        ax.plot(xs, [c[0][i] for c in columns], color=cmap(norm(values[i])), alpha=0.8, lw=1.2)
    for x, (_, lo, hi) in zip(xs, columns):
        ax.axvline(x, color="0.3", lw=0.8)
        ax.text(x, -0.06, lo, ha="center", va="top", fontsize=8)
        ax.text(x, 1.06, hi, ha="center", va="bottom", fontsize=8)
    value_name = monitor or "value"
    ax.set_xticks(xs, [*names, value_name])
    ax.set_yticks([])
    ax.set_ylim(-0.15, 1.15)
    where = f" of sweep '{sweep}'" if sweep else ""
    ax.set_title(f"Parallel coordinates{where} (complete trials)", pad=18)
    fig.colorbar(
        mpl.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=monitor or "objective value"
    )
    return save(fig, Path(path))
