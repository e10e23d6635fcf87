"""The control API's msgpack bodies (`p2pnode.net.codec`): values come back exactly (bytes stay
bytes, tuples tuples, views and events their own classes), only registered types are built, and
errors come back as their own class, or the nearest one the client knows, with the message."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import msgpack
import pytest
from builders import Feed, identity_from_seed

from p2pnode import events
from p2pnode.blobs.errors import BlobTooLarge
from p2pnode.errors import NodeError, NotAllowed, RecoveryPending
from p2pnode.net import codec
from p2pnode.store.inbox import Notice
from p2pnode.store.models import Meeting, Person, Resource
from protocol.errors import InvalidRecordError, MalformedError


def test_values_come_back_exactly():
    """Bytes vs text, tuples vs lists, bytes map keys, paths, entries and views all survive."""
    ana = Person(b"\x01" * 32, "Ana", forked=True)
    entry = Feed(identity_from_seed("codec")).add("note.test", {"n": 1})
    value = {
        "views": [ana, Resource(b"\x02" * 32, b"\x03" * 32, "Notes", 10, "text/plain", "other",
                                None, None, None, ana, held=True, holders=(ana.node_id,)),
                  Meeting(1, "2027-01-12", 2, 0, ({"plus": ["good"]},))],
        b"\x04" * 32: ("facilitating", "2"),
        "text": "\x04" * 32,
        "path": Path("/tmp/x.ics"),
        "entry": entry,
        "notice": Notice(7, "signed-up", b"\x05" * 32, "Circle", "Ben signed up", 1),
        "events": [events.Lagged(3), events.PeerDiscovered(b"\x06" * 32, ("127.0.0.1",), 7654)],
    }
    back = codec.decode(codec.encode(value))
    assert back == value
    assert type(back["views"][2].notes) is tuple and type(back["events"][1].addresses) is tuple
    assert type(back["text"]) is str and type(back["views"][0].node_id) is bytes
    assert back["entry"].id == entry.id and back["entry"].header_bytes == entry.header_bytes


def test_every_event_type_is_carried():
    """Each event class of p2pnode.events is registered (a new one cannot be forgotten)."""
    for cls in vars(events).values():
        if isinstance(cls, type) and issubclass(cls, events.NodeEvent) \
                and cls is not events.NodeEvent:
            sample = cls(*[b"x" if f.type == "bytes" else 1 for f in dataclasses.fields(cls)])
            assert codec.decode(codec.encode(sample)) == sample


def test_only_registered_types_are_built_or_sent():
    """A body naming a class outside the registry is refused; an arbitrary object cannot be
    sent."""
    forged = msgpack.packb(msgpack.ExtType(1, msgpack.packb(["Popen", [["true"]]])))
    with pytest.raises(codec.WireError, match="'Popen' is not a type"):
        codec.decode(forged)
    with pytest.raises(codec.WireError):
        codec.decode(b"\xc1")  # never used in msgpack

    @dataclasses.dataclass
    class Person:  # the same name as a view, but not the view
        node_id: bytes

    with pytest.raises(TypeError, match="cannot send"):
        codec.encode(Person(b"x"))
    with pytest.raises(TypeError, match="cannot send"):
        codec.encode(object())


@pytest.mark.parametrize("error", [
    NotAllowed("only the circle's facilitators can cancel it"),
    RecoveryPending("this identity wrote entries before this database existed"),
    InvalidRecordError("must be 1-128 characters", "name"),
    MalformedError("not msgpack"),
    FileNotFoundError(2, "No such file or directory", "/nowhere/x.pdf"),
], ids=lambda e: type(e).__name__)
def test_errors_come_back_as_their_class_with_their_message(error):
    """NodeError and ProtocolError subclasses (with field and reason) and OSErrors (with errno
    and file name) are raised again as they were."""
    back = codec.error_from_wire(codec.decode(codec.encode(codec.error_to_wire(error))))
    assert type(back) is type(error) and str(back) == str(error)
    if isinstance(error, InvalidRecordError):
        assert (back.field, back.reason) == ("name", "must be 1-128 characters")
    if isinstance(error, OSError):
        assert (back.errno, back.filename) == (2, "/nowhere/x.pdf")


def test_an_error_unknown_here_becomes_its_nearest_known_ancestor():
    """A blob-store error (a class the net layer does not import) is a NodeError with the
    same message; a bug's exception says something went wrong, naming its type."""
    back = codec.error_from_wire(codec.error_to_wire(BlobTooLarge(10, 5, "notes.pdf")))
    assert type(back) is NodeError and str(back) == str(BlobTooLarge(10, 5, "notes.pdf"))
    back = codec.error_from_wire(codec.error_to_wire(ZeroDivisionError("division by zero")))
    assert type(back) is NodeError and "ZeroDivisionError" in str(back)
