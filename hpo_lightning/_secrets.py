"""Keeping credentials out of messages, logs, stored definitions, MLflow params and exports.

Every form a password takes in a location string is masked as ``***``:

* URL user info: ``postgresql://user:pw@host/db``, ``http://user:pw@mlflow:5000``;
* URL query parameters: ``...?password=pw``, ``&token=...``, ``&api_key=...``;
* libpq keyword strings: ``host=db user=hpo password=pw`` (also ``password='p w'``).

The functions work on free text too (an error message that quotes a URL), so one function is
applied wherever text leaves the process. Credentials are best kept out of URLs altogether:
libpq reads ``PGPASSWORD`` and ``~/.pgpass``, MLflow ``MLFLOW_TRACKING_USERNAME`` and
``MLFLOW_TRACKING_PASSWORD``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MASK = "***"

# keys whose values are secrets (query parameters and libpq keywords)
_SECRET_KEY = r"[\w.-]*?(?:pass|pwd|secret|token|api_?key|credential)[\w.-]*"
# scheme://user:password@ -- the password may hold '@' (the last '@' before '/' ends it)
_USERINFO = re.compile(r"(?P<pre>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s/@:]*):(?P<pw>[^\s/]*)@")
_QUERY = re.compile(rf"(?i)(?P<pre>[?&;]{_SECRET_KEY}=)(?P<pw>[^&#\s]*)")
_KEYWORD = re.compile(
    rf"(?i)(?P<pre>(?:^|(?<=\s)){_SECRET_KEY}\s*=\s*)(?P<pw>'(?:[^'\\]|\\.)*'|\S+)"
)

# libpq's common connection keywords: a location made of ``key=value`` words that names one of
# them is a PostgreSQL connection string, never a file name
_LIBPQ_KEYWORDS = frozenset(
    {"host", "hostaddr", "port", "dbname", "user", "password", "passfile", "service"}
    | {"sslmode", "sslrootcert", "sslcert", "sslkey", "sslpassword", "connect_timeout"}
    | {"options", "application_name", "target_session_attrs"}
)
_DSN_WORD = re.compile(r"\s*(?P<key>\w+)\s*=\s*(?:'(?:[^'\\]|\\.)*'|[^\s']*)")


def redact(text: str) -> str:
    """``text`` with every password, token or key in a URL or connection string as ``***``.

    Example:
        >>> redact("postgresql://hpo:s3cret@db/hpo?sslmode=require&password=x")
        'postgresql://hpo:***@db/hpo?sslmode=require&password=***'
        >>> redact("host=db user=hpo password='a b' dbname=hpo")
        'host=db user=hpo password=*** dbname=hpo'
    """
    if not isinstance(text, str) or not text:
        return text
    text = _USERINFO.sub(lambda m: f"{m['pre']}:{MASK}@" if m["pw"] else m[0], text)
    text = _QUERY.sub(lambda m: m["pre"] + MASK, text)
    return _KEYWORD.sub(lambda m: m["pre"] + MASK, text)


def redact_tree(value: Any) -> Any:
    """A copy of a JSON-like value (mappings, lists, strings) with :func:`redact` on strings."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: redact_tree(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_tree(v) for v in value]
    return value


def is_keyword_dsn(location: str) -> bool:
    """True for a libpq keyword connection string such as ``host=db dbname=hpo user=hpo``.

    Example:
        >>> is_keyword_dsn("host=127.0.0.1 dbname=hpo"), is_keyword_dsn("runs/lr=0.1.db")
        (True, False)
    """
    if "://" in location or "=" not in location:
        return False
    keys, pos = [], 0
    while pos < len(location.rstrip()):
        m = _DSN_WORD.match(location, pos)
        if m is None or m.end() == pos:
            return False
        keys.append(m["key"].lower())
        pos = m.end()
    return any(k in _LIBPQ_KEYWORDS for k in keys)


def without_masked_password(uri: str) -> str:
    """A URI whose password was masked (``user:***@``) without its user info, so that the
    client takes its credentials from the environment instead of sending ``***``."""
    return re.sub(rf"(\b[A-Za-z][A-Za-z0-9+.\-]*://)[^\s/@]*:{re.escape(MASK)}@", r"\1", uri)
