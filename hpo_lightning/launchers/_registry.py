"""Launchers by name: ``launcher: {name: local}`` in a sweep file, ``--launcher`` on the CLI."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from hpo_lightning._names import did_you_mean
from hpo_lightning.exceptions import ConfigError
from hpo_lightning.launchers._base import Launcher

# name -> "module:Class", imported when asked for (Ray and submitit are optional extras)
_REGISTRY: dict[str, str] = {
    "local": "hpo_lightning.launchers._local:LocalLauncher",
    "ray": "hpo_lightning.launchers._ray:RayLauncher",
    "slurm": "hpo_lightning.launchers._slurm:SlurmLauncher",
}


def register_launcher(name: str, target: str | type[Launcher]) -> None:
    """Register a launcher class (or its ``"module:Class"`` path) under ``name``."""
    if not isinstance(target, str):
        target = f"{target.__module__}:{target.__qualname__}"
    _REGISTRY[name] = target


def launcher_names() -> list[str]:
    return sorted(_REGISTRY)


def make_launcher(
    spec: str | Mapping[str, Any] | Launcher | None = None, **options: Any
) -> Launcher:
    """A launcher from a name, a ``{name: ..., option: ...}`` section or a Launcher (as is).

    Example:
        >>> make_launcher({"name": "local", "grace_s": 10}).grace_s
        10.0
    """
    if isinstance(spec, Launcher):
        return spec
    if spec is None:
        spec = "local"
    if isinstance(spec, Mapping):
        options = {**{k: v for k, v in spec.items() if k != "name"}, **options}
        spec = spec.get("name", "local")
    if not isinstance(spec, str) or spec not in _REGISTRY:
        hint = did_you_mean(str(spec), launcher_names())
        raise ConfigError(
            f"unknown launcher {spec!r}; known launchers: {', '.join(launcher_names())}{hint}"
        )
    module_name, cls_name = _REGISTRY[spec].split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    try:
        return cls(**options)
    except TypeError as exc:
        import inspect

        allowed = [p for p in inspect.signature(cls).parameters if p != "self"]
        bad = next((k for k in options if k not in allowed), None)
        if bad is None:
            raise ConfigError(f"launcher '{spec}': {exc}") from None
        known = ", ".join(allowed) or "none"
        raise ConfigError(
            f"launcher '{spec}': unknown option {bad!r} (options: {known})"
            f"{did_you_mean(bad, allowed)}"
        ) from None
