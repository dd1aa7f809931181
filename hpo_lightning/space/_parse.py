"""Reading a domain from its plain (YAML/JSON) shape."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hpo_lightning._names import did_you_mean
from hpo_lightning.exceptions import InvalidSpaceError
from hpo_lightning.space._domains import Categorical, Domain, Float, Int

_DOMAIN_KEYS = {
    "float": {"type", "low", "high", "log", "when"},
    "int": {"type", "low", "high", "log", "step", "when"},
    "categorical": {"type", "choices", "when"},
}


def _number(name: str, key: str, value: Any) -> Any:
    # PyYAML (YAML 1.1) reads `1e-4` as a string; accept any string that is a number.
    if isinstance(value, str):
        try:
            f = float(value)
        except ValueError:
            raise InvalidSpaceError(
                f"parameter '{name}': `{key}` must be a number, but got {value!r}"
            ) from None
        return int(f) if f.is_integer() and "." not in value and "e" not in value.lower() else f
    return value


def _yaml_numbers(choices: Any) -> Any:
    """Choices like ``[0.05, 1e-05]``: YAML 1.1 reads ``1e-05`` as a string; when every other
    choice is a number and every string parses as one, the strings were meant as numbers."""
    if not isinstance(choices, (list, tuple)):
        return choices
    strings = [c for c in choices if isinstance(c, str)]
    numbers = [c for c in choices if isinstance(c, (int, float)) and not isinstance(c, bool)]
    if not strings or not numbers or len(strings) + len(numbers) != len(choices):
        return choices
    try:
        [float(c) for c in strings]
    except ValueError:
        return choices
    return [float(c) if isinstance(c, str) else c for c in choices]


def domain_from_dict(name: str, spec: Any) -> Domain:
    """Build one domain from its plain (YAML/JSON) shape; see :meth:`SearchSpace.from_dict`.

    A ``when`` key (a condition) is not read here: :func:`flatten_space` reads it.
    """
    if isinstance(spec, Domain):
        return spec
    inner = getattr(spec, "domain", None)  # a Conditional wrapper
    if isinstance(inner, Domain):
        return inner
    if isinstance(spec, (list, tuple)):
        return Categorical(_yaml_numbers(spec))
    if not isinstance(spec, Mapping):
        raise InvalidSpaceError(
            f"parameter '{name}' must be a mapping like {{type: float, low: 0, high: 1}} "
            f"or a list of choices, but got {spec!r}"
        )
    kind = spec.get("type")
    if kind is None:
        kind = "categorical" if "choices" in spec else None
    if kind not in _DOMAIN_KEYS:
        raise InvalidSpaceError(
            f"parameter '{name}': `type` must be one of float, int, categorical, but got "
            f"{kind!r}{did_you_mean(str(kind), _DOMAIN_KEYS)}"
        )
    unknown = set(spec) - _DOMAIN_KEYS[kind]
    if unknown:
        key = sorted(unknown)[0]
        raise InvalidSpaceError(
            f"parameter '{name}': unknown key '{key}' for a {kind} domain (allowed: "
            f"{', '.join(sorted(_DOMAIN_KEYS[kind]))}){did_you_mean(key, _DOMAIN_KEYS[kind])}"
        )
    try:
        if kind == "categorical":
            if "choices" not in spec:
                raise InvalidSpaceError(f"parameter '{name}': a categorical needs `choices`")
            return Categorical(_yaml_numbers(spec["choices"]))
        for req in ("low", "high"):
            if req not in spec:
                raise InvalidSpaceError(f"parameter '{name}': a {kind} domain needs `{req}`")
        low = _number(name, "low", spec["low"])
        high = _number(name, "high", spec["high"])
        log = spec.get("log", False)
        if not isinstance(log, bool):
            raise InvalidSpaceError(f"parameter '{name}': `log` must be true or false, got {log!r}")
        if kind == "float":
            return Float(low, high, log=log)
        return Int(low, high, log=log, step=_number(name, "step", spec.get("step", 1)))
    except InvalidSpaceError as exc:
        msg = str(exc)
        raise InvalidSpaceError(
            msg if msg.startswith("parameter") else f"parameter '{name}': {msg}"
        ) from None
