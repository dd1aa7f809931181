"""Contract suites for every extension point, for your own implementations to pass.

Each suite is a pytest test class with the checks every implementation must pass; subclass
it in a test module of yours (its name must start with ``Test``) and provide the fixture it
names. See ``docs/extending.md``. Importing this package imports pytest (``import
hpo_lightning`` does not).

Example::

    import pytest
    from hpo_lightning.testing import TunerContract

    class TestMyTuner(TunerContract):
        @pytest.fixture
        def tuner_factory(self):
            return MyTuner   # MyTuner(space, *, mode="min", seed=None, max_trials=None)
"""

from hpo_lightning.testing._launcher_contract import LauncherContract
from hpo_lightning.testing._scheduler_contract import SchedulerContract
from hpo_lightning.testing._storage_contract import StorageContract
from hpo_lightning.testing._tracker_contract import TrackerContract
from hpo_lightning.testing._tuner_contract import TunerContract

__all__ = [
    "LauncherContract",
    "SchedulerContract",
    "StorageContract",
    "TrackerContract",
    "TunerContract",
]
