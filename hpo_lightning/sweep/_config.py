"""Sweep definitions: the YAML file's keys, their validation, and what is stored with a sweep.

A sweep file is read with ``yaml.safe_load``; every key is checked (a misspelled key gets a
"did you mean" hint) and every error names the key, the value and the rule. The part of the
configuration that defines *what* is searched (objective, space, tuner, monitor, mode, seed,
scheduler, objective_args) is stored with the sweep, so a resuming or joining process needs
only the name and the store; run-time options (workers, storage, timeout...) are not.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from hpo_lightning._names import did_you_mean
from hpo_lightning._trial import Mode, check_int, check_mode
from hpo_lightning.exceptions import ConfigError, DuplicateSweepError, UserInputError
from hpo_lightning.space import SearchSpace
from hpo_lightning.tuners import tuner_names

DEFAULT_STORE_NAME = "hpo_lightning.db"
_DEFINITION_KEYS = (
    "objective",
    "objective_args",
    "space",
    "tuner",
    "monitor",
    "mode",
    "seed",
    "scheduler",
)


def default_tuner() -> str:
    """``auto`` when registered (it picks a tuner by space and budget), else ``tpe``."""
    return "auto" if "auto" in tuner_names() else "tpe"


@dataclass(frozen=True)
class SweepConfig:
    """Everything that defines and runs a sweep (the keys of a sweep file).

    Attributes:
        name: the sweep's name in the store.
        objective: ``"module:function"`` import path, or a callable ``train(params, callback)``.
        space: the search space (plain YAML shape or SearchSpace).
        monitor: the logged metric to optimise; mode: ``"min"`` or ``"max"``.
        tuner: tuner name; tuner_options: its keyword options.
        n_trials: finished (complete or pruned) trials wanted; n_workers: local processes.
        storage: store path or URL (default: hpo_lightning.db next to the sweep file).
        seed: seed of the tuner and scheduler; drawn and stored when None.
        timeout: seconds after which no new trial starts (None: no limit).
        max_failures: failed trials (exceptions, NaN) after which the sweep stops.
        retry_lost: re-run the params of trials lost to a killed process or Ctrl-C.
        objective_args: extra keyword arguments for the objective.
        scheduler: ``{name: asha, ...}`` for early stopping, or None.
        mlflow: ``{tracking_uri: ..., experiment: ...}`` to mirror the sweep to MLflow, or None.
        heartbeat_s / lost_after_s: heartbeat period of running trials and the silence after
            which a trial of another host counts as lost.
        resources: what one trial needs, ``{gpus_per_trial: 1, cpus_per_trial: 4}``.
        launcher: where workers run, ``{name: local}`` (default) or another launcher's section.
    """

    name: str
    objective: str | Callable[..., Any]
    space: Mapping[str, Any]
    monitor: str
    mode: Mode = "min"
    tuner: str = field(default_factory=default_tuner)
    tuner_options: Mapping[str, Any] = field(default_factory=dict)
    n_trials: int = 20
    n_workers: int | str = 1
    storage: str | None = None
    seed: int | None = None
    timeout: float | None = None
    max_failures: int = 5
    retry_lost: bool = True
    objective_args: Mapping[str, Any] = field(default_factory=dict)
    scheduler: Mapping[str, Any] | None = None
    mlflow: Mapping[str, Any] | None = None
    heartbeat_s: float = 5.0
    lost_after_s: float = 60.0
    resources: Mapping[str, Any] | None = None
    launcher: Mapping[str, Any] | None = None
    base_dir: str = "."

    def __post_init__(self) -> None:
        _validate(self)

    def definition(self) -> dict[str, Any]:
        """The JSON definition stored with the sweep (what is searched, not how it is run)."""
        objective = self.objective
        if callable(objective):
            objective = f"{objective.__module__}:{objective.__qualname__}"
        return {
            "name": self.name,
            "objective": objective,
            "objective_args": dict(self.objective_args),
            "space": SearchSpace.from_dict(self.space).to_dict(),
            "tuner": {"name": self.tuner, "options": dict(self.tuner_options)},
            "monitor": self.monitor,
            "mode": self.mode,
            "seed": self.seed,
            "scheduler": dict(self.scheduler) if self.scheduler else None,
            "n_trials": self.n_trials,
            "base_dir": self.base_dir,
            # not compared (not in _DEFINITION_KEYS), but read by joining workers: a worker on
            # another host must not call a trial lost sooner than the sweep's own setting
            "heartbeat_s": self.heartbeat_s,
            "lost_after_s": self.lost_after_s,
        }

    def storage_location(self) -> str:
        if self.storage:
            return self.storage
        return os.path.join(self.base_dir, DEFAULT_STORE_NAME)

    def with_seed(self, seed: int) -> SweepConfig:
        return replace(self, seed=seed)


def _validate(cfg: SweepConfig) -> None:
    if not isinstance(cfg.name, str) or not cfg.name.strip():
        raise ConfigError(f"`name` must be a non-empty string, but got {cfg.name!r}")
    if not (callable(cfg.objective) or (isinstance(cfg.objective, str) and ":" in cfg.objective)):
        raise ConfigError(
            f"`objective` must be 'module:function' (e.g. 'digits:train'), but got "
            f"{cfg.objective!r}"
        )
    if not isinstance(cfg.monitor, str) or not cfg.monitor:
        raise ConfigError(f"`monitor` must be the name of a logged metric, got {cfg.monitor!r}")
    try:
        check_mode(cfg.mode)
    except UserInputError as exc:
        raise ConfigError(str(exc)) from None
    SearchSpace.from_dict(cfg.space)  # raises InvalidSpaceError with the parameter's name
    if cfg.tuner not in tuner_names():
        hint = did_you_mean(cfg.tuner, tuner_names())
        raise ConfigError(
            f"unknown tuner {cfg.tuner!r}; known tuners: {', '.join(tuner_names())}{hint}"
        )
    check_int("n_trials", cfg.n_trials, at_least=1, error=ConfigError)
    if cfg.n_workers != "auto":
        try:
            check_int("n_workers", cfg.n_workers, at_least=1, error=ConfigError)
        except ConfigError:
            raise ConfigError(
                f"`n_workers` must be an integer >= 1 or 'auto', but got {cfg.n_workers!r}"
            ) from None
    check_int("max_failures", cfg.max_failures, at_least=1, error=ConfigError)
    check_int("seed", cfg.seed, at_least=0, allow_none=True, error=ConfigError)
    for key in ("timeout", "heartbeat_s", "lost_after_s"):
        v = getattr(cfg, key)
        if v is None and key == "timeout":
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
            raise ConfigError(f"`{key}` must be a positive number of seconds, but got {v!r}")
    for key in ("objective_args", "tuner_options"):
        if not isinstance(getattr(cfg, key), Mapping):
            raise ConfigError(f"`{key}` must be a mapping, but got {getattr(cfg, key)!r}")
    from hpo_lightning.launchers import Resources

    Resources.from_mapping(cfg.resources)
    if isinstance(cfg.launcher, str):
        object.__setattr__(cfg, "launcher", {"name": cfg.launcher})
    for key in ("scheduler", "mlflow", "launcher"):
        v = getattr(cfg, key)
        if v is not None and not isinstance(v, Mapping):
            raise ConfigError(f"`{key}` must be a mapping (a YAML section), but got {v!r}")
    if cfg.scheduler is not None:
        _check_scheduler(cfg.scheduler)
    if not isinstance(cfg.retry_lost, bool):
        raise ConfigError(f"`retry_lost` must be true or false, but got {cfg.retry_lost!r}")


def _check_scheduler(section: Mapping[str, Any]) -> None:
    """Build the scheduler once, so a bad section fails before any store or trial exists."""
    from hpo_lightning.schedulers import make_scheduler

    if "name" not in section:
        raise ConfigError("the `scheduler` section needs a `name` (e.g. asha, median, hyperband)")
    try:
        make_scheduler(**section)
    except UserInputError as exc:
        raise ConfigError(f"`scheduler`: {exc}") from None
    except TypeError as exc:  # e.g. a name that is not a string
        raise ConfigError(f"`scheduler`: {exc}") from None


# every SweepConfig field is a file key, except the two the loader fills in itself
_FILE_KEYS = {f.name for f in fields(SweepConfig)} - {"base_dir", "tuner_options"}
_REQUIRED = ("name", "objective", "space", "monitor")


def config_from_dict(data: Any, *, base_dir: str = ".", source: str = "sweep file") -> SweepConfig:
    """Validate the mapping of a sweep file and build its SweepConfig."""
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{source} must be a YAML mapping of keys to values, got {type(data).__name__}"
        )
    for key in data:
        if key not in _FILE_KEYS:
            hint = did_you_mean(key, sorted(_FILE_KEYS))
            raise ConfigError(f"{source}: unknown key {key!r}{hint}")
    for key in _REQUIRED:
        if key not in data:
            raise ConfigError(f"{source}: missing required key '{key}'")
    kwargs = dict(data)
    tuner = kwargs.pop("tuner", None)
    if isinstance(tuner, Mapping):
        tuner = dict(tuner)
        if "name" not in tuner:
            raise ConfigError(f"{source}: the `tuner` section needs a `name`, e.g. {{name: tpe}}")
        kwargs["tuner"] = tuner.pop("name")
        options = tuner.pop("options", {})
        if not isinstance(options, Mapping):
            raise ConfigError(f"{source}: `tuner.options` must be a mapping, got {options!r}")
        kwargs["tuner_options"] = {**tuner, **options}
    elif tuner is not None:
        kwargs["tuner"] = tuner
    storage = kwargs.get("storage")
    if storage is not None:
        if not isinstance(storage, str):
            raise ConfigError(f"{source}: `storage` must be a path or URL string, got {storage!r}")
        if "://" not in storage and not os.path.isabs(storage) and storage != ":memory:":
            kwargs["storage"] = os.path.join(base_dir, storage)
    try:
        return SweepConfig(base_dir=base_dir, **kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    except TypeError as exc:  # a value of the wrong shape for a dataclass field
        raise ConfigError(f"{source}: {exc}") from None


def load_sweep_file(path: str | os.PathLike[str]) -> SweepConfig:
    """Read and validate a sweep file (YAML, read with ``yaml.safe_load``)."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"sweep file {p} does not exist; check the path")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"{p} is not valid YAML{line}: {getattr(exc, 'problem', exc)}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p} is not a text (UTF-8) file") from None
    return config_from_dict(data, base_dir=str(p.resolve().parent), source=str(p))


def definition_diff(stored: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Keys of the definition that differ (n_trials may change: it extends a sweep)."""
    out = []
    for key in _DEFINITION_KEYS:
        a, b = stored.get(key), new.get(key)
        if key == "seed" and b is None:
            continue
        if a != b:
            out.append(f"{key}: stored {a!r}, now {b!r}")
    return out


def check_same_definition(name: str, stored: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    diff = definition_diff(stored, new)
    if diff:
        raise DuplicateSweepError(
            f"sweep '{name}' exists with a different definition ({'; '.join(diff)}); "
            "give the sweep a new name or restore the old settings"
        )
