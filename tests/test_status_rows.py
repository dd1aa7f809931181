"""`status` on a long sweep: the last trials, the best and the running ones; --all for every one."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpo_lightning._trial import TrialState
from hpo_lightning.cli import main
from hpo_lightning.cli._sweep_cmds import STATUS_ROWS
from hpo_lightning.storage import open_storage


def _long_sweep(path: Path, n: int) -> None:
    store = open_storage(path)
    sweep = store.create_sweep("long", {"monitor": "loss"}, mode="min")
    for i in range(n):
        with store.claim(sweep.id) as c:
            t = c.add_trial({"x": i})
        if i > 0:  # the first one stays running
            value = 0.0 if i == 3 else 1.0 + i  # the best is an early trial
            store.finish_trial(t.id, TrialState.COMPLETE, value, epochs=1)
    store.close()


def _numbers(out: str) -> list[int]:
    return [
        int(cells[1])
        for line in out.splitlines()
        if (cells := line.split("│"))[1:] and cells[1].strip().isdigit()
    ]


def test_status_shows_the_last_trials_the_best_and_the_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    n = STATUS_ROWS + 20
    _long_sweep(tmp_path / "s.db", n)
    assert main(["status", "long", "--storage", str(tmp_path / "s.db")]) == 0
    out = capsys.readouterr().out
    assert _numbers(out) == [0, 3, *range(n - STATUS_ROWS, n)]
    assert f"{n - STATUS_ROWS - 2} more trials not shown (--all shows them)" in out
    assert f"{n - 1} complete, 0 pruned, 0 failed, 1 running" in out
    assert main(["status", "long", "--storage", str(tmp_path / "s.db"), "--all"]) == 0
    assert _numbers(capsys.readouterr().out) == list(range(n))
