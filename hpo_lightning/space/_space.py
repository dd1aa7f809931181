"""SearchSpace: a named, ordered collection of domains and the one unit-cube transform."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from hpo_lightning._names import check_name, did_you_mean
from hpo_lightning.exceptions import InvalidSpaceError
from hpo_lightning.space._domains import Categorical, Domain, Float, Int

_DOMAIN_KEYS = {
    "float": {"type", "low", "high", "log"},
    "int": {"type", "low", "high", "log", "step"},
    "categorical": {"type", "choices"},
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
    """Build one domain from its plain (YAML/JSON) shape; see :meth:`SearchSpace.from_dict`."""
    if isinstance(spec, Domain):
        return spec
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


class SearchSpace(Mapping[str, Domain]):
    """An ordered, immutable mapping of parameter names to domains.

    The space owns the one transform to the unit cube that every tuner uses:
    :meth:`encode` maps a params dict to a vector in ``[0, 1]^d`` and :meth:`decode` maps it back.

    Example:
        >>> lr, opt = Float(1e-4, 1e-1, log=True), Categorical(["adam", "sgd"])
        >>> space = SearchSpace({"lr": lr, "opt": opt})
        >>> sorted(space.decode([0.5, 0.9]).items())
        [('lr', 0.003162277660168382), ('opt', 'sgd')]
    """

    __slots__ = ("_domains", "_names")

    def __init__(self, domains: Mapping[str, Any]) -> None:
        if isinstance(domains, SearchSpace):
            domains = dict(domains.items())
        if not isinstance(domains, Mapping):
            raise InvalidSpaceError(
                f"a search space must be a mapping of names to domains, but got {domains!r}"
            )
        if not domains:
            raise InvalidSpaceError("the search space is empty; give at least one parameter")
        built: dict[str, Domain] = {}
        for name, spec in domains.items():
            check_name("a parameter name", name, error=InvalidSpaceError)
            built[name] = domain_from_dict(name, spec)
        self._domains = built
        self._names = tuple(built)

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> SearchSpace:
        """Build a space from its plain shape (as read from YAML or JSON).

        Each key is a parameter name; each value is one of::

            {type: float, low: 1e-4, high: 0.1, log: true}
            {type: int, low: 16, high: 256, log: true}      # or step: 16
            {type: categorical, choices: [adam, sgd]}
            [adam, sgd]                                      # shorthand for a categorical
        """
        return cls(spec)

    def to_dict(self) -> dict[str, Any]:
        """The plain shape accepted by :meth:`from_dict` (JSON-serialisable)."""
        return {name: d.to_dict() for name, d in self._domains.items()}

    # Mapping protocol -------------------------------------------------------
    def __getitem__(self, name: str) -> Domain:
        return self._domains[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        return f"SearchSpace({self._domains!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SearchSpace) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(tuple(self._names))

    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    @property
    def dim(self) -> int:
        return len(self._names)

    @property
    def is_discrete(self) -> bool:
        """True when every domain has a finite number of values (grid search is possible)."""
        return all(d.n_values is not None for d in self._domains.values())

    # Transform --------------------------------------------------------------
    def encode(self, params: Mapping[str, Any]) -> np.ndarray:
        """Map params to a point of the unit cube (bin centres for discrete values)."""
        self.validate(params)
        return np.array([self._domains[n].to_unit(params[n]) for n in self._names], dtype=float)

    def decode(self, u: Any) -> dict[str, Any]:
        """Map a point of the unit cube to params; values outside [0, 1] are clipped."""
        arr = np.asarray(u, dtype=float).reshape(-1)
        if arr.shape[0] != len(self._names):
            raise InvalidSpaceError(
                f"decode needs a vector of length {len(self._names)}, got length {arr.shape[0]}"
            )
        return {n: self._domains[n].from_unit(float(x)) for n, x in zip(self._names, arr)}

    def validate(self, params: Mapping[str, Any]) -> None:
        """Raise InvalidSpaceError unless params has exactly this space's names, all in domain."""
        if not isinstance(params, Mapping):
            raise InvalidSpaceError(f"params must be a mapping, got {params!r}")
        missing = [n for n in self._names if n not in params]
        extra = [k for k in params if k not in self._domains]
        if missing or extra:
            raise InvalidSpaceError(
                f"params do not match the space: missing {missing}, unexpected {extra}"
            )
        for n in self._names:
            if not self._domains[n].contains(params[n]):
                raise InvalidSpaceError(
                    f"parameter '{n}' = {params[n]!r} is outside its domain {self._domains[n]}"
                )

    def contains(self, params: Mapping[str, Any]) -> bool:
        try:
            self.validate(params)
        except InvalidSpaceError:
            return False
        return True

    def grid_size(self) -> int:
        if not self.is_discrete:
            return 0
        return math.prod(int(d.n_values or 0) for d in self._domains.values())

    def grid(self) -> Iterator[dict[str, Any]]:
        """Iterate the Cartesian product of all values (discrete spaces only)."""
        if not self.is_discrete:
            cont = [n for n, d in self._domains.items() if d.n_values is None]
            raise InvalidSpaceError(
                f"grid search needs discrete domains, but {cont} are continuous Floats; "
                "use Categorical or Int domains, or another tuner"
            )
        axes = []
        for d in self._domains.values():
            n = int(d.n_values or 0)
            axes.append([d.from_unit((k + 0.5) / n) for k in range(n)])
        for combo in itertools.product(*axes):
            yield dict(zip(self._names, combo))
