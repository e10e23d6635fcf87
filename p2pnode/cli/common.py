"""Helpers every CLI command module shares: exit codes, errors, ids typed by people, JSON out,
and telling a running node about new entries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from p2pnode.errors import InvalidInput, NotFound
from p2pnode.files import write_file_atomically
from p2pnode.home import Home
from p2pnode.store.models import to_jsonable
from protocol.identity import node_id_text, parse_id

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    """A one-line message for the user; exit status 1."""


def print_json(value: Any) -> None:
    print(json.dumps(to_jsonable(value), indent=2, ensure_ascii=False))


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


def write_file(path: Path, data: bytes) -> None:
    """Write a user-chosen file atomically; a failure is one line for the user."""
    try:
        write_file_atomically(path, data)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror}") from None
