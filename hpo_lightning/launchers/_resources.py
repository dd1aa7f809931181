"""What one trial needs (``resources:``) and which GPUs this machine shows, found without CUDA.

The parent of local workers must not initialise CUDA: a process that forks after CUDA is
initialised hands its children a broken CUDA context. So GPUs are counted from
``CUDA_VISIBLE_DEVICES`` when it is set (it is the user's or the cluster's allocation), else from
the driver's ``/proc/driver/nvidia/gpus`` entries, else from ``nvidia-smi -L``.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hpo_lightning.exceptions import ConfigError

CUDA_ENV = "CUDA_VISIBLE_DEVICES"


@dataclass(frozen=True)
class Resources:
    """What one trial needs.

    Attributes:
        gpus_per_trial: GPUs given to each trial (0: none). Local workers get whole GPUs;
            Ray also takes fractions (e.g. 0.5: two trials share a GPU).
        cpus_per_trial: CPU cores for each trial's math threads (None: the machine's cores
            shared by the workers).

    Example:
        >>> Resources.from_mapping({"gpus_per_trial": 2}).gpus_per_trial
        2
    """

    gpus_per_trial: float = 0
    cpus_per_trial: int | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> Resources:
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"`resources` must be a mapping like {{gpus_per_trial: 1, cpus_per_trial: 4}}, "
                f"but got {data!r}"
            )
        known = ("gpus_per_trial", "cpus_per_trial")
        for key in data:
            if key not in known:
                from hpo_lightning._names import did_you_mean

                raise ConfigError(
                    f"`resources`: unknown key {key!r} (keys: {', '.join(known)})"
                    f"{did_you_mean(str(key), list(known))}"
                )
        gpus = data.get("gpus_per_trial", 0)
        if (
            isinstance(gpus, bool)
            or not isinstance(gpus, (int, float))
            or not math.isfinite(gpus)
            or gpus < 0
            or (gpus > 1 and gpus != int(gpus))
        ):
            raise ConfigError(
                "`resources.gpus_per_trial` must be 0, a whole number of GPUs or a fraction "
                f"below 1, but got {gpus!r}"
            )
        cpus = data.get("cpus_per_trial")
        if cpus is not None and (isinstance(cpus, bool) or not isinstance(cpus, int) or cpus < 1):
            raise ConfigError(
                f"`resources.cpus_per_trial` must be an integer >= 1, but got {cpus!r}"
            )
        return cls(
            gpus_per_trial=int(gpus) if gpus == int(gpus) else float(gpus), cpus_per_trial=cpus
        )

    def to_dict(self) -> dict[str, Any]:
        return {"gpus_per_trial": self.gpus_per_trial, "cpus_per_trial": self.cpus_per_trial}


def visible_gpus(environ: Mapping[str, str] | None = None) -> tuple[list[str], str]:
    """The GPUs this process may use and where that was read, without initialising CUDA.

    Returns device identifiers as ``CUDA_VISIBLE_DEVICES`` takes them (indices or UUIDs).
    """
    env = os.environ if environ is None else environ
    raw = env.get(CUDA_ENV)
    if raw is not None:
        ids = [d.strip() for d in raw.split(",") if d.strip()]
        # CUDA stops at the first invalid entry (e.g. "-1" hides every GPU)
        out = []
        for d in ids:
            if d.startswith("-"):
                break
            out.append(d)
        return out, f"{CUDA_ENV}={raw}"
    proc = "/proc/driver/nvidia/gpus"
    if os.path.isdir(proc):
        n = len(os.listdir(proc))
        return [str(i) for i in range(n)], proc
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            text = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20).stdout
        except (OSError, subprocess.SubprocessError):
            text = ""
        n = sum(1 for line in text.splitlines() if line.startswith("GPU "))
        return [str(i) for i in range(n)], "nvidia-smi -L"
    return [], "no CUDA_VISIBLE_DEVICES, no NVIDIA driver"
