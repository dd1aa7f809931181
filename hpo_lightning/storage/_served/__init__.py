"""A store served over HTTP by the sweep's own process (``hpo+http://HOST:PORT/``)."""

from hpo_lightning.storage._served._client import ServedStorage
from hpo_lightning.storage._served._server import StoreServer
from hpo_lightning.storage._served._wire import TOKEN_ENV, ClaimLostError

__all__ = ["TOKEN_ENV", "ClaimLostError", "ServedStorage", "StoreServer"]
