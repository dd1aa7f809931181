"""The error tree of hpo_lightning.

Every error the library raises on purpose derives from :class:`HPOError`, so callers can catch
one class. Messages are written for a person: they name the argument, the value and the rule.
Only the command line turns these into exit codes (2 for :class:`UserInputError`).
"""

from __future__ import annotations

__all__ = [
    "CheckpointNotFoundError",
    "ConfigError",
    "DuplicateSweepError",
    "HPOError",
    "InvalidMetricError",
    "InvalidSpaceError",
    "InvalidStorageError",
    "MetricNotFoundError",
    "MissingDependencyError",
    "ServiceUnavailableError",
    "StorageError",
    "SweepNotFoundError",
    "UnknownNameError",
    "UserInputError",
]


class HPOError(Exception):
    """Base class of every error raised by hpo_lightning."""


class UserInputError(HPOError, ValueError):
    """The user's input (arguments, config, files) is wrong; the message says how to fix it."""


class InvalidSpaceError(UserInputError):
    """A search-space domain or the space itself is invalid."""


class UnknownNameError(UserInputError):
    """A name (tuner, scheduler, ...) is not registered; the message lists the known names."""


class ConfigError(UserInputError):
    """A sweep file or a sweep option is invalid."""


class InvalidMetricError(UserInputError):
    """A reported metric is not a finite-able real scalar (a string, a multi-element tensor...)."""


class MetricNotFoundError(UserInputError):
    """The monitored metric was never logged; the message lists the keys that were."""


class StorageError(HPOError):
    """The store cannot be opened or used (corrupt or foreign file, unreachable server...)."""


class InvalidStorageError(StorageError, UserInputError):
    """The store location is wrong: a missing directory, a corrupt or foreign file, a bad URL."""


class SweepNotFoundError(UserInputError, LookupError):
    """No sweep of that name exists in the store."""


class CheckpointNotFoundError(UserInputError, LookupError):
    """A sweep has no kept checkpoint to return (run it with a ``checkpoints:`` section)."""


class DuplicateSweepError(UserInputError):
    """A sweep of that name exists with a different definition."""


class ServiceUnavailableError(UserInputError):
    """A service the input names (an MLflow tracking server) does not answer; the message
    says which one (without its password) and what to check."""


class MissingDependencyError(HPOError, ImportError):
    """An optional dependency is not installed; the message says which extra installs it."""


def missing_extra(package: str, extra: str, feature: str) -> MissingDependencyError:
    """Build the error for an optional dependency that is not installed."""
    return MissingDependencyError(
        f"{feature} needs the '{package}' package, which is not installed; "
        f"install it with: pip install 'hpo_lightning[{extra}]'"
    )
