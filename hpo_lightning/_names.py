"""Name look-ups that answer a typo with the close name: registries, options, file keys."""

from __future__ import annotations

import difflib
import inspect
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from hpo_lightning.exceptions import UnknownNameError, UserInputError

T = TypeVar("T")


def did_you_mean(word: object, options: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest option, or ``""`` when none is close."""
    close = difflib.get_close_matches(str(word), list(options), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def lookup(kind: str, name: object, registry: Mapping[str, T]) -> T:
    """``registry[name]``, or an UnknownNameError that lists the known names."""
    found = registry.get(name) if isinstance(name, str) else None
    if found is None:
        raise UnknownNameError(
            f"unknown {kind} {name!r}; known {kind}s: {', '.join(sorted(registry))}"
            f"{did_you_mean(name, registry)}"
        )
    return found


def check_options(
    kind: str,
    name: str,
    builder: Callable[..., Any],
    options: Iterable[str],
    *,
    reserved: Iterable[str] = (),
) -> None:
    """Refuse options that ``builder`` does not take as keyword-only arguments."""
    params = inspect.signature(builder).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    skip = set(reserved)
    allowed = [k for k, p in params.items() if p.kind is p.KEYWORD_ONLY and k not in skip]
    for key in options:
        if key not in allowed:
            raise UserInputError(
                f"{kind} '{name}' has no option {key!r} (its options: "
                f"{', '.join(allowed) or 'none'}){did_you_mean(key, allowed)}"
            )


MAX_NAME_LENGTH = 200
_NAME_BAD_CHARS = "/\\'\"`"
# control, format (bidi overrides, zero-width), line/paragraph separators, surrogates, private
_NAME_BAD_CATEGORIES = {"Cc", "Cf", "Zl", "Zp", "Cs", "Co"}


def check_name(kind: str, name: object, *, error: type[UserInputError] = UserInputError) -> str:
    """Refuse a name that would break lines, paths, queries or displays; return it.

    A sweep or parameter name is printed on progress lines, used in MLflow keys and file
    names: it must be a non-empty string of at most 200 characters without control or bidi
    characters, ``/``, ``\\``, quotes, ``..`` or surrounding spaces.

    Example:
        >>> check_name("sweep name", "lr-search v2")
        'lr-search v2'
    """
    if not isinstance(name, str) or not name.strip():
        raise error(f"{kind} must be a non-empty string, but got {name!r}")
    rule = (
        f"{kind} must be at most {MAX_NAME_LENGTH} characters without control or bidi "
        "characters, '/', '\\', quotes, '..' or surrounding spaces"
    )
    if len(name) > MAX_NAME_LENGTH:
        raise error(f"{rule}, but got one of {len(name)} characters")
    for i, ch in enumerate(name):
        if ch in _NAME_BAD_CHARS or unicodedata.category(ch) in _NAME_BAD_CATEGORIES:
            raise error(f"{rule}, but got {name!a} ({ch!a} at position {i})")
    if ".." in name or name != name.strip():
        raise error(f"{rule}, but got {name!a}")
    return name
