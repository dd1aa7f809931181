"""The local launcher against the launcher contract suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hpo_lightning.launchers import Launcher, LocalLauncher
from hpo_lightning.testing import LauncherContract

pytestmark = pytest.mark.slow


class TestLocalLauncher(LauncherContract):
    @pytest.fixture
    def launcher(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[Launcher]:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
        launcher = LocalLauncher(grace_s=10)
        yield launcher
        launcher.close()
