"""Immutable, validated parameter domains and their maps to and from the unit interval.

Every tuner works in the unit cube ``[0, 1]^d``; each domain maps ``u in [0, 1]`` to a value
(``from_unit``) and back (``to_unit``). Discrete domains split the interval into equal bins, so
a uniform ``u`` gives every value the same probability, and ``to_unit`` returns the bin centre.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Union

from hpo_lightning.exceptions import InvalidSpaceError

Scalar = Union[str, int, float, bool, None]  # noqa: UP007 (runtime alias on 3.10)


def _is_real(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


class Domain:
    """Base of the parameter domains. Subclasses are frozen dataclasses."""

    kind: ClassVar[str]

    def from_unit(self, u: float) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_unit(self, value: Any) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def contains(self, value: Any) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def is_categorical(self) -> bool:
        return False

    @property
    def n_values(self) -> int | None:
        """Number of distinct values, or None for a continuous domain."""
        return None


def _clip01(u: float) -> float:
    return 0.0 if u < 0.0 else 1.0 if u > 1.0 else float(u)


@dataclass(frozen=True)
class Float(Domain):
    """A real interval ``[low, high]``, optionally on a log scale.

    Example:
        >>> Float(1e-4, 1e-1, log=True).from_unit(0.5)  # doctest: +ELLIPSIS
        0.00316...
    """

    low: float
    high: float
    log: bool = False
    kind: ClassVar[str] = "float"

    def __post_init__(self) -> None:
        if not (_is_real(self.low) and _is_real(self.high)):
            raise InvalidSpaceError(
                f"Float bounds must be numbers, but got low={self.low!r}, high={self.high!r}"
            )
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise InvalidSpaceError(
                f"Float bounds must be finite, but got low={self.low}, high={self.high}"
            )
        if not self.low < self.high:
            raise InvalidSpaceError(
                f"`low < high` must hold, but got low={self.low}, high={self.high}"
            )
        if self.log and self.low <= 0:
            raise InvalidSpaceError(
                f"log=True needs `low > 0`, but got low={self.low}; use log=False or a positive low"
            )
        object.__setattr__(self, "low", float(self.low))
        object.__setattr__(self, "high", float(self.high))

    def from_unit(self, u: float) -> float:
        u = _clip01(u)
        if u in (0.0, 1.0):  # the bounds exactly (exp(log(1e-6)) is 1.0000000000000004e-06)
            return self.low if u == 0.0 else self.high
        if self.log:
            lo, hi = math.log(self.low), math.log(self.high)
            v = math.exp(lo + u * (hi - lo))
        else:
            v = self.low + u * (self.high - self.low)
        return min(max(v, self.low), self.high)

    def to_unit(self, value: Any) -> float:
        v = float(value)
        if self.log:
            lo, hi = math.log(self.low), math.log(self.high)
            return _clip01((math.log(v) - lo) / (hi - lo))
        return _clip01((v - self.low) / (self.high - self.low))

    def contains(self, value: Any) -> bool:
        return _is_real(value) and self.low <= float(value) <= self.high

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": "float", "low": self.low, "high": self.high}
        if self.log:
            d["log"] = True
        return d


@dataclass(frozen=True)
class Int(Domain):
    """Integers ``low, low+step, ..., <= high``; ``log=True`` samples on a log scale (step 1).

    Example:
        >>> Int(16, 256, log=True).contains(64)
        True
    """

    low: int
    high: int
    log: bool = False
    step: int = 1
    kind: ClassVar[str] = "int"

    def __post_init__(self) -> None:
        for arg in ("low", "high", "step"):
            v = getattr(self, arg)
            if isinstance(v, float) and v.is_integer():
                object.__setattr__(self, arg, int(v))
            elif not isinstance(v, int) or isinstance(v, bool):
                raise InvalidSpaceError(f"Int `{arg}` must be an integer, but got {arg}={v!r}")
        if not self.low < self.high:
            raise InvalidSpaceError(
                f"`low < high` must hold, but got low={self.low}, high={self.high}"
            )
        if self.step < 1:
            raise InvalidSpaceError(f"Int `step` must be >= 1, but got step={self.step}")
        if self.log and self.low <= 0:
            raise InvalidSpaceError(
                f"log=True needs `low > 0`, but got low={self.low}; use log=False or a positive low"
            )
        if self.log and self.step != 1:
            raise InvalidSpaceError(
                f"log=True cannot be combined with step={self.step}; use step=1 or log=False"
            )
        if (self.high - self.low) % self.step:
            raise InvalidSpaceError(
                f"`high - low` must be a multiple of step, but got low={self.low}, "
                f"high={self.high}, step={self.step}"
            )

    @property
    def n_values(self) -> int:
        return (self.high - self.low) // self.step + 1

    def from_unit(self, u: float) -> int:
        u = _clip01(u)
        if self.log:
            lo, hi = math.log(self.low - 0.5), math.log(self.high + 0.5)
            v = round(math.exp(lo + u * (hi - lo)))
            return min(max(int(v), self.low), self.high)
        k = min(int(u * self.n_values), self.n_values - 1)
        return self.low + k * self.step

    def to_unit(self, value: Any) -> float:
        v = int(round(float(value)))
        if self.log:
            lo, hi = math.log(self.low - 0.5), math.log(self.high + 0.5)
            # centre of the interval of reals that round to v, in log space
            a = math.log(max(v - 0.5, self.low - 0.5))
            b = math.log(min(v + 0.5, self.high + 0.5))
            return _clip01(((a + b) / 2 - lo) / (hi - lo))
        k = (v - self.low) // self.step
        return _clip01((k + 0.5) / self.n_values)

    def contains(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int):
            return False
        return self.low <= value <= self.high and (value - self.low) % self.step == 0

    def cell(self, value: Any) -> int:
        """The index of ``value`` among the domain's values."""
        return (int(value) - self.low) // self.step

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": "int", "low": self.low, "high": self.high}
        if self.log:
            d["log"] = True
        if self.step != 1:
            d["step"] = self.step
        return d


