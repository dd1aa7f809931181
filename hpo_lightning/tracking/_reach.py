"""Is the MLflow tracking server there? A fast probe, short HTTP limits, one warning per outage.

MLflow is a mirror, so an unreachable server must cost seconds, not MLflow's default minutes of
retries (7 retries with exponential backoff, 120 s timeouts). Before a client is made for an
``http(s)://`` URI, :func:`check_reachable` asks it once with a short timeout (``GET /health``
over http, a TCP connection over https) and raises :class:`ServiceUnavailableError` when
nothing answers; the answer is remembered for
``REMEMBER_S`` seconds, so later clients of this process -- and of worker processes forked from
it -- fail at once instead of probing again. :func:`first_report` lets callers warn once per
URI in a process tree instead of once per call.

The remembered state is process memory on purpose: it is a cache of one network fact, and a
forked worker inheriting what its parent learned is the point.
"""

from __future__ import annotations

import http.client
import os
import socket
import time
import urllib.parse
import urllib.request

from hpo_lightning._secrets import redact
from hpo_lightning.exceptions import ServiceUnavailableError

PROBE_TIMEOUT_S = 2.0
REMEMBER_S = 60.0

# short HTTP limits: a tracker call must fail in seconds, not after MLflow's ~4 minutes of retries
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    # a background thread printing "View run ... at <uri>" would break progress output and
    # show a URI's user info on stdout
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}

_down: dict[str, tuple[float, str]] = {}  # uri -> (until, reason)
_reported: set[str] = set()


def resolve_uri(tracking_uri: str | None) -> str:
    """The tracking URI MLflow will use (``MLFLOW_TRACKING_URI`` when none is given)."""
    return tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")


def apply_http_defaults(tracking_uri: str | None) -> None:
    """Short MLflow HTTP timeouts and retries for an ``http(s)`` URI, unless you set them."""
    if resolve_uri(tracking_uri).startswith(("http://", "https://")):
        for key, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(key, value)


def check_reachable(tracking_uri: str | None, *, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Raise ServiceUnavailableError fast when an ``http(s)`` tracking server does not accept
    connections. Other URIs (``sqlite:///``, a folder, ``databricks``) and servers reached
    through a proxy are not probed."""
    uri = resolve_uri(tracking_uri)
    target = _probe_target(uri)
    if target is None:
        return
    now = time.monotonic()
    until, reason = _down.get(uri, (0.0, ""))
    if now >= until:
        reason = _connect(target, timeout_s)
        if not reason:
            _down.pop(uri, None)
            return
        _down[uri] = (now + REMEMBER_S, reason)
    raise ServiceUnavailableError(
        f"the MLflow tracking server {redact(uri)} is unreachable ({reason}); start it or fix "
        "the tracking URI -- the store keeps every trial, and `hpo-lightning mlflow-sync` "
        "back-fills MLflow later"
    )


def first_report(tracking_uri: str | None) -> bool:
    """True the first time an outage of this URI is reported in this process (or its parent,
    before a fork); False afterwards. Callers warn only when it is True."""
    uri = resolve_uri(tracking_uri)
    if uri in _reported:
        return False
    _reported.add(uri)
    return True


def was_reported(tracking_uri: str | None) -> bool:
    """Whether an outage of this URI was reported already in this process tree."""
    return resolve_uri(tracking_uri) in _reported


def _probe_target(uri: str) -> tuple[str, str, int, str] | None:
    """(scheme, host, port, path) of an ``http(s)`` URI reached directly, else None."""
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    proxies = urllib.request.getproxies()
    if parts.scheme in proxies and not urllib.request.proxy_bypass(parts.hostname):
        return None  # only the proxy knows; MLflow's shortened retries apply
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:  # a port that is not a number: MLflow will say so
        return None
    return parts.scheme, parts.hostname, port, parts.path.rstrip("/")


def _connect(target: tuple[str, str, int, str], timeout_s: float) -> str:
    """``""`` when the server answers, else why not (one line).

    ``http``: any HTTP answer to ``GET <path>/health`` (even 401 or 404) counts, so a server
    that accepts connections but hangs is caught too. ``https``: a TCP connection counts (the
    TLS set-up, certificates included, stays MLflow's business).
    """
    scheme, host, port, path = target
    try:
        if scheme == "https":
            with socket.create_connection((host, port), timeout=timeout_s):
                return ""
        conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
        try:
            conn.request("GET", f"{path}/health")
            conn.getresponse().read(1024)
        finally:
            conn.close()
        return ""
    except TimeoutError:
        return f"no answer within {timeout_s:g} s"
    except (OSError, http.client.HTTPException) as exc:
        return str(getattr(exc, "strerror", None) or exc or type(exc).__name__)
