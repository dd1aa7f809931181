"""Checking a search space against a LightningCLI's parser before the first trial.

The project's entry point runs up to its parser and stops (:func:`build_parser`); the base
config is parsed with points of the space in which every key and choice appears
(:func:`inspect_cli`); a refused key or value is reported with the CLI's own message and a
did-you-mean from its keys. ``monitor`` and ``mode`` come from the config's ModelCheckpoint or
EarlyStopping.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from hpo_lightning._names import did_you_mean
from hpo_lightning.exceptions import ConfigError
from hpo_lightning.lightning._cli_spec import (
    CLISpec,
    base_argv,
    enter_project,
    override_args,
    wrap_cli_method,
)
from hpo_lightning.space import Categorical, SearchSpace


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
        with wrap_cli_method("parse_arguments", make), contextlib.redirect_stdout(io.StringIO()):
            enter_project(spec)
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


def has_subcommands(parser: Any) -> bool:
    return getattr(parser, "_subcommands_action", None) is not None


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
