"""Sweep definitions: the YAML file's keys, their validation, and what is stored with a sweep.

A sweep file is read with ``yaml.safe_load``; every key is checked (a misspelled key gets a
"did you mean" hint) and every error names the key, the value and the rule. The part of the
configuration that defines *what* is searched (objective, space, tuner, monitor, mode, seed,
scheduler, objective_args) is stored with the sweep, so a resuming or joining process needs
only the name and the store; run-time options (workers, storage, timeout...) are not.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from hpo_lightning._names import check_name, did_you_mean
from hpo_lightning._objectives import Objectives
from hpo_lightning._secrets import is_keyword_dsn, redact_tree
from hpo_lightning._trial import Mode, check_int
from hpo_lightning.exceptions import ConfigError, DuplicateSweepError, UserInputError
from hpo_lightning.space import SearchSpace
from hpo_lightning.tuners import tuner_names

DEFAULT_STORE_NAME = "hpo_lightning.db"
MAX_TRIALS = 1_000_000  # n_trials above this is a typo (10**23), not a plan
MAX_WORKERS = 1024  # local worker processes of one sweep command
_DEFINITION_KEYS = (
    "objective",
    "objective_args",
    "space",
    "tuner",
    "monitor",
    "mode",
    "seed",
    "scheduler",
    "constraints",
    "scheduler_objective",
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
        monitor: the logged metric to optimise; mode: ``"min"`` or ``"max"``. A list of
            metrics with a list of modes of the same length makes the sweep multi-objective
            (see docs/multiobjective.md).
        constraints: ``{metric: "<= x" | ">= x"}``: logged metrics whose bounds a feasible
            trial meets (an infeasible trial is kept, ranked after the feasible ones).
        scheduler_objective: the objective an early-stopping scheduler decides on (default:
            the first; PBT needs it named when there are several).
        tuner: tuner name; tuner_options: its keyword options.
        n_trials: finished (complete or pruned) trials wanted, at most 1,000,000
            (``MAX_TRIALS``); n_workers: local processes, at most 1024 (``MAX_WORKERS``).
        storage: store path or URL (default: hpo_lightning.db next to the sweep file).
        seed: seed of the tuner and scheduler; drawn and stored when None.
        timeout: seconds after which no new trial starts (None: no limit).
        max_failures: failed trials (exceptions, NaN) after which the sweep stops.
        retry_lost: re-run the params of trials lost to a killed process or Ctrl-C.
        objective_args: extra keyword arguments for the objective.
        scheduler: ``{name: asha, ...}`` for early stopping, or None.
        mlflow: ``{tracking_uri: ..., experiment: ...}`` to mirror the sweep to MLflow, or None.
        heartbeat_s / lost_after_s: heartbeat period of running trials and the silence after
            which a trial of another host counts as lost (at least twice ``heartbeat_s``).
        resources: what one trial needs, ``{gpus_per_trial: 1, cpus_per_trial: 4}``.
        launcher: where workers run, ``{name: local}`` (default) or another launcher's section.
        checkpoints: ``{dir, keep, every}`` (or ``true``) to checkpoint trials, resume requeued
            ones and keep the best model (see docs/checkpoints.md); None: no checkpoints.

    Names (the sweep's and its parameters') are at most 200 characters without control or
    bidi characters, ``/``, ``\\``, quotes or ``..``.
    """

    name: str
    objective: str | Callable[..., Any]
    space: Mapping[str, Any]
    monitor: str | Sequence[str]
    mode: Mode | Sequence[Mode] = "min"
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
    checkpoints: Mapping[str, Any] | bool | None = None
    constraints: Mapping[str, str] | None = None
    scheduler_objective: str | None = None
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
            "monitor": self.monitor if isinstance(self.monitor, str) else list(self.monitor),
            "mode": self.mode if isinstance(self.mode, str) else list(self.mode),
            # None for a sweep without them, as older stores read (no key)
            "constraints": self.objectives().constraints_dict(),
            "scheduler_objective": self.scheduler_objective,
            "seed": self.seed,
            "scheduler": dict(self.scheduler) if self.scheduler else None,
            "n_trials": self.n_trials,
            "base_dir": self.base_dir,
            # not compared (not in _DEFINITION_KEYS), but read by joining workers: a worker on
            # another host must not call a trial lost sooner than the sweep's own setting
            "heartbeat_s": self.heartbeat_s,
            "lost_after_s": self.lost_after_s,
            # read by joining workers, not compared: where the files go may change
            "checkpoints": None if (p := self.checkpoint_policy()) is None else p.to_dict(),
        }

    def checkpoint_policy(self) -> Any:
        """The sweep's CheckpointPolicy (its folder resolved), or None without checkpoints.

        The default folder is ``<store>.checkpoints/<name>`` next to a SQLite store file, else
        ``hpo_checkpoints/<name>`` in the sweep file's folder. A PBT sweep without a
        ``checkpoints`` section gets the defaults.
        """
        from hpo_lightning.sweep._checkpoints import policy_from

        location = self.storage_location()
        if ("://" in location and not location.startswith("sqlite:///")) or location == ":memory:":
            default = os.path.join(os.path.abspath(self.base_dir), "hpo_checkpoints", self.name)
        else:
            path = os.path.abspath(location.removeprefix("sqlite:///"))
            default = os.path.join(os.path.splitext(path)[0] + ".checkpoints", self.name)
        section = self.checkpoints
        if section is None and (self.scheduler or {}).get("name") == "pbt":
            section = True  # PBT moves trials through checkpoints: on by default
        return policy_from(section, default_dir=default)

    def storage_location(self) -> str:
        if self.storage:
            return self.storage
        return os.path.join(self.base_dir, DEFAULT_STORE_NAME)

    def objectives(self) -> Objectives:
        """The monitored metrics, their modes, the constraints and the scheduler's metric."""
        return Objectives.of(
            self.monitor,
            self.mode,
            constraints=self.constraints,
            scheduler_objective=self.scheduler_objective,
        )

    @property
    def primary_mode(self) -> Mode:
        """The first objective's mode (single-objective: the mode)."""
        return self.objectives().modes[0]

    @property
    def epoch_monitor(self) -> str:
        """The metric followed per epoch (schedulers, checkpoints): the monitor, or with
        several objectives the ``scheduler_objective`` (default: the first)."""
        return self.objectives().scheduler_metric

    @property
    def epoch_mode(self) -> Mode:
        return self.objectives().scheduler_mode

    def with_seed(self, seed: int) -> SweepConfig:
        return replace(self, seed=seed)


