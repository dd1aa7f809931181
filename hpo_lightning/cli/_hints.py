"""Texts that tell a person what to do next: after max_failures, or when a sweep is not found.

Kept apart from the commands so the sweep driver (or any launcher) can print the same words.
"""

from __future__ import annotations

import os
from pathlib import Path

# folders never searched for sweep files: environments, caches, VCS data
_SKIP_DIRS = {"node_modules", "__pycache__", "site-packages", "venv", "mlruns"}
_MAX_FILE_BYTES = 64_000
_MAX_DEPTH = 2


def max_failures_hint(name: str, n_failed: int, *, first_error: str | None = None) -> str:
    """One line for a sweep stopped by ``max_failures``: the first error and how to go on.

    Example:
        >>> print(max_failures_hint("digits", 3, first_error="ValueError: bad lr"))
        ... # doctest: +ELLIPSIS
        sweep 'digits' stopped after 3 failed trials; first error: ValueError: bad lr; ...
    """
    lines = (first_error or "").strip().splitlines()
    return (
        f"sweep '{name}' stopped after {n_failed} failed trials; first error: "
        f"{lines[0] if lines else 'unknown'}; max_failures reached: fix the cause, then rerun "
        f"with a higher limit "
        f"(`max_failures:` in the sweep file, or --max-failures {n_failed + 5}), or start "
        f"over with: hpo-lightning delete {name}"
    )


def sweep_files_naming(name: str | None, root: str | os.PathLike[str] = ".") -> list[Path]:
    """Sweep files (``*.yaml``/``*.yml``) under ``root`` (2 folders deep at most, hidden and
    environment folders skipped) whose ``name:`` is ``name`` (any name when None); unreadable
    files are skipped."""
    import yaml

    found: list[Path] = []
    base = Path(root)
    for folder, dirs, files in os.walk(base):
        depth = len(Path(folder).relative_to(base).parts)
        dirs[:] = (
            []
            if depth >= _MAX_DEPTH
            else sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS)
        )
        for f in sorted(files):
            path = Path(folder) / f
            if not f.endswith((".yaml", ".yml")):
                continue
            try:
                if path.stat().st_size > _MAX_FILE_BYTES:
                    continue
                data = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, yaml.YAMLError):
                continue
            if (
                isinstance(data, dict)
                and "objective" in data
                and data.get("name") is not None
                and (name is None or data.get("name") == name)
            ):
                found.append(path)
    return found


def where_sweep_is_hint(name: str, looked_in: str) -> str:
    """The sentence to add when ``name`` is not in the default store ``looked_in``: which
    sweep files nearby define it and the command that reads it, or how to name the store."""
    files = sweep_files_naming(name)
    if not files:
        return (
            f"looked in {looked_in}, the default store of read commands; give the sweep file "
            "instead of the name, or --storage PATH_OR_URL (or set $HPO_LIGHTNING_STORAGE)"
        )
    shown = " or ".join(str(f) for f in files[:3])
    return (
        f"looked in {looked_in}, the default store of read commands; the sweep file {shown} "
        f"defines '{name}': give the file instead of the name and its store is used, "
        f"e.g. hpo-lightning status {files[0]}"
    )


def stores_nearby_hint() -> str:
    """For ``list`` without a store: the stores that sweep files nearby use, and the command."""
    from hpo_lightning.exceptions import UserInputError
    from hpo_lightning.sweep._config import load_sweep_file

    stores: dict[str, list[str]] = {}
    for path in sweep_files_naming(None)[:20]:
        try:
            cfg = load_sweep_file(path)
        except UserInputError:
            continue
        where = os.path.relpath(cfg.storage_location()) if not cfg.storage else cfg.storage
        stores.setdefault(where, []).append(cfg.name)
    if not stores:
        return "give --storage PATH_OR_URL (or set $HPO_LIGHTNING_STORAGE)"
    shown = "; ".join(f"{w} ({', '.join(names)})" for w, names in list(stores.items())[:3])
    first = next(iter(stores))
    return f"sweep files nearby store in: {shown}; e.g. hpo-lightning list --storage {first}"
