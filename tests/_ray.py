"""A local Ray instance for tests: 2 CPUs and 2 *logical* GPUs, no dashboard.

Ray hands each actor that asks for ``num_gpus=1`` its own logical GPU and sets
``CUDA_VISIBLE_DEVICES`` for it, which is what the Ray launcher's placement tests look at.
Tests that need it are skipped, with the reason, where Ray is not installed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest


@contextmanager
def local_ray(**options: Any) -> Iterator[Any]:
    """``ray.init`` a local instance for the block and shut it down after; yields ``ray``."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (the [ray] extra)")
    settings = {
        "num_cpus": 2,
        "num_gpus": 2,
        "include_dashboard": False,
        "log_to_driver": False,
        "configure_logging": False,
        **options,
    }
    ray.init(**settings)
    try:
        yield ray
    finally:
        ray.shutdown()