def _validate(cfg: SweepConfig) -> None:
    check_name("`name`", cfg.name, error=ConfigError)
    if not (callable(cfg.objective) or (isinstance(cfg.objective, str) and ":" in cfg.objective)):
        raise ConfigError(
            f"`objective` must be 'module:function' (e.g. 'digits:train'), but got "
            f"{cfg.objective!r}"
        )
    _check_objectives(cfg)
    SearchSpace.from_dict(cfg.space)  # raises InvalidSpaceError with the parameter's name
    _import_registrations(cfg)
    if cfg.tuner not in tuner_names():
        hint = did_you_mean(cfg.tuner, tuner_names())
        raise ConfigError(
            f"unknown tuner {cfg.tuner!r}; known tuners: {', '.join(tuner_names())}{hint}"
        )
    _check_counts(cfg)
    _check_seconds(cfg)
    for key in ("objective_args", "tuner_options"):
        if not isinstance(getattr(cfg, key), Mapping):
            raise ConfigError(f"`{key}` must be a mapping, but got {getattr(cfg, key)!r}")
    from hpo_lightning.launchers import Resources

    Resources.from_mapping(cfg.resources)
    if isinstance(cfg.launcher, str):
        object.__setattr__(cfg, "launcher", {"name": cfg.launcher})
    if cfg.scheduler == "auto":  # `scheduler: auto` needs no options
        object.__setattr__(cfg, "scheduler", {"name": "auto"})
    for key in ("scheduler", "mlflow", "launcher"):
        v = getattr(cfg, key)
        if v is not None and not isinstance(v, Mapping):
            raise ConfigError(f"`{key}` must be a mapping (a YAML section), but got {v!r}")
    if cfg.scheduler is not None:
        _check_scheduler(cfg.scheduler)
    cfg.checkpoint_policy()  # a bad `checkpoints` section fails here
    if not isinstance(cfg.retry_lost, bool):
        raise ConfigError(f"`retry_lost` must be true or false, but got {cfg.retry_lost!r}")
    _check_tuner(cfg)


def _import_registrations(cfg: SweepConfig) -> None:
    """Import the objective's module when the sweep names a tuner or scheduler that is not
    registered yet: that module is where a user registers their own (``register_tuner``,
    ``register_scheduler``; docs/extending.md), and every worker imports it. A module that
    cannot be imported leaves the unknown name to be reported as such."""
    from hpo_lightning.schedulers import scheduler_names

    scheduler = cfg.scheduler.get("name") if isinstance(cfg.scheduler, Mapping) else None
    unknown = cfg.tuner not in tuner_names() or (
        isinstance(scheduler, str) and scheduler not in scheduler_names()
    )
    if unknown and isinstance(cfg.objective, str):
        from hpo_lightning.sweep._objective import resolve_objective

        with contextlib.suppress(ConfigError):
            resolve_objective(cfg.objective, cfg.base_dir)


