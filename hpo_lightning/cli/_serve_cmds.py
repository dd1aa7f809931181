"""``serve``: serve a store over HTTP to workers that cannot open it (``hpo+http://``)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import Any

from hpo_lightning.cli._sweep_cmds import STORAGE_ENV


def register(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a store to workers on other machines (hpo+http://HOST:PORT/)",
        description=(
            "Serve a store (e.g. a SQLite file) over HTTP, so that `hpo-lightning worker "
            "--storage hpo+http://HOST:PORT/` on other machines can join its sweeps. Workers "
            "need the token in $HPO_LIGHTNING_STORE_TOKEN. Prints the URL on stdout."
        ),
    )
    p.add_argument("--storage", help=f"the store to serve (default: ${STORAGE_ENV})")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port (default: 0, a free one)")
    p.add_argument(
        "--token-file",
        help="write a new random token to this file (mode 600) instead of reading "
        "$HPO_LIGHTNING_STORE_TOKEN",
    )
    p.set_defaults(func=cmd_serve)


def _token(args: argparse.Namespace) -> str:
    import secrets

    from hpo_lightning.exceptions import ConfigError
    from hpo_lightning.storage import TOKEN_ENV

    if args.token_file:
        token = secrets.token_urlsafe(32)
        fd = os.open(args.token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(token + "\n")
        return token
    token = os.environ.get(TOKEN_ENV, "")
    if not token:
        raise ConfigError(
            f"set ${TOKEN_ENV} to a secret of at least 16 characters, or give --token-file "
            "FILE to have one written there"
        )
    return token


def cmd_serve(args: argparse.Namespace) -> int:
    from hpo_lightning.exceptions import ConfigError
    from hpo_lightning.storage import TOKEN_ENV, StoreServer, open_storage, redact_url

    location = args.storage or os.environ.get(STORAGE_ENV)
    if not location:
        raise ConfigError(f"give --storage PATH_OR_URL (or set ${STORAGE_ENV}) to serve a store")
    store = open_storage(location)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        with StoreServer(store, host=args.host, port=args.port, token=_token(args)) as server:
            print(server.url, flush=True)
            where = f"token in {args.token_file}" if args.token_file else f"token from ${TOKEN_ENV}"
            print(
                f"serving {redact_url(store.url)} at {server.url} ({where}); Ctrl-C stops",
                file=sys.stderr,
                flush=True,
            )
            stop.wait()
    finally:
        store.close()
    return 0
