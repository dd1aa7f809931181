"""Sweeping a LightningCLI project without changing its code.

A sweep file's ``cli:`` section names the project's entry point instead of an objective::

    cli: {script: train.py, config: [base.yaml]}          # or
    cli: {class: mypkg.cli:MyCLI, config: [base.yaml], args: [--trainer.max_epochs=5]}

and its space keys are the CLI's own dotted keys (``model.init_args.lr``, ``data.batch_size``).
Each trial is the command line ``fit --config base.yaml ... --<key>=<value>`` run in-process:

* **script:** the file's code is executed as ``python train.py`` would run it (``__name__ ==
  "__main__"``, its folder first on ``sys.path``); the first LightningCLI (or subclass, from
  ``lightning.pytorch.cli`` or ``pytorch_lightning.cli``) it builds parses the trial's command
  line. A CLI built with ``run=False`` gets no ``fit`` subcommand and the script's own code
  after it runs as usual. ``sys.argv`` and ``sys.modules["__main__"]`` are left alone (a DDP
  launcher that re-runs the process's command line re-runs the sweep's, as for any objective),
  so a script that reads ``sys.argv`` itself does not see the trial's arguments.
* **class:** ``module:Name`` of a LightningCLI subclass is constructed as ``Name()`` (its
  defaults; subclass-mode configs name the model with ``class_path``), or a function that
  builds one is called, like a console-script entry point.

The trial's command line reaches the CLI and its HPOCallback reaches the Trainer through two
LightningCLI methods wrapped on the base classes for the length of the trial (the only change
made to anything outside this package, undone when the trial ends): ``parse_arguments`` (the
first CLI of the trial parses the trial's arguments) and ``instantiate_trainer`` (the callback is
appended to the Trainer's callbacks).

Before the first trial, :func:`inspect_cli` builds the CLI's parser once (the entry point runs
up to the parser and stops) and parses the base config with points of the space that make every
key and choice appear: a key or value the CLI refuses is reported with the CLI's own message
and a did-you-mean from its keys. ``monitor`` and ``mode`` default to those of the config's
ModelCheckpoint or EarlyStopping callback.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

from hpo_lightning.exceptions import ConfigError
from hpo_lightning.lightning._cli_check import inspect_cli
from hpo_lightning.lightning._cli_spec import (
    CLISpec,
    base_argv,
    enter_project,
    override_args,
    wrap_cli_method,
)
from hpo_lightning.space import SearchSpace

CLI_OBJECTIVE = "hpo_lightning.lightning:fit_cli"


def _with_args(argv: list[str], used: list[bool]) -> Callable[..., Callable[..., Any]]:
    """A ``parse_arguments`` wrapper: the first CLI of the trial parses ``argv`` (whatever the
    process's own command line is)."""

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def parse_arguments(self: Any, parser: Any, args: Any) -> None:
            if used:
                return original(self, parser, args)
            used.append(True)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*args parameter is intended.*")
                return original(self, parser, list(argv))

        return parse_arguments

    return make


# --- running a trial ---------------------------------------------------------------------------


def fit_cli(
    params: Mapping[str, Any], callback: Any, *, cli: Mapping[str, Any] | None = None
) -> None:
    """The objective of a ``cli:`` sweep: ``fit`` with the base command line plus the trial's
    params as ``--key=value``, the callback added to the CLI's Trainer."""
    if cli is None:
        raise ConfigError("fit_cli needs objective_args {cli: {script: ..., config: [...]}}")
    spec = CLISpec.from_dict(cli)
    built: list[Any] = []

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def instantiate_trainer(self: Any, **kwargs: Any) -> Any:
            trainer = original(self, **kwargs)
            if not built:  # the trial's fit: one Trainer gets the callback
                trainer.callbacks.append(callback)
                built.append(trainer)
            return trainer

        return instantiate_trainer

    argv = base_argv(spec) + override_args(params)
    used: list[bool] = []
    try:
        with (
            wrap_cli_method("instantiate_trainer", make),
            wrap_cli_method("parse_arguments", _with_args(argv, used)),
        ):
            enter_project(spec)
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise RuntimeError(
                f"the LightningCLI exited with code {exc.code} (see its message above)"
            ) from None
    if not built:
        raise RuntimeError(
            f"{spec.name} built no Trainer through LightningCLI.instantiate_trainer, so the "
            "trial's callback never ran"
        )


def cli_objective(
    cli: Mapping[str, Any], space: SearchSpace | Mapping[str, Any], *, base_dir: str = "."
) -> dict[str, Any]:
    """Sweep options for a LightningCLI project, checked against its CLI (Python API).

    Example::

        sweep = hl.Sweep(name="digits", space=space, n_trials=20,
                         **cli_objective({"script": "train.py", "config": ["base.yaml"]}, space))

    Returns ``objective``, ``objective_args`` and, when the config has a ModelCheckpoint or
    EarlyStopping, ``monitor`` and ``mode``.
    """
    spec = CLISpec.from_dict(cli, base_dir)
    space = space if isinstance(space, SearchSpace) else SearchSpace.from_dict(space)
    info = inspect_cli(spec, space)
    out: dict[str, Any] = {
        "objective": CLI_OBJECTIVE,
        "objective_args": {"cli": info.spec.to_dict()},
    }
    if info.monitor:
        out["monitor"] = info.monitor
        out["mode"] = info.mode or "min"
    return out