def _check_objectives(cfg: SweepConfig) -> None:
    """monitor/mode (lists of one length for several objectives), constraints and the
    scheduler's objective; a one-element list is the single-objective sweep it names."""
    monitor, mode = cfg.monitor, cfg.mode
    if isinstance(monitor, (list, tuple)) and isinstance(mode, (list, tuple)):
        if len(monitor) == len(mode) == 1:
            monitor, mode = monitor[0], mode[0]
        object.__setattr__(cfg, "monitor", monitor if isinstance(monitor, str) else tuple(monitor))
        object.__setattr__(cfg, "mode", mode if isinstance(mode, str) else tuple(mode))
    elif isinstance(monitor, (list, tuple)) and len(monitor) == 1:
        object.__setattr__(cfg, "monitor", monitor[0])
    try:
        objectives = cfg.objectives()
    except UserInputError as exc:
        raise ConfigError(str(exc)) from None
    name = (cfg.scheduler or {}).get("name") if isinstance(cfg.scheduler, Mapping) else None
    if objectives.multi and name == "pbt" and cfg.scheduler_objective is None:
        raise ConfigError(
            "the pbt scheduler exploits by one metric: name it with `scheduler_objective` "
            f"(one of {list(objectives.names)}) for a multi-objective sweep"
        )
    if cfg.scheduler_objective is not None and not objectives.multi:
        raise ConfigError(
            "`scheduler_objective` is for multi-objective sweeps; a single-objective sweep's "
            "scheduler decides on its `monitor`"
        )


def validate(cfg: SweepConfig) -> None:
    """Check everything about a sweep that can be checked before anything is written.

    Keys, values, names, the space, and the tuner and scheduler built once from their options
    (an unknown option, ``grid`` on a continuous space...). ``SweepConfig`` runs this when it
    is constructed, so a config that exists is valid; call it again after changing a config
    by other means. Raises ConfigError (or InvalidSpaceError) with a one-line message.
    """
    _validate(cfg)


def _check_counts(cfg: SweepConfig) -> None:
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
    for key, most in (("n_trials", MAX_TRIALS), ("n_workers", MAX_WORKERS)):
        value = getattr(cfg, key)
        if isinstance(value, int) and value > most:
            raise ConfigError(f"`{key}` must be at most {most:,}, but got {value:,}")


def _check_seconds(cfg: SweepConfig) -> None:
    for key in ("timeout", "heartbeat_s", "lost_after_s"):
        v = getattr(cfg, key)
        if v is None and key == "timeout":
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            hint = " (leave `timeout` out for no limit)" if key == "timeout" else ""
            raise ConfigError(
                f"`{key}` must be a positive, finite number of seconds, but got {v!r}{hint}"
            )
    if cfg.lost_after_s < 2 * cfg.heartbeat_s:
        raise ConfigError(
            f"`lost_after_s` must be at least twice `heartbeat_s` (a running trial beats every "
            f"heartbeat_s), but got lost_after_s={cfg.lost_after_s!r}, "
            f"heartbeat_s={cfg.heartbeat_s!r}"
        )


def tuner_options(cfg: SweepConfig) -> dict[str, Any]:
    """The options the sweep builds its tuner with: the user's ``tuner_options``, and for
    ``auto`` the planned ``n_trials`` (``budget``) and the share of a full training a trial
    costs under the sweep's scheduler (``trial_cost``, its ``expected_cost()``)."""
    options = dict(cfg.tuner_options)
    if cfg.tuner == "auto":
        options.setdefault("budget", cfg.n_trials)  # choose by the sweep's planned size
        if cfg.scheduler:
            from hpo_lightning.schedulers import make_scheduler

            options.setdefault("trial_cost", make_scheduler(**cfg.scheduler).expected_cost())
    return options


def _check_tuner(cfg: SweepConfig) -> None:
    """Build the tuner once, so unknown options or a space it cannot search fail now."""
    from hpo_lightning.tuners import make_tuner

    options = tuner_options(cfg)
    try:
        make_tuner(cfg.tuner, SearchSpace.from_dict(cfg.space), mode=cfg.mode, seed=0, **options)
    except UserInputError as exc:
        raise ConfigError(f"`tuner`: {exc}") from None
    except (TypeError, ValueError) as exc:  # an option value of the wrong type
        raise ConfigError(f"`tuner` {cfg.tuner!r}: bad option value: {exc}") from None


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


