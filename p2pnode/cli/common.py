"""Helpers every CLI command module shares: exit codes, errors, ids typed by people, JSON out,
files the user names (never overwritten unasked; `-` is standard output), and telling a running
node about new entries."""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from p2pnode import config
from p2pnode.errors import InvalidInput, NotFound
from p2pnode.files import fsync_directory
from p2pnode.home import Home
from p2pnode.store.models import to_jsonable
from protocol.identity import node_id_text, parse_id

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2

#: The file name that means standard output wherever a command writes a file.
STDOUT = "-"


class CliError(Exception):
    """A one-line message for the user; exit status 1."""


class UsageError(Exception):
    """The command line itself is wrong (a missing option, options that exclude each other);
    one line for the user, exit status 2."""


def print_json(value: Any, file: TextIO | None = None) -> None:
    print(json.dumps(to_jsonable(value), indent=2, ensure_ascii=False), file=file)


def resolve_circle(home: Home, text: str) -> bytes:
    """A circle id from full base32/hex, or from a unique prefix of its base32 form."""
    text = text.strip().lower()
    if len(text) >= 52:
        return parse_id(text, "circle")
    matches = [
        row[0]
        for row in home.store.conn.execute("SELECT id FROM circles")
        if node_id_text(row[0]).startswith(text)
    ]
    if not matches:
        raise NotFound(f"no circle whose id starts with {text!r} is known here")
    if len(matches) > 1:
        raise InvalidInput(f"{text!r} matches {len(matches)} circles; give more characters")
    return matches[0]


def resolve_node(home: Home, text: str, flag: str) -> bytes:
    """A node id from its full form, or from a unique prefix of a node known here (one whose
    entries or profile arrived), as `flag` was given."""
    text = text.strip().lower()
    if len(text) >= 52:
        return parse_id(text, flag)
    known = {row[0] for row in home.store.conn.execute("SELECT author FROM feeds")}
    known.add(home.identity.node_id)
    matches = [node for node in known if node_id_text(node).startswith(text)]
    if not matches:
        raise NotFound(f"{flag}: no node whose id starts with {text!r} is known here;"
                       " give the full id")
    if len(matches) > 1:
        raise InvalidInput(f"{flag}: {text!r} matches {len(matches)} nodes; give more characters")
    return matches[0]


def resolve_entry(home: Home, text: str, table: str = "entries", column: str = "id") -> bytes:
    text = text.strip().lower()
    if len(text) >= 52:
        return parse_id(text, "entry")
    matches = [
        row[0]
        for row in home.store.conn.execute(f"SELECT {column} FROM {table}")
        if node_id_text(row[0]).startswith(text)
    ]
    if len(matches) != 1:
        what = "no" if not matches else f"{len(matches)}"
        raise InvalidInput(f"{what} entries match {text!r}; give the full id")
    return matches[0]


def notify_node(home: Home) -> None:
    """Tell a node running on this home that new entries are waiting (best effort)."""
    from p2pnode.net.control_client import notify_new_entries

    notify_new_entries(home.path)


def write_output(target: str, produce: Callable[[Path], Any], *, force: bool) -> Any:
    """Write a file the user named, or standard output for `-`; return what `produce` returned.

    `produce(path)` writes a temporary file next to the target; it is then linked into place,
    which fails (leaving the existing file as it was) when the target exists and `force` is not
    given. A failure is one line for the user and leaves no temporary file behind.
    """
    to_stdout = target == STDOUT
    path = Path(target)
    directory = Path(tempfile.gettempdir()) if to_stdout else path.parent
    if not to_stdout and not force and os.path.lexists(path):
        raise CliError(f"{target} exists; give --force to overwrite it")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    except OSError as exc:
        raise CliError(f"cannot write {target}: {exc.strerror}") from None
    tmp = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)  # a file like any other the user makes, not mkstemp's 0600
    os.close(fd)
    try:
        result = produce(tmp)
        if to_stdout:
            with tmp.open("rb") as source:
                sys.stdout.flush()
                shutil.copyfileobj(source, sys.stdout.buffer)
                sys.stdout.buffer.flush()
        elif force:
            os.replace(tmp, path)
            fsync_directory(directory)
        else:
            os.link(tmp, path)  # unlike a rename, never replaces a file that appeared meanwhile
            fsync_directory(directory)
    except FileExistsError:
        raise CliError(f"{target} exists; give --force to overwrite it") from None
    except BrokenPipeError:
        raise  # the reader of standard output went away: main() ends quietly
    except OSError as exc:
        raise CliError(f"cannot write {target}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return result


def write_bytes(path: Path, data: bytes) -> None:
    """`produce` for `write_output`: durable bytes at `path`."""
    with path.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


# -- the log ---------------------------------------------------------------------------------
_log_handlers: list[logging.Handler] = []


def attach_log(home: Path, verbose: bool = False) -> bool:
    """Log to the home's `node.log` (and to stderr with `verbose`); True when the log is open.

    Never creates the home: a command that has none yet logs once it has made it. Calling it
    again for the same run is harmless.
    """
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    if verbose and not any(isinstance(h, _StderrHandler) for h in _log_handlers):
        stream = _StderrHandler()
        stream.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        _add_handler(stream)
    if any(isinstance(h, logging.handlers.RotatingFileHandler) for h in _log_handlers):
        return True
    if not (home / config.IDENTITY_FILE).exists():
        return False
    try:
        handler = logging.handlers.RotatingFileHandler(
            home / config.LOG_FILE, maxBytes=2_000_000, backupCount=3, encoding="utf-8",
            errors="backslashreplace",
        )
    except OSError:
        return False
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    _add_handler(handler)
    return True


def detach_log() -> None:
    """Close what `attach_log` opened (main() is called many times in one test process)."""
    root = logging.getLogger()
    while _log_handlers:
        handler = _log_handlers.pop()
        root.removeHandler(handler)
        handler.close()


class _StderrHandler(logging.StreamHandler):
    def __init__(self) -> None:
        super().__init__(sys.stderr)


def _add_handler(handler: logging.Handler) -> None:
    logging.getLogger().addHandler(handler)
    _log_handlers.append(handler)
