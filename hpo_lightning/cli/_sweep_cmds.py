"""``sweep``, ``status``, ``best``, ``export`` and ``list``: run sweeps and read the store."""

from __future__ import annotations

import argparse
import json
import math
import os
from typing import Any

from hpo_lightning._objectives import objectives_of
from hpo_lightning._secrets import redact_tree
from hpo_lightning._trial import TrialState
from hpo_lightning.cli._front_view import (
    fmt_value,
    front_lines,
    marked,
    value_cells,
    value_columns,
)
from hpo_lightning.cli._hints import stopped_early, stores_nearby_hint, where_sweep_is_hint
from hpo_lightning.cli._output import open_output
from hpo_lightning.exceptions import ConfigError, InvalidStorageError, SweepNotFoundError
from hpo_lightning.storage import Storage, SweepRecord, TrialRecord, open_storage, redact_url
from hpo_lightning.sweep._config import DEFAULT_STORE_NAME, load_sweep_file
from hpo_lightning.sweep._runtime import shown_state

STORAGE_ENV = "HPO_LIGHTNING_STORAGE"
_DEFAULT_SHOWN = f"./{DEFAULT_STORE_NAME}"


def register(sub: Any) -> None:
    p = sub.add_parser(
        "sweep",
        help="run (or resume) the sweep of a YAML sweep file",
        description="Run (or resume) the sweep of a YAML sweep file.",
        epilog=STOP_CONTRACT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", help="the sweep file (YAML)")
    p.add_argument(
        "--n-workers",
        type=_workers,
        help="worker processes, or 'auto': one per GPU set (file: n_workers)",
    )
    p.add_argument("--n-trials", type=_positive, help="finished trials wanted (file: n_trials)")
    p.add_argument("--storage", help="store path or URL (file: storage)")
    p.add_argument("--timeout", type=_seconds, help="seconds after which no new trial starts")
    p.add_argument(
        "--max-failures",
        type=_positive,
        help="failed trials after which the sweep stops (file: max_failures, default 5)",
    )
    p.add_argument(
        "--create-only",
        action="store_true",
        help="store the sweep and run no trial; start workers with `hpo-lightning worker`",
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument(
        "--launcher", help="where workers run: local, ray or slurm (file: launcher.name)"
    )
    p.add_argument(
        "--detach",
        action="store_true",
        help="submit the workers (launcher: slurm) and return; `status` follows the sweep",
    )
    p.set_defaults(func=cmd_sweep)

    for name, helptext, func in (
        ("status", "table of a sweep's trials", cmd_status),
        (
            "best",
            "best trial's params as JSON (several objectives: the Pareto front, one JSON "
            "object per trial)",
            cmd_best,
        ),
        ("export", "all trials as CSV or JSON", cmd_export),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("sweep", help="sweep name, or the sweep file (uses its storage)")
        _storage_arg(p)
        if name == "status":
            p.add_argument(
                "--all",
                action="store_true",
                help=f"every trial (default: the last {STATUS_ROWS}, the best and the running)",
            )
        if name == "best":
            p.add_argument(
                "--checkpoint",
                action="store_true",
                help="print the path of the best trial's checkpoint instead (needs checkpoints:)",
            )
        if name == "export":
            p.add_argument("--format", choices=("csv", "json"), default="csv")
            p.add_argument("--output", "-o", help="file to write (default: stdout)")
            p.add_argument("--force", action="store_true", help="replace an existing --output")
        p.set_defaults(func=func)
    p = sub.add_parser("list", help="the sweeps in a store")
    _storage_arg(p)
    p.set_defaults(func=cmd_list)


STOP_CONTRACT = """\
stopping: the first Ctrl-C or SIGTERM starts no new trial and stops running fits at their next
epoch; a second one stops them at once. Stopped trials are stored 'interrupted' and run first
when the same command runs again (from their last checkpoint with `checkpoints:`), never
counted as failures. Exit codes: 0 done, 1
max_failures reached, 2 bad input, 130 Ctrl-C, 143 SIGTERM. Workers never outlive the sweep.
"""


def _workers(text: str) -> int | str:
    return "auto" if text == "auto" else _positive(text)


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {v}")
    return v


def _seconds(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(
            f"must be a positive, finite number of seconds, got {text!r} (leave it out for no "
            "limit)"
        )
    return v


def _storage_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--storage",
        help=f"store path or URL (default: the sweep file's store when a file is given, else "
        f"${STORAGE_ENV}, else ./{DEFAULT_STORE_NAME})",
    )


def open_store_for(args: argparse.Namespace) -> tuple[Storage, str | None]:
    """The store named by --storage, a sweep file (as ``sweep FILE`` uses it),
    $HPO_LIGHTNING_STORAGE, or the default ``./hpo_lightning.db``."""
    name = getattr(args, "sweep", None)
    location = args.storage
    if name and name.endswith((".yaml", ".yml")) and os.path.isfile(name):
        cfg = load_sweep_file(name)
        location = location or cfg.storage_location()
        name = cfg.name
    location = location or os.environ.get(STORAGE_ENV)
    if location:
        return open_storage(location, create=False), name
    try:
        return open_storage(DEFAULT_STORE_NAME, create=False), name
    except InvalidStorageError as exc:
        if os.path.exists(DEFAULT_STORE_NAME):  # corrupt, foreign: no hint helps
            raise
        hint = where_sweep_is_hint(name, _DEFAULT_SHOWN) if name else stores_nearby_hint()
        raise InvalidStorageError(f"{exc}; {hint}") from None


def find_sweep(args: argparse.Namespace) -> tuple[Storage, SweepRecord]:
    """The store and the stored sweep that ``args.sweep`` (a name or a sweep file) names.

    When the default store was used and the sweep is not there, the error says where it looked
    and which sweep files nearby define that name.
    """
    store, name = open_store_for(args)
    if not name:
        store.close()
        raise ConfigError("give the sweep's name (or its sweep file) as the first argument")
    try:
        return store, store.get_sweep(name)
    except SweepNotFoundError as exc:
        store.close()
        defaulted = not (args.storage or os.environ.get(STORAGE_ENV)) and name == args.sweep
        if not defaulted:
            raise
        raise SweepNotFoundError(f"{exc}; {where_sweep_is_hint(name, _DEFAULT_SHOWN)}") from None


def _launcher_override(path: str, name: str | None) -> dict[str, Any] | None:
    """``--launcher NAME``: the file's section when it names the same launcher, else NAME."""
    if name is None:
        return None
    section = load_sweep_file(path).launcher or {}
    return dict(section) if section.get("name") == name else {"name": name}


def cmd_sweep(args: argparse.Namespace) -> int:
    from hpo_lightning.sweep import Sweep

    overrides = {
        "n_workers": args.n_workers,
        "n_trials": args.n_trials,
        "storage": args.storage,
        "timeout": args.timeout,
        "max_failures": args.max_failures,
        "launcher": _launcher_override(args.file, args.launcher),
    }
    if args.detach:
        return _detach(args.file, overrides)
    sweep = Sweep.from_file(args.file, **overrides)
    if args.create_only:
        return _created(sweep)
    try:
        result = sweep.run(progress="quiet" if args.quiet else "auto", isolate=True)
    finally:
        sweep.close()
    best = result.best
    where = result.storage_url
    code = stopped_early(result, resume=f"hpo-lightning sweep {args.file}")
    if code is not None:
        return code
    best_text = (
        f"best {sweep.config.monitor}={best.value:.6g} (trial {best.number}) "
        f"{json.dumps(dict(best.params), sort_keys=True)}"
        if best
        else "no complete trial"
    )
    if sweep.config.objectives().multi:
        best_text = f"the Pareto front: hpo-lightning best {result.name} --storage {where}"
    print(
        f"sweep '{result.name}' {result.stopped}: {result.n_complete} complete, "
        f"{result.n_pruned} pruned, {result.n_failed} failed; {best_text}; store: {where}"
    )
    return 0


def _detach(path: str, overrides: dict[str, Any]) -> int:
    from dataclasses import replace

    from hpo_lightning.sweep import Sweep
    from hpo_lightning.sweep._detach import check_detachable, submit_detached

    cfg = load_sweep_file(path)
    cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    check_detachable(cfg)  # before anything is written
    sweep = Sweep(cfg)
    try:
        status = submit_detached(sweep)
    finally:
        sweep.close()
    print(
        f"sweep '{cfg.name}': {status}; follow it with: hpo-lightning status {cfg.name} "
        f"--storage {redact_url(sweep.storage.url)}"
    )
    return 0


def _created(sweep: Any) -> int:
    """``sweep --create-only``: the sweep is stored (creating it did that); say how to run it."""
    from hpo_lightning.sweep._progress import summarize

    try:
        s = summarize(sweep.trials(), sweep.config.mode)
        where = redact_url(sweep.storage.url)
    finally:
        sweep.close()
    print(
        f"sweep '{sweep.name}' is stored in {where} ({s['done']} of {sweep.config.n_trials} "
        f"trials finished); start workers with: hpo-lightning worker {sweep.name} "
        f"--storage {where}"
    )
    return 0


def _console(**options: Any) -> Any:
    """A rich Console whose closed pipe (``status x | head``) reaches the command line's
    BrokenPipeError handling (exit 141, quiet) instead of rich's own exit 1."""
    from rich.console import Console

    class PipeConsole(Console):
        def on_broken_pipe(self) -> None:
            raise BrokenPipeError

    return PipeConsole(**options)


def _trials(args: argparse.Namespace) -> tuple[Storage, Any, list[TrialRecord]]:
    store, sweep = find_sweep(args)
    return store, sweep, store.get_trials(sweep.id)


# trials a `status` table shows without --all: a 10,000-trial table takes rich a minute
STATUS_ROWS = 50


def _shown_rows(trials: list[TrialRecord], best: TrialRecord | None, every: bool) -> list[int]:
    """Indexes of the trials the table shows: all, or the last STATUS_ROWS, the best and the
    running ones."""
    if every or len(trials) <= STATUS_ROWS:
        return list(range(len(trials)))
    keep = set(range(len(trials) - STATUS_ROWS, len(trials)))
    keep.update(
        i
        for i, t in enumerate(trials)
        if t.state is TrialState.RUNNING or (best is not None and t.number == best.number)
    )
    return sorted(keep)


def cmd_status(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from hpo_lightning.sweep._progress import summarize

    store, sweep, trials = _trials(args)
    try:
        objectives = objectives_of(sweep.definition, sweep.mode)
        s = summarize(trials, sweep.mode)
        aims = ", ".join(f"{m} {n}" for n, m in zip(objectives.names, objectives.modes))
        table = Table(title=f"sweep '{sweep.name}' ({aims}) in {redact_url(store.url)}")
        value_cols = value_columns(objectives)
        for col in ("#", "state", *value_cols, "epochs", "params", "where", "note"):
            table.add_column(col, overflow="fold")
        notes = marked(trials, objectives, s["best"])
        lost_after = float(sweep.definition.get("lost_after_s", 60.0))
        shown = [shown_state(t, lost_after) for t in trials]
        rows = _shown_rows(trials, s["best"], args.all)
        for t, state in ((trials[i], shown[i]) for i in rows):
            note = (t.message or "").splitlines()[0][:60] if t.message else ""
            note = notes.get(t.number, note)
            note = "; ".join(filter(None, [note, lineage_note(t.attrs)]))
            where = t.attrs.get("host") or (t.worker or "").rpartition(":")[0]
            if "devices" in t.attrs:
                where = f"{where} gpu {t.attrs['devices'] or '-'}"
            table.add_row(
                str(t.number),
                state,
                *value_cells(t, objectives),
                str(t.epochs),
                json.dumps(dict(t.params), sort_keys=True),
                where,
                note,
            )
        console = _console(width=max(120, Console().width))
        console.print(table)
        if len(rows) < len(trials):
            console.print(f"{len(trials) - len(rows)} more trials not shown (--all shows them)")
        lost = sum(1 for state in shown if state.startswith("lost?"))
        requeued = s["interrupted"] + s["lost"]
        console.print(
            f"{s['complete']} complete, {s['pruned']} pruned, {s['failed']} failed, "
            f"{s['running'] - lost} running"
            + (f", {lost} lost (their workers are gone; a rerun requeues them)" if lost else "")
            + (f", {requeued} interrupted or lost and requeued" if requeued else "")
        )
        if sweep.status not in ("running", "done"):
            console.print(f"launched: {sweep.status}")
    finally:
        store.close()
    return 0


def cmd_best(args: argparse.Namespace) -> int:
    from hpo_lightning.sweep._progress import summarize

    store, sweep, trials = _trials(args)
    if getattr(args, "checkpoint", False):
        from hpo_lightning.sweep._checkpoints import load_best

        try:
            print(load_best(store, sweep.name))
        finally:
            store.close()
        return 0
    store.close()
    objectives = objectives_of(sweep.definition, sweep.mode)
    if objectives.multi:
        lines = front_lines(trials, objectives)
        if not lines:
            raise ConfigError(f"sweep '{sweep.name}' has no complete trial yet")
        print("\n".join(lines))
        return 0
    best = summarize(trials, sweep.mode)["best"]  # with constraints: the best feasible one
    if best is None:
        raise ConfigError(f"sweep '{sweep.name}' has no complete trial yet")
    print(json.dumps(dict(best.params), sort_keys=True))
    return 0


def lineage_note(attrs: Any) -> str:
    """How a trial continued: resumed from its checkpoints, exploited other trials (PBT)."""
    parts = []
    resumes = int(attrs.get("resumes", 0) or 0)
    if resumes:
        parts.append(f"resumed {resumes}x")
    for step in attrs.get("lineage", []) or []:
        parts.append(f"from #{step['donor']} at epoch {step['epoch']}")
    return "; ".join(parts)


def cmd_export(args: argparse.Namespace) -> int:
    from hpo_lightning.plots._table import json_rows, write_csv

    store, sweep, trials = _trials(args)
    store.close()
    objectives = objectives_of(sweep.definition, sweep.mode)
    with open_output(args.output, force=args.force, store=store) as out:
        if args.format == "json":
            json.dump(
                {
                    "sweep": sweep.name,
                    "mode": sweep.definition.get("mode", sweep.mode),
                    "objectives": list(objectives.names),
                    "definition": redact_tree(sweep.definition),  # older stores kept passwords
                    "trials": json_rows(trials, objectives),
                },
                out,
                indent=2,
            )
            out.write("\n")
        else:
            write_csv(out, trials, objectives)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from hpo_lightning.sweep._progress import summarize

    args.sweep = None
    store, _ = open_store_for(args)
    try:
        sweeps = store.list_sweeps()
        if not sweeps:
            print(f"no sweeps in {redact_url(store.url)}")
        for sw in sweeps:
            trials = store.get_trials(sw.id)
            s = summarize(trials, sw.mode)
            best = s["best"]
            lost_after = float(sw.definition.get("lost_after_s", 60.0))
            lost = sum(1 for t in trials if shown_state(t, lost_after).startswith("lost?"))
            objectives = objectives_of(sw.definition, sw.mode)
            if objectives.multi:
                from hpo_lightning._front import pareto_trials

                shown_best = f"; {len(pareto_trials(trials, objectives))} on the Pareto front"
            else:
                shown_best = (
                    f"; best {sw.definition.get('monitor', 'value')}"
                    f"={fmt_value(best.value if best else None)}"
                )
            print(
                f"{sw.name}: {s['complete']} complete, {s['pruned']} pruned, {s['failed']} "
                f"failed, {s['running'] - lost} running"
                + (f", {lost} lost" if lost else "")
                + shown_best
            )
    finally:
        store.close()
    return 0
