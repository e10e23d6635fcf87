"""The node's exception family: one base, one subclass per kind of failure a user can act on.

`protocol.errors.ProtocolError` stays separate: it says *what* was wrong with bytes or records;
these say what the node could not do. The CLI prints either as one line.
"""

from __future__ import annotations


class NodeError(Exception):
    """Base of every error raised by `p2pnode/`."""


class HomeError(NodeError):
    """The node home is missing, unreadable, or holds unsafe files (e.g. a key others can read)."""


class StorageError(NodeError):
    """The database could not be read or written."""


class DamagedDatabase(StorageError):
    """The database file is not a readable SQLite database (truncated, overwritten)."""


class DiskFull(StorageError):
    """The disk holding the home is full: reads work, nothing more is stored until there is room."""


class NotFound(NodeError):
    """No circle, entry, resource or peer with that id is known here."""


class NotAllowed(NodeError):
    """The action is reserved to someone else (e.g. only facilitators may update a circle)."""


class InvalidInput(NodeError):
    """A value given by the user is not acceptable; the message says which and why."""


class NotRunning(NodeError):
    """The command needs a running node (`p2pnode run`) and none answers for this home."""


class PeerUnreachable(NodeError):
    """A peer could not be dialled or dropped the session."""


class RecoveryPending(NodeError):
    """This identity wrote entries before this database existed; they must be fetched first."""