@dataclass(frozen=True)
class Categorical(Domain):
    """One of a fixed, non-empty list of unique JSON scalars (str, int, float, bool, None).

    ``choices`` may be a mapping from each choice to its own sub-space (a mapping of parameter
    names to domains, empty or None for none): those parameters exist only when that choice is
    made (see :class:`~hpo_lightning.SearchSpace`, "Conditional spaces").

    Example:
        >>> Categorical(["adam", "sgd"]).from_unit(0.9)
        'sgd'
        >>> opt = Categorical({"adam": {"beta1": Float(0.8, 0.99)}, "sgd": None})
        >>> opt.choices, list(opt.branches[0][1])
        (('adam', 'sgd'), ['beta1'])
    """

    choices: tuple[Scalar, ...]
    #: per choice with a sub-space, ``(choice, {name: domain spec})``; not part of equality
    branches: tuple[tuple[Scalar, Mapping[str, Any]], ...] = field(
        default=(), compare=False, hash=False, repr=False
    )
    kind: ClassVar[str] = "categorical"

    def __init__(self, choices: Any) -> None:
        branches: list[tuple[Scalar, Mapping[str, Any]]] = []
        if isinstance(choices, Mapping):
            for choice, sub in choices.items():
                if sub is None:
                    continue
                if not isinstance(sub, Mapping):
                    raise InvalidSpaceError(
                        f"the sub-space of choice {choice!r} must be a mapping of parameter "
                        f"names to domains (or empty), but got {sub!r}"
                    )
                if sub:
                    branches.append((choice, dict(sub)))
            choices = list(choices)
        object.__setattr__(self, "branches", tuple(branches))
        if isinstance(choices, (str, bytes)) or not hasattr(choices, "__iter__"):
            raise InvalidSpaceError(
                f"Categorical `choices` must be a list of values, but got {choices!r}"
            )
        values = tuple(choices)
        if not values:
            raise InvalidSpaceError("Categorical `choices` must not be empty")
        for c in values:
            if c is not None and not isinstance(c, (str, int, float, bool)):
                raise InvalidSpaceError(
                    f"Categorical choices must be str, int, float, bool or None, "
                    f"but got {c!r} of type {type(c).__name__}"
                )
        seen: list[tuple[type, Scalar]] = []
        for c in values:
            key = (type(c), c)
            if key in seen:
                raise InvalidSpaceError(f"Categorical choices must be unique, but {c!r} repeats")
            seen.append(key)
        object.__setattr__(self, "choices", values)

    @property
    def is_categorical(self) -> bool:
        return True

    @property
    def n_values(self) -> int:
        return len(self.choices)

    def index(self, value: Any) -> int:
        for i, c in enumerate(self.choices):
            if type(c) is type(value) and c == value:
                return i
        for i, c in enumerate(self.choices):  # JSON may turn 1.0 into 1, tolerate that
            if c == value and not isinstance(c, bool) and not isinstance(value, bool):
                return i
        raise InvalidSpaceError(f"{value!r} is not one of the choices {list(self.choices)!r}")

    def from_unit(self, u: float) -> Scalar:
        k = min(int(_clip01(u) * len(self.choices)), len(self.choices) - 1)
        return self.choices[k]

    def to_unit(self, value: Any) -> float:
        return (self.index(value) + 0.5) / len(self.choices)

    def contains(self, value: Any) -> bool:
        try:
            self.index(value)
        except InvalidSpaceError:
            return False
        return True

    def to_dict(self) -> dict[str, Any]:
        return {"type": "categorical", "choices": list(self.choices)}

    def cell(self, value: Any) -> int:
        """The index of ``value`` among the choices (its cell of the unit interval)."""
        return self.index(value)