# every SweepConfig field is a file key, except the two the loader fills in itself; `cli`
# (a LightningCLI project) is turned into `objective` and `objective_args` by the loader
_FILE_KEYS = ({f.name for f in fields(SweepConfig)} - {"base_dir", "tuner_options"}) | {"cli"}
_REQUIRED = ("name", "objective", "space", "monitor")


def _cli_keys(data: Mapping[str, Any], base_dir: str, source: str) -> dict[str, Any]:
    """A ``cli:`` sweep's keys: the CLI objective and its args, the monitor and mode of the
    config's checkpoint/early-stopping callback unless given; the space checked against the
    CLI's parser (see ``hpo_lightning.lightning._cli``)."""
    for key in ("objective", "objective_args"):
        if key in data:
            raise ConfigError(
                f"{source}: `{key}` cannot be combined with `cli` (the CLI is the objective; "
                "put extra command-line arguments in `cli.args`)"
            )
    if "space" not in data:
        raise ConfigError(f"{source}: missing required key 'space'")
    from hpo_lightning.lightning._cli import cli_objective

    try:
        options = cli_objective(
            data["cli"], SearchSpace.from_dict(data["space"]), base_dir=base_dir
        )
    except UserInputError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    out = {**data, **options}
    out.pop("cli")
    if "monitor" in data and data["monitor"] != options.get("monitor"):
        out.pop("mode", None)  # the callback's mode belongs to the callback's metric
    for key in ("monitor", "mode"):
        if key in data:
            out[key] = data[key]
    if "monitor" not in out:
        raise ConfigError(
            f"{source}: missing required key 'monitor' (the CLI's config has no ModelCheckpoint "
            "or EarlyStopping that monitors a metric)"
        )
    return out


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
    if "cli" in data:
        data = _cli_keys(data, base_dir, source)
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
        relative = "://" not in storage and not os.path.isabs(storage)
        if relative and storage != ":memory:" and not is_keyword_dsn(storage):
            kwargs["storage"] = os.path.join(base_dir, storage)
    try:
        return SweepConfig(base_dir=base_dir, **kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    except TypeError as exc:  # a value of the wrong shape for a dataclass field
        raise ConfigError(f"{source}: {exc}") from None


def _unique_keys_loader() -> type:
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (YAML says it is an
    error; PyYAML would silently keep the last one, e.g. a second ``n_trials``)."""
    import yaml

    class UniqueKeySafeLoader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if isinstance(key, (str, int, float, bool)) and key in seen:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"duplicate key {key!r} (first at line {seen[key].line + 1}); "
                        "give each key once",
                        key_node.start_mark,
                    )
                seen[key] = key_node.start_mark
            return super().construct_mapping(node, deep=deep)

    return UniqueKeySafeLoader


def load_sweep_file(path: str | os.PathLike[str]) -> SweepConfig:
    """Read and validate a sweep file (YAML, read with a ``yaml.SafeLoader`` that refuses
    duplicate keys)."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"sweep file {p} does not exist; check the path")
    try:
        data = yaml.load(p.read_text(encoding="utf-8"), Loader=_unique_keys_loader())
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"{p} is not valid YAML{line}: {getattr(exc, 'problem', exc)}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p} is not a text (UTF-8) file") from None
    return config_from_dict(data, base_dir=str(p.resolve().parent), source=str(p))


def definition_diff(stored: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The values of the definition that differ, as ``path: stored X, now Y`` with dotted
    paths down to the leaves (``space.dropout.high: stored 0.5, now 0.6``); n_trials may
    change (it extends a sweep), and an unset seed matches the stored one."""
    out = []
    for key in _DEFINITION_KEYS:
        # a store keeps definitions without passwords: compare them as it keeps them
        a, b = redact_tree(stored.get(key)), redact_tree(new.get(key))
        if key == "seed" and b is None:
            continue
        out.extend(_leaf_diff(key, a, b))
    return out


_MISSING = object()


def _leaf_diff(path: str, a: Any, b: Any) -> list[str]:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        out: list[str] = []
        for k in [*a, *(k for k in b if k not in a)]:
            out.extend(_leaf_diff(f"{path}.{k}", a.get(k, _MISSING), b.get(k, _MISSING)))
        return out
    if a == b:
        return []
    if a is _MISSING:
        return [f"{path}: not stored, now {b!r}"]
    if b is _MISSING:
        return [f"{path}: stored {a!r}, now absent"]
    return [f"{path}: stored {a!r}, now {b!r}"]


def check_same_definition(name: str, stored: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    diff = definition_diff(stored, new)
    if diff:
        raise DuplicateSweepError(
            f"sweep '{name}' exists with a different definition ({'; '.join(diff)}); "
            "give the sweep a new name or restore the old settings"
        )
