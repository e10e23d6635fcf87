"""Reusable builders for tests: fixed-seed identities, valid record bodies of every kind, and
hand-written feeds of foreign authors (signed with `protocol.entry.create_entry`, as a peer would).

Bodies are the smallest valid ones unless a test passes more fields; every builder's result passes
`protocol.records.validate_record` (a test in tests/p2pnode/test_store.py says so).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from typing import Any

from protocol.codec import pack
from protocol.entry import Entry, Header, create_entry, entry_from_parts
from protocol.identity import Identity, SealingKey
from protocol.records import meeting_dates

#: 2027-01-01T00:00:00Z: "now" for store and query tests that pass their own clock
NOW_MS = int(dt.datetime(2027, 1, 1, tzinfo=dt.UTC).timestamp() * 1000)
DAY_MS = 24 * 3600 * 1000
MINUTE_MS = 60 * 1000


def identity_from_seed(seed_string: str) -> Identity:
    """The vectors' convention: the Ed25519 private key is SHA-256 of the seed string."""
    return Identity.from_private_bytes(hashlib.sha256(seed_string.encode()).digest())


def sealing_key_from_seed(seed_string: str) -> SealingKey:
    return SealingKey.from_private_bytes(hashlib.sha256(seed_string.encode()).digest())


def ms(day: str, time: str = "12:00") -> int:
    """Milliseconds since the epoch of a UTC date and time."""
    stamp = dt.datetime.fromisoformat(f"{day}T{time}").replace(tzinfo=dt.UTC)
    return int(stamp.timestamp() * 1000)


# -- bodies ---------------------------------------------------------------------------------------


def profile_body(name: str = "Ana", enc_key: bytes = b"\x01" * 32, **extra: Any) -> dict[str, Any]:
    return {"name": name, "enc_key": enc_key, **extra}


def circle_body(
    facilitators: Iterable[bytes],
    *,
    name: str = "Python for Everybody",
    description: str = "Weekly study group.",
    start: str = "2027-01-12",
    weeks: int = 6,
    language: str = "en",
    topics: Iterable[str] = ("python",),
    timezone: str = "Africa/Johannesburg",
    meeting_time: str = "18:30",
    city: str = "Cape Town",
    venue: str = "Central Library, Room 2",
    **extra: Any,
) -> dict[str, Any]:
    """A valid `circle` record meeting weekly from `start`; `extra` adds or replaces fields."""
    body: dict[str, Any] = {
        "name": name,
        "description": description,
        "course": {
            "title": name,
            "format": "course",
            "topics": list(topics),
            "language": language,
        },
        "venue": {"name": venue, "city": city, "online": False},
        "language": language,
        "timezone": timezone,
        "meeting_time": meeting_time,
        "duration_min": 90,
        "meetings": meeting_dates(dt.date.fromisoformat(start), weeks),
        "facilitators": list(facilitators),
    }
    body.update(extra)
    return body


def update_body(circle: bytes, **changes: Any) -> dict[str, Any]:
    return {"circle": circle, **changes}


def cancel_body(circle: bytes, reason: str | None = None) -> dict[str, Any]:
    return {"circle": circle, **({"reason": reason} if reason else {})}


def join_body(
    circle: bytes, display_name: str = "Ben", action: str = "join", **extra: Any
) -> dict[str, Any]:
    return {"circle": circle, "action": action, "display_name": display_name, **extra}


def accept_body(circle: bytes, join: bytes, accepted: bool = True) -> dict[str, Any]:
    return {"circle": circle, "join": join, "accepted": accepted}


def rsvp_body(circle: bytes, date: str = "2027-01-12", attending: bool = True) -> dict[str, Any]:
    return {"circle": circle, "date": date, "attending": attending}


def note_body(circle: bytes, date: str = "2027-01-12", **extra: Any) -> dict[str, Any]:
    return {"circle": circle, "date": date, "plus": ["good pace"], "delta": ["more breaks"],
            **extra}


def feedback_body(circle: bytes, role: str = "learner", **extra: Any) -> dict[str, Any]:
    return {"circle": circle, "role": role, "course_rating": 4, **extra}


def delete_body(entries: Iterable[bytes], reason: str | None = None) -> dict[str, Any]:
    return {"entries": list(entries), **({"reason": reason} if reason else {})}


def resource_body(circle: bytes | None = None, title: str = "Chapter 1", **extra: Any) -> dict:
    body: dict[str, Any] = {
        "blob": hashlib.sha256(title.encode()).digest(),
        "size": 1234,
        "title": title,
        "media_type": "application/pdf",
        "format": "book",
    }
    if circle is not None:
        body["circle"] = circle
    body.update(extra)
    return body


def valid_bodies(author: bytes) -> dict[str, dict[str, Any]]:
    """One valid body of every known kind, referring to made-up circle and entry ids."""
    circle, other = b"\xcc" * 32, b"\xee" * 32
    return {
        "profile": profile_body(),
        "circle": circle_body([author]),
        "circle.update": update_body(circle, name="New name"),
        "circle.cancel": cancel_body(circle, "no room"),
        "join": join_body(circle),
        "join.accept": accept_body(circle, other),
        "rsvp": rsvp_body(circle),
        "meeting.note": note_body(circle),
        "feedback": feedback_body(circle),
        "delete": delete_body([other]),
        "resource": resource_body(circle),
    }


# -- feeds ----------------------------------------------------------------------------------------


class Feed:
    """Writes one author's feed entry by entry, as that author's node would, without a store."""

    def __init__(self, identity: Identity, start_ms: int = NOW_MS - DAY_MS) -> None:
        self.identity = identity
        self.entries: list[Entry] = []
        self.clock_ms = start_ms

    @property
    def node_id(self) -> bytes:
        return self.identity.node_id

    def add(self, kind: str, body: dict[str, Any], *, at_ms: int | None = None) -> Entry:
        """Sign the next entry (seq and prev follow the previous one) and keep it."""
        self.clock_ms = at_ms if at_ms is not None else self.clock_ms + MINUTE_MS
        prev = self.entries[-1] if self.entries else None
        entry = create_entry(
            self.identity,
            seq=len(self.entries) + 1,
            prev=prev.id if prev else None,
            timestamp_ms=self.clock_ms,
            kind=kind,
            body=body,
        )
        self.entries.append(entry)
        return entry

    def fill(self, count: int, kind: str = "note.test") -> list[Entry]:
        """Append `count` entries of an (unknown, so unvalidated) kind."""
        return [self.add(kind, {"n": len(self.entries) + 1}) for _ in range(count)]


def with_signature(entry: Entry, signature: bytes) -> Entry:
    """The same header and body under another signature (a forgery unless it is the real one)."""
    return entry_from_parts([entry.header_bytes, signature, entry.body_bytes])


def forged_chain(author: bytes, count: int, start_ms: int = NOW_MS - DAY_MS) -> list[Entry]:
    """A correctly linked chain claiming `author`, signed by someone without `author`'s key."""
    impostor = identity_from_seed("impostor")
    entries: list[Entry] = []
    for seq in range(1, count + 1):
        body_bytes = pack({"n": seq})
        header = Header(
            author,
            seq,
            entries[-1].id if entries else None,
            start_ms + seq * MINUTE_MS,
            "note.test",
            hashlib.sha256(body_bytes).digest(),
            len(body_bytes),
        )
        header_bytes = header.encode()
        entries.append(entry_from_parts([header_bytes, impostor.sign(header_bytes), body_bytes]))
    return entries
