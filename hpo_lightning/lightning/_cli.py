"""Sweeping a LightningCLI project without changing its code.

A sweep file's ``cli:`` section names the project's entry point instead of an objective::

    cli: {script: train.py, config: [base.yaml]}          # or
    cli: {class: mypkg.cli:MyCLI, config: [base.yaml], args: [--trainer.max_epochs=5]}

and its space keys are the CLI's own dotted keys (``model.init_args.lr``, ``data.batch_size``).
Each trial is the command line ``fit --config base.yaml ... --<key>=<value>`` run in-process:

* **script:** the file is run as ``python train.py`` would run it (``runpy``, ``__name__ ==
  "__main__"``, its folder first on ``sys.path``, ``sys.argv`` set to the trial's command line);
  whatever LightningCLI (or subclass, from ``lightning.pytorch.cli`` or
  ``pytorch_lightning.cli``) it builds is the one used. A CLI built with ``run=False`` gets no
  ``fit`` subcommand and the script's own code after it runs as usual.
* **class:** ``module:Name`` of a LightningCLI subclass is constructed as ``Name(args=[...])``
  (its defaults; subclass-mode configs name the model with ``class_path``); a function is
  called with ``sys.argv`` set, like a console-script entry point.

The trial's HPOCallback is added to the Trainer that ``LightningCLI.instantiate_trainer`` builds:
that method is wrapped on the LightningCLI base classes for the length of the trial (the only
change made to anything outside this package, undone when the trial ends).

Before the first trial, :func:`inspect_cli` builds the CLI's parser once (the entry point runs
up to the parser and stops) and parses the base config with points of the space that make every
key and choice appear: a key or value the CLI refuses is reported with the CLI's own message
and a did-you-mean from its keys. ``monitor`` and ``mode`` default to those of the config's
ModelCheckpoint or EarlyStopping callback.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import runpy
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import yaml

from hpo_lightning._names import did_you_mean
from hpo_lightning.exceptions import ConfigError, missing_extra
from hpo_lightning.space import Categorical, SearchSpace

#: the objective a ``cli:`` sweep stores; its ``objective_args`` are ``{"cli": CLISpec dict}``
CLI_OBJECTIVE = "hpo_lightning.lightning:fit_cli"
_SPEC_KEYS = ("script", "class", "config", "args")


@dataclass(frozen=True)
class CLISpec:
    """Where a LightningCLI project starts and what its base command line is.

    Attributes:
        script: path of a script that builds a LightningCLI when run (absolute).
        entry: ``module:Name`` of a LightningCLI subclass or of a function that builds one.
        config: the base config files (absolute), given as ``--config`` in order.
        args: further command-line arguments after the configs.
        base_dir: the folder ``entry`` is imported from (the sweep file's folder).
        subcommands: whether the CLI has subcommands (``run=True``): then ``fit`` comes first.
            Found by :func:`inspect_cli` and stored with the sweep.
    """

    script: str | None
    entry: str | None
    config: tuple[str, ...]
    args: tuple[str, ...]
    base_dir: str
    subcommands: bool = True

    @classmethod
    def from_dict(cls, data: Any, base_dir: str = ".") -> CLISpec:
        """Validate a ``cli:`` section; relative paths are relative to ``base_dir``."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"`cli` must be a mapping like {{script: train.py}}, got {data!r}")
        for key in data:
            if key not in (*_SPEC_KEYS, "base_dir", "subcommands"):
                raise ConfigError(f"`cli`: unknown key {key!r}{did_you_mean(key, _SPEC_KEYS)}")
        script, entry = data.get("script"), data.get("class")
        if (script is None) == (entry is None):
            raise ConfigError("`cli` needs exactly one of `script: train.py` or `class: mod:Name`")
        base_dir = os.path.abspath(str(data.get("base_dir", base_dir)))
        if script is not None:
            script = _existing_file(base_dir, script, "cli.script")
        elif not isinstance(entry, str) or entry.count(":") != 1:
            raise ConfigError(f"`cli.class` must be 'module:Name', got {entry!r}")
        configs = _string_list(data.get("config", []), "cli.config")
        args = _string_list(data.get("args", []), "cli.args")
        return cls(
            script=script,
            entry=entry,
            config=tuple(_existing_file(base_dir, c, "cli.config") for c in configs),
            args=tuple(args),
            base_dir=base_dir,
            subcommands=bool(data.get("subcommands", True)),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape stored with the sweep (``from_dict`` reads it back)."""
        where = {"script": self.script} if self.script else {"class": self.entry}
        return {
            **where,
            "config": list(self.config),
            "args": list(self.args),
            "base_dir": self.base_dir,
            "subcommands": self.subcommands,
        }

    @property
    def name(self) -> str:
        return self.script or str(self.entry)


def _existing_file(base_dir: str, path: Any, key: str) -> str:
    if not isinstance(path, str) or not path:
        raise ConfigError(f"`{key}` must be a file path, got {path!r}")
    full = path if os.path.isabs(path) else os.path.join(base_dir, path)
    if not os.path.isfile(full):
        raise ConfigError(f"`{key}`: {full} does not exist; paths are relative to the sweep file")
    return os.path.abspath(full)


def _string_list(value: Any, key: str) -> list[str]:
    value = [value] if isinstance(value, str) else value
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"`{key}` must be a string or a list of strings, got {value!r}")
    return value


# --- reaching the user's LightningCLI ----------------------------------------------------------
def cli_classes() -> list[type]:
    """The LightningCLI base classes of the Lightning namespaces installed."""
    found = []
    for module in ("lightning.pytorch.cli", "pytorch_lightning.cli"):
        try:
            found.append(importlib.import_module(module).LightningCLI)
        except ImportError:
            continue
    if not found:
        raise missing_extra("jsonargparse[signatures]", "cli", "Sweeping a LightningCLI")
    return found


@contextlib.contextmanager
def _wrapped(
    method: str, make: Callable[[Callable[..., Any]], Callable[..., Any]]
) -> Iterator[None]:
    """Replace ``method`` on every LightningCLI base class by ``make(original)``, then restore."""
    saved = [(cls, cls.__dict__[method]) for cls in cli_classes()]
    try:
        for cls, original in saved:
            setattr(cls, method, make(original))
        yield
    finally:
        for cls, original in saved:
            setattr(cls, method, original)


@contextlib.contextmanager
def _argv(argv: list[str]) -> Iterator[None]:
    saved = sys.argv
    sys.argv = argv
    try:
        yield
    finally:
        sys.argv = saved


def _enter(spec: CLISpec, argv: list[str]) -> None:
    """Run the project's entry point as its command line would, with ``argv`` after it."""
    if spec.script is not None:
        folder = os.path.dirname(spec.script)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        with _argv([spec.script, *argv]):
            runpy.run_path(spec.script, run_name="__main__")
        return
    module_name, attr = str(spec.entry).split(":")
    if spec.base_dir not in sys.path:
        sys.path.insert(0, spec.base_dir)
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"`cli.class` {spec.entry!r} cannot be imported: {exc}") from None
    if isinstance(target, type) and issubclass(target, tuple(cli_classes())):
        target(args=list(argv))  # type: ignore[call-arg]
    elif callable(target):
        with _argv([attr, *argv]):
            target()
    else:
        raise ConfigError(f"`cli.class` {spec.entry!r} is neither a LightningCLI nor a function")


class _Probed(BaseException):
    """Raised inside the user's entry point once its parser exists (user code cannot catch it
    with ``except Exception``)."""


def build_parser(spec: CLISpec) -> Any:
    """The parser of the project's LightningCLI: the entry point runs up to it and stops."""
    found: list[Any] = []

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def parse_arguments(self: Any, parser: Any, args: Any) -> None:
            found.append(parser)
            raise _Probed

        return parse_arguments

    try:
        with _wrapped("parse_arguments", make), contextlib.redirect_stdout(io.StringIO()):
            _enter(spec, [])
    except _Probed:
        return found[0]
    except ConfigError:
        raise
    except (Exception, SystemExit) as exc:
        raise ConfigError(
            f"`cli`: {spec.name} failed before building its LightningCLI: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    raise ConfigError(
        f"`cli`: {spec.name} builds no LightningCLI when run (a script must build one when run "
        "as __main__; a class must be a LightningCLI subclass or a function that builds one)"
    )


# --- command lines -----------------------------------------------------------------------------
def has_subcommands(parser: Any) -> bool:
    return getattr(parser, "_subcommands_action", None) is not None


def base_argv(spec: CLISpec) -> list[str]:
    argv = ["fit"] if spec.subcommands else []
    for path in spec.config:
        argv += ["--config", path]
    return argv + list(spec.args)


def cli_value(value: Any) -> str:
    """A value as the CLI reads it back (YAML): ``1e-05`` needs a dot to be a YAML 1.1 float."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float):
        text = repr(value)
        if "e" in text and "." not in text.split("e")[0]:
            mantissa, exponent = text.split("e")
            text = f"{mantissa}.0e{exponent}"
        return text
    if isinstance(value, str) and yaml.safe_load(value) != value:
        return json.dumps(value)  # "true", "1", "" as strings
    return str(value)


def override_args(params: Mapping[str, Any]) -> list[str]:
    return [f"--{key}={cli_value(value)}" for key, value in params.items()]


def parse(parser: Any, argv: list[str]) -> tuple[Any, str]:
    """The parsed namespace, or None and the CLI's error message (one line)."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            return parser.parse_args(argv), ""
    except SystemExit:
        text = err.getvalue()
        text = text[text.rfind("error:") + len("error:") :] if "error:" in text else text
        skip = ("Subtypes:", "Given value", "- Expected a <class 'NoneType'>", "Errors:")
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        message = " ".join(ln for ln in lines if not ln.startswith(skip))
        return None, message[:500] or "the CLI's parser refused the arguments"


# --- checking a space against the CLI ----------------------------------------------------------
@dataclass(frozen=True)
class CLIInfo:
    """What :func:`inspect_cli` learned: the spec (with ``subcommands`` found), the CLI's keys
    and its monitored metric."""

    spec: CLISpec
    keys: tuple[str, ...]
    monitor: str | None
    mode: str | None


def covering_points(space: SearchSpace, tries: int = 400) -> list[dict[str, Any]]:
    """A few points of the space in which every parameter and every categorical choice appears."""
    wanted: set[Any] = set(space.names)
    for name, dom in space.items():
        if isinstance(dom, Categorical):
            wanted |= {(name, repr(c)) for c in dom.choices}
    rng = np.random.default_rng(0)
    points: list[dict[str, Any]] = []
    for i in range(tries):
        params = space.decode(np.full(space.dim, 0.5) if i == 0 else rng.random(space.dim))
        shows = set(params) | {(k, repr(v)) for k, v in params.items()}
        if shows & wanted:
            points.append(params)
            wanted -= shows
        if not wanted:
            break
    return points


def inspect_cli(spec: CLISpec, space: SearchSpace) -> CLIInfo:
    """Check the base config and every space key against the CLI (see the module docstring)."""
    parser = build_parser(spec)
    spec = replace(spec, subcommands=has_subcommands(parser))
    base = base_argv(spec)
    cfg, error = parse(parser, base)
    if cfg is None:
        raise ConfigError(f"`cli`: the CLI refuses its base command line {base}: {error}")
    fit_cfg = cfg.get("fit") if spec.subcommands else cfg
    keys = tuple(fit_cfg.keys())
    for point in covering_points(space):
        if parse(parser, base + override_args(point))[0] is not None:
            continue
        for key, value in point.items():
            _, error = parse(parser, [*base, *override_args({key: value})])
            if error:
                hint = "" if key in keys else did_you_mean(key, keys)
                raise ConfigError(
                    f"space key {key!r} = {value!r} is refused by the CLI: {error}{hint}"
                )
        raise ConfigError(f"the CLI refuses the combination {point}: {error}")
    monitor, mode = _checkpoint_monitor(fit_cfg, keys)
    return CLIInfo(spec=spec, keys=keys, monitor=monitor, mode=mode)


def _checkpoint_monitor(cfg: Any, keys: tuple[str, ...]) -> tuple[str | None, str | None]:
    """monitor and mode of the first ModelCheckpoint or EarlyStopping in the config (in
    ``trainer.callbacks``, or added to the parser as ``checkpoint``-like keys)."""
    for item in _get(cfg, "trainer.callbacks") or []:
        class_path = str(_get(item, "class_path") or "")
        init = _get(item, "init_args")
        monitor = _get(init, "monitor")
        if class_path.endswith(("ModelCheckpoint", "EarlyStopping")) and monitor:
            return str(monitor), _get(init, "mode")
    for key in keys:
        if key.endswith(".monitor") and not key.startswith("trainer.") and cfg.get(key):
            return str(cfg.get(key)), cfg.get(key[: -len("monitor")] + "mode")
    return None, None


def _get(obj: Any, key: str) -> Any:
    getter = getattr(obj, "get", None)
    try:
        return getter(key) if callable(getter) else None
    except (KeyError, TypeError):
        return None


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
    try:
        with _wrapped("instantiate_trainer", make):
            _enter(spec, argv)
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
