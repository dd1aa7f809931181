"""Each package's ``__all__`` is exactly its public names (as httpx's test_exported_members)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import hpo_lightning


def packages() -> list[str]:
    """hpo_lightning and every sub-package (found on disk, so new ones are checked too)."""
    found = [hpo_lightning.__name__]
    for info in pkgutil.walk_packages(hpo_lightning.__path__, prefix="hpo_lightning."):
        if info.ispkg:
            found.append(info.name)
    return found


def public_names(module: ModuleType) -> set[str]:
    """Public classes and functions defined in the package's own modules.

    Names a package imports from elsewhere for its own use (an error class from
    ``hpo_lightning.exceptions`` in ``hpo_lightning.storage``) are not its public names.
    """
    names = set()
    for name, obj in vars(module).items():
        if name.startswith("_") or inspect.ismodule(obj):
            continue
        if (inspect.isclass(obj) or inspect.isfunction(obj)) and obj.__module__.startswith(
            module.__name__
        ):
            names.add(name)
    return names


@pytest.mark.parametrize("name", packages())
def test_all_matches_the_public_names(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    public = public_names(module)
    if exported is None:
        assert not public, f"{name} has public names {sorted(public)} but no __all__"
        return
    assert len(exported) == len(set(exported)), f"{name}.__all__ repeats a name"
    assert public <= set(exported), f"missing from {name}.__all__: {sorted(public - set(exported))}"
    for item in exported:
        assert getattr(module, item, None) is not None, f"{name}.__all__ names missing {item!r}"


@pytest.mark.parametrize("name", ["hpo_lightning.events", "hpo_lightning.exceptions"])
def test_all_of_public_modules_names_real_objects(name: str) -> None:
    module = importlib.import_module(name)
    for item in module.__all__:
        assert getattr(module, item, None) is not None, item


def test_every_exception_is_exported() -> None:
    from hpo_lightning import exceptions

    errors = {
        n
        for n, obj in vars(exceptions).items()
        if inspect.isclass(obj)
        and issubclass(obj, Exception)
        and obj.__module__ == exceptions.__name__
    }
    assert errors == set(exceptions.__all__)
    assert all(issubclass(getattr(exceptions, n), exceptions.HPOError) for n in errors)


def test_the_issue_names_are_at_the_top_level() -> None:
    issue_names = [
        "SearchSpace",
        "Float",
        "Int",
        "Categorical",
        "HyperparameterTuner",
        "GridSearchTuner",
        "RandomSearchTuner",
        "SobolTuner",
        "TPETuner",
        "make_tuner",
        "TunerFactory",
        "TrainingEvent",
        "EpochStart",
        "EpochEnd",
        "TrainingFinish",
        "TrainingObserver",
        "TunerObserver",
        "ExperimentTracker",
        "ExperimentRecord",
        "HPOCallback",
    ]
    for item in issue_names:
        assert item in hpo_lightning.__all__ and getattr(hpo_lightning, item) is not None
    assert sorted(dir(hpo_lightning)) == sorted(hpo_lightning.__all__)
