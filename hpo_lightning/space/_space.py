"""SearchSpace: a named, ordered collection of domains and the one unit-cube transform."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from hpo_lightning.exceptions import InvalidSpaceError
from hpo_lightning.space._conditional import (
    CompiledCondition,
    Condition,
    active_mask,
    compile_conditions,
    flatten_space,
)
from hpo_lightning.space._domains import Domain


class SearchSpace(Mapping[str, Domain]):
    """An ordered, immutable mapping of parameter names to domains.

    The space owns the one transform to the unit cube that every tuner uses:
    :meth:`encode` maps a params dict to a vector in ``[0, 1]^d`` and :meth:`decode` maps it back.

    **Conditional spaces.** A categorical's choices may carry sub-spaces, and any parameter may
    be made active only when a discrete parent takes some values (``when``, or
    :class:`Conditional` in Python). The space is kept flat (parents before children, each
    conditional parameter with its :class:`Condition`); a params dict holds exactly the
    *active* parameters, ``encode`` gives NaN for the inactive coordinates and ``decode``
    ignores them, so every tuner that decodes cube points suggests valid params.

    Example:
        >>> from hpo_lightning import Categorical, Float
        >>> lr, opt = Float(1e-4, 1e-1, log=True), Categorical(["adam", "sgd"])
        >>> space = SearchSpace({"lr": lr, "opt": opt})
        >>> sorted(space.decode([0.5, 0.9]).items())
        [('lr', 0.003162277660168382), ('opt', 'sgd')]
        >>> opt = Categorical({"adam": None, "sgd": {"momentum": Float(0, 1)}})
        >>> cond = SearchSpace({"opt": opt})
        >>> cond.decode([0.9, 0.5]), cond.decode([0.1, 0.5])
        ({'opt': 'sgd', 'momentum': 0.5}, {'opt': 'adam'})
    """

    __slots__ = ("_allowed", "_compiled", "_conditions", "_domains", "_names")

    def __init__(self, domains: Mapping[str, Any]) -> None:
        if isinstance(domains, SearchSpace):
            self._domains: dict[str, Domain] = dict(domains._domains)
            self._conditions: dict[str, Condition] = dict(domains._conditions)
            self._names: tuple[str, ...] = domains._names
            self._compiled: tuple[CompiledCondition, ...] = domains._compiled
            self._allowed: dict[str, frozenset[int]] = domains._allowed
            return
        if not isinstance(domains, Mapping):
            raise InvalidSpaceError(
                f"a search space must be a mapping of names to domains, but got {domains!r}"
            )
        if not domains:
            raise InvalidSpaceError("the search space is empty; give at least one parameter")
        self._domains, self._conditions = flatten_space(domains)
        self._names = tuple(self._domains)
        self._compiled = compile_conditions(self._domains, self._conditions)
        names = list(self._domains)
        self._allowed = {names[c.child]: frozenset(c.cells.tolist()) for c in self._compiled}

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> SearchSpace:
        """Build a space from its plain shape (as read from YAML or JSON).

        Each key is a parameter name; each value is one of::

            {type: float, low: 1e-4, high: 0.1, log: true}
            {type: int, low: 16, high: 256, log: true}      # or step: 16
            {type: categorical, choices: [adam, sgd]}
            [adam, sgd]                                      # shorthand for a categorical
            {type: categorical, choices: {adam: {beta1: {type: float, low: 0.8, high: 0.99}},
                                          sgd: {momentum: {type: float, low: 0, high: 0.99}}}}
            {type: int, low: 8, high: 64, when: {n_layers: [2, 3]}}   # a conditional parameter
        """
        return cls(spec)

    def to_dict(self) -> dict[str, Any]:
        """The plain shape accepted by :meth:`from_dict` (JSON-serialisable; flat: a
        sub-space's parameters come with their ``when``)."""
        out = {}
        for name, d in self._domains.items():
            out[name] = d.to_dict()
            if name in self._conditions:
                out[name]["when"] = self._conditions[name].to_dict()
        return out

    # Mapping protocol -------------------------------------------------------
    def __getitem__(self, name: str) -> Domain:
        return self._domains[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        return f"SearchSpace({self._domains!r})"

    @property
    def conditions(self) -> dict[str, Condition]:
        """The condition of each conditional parameter (empty for an unconditional space)."""
        return dict(self._conditions)

    @property
    def is_conditional(self) -> bool:
        return bool(self._conditions)

    def is_active(self, name: str, params: Mapping[str, Any]) -> bool:
        """Whether ``name`` exists given the (partial) params of the parameters before it."""
        cond = self._conditions.get(name)
        while cond is not None:
            if cond.parent not in params:
                return False
            dom = self._domains[cond.parent]
            try:
                cell = dom.cell(params[cond.parent])  # type: ignore[attr-defined]
            except (InvalidSpaceError, TypeError, ValueError):
                return False
            if cell not in self._allowed[name]:
                return False
            name = cond.parent
            cond = self._conditions.get(name)
        return True

    def active_mask(self, U: Any) -> np.ndarray:
        """For points of the cube (shape (m, d)), which coordinates decode to active params."""
        U = np.atleast_2d(np.asarray(U, dtype=float))
        return active_mask(self._domains, self._compiled, U)

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
        """Map params to a point of the unit cube (bin centres for discrete values; NaN for the
        coordinates of inactive parameters)."""
        self.validate(params)
        if self._conditions:
            return np.array(
                [self._domains[n].to_unit(params[n]) if n in params else math.nan for n in self],
                dtype=float,
            )
        return np.array([self._domains[n].to_unit(params[n]) for n in self._names], dtype=float)

    def decode(self, u: Any) -> dict[str, Any]:
        """Map a point of the unit cube to params; values outside [0, 1] are clipped."""
        arr = np.asarray(u, dtype=float).reshape(-1)
        if arr.shape[0] != len(self._names):
            raise InvalidSpaceError(
                f"decode needs a vector of length {len(self._names)}, got length {arr.shape[0]}"
            )
        if self._conditions:
            out: dict[str, Any] = {}
            for n, x in zip(self._names, arr):
                if self.is_active(n, out):
                    out[n] = self._domains[n].from_unit(0.5 if math.isnan(x) else float(x))
            return out
        return {n: self._domains[n].from_unit(float(x)) for n, x in zip(self._names, arr)}

    def validate(self, params: Mapping[str, Any]) -> None:
        """Raise InvalidSpaceError unless params has exactly this space's active names, all in
        domain."""
        if not isinstance(params, Mapping):
            raise InvalidSpaceError(f"params must be a mapping, got {params!r}")
        if self._conditions:
            self._validate_conditional(params)
            return
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

    def _validate_conditional(self, params: Mapping[str, Any]) -> None:
        extra = [k for k in params if k not in self._domains]
        if extra:
            raise InvalidSpaceError(f"params do not match the space: unexpected {extra}")
        for n in self._names:
            active = self.is_active(n, params)
            if active and n not in params:
                raise InvalidSpaceError(f"params do not match the space: missing ['{n}']")
            if not active and n in params:
                cond = self._conditions[n]
                raise InvalidSpaceError(
                    f"parameter '{n}' is given but inactive: it exists only when "
                    f"'{cond.parent}' is one of {list(cond.values)!r}"
                )
            if active and not self._domains[n].contains(params[n]):
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
        if self._conditions:
            return sum(1 for _ in self.grid())
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
        if self._conditions:  # depth first: only the active parameters branch
            yield from self._branches(0, {}, axes)
            return
        for combo in itertools.product(*axes):
            yield dict(zip(self._names, combo))

    def _branches(
        self, i: int, partial: dict[str, Any], axes: list[list[Any]]
    ) -> Iterator[dict[str, Any]]:
        if i == len(self._names):
            yield dict(partial)
            return
        name = self._names[i]
        if not self.is_active(name, partial):
            yield from self._branches(i + 1, partial, axes)
            return
        for value in axes[i]:
            partial[name] = value
            yield from self._branches(i + 1, partial, axes)
        del partial[name]
