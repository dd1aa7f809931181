"""Writing a command's output file safely: never over a store, never over a file unasked."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from hpo_lightning.exceptions import UserInputError

_SQLITE_HEADER = b"SQLite format 3\x00"


def check_output_path(path: str | os.PathLike[str], *, force: bool, store: Any = None) -> Path:
    """The output path, or a UserInputError when writing there would lose something.

    Refused always: the store being read, any SQLite database (a store, maybe another
    sweep's), a folder, a missing parent folder. Refused without ``force``: any other
    existing file.
    """
    out = Path(path)
    store_path = getattr(store, "path", None)
    if _same_file(out, store_path):
        raise UserInputError(f"--output {out} is the store being exported; write to another file")
    if out.is_dir():
        raise UserInputError(f"--output {out} is a folder; give a file path")
    if not out.parent.is_dir():
        raise UserInputError(f"--output {out}: folder {out.parent} does not exist; create it first")
    if out.exists():
        if _is_sqlite(out):
            raise UserInputError(
                f"--output {out} is a SQLite database (perhaps a store); it is never "
                "overwritten -- write to another file"
            )
        if not force:
            raise UserInputError(f"--output {out} exists; pass --force to replace it")
    return out


def _same_file(a: Path, b: Any) -> bool:
    try:
        return b is not None and os.path.samefile(a, b)
    except OSError:  # one of them does not exist
        return False


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _is_sqlite(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(16) == _SQLITE_HEADER
    except OSError:
        return False


@contextlib.contextmanager
def open_output(
    path: str | os.PathLike[str] | None, *, force: bool = False, store: Any = None
) -> Iterator[TextIO]:
    """A text stream for a command's output: stdout when ``path`` is None, else a temporary
    file next to ``path`` that replaces it only when the body finished without error."""
    if path is None:
        yield sys.stdout
        return
    out = check_output_path(path, force=force, store=store)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    except OSError as exc:
        raise UserInputError(f"cannot write --output {out}: {exc.strerror or exc}") from None
    try:
        os.chmod(tmp, out.stat().st_mode & 0o777 if out.exists() else 0o666 & ~_umask())
        with open(fd, "w", newline="", encoding="utf-8") as fh:
            yield fh
        os.replace(tmp, out)
    except OSError as exc:
        raise UserInputError(f"cannot write --output {out}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
