"""Conditional parameters: a parameter that exists only when a discrete parent takes some values.

A condition names one parent (a Categorical or Int parameter of the same space) and the
parent values under which the child is *active*. A categorical whose choices carry sub-spaces is
the same thing written as a tree: each sub-space parameter gets the condition "parent is that
choice". Conditions nest: a child is active only when its parent is active too. Inactive
parameters are absent from a params dict; in the unit cube their coordinate is NaN
(:meth:`SearchSpace.encode`) and is ignored by :meth:`SearchSpace.decode`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from hpo_lightning._names import check_name
from hpo_lightning.exceptions import InvalidSpaceError
from hpo_lightning.space._domains import Categorical, Domain, Int, Scalar
from hpo_lightning.space._parse import domain_from_dict


@dataclass(frozen=True)
class Condition:
    """``parent`` must take one of ``values`` (and be active itself) for the child to exist."""

    parent: str
    values: tuple[Scalar, ...]

    def to_dict(self) -> dict[str, Any]:
        return {self.parent: list(self.values)}


@dataclass(frozen=True)
class Conditional:
    """A domain that is active only under a condition on another parameter.

    Args:
        domain: the parameter's domain.
        when: ``{parent_name: value}`` or ``{parent_name: [values]}``; the parent is a
            Categorical or Int parameter of the same space (the space orders parents first).

    Example:
        >>> from hpo_lightning import SearchSpace, Int, Float
        >>> space = SearchSpace({"layers": Int(1, 3),
        ...                      "width2": Conditional(Int(8, 64), when={"layers": [2, 3]})})
        >>> space.decode([0.1, 0.5])
        {'layers': 1}
    """

    domain: Domain
    when: Mapping[str, Any]


def parse_when(name: str, when: Any) -> Condition:
    """The Condition of a ``when`` value (``{parent: value or [values]}``)."""
    if not isinstance(when, Mapping) or len(when) != 1:
        raise InvalidSpaceError(
            f"parameter '{name}': `when` must name exactly one parent, like "
            f"{{optimizer: [sgd]}}, but got {when!r}"
        )
    ((parent, values),) = when.items()
    if not isinstance(parent, str) or not parent:
        raise InvalidSpaceError(f"parameter '{name}': `when` needs a parent name, got {parent!r}")
    values = list(values) if isinstance(values, (list, tuple)) else [values]
    if not values:
        raise InvalidSpaceError(f"parameter '{name}': `when: {{{parent}: []}}` never holds")
    return Condition(parent, tuple(values))


def _split(name: str, spec: Any) -> tuple[Any, Condition | None]:
    """A spec without its condition, and the condition (from ``when`` or a Conditional)."""
    if isinstance(spec, Conditional):
        return spec.domain, parse_when(name, spec.when)
    if isinstance(spec, Mapping) and "when" in spec:
        rest = {k: v for k, v in spec.items() if k != "when"}
        return rest, parse_when(name, spec["when"])
    return spec, None


def flatten_space(
    spec: Mapping[str, Any],
) -> tuple[dict[str, Domain], dict[str, Condition]]:
    """Flat domains (parents before children) and the conditions of the conditional ones."""
    domains: dict[str, Domain] = {}
    conditions: dict[str, Condition] = {}

    def add(name: Any, raw: Any, inherited: Condition | None) -> None:
        check_name("a parameter name", name, error=InvalidSpaceError)
        raw, own = _split(name, raw)
        if own is not None and inherited is not None:
            raise InvalidSpaceError(
                f"parameter '{name}' is in the sub-space of '{inherited.parent}' and has its own "
                "`when`; a parameter has one condition"
            )
        cond = own or inherited
        domain = domain_from_dict(name, raw)
        branches: tuple[Any, ...] = ()
        if isinstance(domain, Categorical) and domain.branches:
            branches = domain.branches
            domain = Categorical(domain.choices)
        if name in domains:
            _merge(name, domain, cond, domains, conditions)
        else:
            domains[name] = domain
            if cond is not None:
                conditions[name] = cond
        for choice, sub in branches:
            for child, child_spec in sub.items():
                add(child, child_spec, Condition(name, (choice,)))

    for name, raw in spec.items():
        add(name, raw, None)
    _check_parents(domains, conditions)
    order = _parents_first(domains, conditions)
    return {n: domains[n] for n in order}, {n: conditions[n] for n in order if n in conditions}


def _merge(
    name: str,
    domain: Domain,
    cond: Condition | None,
    domains: dict[str, Domain],
    conditions: dict[str, Condition],
) -> None:
    """The same parameter in two branches of one parent: one parameter under both choices."""
    old = conditions.get(name)
    if old is None or cond is None or old.parent != cond.parent or domains[name] != domain:
        raise InvalidSpaceError(
            f"parameter '{name}' is defined twice; give it one definition, or the same domain "
            "in several branches of one categorical"
        )
    conditions[name] = Condition(old.parent, old.values + cond.values)


def _parents_first(domains: dict[str, Domain], conditions: dict[str, Condition]) -> list[str]:
    """The names in their given order, except that a parent moves before its children (a
    stored space is JSON whose keys may come sorted); a cycle of conditions is refused."""
    order: list[str] = []
    state: dict[str, str] = {}
    for start in domains:
        chain: list[str] = []
        name: str | None = start
        while name is not None and state.get(name) != "done":
            if state.get(name) == "open":
                raise InvalidSpaceError(
                    f"parameter '{name}': its conditions form a cycle ({' -> '.join(chain)}); "
                    "a parameter cannot depend on itself"
                )
            state[name] = "open"
            chain.append(name)
            cond = conditions.get(name)
            name = cond.parent if cond is not None else None
        for n in reversed(chain):
            state[n] = "done"
            order.append(n)
    return order


def _check_parents(domains: dict[str, Domain], conditions: dict[str, Condition]) -> None:
    for name, cond in conditions.items():
        parent = domains.get(cond.parent)
        if parent is None:
            raise InvalidSpaceError(
                f"parameter '{name}': its condition's parent '{cond.parent}' is not a parameter "
                "of the space"
            )
        if not isinstance(parent, (Categorical, Int)):
            raise InvalidSpaceError(
                f"parameter '{name}': the parent '{cond.parent}' of a condition must be a "
                f"categorical or int parameter, not {parent}"
            )
        for v in cond.values:
            if not parent.contains(v):
                raise InvalidSpaceError(
                    f"parameter '{name}': condition value {v!r} is not a value of "
                    f"'{cond.parent}' ({parent})"
                )


def unit_cells(domain: Domain, u: np.ndarray) -> np.ndarray:
    """The value index (see ``cell``) each unit coordinate of a discrete domain decodes to."""
    u = np.clip(np.nan_to_num(u, nan=0.5), 0.0, 1.0)  # NaN: an inactive parent's coordinate
    if isinstance(domain, Int) and domain.log:  # mirrors Int.from_unit, vectorised
        lo, hi = math.log(domain.low - 0.5), math.log(domain.high + 0.5)
        v = np.clip(np.round(np.exp(lo + u * (hi - lo))), domain.low, domain.high)
        return (v - domain.low).astype(int)
    n = int(domain.n_values or 1)
    return np.minimum((u * n).astype(int), n - 1)


@dataclass(frozen=True)
class CompiledCondition:
    """A condition as column indices, for computing activity on many points at once."""

    child: int
    parent: int
    cells: np.ndarray  # the parent's value indices under which the child is active


def compile_conditions(
    domains: Mapping[str, Domain], conditions: Mapping[str, Condition]
) -> tuple[CompiledCondition, ...]:
    names = list(domains)
    out = []
    for name, cond in conditions.items():
        parent = domains[cond.parent]
        cell = parent.cell  # type: ignore[attr-defined]  # Categorical or Int (checked)
        cells = np.array(sorted({int(cell(v)) for v in cond.values}), dtype=np.int64)
        out.append(CompiledCondition(names.index(name), names.index(cond.parent), cells))
    return tuple(sorted(out, key=lambda c: c.child))


def active_mask(
    domains: Mapping[str, Domain], compiled: tuple[CompiledCondition, ...], U: np.ndarray
) -> np.ndarray:
    """Which coordinates of each row of ``U`` (shape (m, d)) are active parameters."""
    mask = np.ones(U.shape, dtype=bool)
    doms = list(domains.values())
    for c in compiled:  # parents come before children, so a parent's own mask is final
        cells = unit_cells(doms[c.parent], U[:, c.parent])
        mask[:, c.child] = mask[:, c.parent] & np.isin(cells, c.cells)
    return mask
