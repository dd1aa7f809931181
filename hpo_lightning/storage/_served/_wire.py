"""What travels between a served store and its clients: JSON values, records and errors.

Everything is JSON (``NaN`` and ``inf`` allowed, as Python writes them); nothing is pickled.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from hpo_lightning import exceptions
from hpo_lightning._trial import FailureKind, TrialState
from hpo_lightning.storage._base import SweepRecord, TrialRecord

#: version of the protocol; a client refuses a server that speaks another
PROTOCOL = 1
#: the environment variable that holds the token (never part of a URL)
TOKEN_ENV = "HPO_LIGHTNING_STORE_TOKEN"
SCHEME = "hpo+http://"
#: largest request body a server reads
MAX_BODY = 64 * 1024 * 1024


class ClaimLostError(exceptions.StorageError):
    """A claim's lease ran out (or its server restarted) before it ended; nothing was written."""


#: error classes a server may name in a reply (anything else arrives as StorageError)
_ERRORS: dict[str, type[exceptions.HPOError]] = {
    cls.__name__: cls
    for cls in (
        exceptions.HPOError,
        exceptions.UserInputError,
        exceptions.ConfigError,
        exceptions.StorageError,
        exceptions.InvalidStorageError,
        exceptions.SweepNotFoundError,
        exceptions.DuplicateSweepError,
        ClaimLostError,
    )
}


def encode(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True, separators=(",", ":")).encode()


def decode(body: bytes) -> Any:
    return json.loads(body.decode())


def error_reply(exc: BaseException) -> dict[str, Any]:
    """The reply for an error raised by the store (its class name if a client knows it)."""
    kind = type(exc).__name__
    if kind not in _ERRORS:
        kind = next(
            (c.__name__ for c in type(exc).__mro__ if c.__name__ in _ERRORS), "StorageError"
        )
    return {"error": {"kind": kind, "message": str(exc)}}


def raise_error(err: Mapping[str, Any], url: str) -> None:
    """Raise the error a server replied with, as the class it named."""
    cls = _ERRORS.get(str(err.get("kind")), exceptions.StorageError)
    message = str(err.get("message") or f"the store server at {url} failed")
    raise cls(message)


def sweep_to(rec: SweepRecord) -> dict[str, Any]:
    return {
        "id": rec.id,
        "name": rec.name,
        "definition": dict(rec.definition),
        "mode": rec.mode,
        "created_at": rec.created_at,
        "status": rec.status,
    }


def sweep_from(d: Mapping[str, Any]) -> SweepRecord:
    return SweepRecord(**d)


#: fields of a TrialRecord that hold an enum, and how to read them back
_TRIAL_ENUMS: dict[str, Any] = {"state": TrialState, "failure": FailureKind}


def trial_to(rec: TrialRecord) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(rec):
        v = getattr(rec, f.name)
        out[f.name] = (
            v.value if isinstance(v, enum.Enum) else dict(v) if isinstance(v, Mapping) else v
        )
    return out


def trial_from(d: Mapping[str, Any]) -> TrialRecord:
    values = dict(d)
    for name, kind in _TRIAL_ENUMS.items():
        if values.get(name) is not None:
            values[name] = kind(values[name])
    if values.get("objective_values") is not None:  # a JSON list: the record keeps a tuple
        values["objective_values"] = tuple(float(v) for v in values["objective_values"])
    return TrialRecord(**values)


def int_keys(d: Mapping[str, Any]) -> dict[int, Any]:
    """JSON object keys are strings; epochs and trial numbers are ints."""
    return {int(k): v for k, v in d.items()}
