"""The local launcher against the launcher contract suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from contract.launcher_contract import LauncherContract

from hpo_lightning.launchers import Launcher, LocalLauncher

pytestmark = pytest.mark.slow


class TestLocalLauncher(LauncherContract):
    @pytest.fixture
    def launcher(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[Launcher]:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
        launcher = LocalLauncher(grace_s=10)
        yield launcher
        launcher.close()
