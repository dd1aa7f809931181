"""docs/extending.md runs: its code blocks are executed here, in order, in this module, so the
page's tuner, scheduler, tracker, store and launcher examples run through their contract suites
(the ``Test*`` classes the blocks define are collected from this module)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hpo_lightning.launchers import _registry as launchers
from hpo_lightning.tuners import _registry as tuners

DOC = Path(__file__).resolve().parent.parent / "docs" / "extending.md"
BLOCKS = re.findall(r"```python\n(# example: [^\n]+\n.*?)```", DOC.read_text(), flags=re.S)


def _run_blocks() -> list[str]:
    """Execute every example block in this module; the registries are left as they were."""
    saved = dict(tuners._REGISTRY), dict(launchers._REGISTRY)
    try:
        for block in BLOCKS:
            exec(compile(block, f"{DOC}:{block.splitlines()[0]}", "exec"), globals())
        registered = [n for n in tuners._REGISTRY if n not in saved[0]]
        registered += [n for n in launchers._REGISTRY if n not in saved[1]]
    finally:
        tuners._REGISTRY.clear()
        tuners._REGISTRY.update(saved[0])
        launchers._REGISTRY.clear()
        launchers._REGISTRY.update(saved[1])
    return registered


REGISTERED = _run_blocks()


def test_the_page_has_an_example_and_a_suite_run_for_each_extension_point() -> None:
    titles = [b.splitlines()[0].removeprefix("# example: ") for b in BLOCKS]
    assert titles == [
        "tuner",
        "tuner suite",
        "scheduler",
        "scheduler suite",
        "tracker",
        "tracker suite",
        "store suite",
        "launcher",
        "launcher suite",
    ]
    assert sorted(REGISTERED) == ["near-best", "subprocess"]  # the registrations ran


# The launcher suite starts real worker processes, each importing torch (20-40 s per check on
# 2 shared cores). Here the doc's launcher runs the one-worker checks; the two-worker ones (the
# sweep to its end, stop) run for LocalLauncher in test_launcher_contract_local.py, and passed
# for this launcher too when the page was written (97 s for the whole suite).
_launcher = globals()["TestSubprocessLauncher"]
_launcher.test_workers_run_the_sweep_to_its_end = None
_launcher.test_stop_ends_every_worker_and_requeues_running_trials = None
TestSubprocessLauncher = pytest.mark.slow(_launcher)
