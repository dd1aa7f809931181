"""``delete``: remove a sweep (its trials and metrics) from the store, freeing its name."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from hpo_lightning._trial import TrialState
from hpo_lightning.exceptions import ConfigError
from hpo_lightning.storage import Storage, SweepRecord, TrialRecord, redact_url

_DEFAULT_LOST_AFTER_S = 60.0


def register(sub: Any) -> None:
    from hpo_lightning.cli._sweep_cmds import _storage_arg

    p = sub.add_parser(
        "delete",
        help="delete a sweep with its trials, freeing its name (asks first)",
        description="Delete a sweep, its trials and their metrics from the store, so the name "
        "can be used again (e.g. after a typo in `monitor` or a sweep stopped by max_failures). "
        "Asks for confirmation on a terminal; without a terminal, --yes is required. A sweep "
        "with a trial still running (a fresh heartbeat) is refused: stop its workers first.",
    )
    p.add_argument("sweep", help="sweep name, or the sweep file (uses its storage)")
    _storage_arg(p)
    p.add_argument("--yes", "-y", action="store_true", help="delete without asking")
    p.add_argument(
        "--keep-mlflow",
        action="store_true",
        help="keep the sweep's MLflow runs (by default they are deleted too, when the sweep "
        "has an `mlflow:` section, so a new sweep of that name gets its own runs)",
    )
    p.set_defaults(func=cmd_delete)


def _describe(trials: list[TrialRecord]) -> str:
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.state.value] = counts.get(t.state.value, 0) + 1
    detail = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    return f"{len(trials)} trials" + (f" ({detail})" if detail else "")


def _refuse_if_running(sweep: SweepRecord, trials: list[TrialRecord]) -> None:
    """A trial with a fresh heartbeat has a live worker that would write into a deleted sweep."""
    limit = float(sweep.definition.get("lost_after_s") or _DEFAULT_LOST_AFTER_S)
    now = time.time()
    live = [
        t
        for t in trials
        if t.state is TrialState.RUNNING and now - (t.heartbeat_at or t.created_at) < limit
    ]
    if live:
        age = min(now - (t.heartbeat_at or t.created_at) for t in live)
        raise ConfigError(
            f"sweep '{sweep.name}' has {len(live)} trial(s) running (last heartbeat {age:.0f} s "
            f"ago, worker {live[0].worker}); stop its workers first, or wait {limit:.0f} s if "
            "they were killed"
        )


def _confirmed(question: str) -> bool:
    print(question, end="", file=sys.stderr, flush=True)
    try:
        answer = sys.stdin.readline()
    except KeyboardInterrupt:
        answer = ""
    return answer.strip().lower() in ("y", "yes")


def _mlflow_section(args: argparse.Namespace, sweep: SweepRecord) -> dict[str, Any]:
    """The sweep file's ``mlflow:`` when a file was given, else the stored one (or none)."""
    from hpo_lightning.cli._mlflow_cmds import _mlflow_section as file_section

    section = file_section(args.sweep) or sweep.definition.get("mlflow")
    return dict(section) if isinstance(section, dict) and not args.keep_mlflow else {}


def _delete_mlflow_runs(name: str, section: dict[str, Any]) -> str:
    """Soft-delete the sweep's parent run and its trial runs; say what happened (one line).

    MLflow is a mirror: when it cannot be reached the store is deleted all the same.
    """
    uri, experiment = section.get("tracking_uri"), section.get("experiment") or name
    shown = f"MLflow experiment '{experiment}' at {redact_url(str(uri or '(default)'))}"
    try:
        from hpo_lightning.tracking._mlflow_runs import MlflowRuns

        runs = MlflowRuns(uri, experiment)
        parent = runs.find_parent(name)
        if parent is None:
            return f"no MLflow runs of sweep '{name}' in {shown}"
        children = list(runs.children(parent).values())
        for run_id in [*children, parent]:
            runs.client.delete_run(run_id)
    except Exception as exc:  # a mirror's failure must not undo the delete
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        return (
            f"the MLflow runs of sweep '{name}' in {shown} were NOT deleted ({first}); delete "
            f"the run '{name}' there before reusing the name"
        )
    return f"also deleted the {len(children) + 1} MLflow runs of sweep '{name}' in {shown}"


def cmd_delete(args: argparse.Namespace) -> int:
    from hpo_lightning.cli._sweep_cmds import find_sweep

    store: Storage
    store, sweep = find_sweep(args)
    with store:
        trials = store.get_trials(sweep.id)
        where = redact_url(store.url)
        _refuse_if_running(sweep, trials)
        mlflow = _mlflow_section(args, sweep)
        what = f"sweep '{sweep.name}' and its {_describe(trials)} from {where}"
        if mlflow:
            what += " (and its MLflow runs)"
        if not args.yes:
            if not sys.stdin.isatty():
                raise ConfigError(
                    f"not deleting {what} without confirmation: stdin is not a terminal; "
                    "add --yes to delete"
                )
            if not _confirmed(f"delete {what}? This cannot be undone. [y/N] "):
                print("nothing deleted", file=sys.stderr)
                return 1
        n = store.delete_sweep(sweep.id)
    print(f"deleted sweep '{sweep.name}' ({n} trials) from {where}")
    if mlflow:
        print(_delete_mlflow_runs(sweep.name, mlflow))
    return 0
