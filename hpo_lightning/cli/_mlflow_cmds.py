"""``plot`` and ``mlflow-sync``: figures from a stored sweep, and back-filling MLflow."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from hpo_lightning._objectives import objectives_of
from hpo_lightning.exceptions import UserInputError
from hpo_lightning.storage import redact_url


def register(sub: Any) -> None:
    p = sub.add_parser("plot", help="optimisation history, parallel coordinates, importance (PNG)")
    p.add_argument("sweep", help="sweep name, or the sweep file (uses its storage)")
    _storage_arg(p)
    p.add_argument("--out", required=True, help="folder for the PNGs and trials.csv")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("mlflow-sync", help="back-fill MLflow runs from the store (idempotent)")
    p.add_argument("sweep", help="sweep name, or the sweep file (uses its storage and mlflow:)")
    _storage_arg(p)
    p.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI (default: the sweep file's mlflow.tracking_uri, else "
        "$MLFLOW_TRACKING_URI, else MLflow's own default: ./mlflow.db with MLflow 3, ./mlruns "
        "with MLflow 2)",
    )
    p.add_argument(
        "--experiment",
        help="MLflow experiment (default: the sweep file's mlflow.experiment, else the sweep's "
        "name)",
    )
    p.add_argument("--no-artifacts", action="store_true", help="skip the table and plots")
    p.set_defaults(func=cmd_mlflow_sync)


def _storage_arg(p: argparse.ArgumentParser) -> None:
    from hpo_lightning.cli._sweep_cmds import STORAGE_ENV
    from hpo_lightning.sweep._config import DEFAULT_STORE_NAME

    p.add_argument(
        "--storage",
        help=f"store path or URL (default: the sweep file's store when a file is given, else "
        f"${STORAGE_ENV}, else ./{DEFAULT_STORE_NAME})",
    )


def _open(args: argparse.Namespace) -> tuple[Any, str]:
    from hpo_lightning.cli._sweep_cmds import find_sweep

    store, sweep = find_sweep(args)
    return store, sweep.name


def cmd_plot(args: argparse.Namespace) -> int:
    from hpo_lightning.plots import save_plots, write_trials_csv

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserInputError(f"--out must be a folder, but {out} is a file")
    store, name = _open(args)
    with store:
        try:
            paths = save_plots(store, name, out)
            sweep = store.get_sweep(name)
            objectives = objectives_of(sweep.definition, sweep.mode)
            trials = store.get_trials(sweep.id)
            paths.append(write_trials_csv(trials, out / "trials.csv", objectives))
        except OSError as exc:  # a folder that cannot be created or written
            raise UserInputError(
                f"cannot write the plots to --out {out}: {exc.strerror or exc}; give a folder "
                "you can write to"
            ) from None
    for path in paths:
        print(path)
    return 0


def _mlflow_section(sweep_arg: str) -> dict[str, Any]:
    if not sweep_arg.endswith((".yaml", ".yml")) or not Path(sweep_arg).is_file():
        return {}
    from hpo_lightning.sweep._config import load_sweep_file

    return dict(load_sweep_file(sweep_arg).mlflow or {})


def cmd_mlflow_sync(args: argparse.Namespace) -> int:
    from hpo_lightning.tracking._mlflow_runs import import_mlflow
    from hpo_lightning.tracking._mlflow_sync import sync_sweep

    import_mlflow()
    section = _mlflow_section(args.sweep)
    store, name = _open(args)
    uri = args.tracking_uri or section.get("tracking_uri")
    experiment = args.experiment or section.get("experiment") or name
    with store:  # find_sweep checked the sweep exists, before MLflow is touched
        report = sync_sweep(
            store,
            name,
            tracking_uri=uri,
            experiment_name=experiment,
            artifacts=not args.no_artifacts,
        )
    print(
        f"synced sweep '{name}' to MLflow {redact_url(uri or '(default)')} experiment "
        f"'{experiment}': {report.trials} trials, {report.runs_created} runs created, "
        f"{report.metrics_logged} metric values and {report.states_set} states written "
        f"(parent run {report.parent_run_id})",
        file=sys.stdout,
    )
    return 0
