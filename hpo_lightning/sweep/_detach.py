"""``hpo-lightning sweep --detach``: submit the sweep's workers to a cluster and return.

The workers (e.g. a Slurm job array) outlive the command, so they need a store that outlives
it too: PostgreSQL, or a store served by ``hpo-lightning serve`` -- never the command's own
SQLite file. The launch (job ids) is written to the sweep's status, which ``status`` shows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

from hpo_lightning.exceptions import ConfigError
from hpo_lightning.launchers import make_launcher
from hpo_lightning.sweep._config import SweepConfig

_LASTING = ("postgresql://", "postgres://", "postgresql+psycopg://", "hpo+http://")


def check_detachable(config: SweepConfig) -> None:
    """Refuse (before anything is written) a detached launch that could not work."""
    launcher = make_launcher(config.launcher)
    if not hasattr(launcher, "detach"):
        raise ConfigError(
            f"--detach: launcher '{launcher.name}' runs its workers as children of this "
            "command, which cannot leave them running; use launcher: slurm (or run without "
            "--detach)"
        )
    if not config.storage_location().startswith(_LASTING):
        raise ConfigError(
            "--detach: the workers outlive this command, so they need a store that outlives "
            f"it too, not {config.storage_location()}: give a postgresql:// store, or serve "
            "this one with `hpo-lightning serve` and give its hpo+http:// URL"
        )


def submit_detached(sweep: Any) -> str:
    """Plan and start the sweep's workers, record the launch, leave them running."""
    cfg: SweepConfig = sweep.config
    launcher: Any = make_launcher(cfg.launcher)
    specs = launcher.plan(cfg, cfg.n_workers)
    launcher.start([replace(s, max_trials=None) for s in specs])
    info = launcher.describe()
    jobs = ", ".join(str(j) for j in info.get("jobs", [])) or "?"
    when = dt.datetime.now(tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    status = f"{launcher.name} job {jobs} ({len(specs)} workers) submitted {when}"
    sweep.storage.set_sweep_status(sweep.record.id, status)
    launcher.detach()
    launcher.close()
    return status
