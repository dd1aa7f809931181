"""Where a LightningCLI project starts, how its entry point is run, and its command lines.

See ``hpo_lightning.lightning._cli`` for how a ``cli:`` sweep uses them.
"""

from __future__ import annotations

import builtins
import contextlib
import importlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from hpo_lightning._names import did_you_mean
from hpo_lightning.exceptions import ConfigError, missing_extra

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
def wrap_cli_method(
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


def enter_project(spec: CLISpec) -> None:
    """Run the project's entry point; its LightningCLI gets its arguments from the wrappers."""
    if spec.script is not None:
        folder = os.path.dirname(spec.script)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        with open(spec.script, encoding="utf-8") as fh:
            code = compile(fh.read(), spec.script, "exec")
        # __name__ == "__main__" in its own namespace; sys.argv and sys.modules["__main__"]
        # stay the sweep's, so a DDP launcher that re-runs the command line re-runs the sweep
        exec(code, {"__name__": "__main__", "__file__": spec.script, "__builtins__": builtins})
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
    if not callable(target) or (
        isinstance(target, type) and not issubclass(target, tuple(cli_classes()))
    ):
        raise ConfigError(f"`cli.class` {spec.entry!r} is neither a LightningCLI nor a function")
    target()


# --- command lines -----------------------------------------------------------------------------


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
