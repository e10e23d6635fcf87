"""A realistic, reproducible set of signed entries for the benchmarks.

`make_feeds(authors, total)` returns per-author lists of entries in seq order: a profile first,
then a mix of circles, updates, joins, RSVPs, meeting notes, feedback and resources in the
proportions of `KIND_WEIGHTS`, referring to circles announced earlier (by anyone), as
learning-circle traffic does. Records that need authority are written by someone who has it: a
circle's author updates it, writes its meeting notes and accepts joins to it (joins that were
really made), so every entry changes the derived tables the way real traffic would.

Authors take turns (entry n is written by author n % authors). When the kind drawn for a turn
cannot be written yet (no circle exists, or the author has no circle of their own, or no join to
one of theirs is waiting), the author announces a circle instead; that only happens early on and
moves the mix by a fraction of a percent (tests/p2pnode/test_workload.py keeps it in bounds).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from dataclasses import dataclass, field
from pathlib import Path

from protocol.codec import pack
from protocol.entry import Entry, create_entry
from protocol.identity import Identity, SealingKey
from protocol.records import meeting_dates, validate_authored, validate_record

_BASE_MS = 1_790_000_000_000
#: kind -> relative weight of the entries after each feed's first (which is a profile)
KIND_WEIGHTS: dict[str, int] = {
    "rsvp": 30, "join": 20, "meeting.note": 12, "circle": 8, "circle.update": 8,
    "feedback": 8, "resource": 6, "profile": 4, "join.accept": 4,
}
_SUBJECTS = ("Python", "Statistics", "Writing", "Design", "Spanish", "Biology", "Music")
_CITIES = ("Cape Town", "Nairobi", "Chicago", "Lisbon", "Accra", "Toronto")


@dataclass
class _Circle:
    id: bytes
    author: int
    meetings: list[str]
    #: join entry ids not yet accepted
    pending_joins: list[bytes] = field(default_factory=list)


def _identity(n: int) -> Identity:
    return Identity.from_private_bytes(hashlib.sha256(f"bench author {n}".encode()).digest())


def _circle(rng: random.Random, author: bytes, n: int) -> dict:
    start = dt.date(2027, 1, 4) + dt.timedelta(days=rng.randrange(300))
    subject = rng.choice(_SUBJECTS)
    return {
        "name": f"Learning circle {n}: {subject}",
        "description": f"We meet weekly to work through {subject} together. " * 3,
        "course": {"title": f"{subject} for everyone", "provider": "P2PU",
                   "link": "https://p2pu.org/", "format": "course",
                   "topics": [subject.lower(), rng.choice(["data", "art", "language"])],
                   "language": "en"},
        "venue": {"name": "Public library", "city": rng.choice(_CITIES), "country": "ZA",
                  "online": False},
        "language": "en", "timezone": "Africa/Johannesburg", "meeting_time": "18:00",
        "duration_min": 90, "meetings": meeting_dates(start, 6), "signup_limit": 12,
        "facilitators": [author],
    }


def _update(rng: random.Random, circle: _Circle) -> dict:
    """A plausible change: mostly the time, sometimes the text, the limit or the dates."""
    roll = rng.random()
    if roll < 0.5:
        return {"circle": circle.id, "meeting_time": rng.choice(["17:30", "18:30", "19:00"])}
    if roll < 0.7:
        return {"circle": circle.id,
                "description": "Updated: bring a laptop and your questions. " * 2}
    if roll < 0.85:
        return {"circle": circle.id, "signup_limit": rng.randrange(6, 30)}
    start = dt.date.fromisoformat(circle.meetings[0]) + dt.timedelta(days=7)
    circle.meetings = meeting_dates(start, len(circle.meetings))
    return {"circle": circle.id, "meetings": circle.meetings}


class _Traffic:
    """The state the generator needs to write sensible references."""

    def __init__(self, rng: random.Random, identities: list[Identity], enc_key: bytes) -> None:
        self.rng = rng
        self.identities = identities
        self.enc_key = enc_key
        self.circles: list[_Circle] = []
        self.own: list[list[_Circle]] = [[] for _ in identities]

    def feasible(self, kind: str, index: int) -> bool:
        if kind == "profile" or kind == "circle":
            return True
        if not self.circles:
            return False
        if kind in ("circle.update", "meeting.note"):
            return bool(self.own[index])
        if kind == "join.accept":
            return any(c.pending_joins for c in self.own[index])
        return True

    def body(self, kind: str, index: int, n: int) -> tuple[dict, _Circle | None]:
        rng, me = self.rng, self.identities[index].node_id
        if kind == "profile":
            return {"name": f"Learner {n}", "bio": "Curious about everything.",
                    "enc_key": self.enc_key}, None
        if kind == "circle":
            return _circle(rng, me, n), None
        if kind == "circle.update":
            circle = rng.choice(self.own[index])
            return _update(rng, circle), circle
        if kind == "meeting.note":
            circle = rng.choice(self.own[index])
            return {"circle": circle.id, "date": rng.choice(circle.meetings), "attendance": 9,
                    "rating": 4, "plus": ["good pace", "great questions"],
                    "delta": ["start on time"],
                    "recap": "We finished chapter 3 and tried the exercises together."}, circle
        if kind == "join.accept":
            circle = rng.choice([c for c in self.own[index] if c.pending_joins])
            join = circle.pending_joins.pop(rng.randrange(len(circle.pending_joins)))
            return {"circle": circle.id, "join": join, "accepted": rng.random() < 0.9}, circle
        circle = rng.choice(self.circles)
        if kind == "join":
            owner = self.identities[circle.author].node_id
            return {"circle": circle.id, "action": "join", "display_name": f"Learner {n}",
                    "sealed": [[owner, rng.randbytes(120)]]}, circle
        if kind == "rsvp":
            return {"circle": circle.id, "date": rng.choice(circle.meetings),
                    "attending": rng.random() < 0.8}, circle
        if kind == "feedback":
            return {"circle": circle.id, "role": "learner", "course_rating": rng.randrange(1, 6),
                    "goal_rating": rng.randrange(1, 6),
                    "reason": "The group kept me going."}, circle
        if kind == "resource":
            return {"blob": rng.randbytes(32), "size": rng.randrange(1, 10**8),
                    "title": "Slides week 1", "media_type": "application/pdf",
                    "format": "book", "circle": circle.id}, circle
        raise ValueError(f"the workload does not write {kind!r}")


def make_feeds(authors: int, total: int, seed: int = 1) -> list[list[Entry]]:
    """`total` entries spread over `authors` feeds, each feed in seq order."""
    rng = random.Random(seed)
    identities = [_identity(n) for n in range(authors)]
    enc = SealingKey.from_private_bytes(hashlib.sha256(b"bench enc").digest()).public_bytes
    traffic = _Traffic(rng, identities, enc)
    feeds: list[list[Entry]] = [[] for _ in identities]
    kinds = [k for k, w in KIND_WEIGHTS.items() for _ in range(w)]
    for n in range(total):
        index = n % authors
        who = identities[index]
        feed = feeds[index]
        kind = "profile" if not feed else rng.choice(kinds)
        if not traffic.feasible(kind, index):
            kind = "circle"
        body, circle = traffic.body(kind, index, n)
        validate_record(kind, body)
        validate_authored(kind, body, who.node_id)
        entry = create_entry(
            who,
            seq=len(feed) + 1,
            prev=feed[-1].id if feed else None,
            timestamp_ms=_BASE_MS + n * 1000,
            kind=kind,
            body=body,
        )
        feed.append(entry)
        if kind == "circle":
            made = _Circle(entry.id, index, body["meetings"])
            traffic.circles.append(made)
            traffic.own[index].append(made)
        elif kind == "join" and circle is not None:
            circle.pending_joins.append(entry.id)
    return feeds


def write_export(feeds: list[list[Entry]], path: Path) -> int:
    """Write the feeds as a p2pnode export file; returns the number of entries."""
    count = 0
    with path.open("wb") as out:
        out.write(pack({"format": "p2pnode-export", "version": 1}))
        for feed in feeds:
            for entry in feed:
                out.write(entry.encode())
                count += 1
    return count
