"""A realistic, reproducible set of signed entries for the benchmarks.

`make_feeds(authors, total)` returns per-author lists of entries in seq order: a profile first,
then a mix of circles, updates, joins, RSVPs, meeting notes, feedback and resources that refer
to circles announced earlier (by anyone), as learning-circle traffic does.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from pathlib import Path

from protocol.codec import pack
from protocol.entry import Entry, create_entry
from protocol.identity import Identity, SealingKey
from protocol.records import meeting_dates, validate_record

_BASE_MS = 1_790_000_000_000
_KINDS = (
    ("rsvp", 30), ("join", 20), ("meeting.note", 12), ("circle", 8), ("circle.update", 8),
    ("feedback", 8), ("resource", 6), ("profile", 4), ("join.accept", 4),
)


def _identity(n: int) -> Identity:
    return Identity.from_private_bytes(hashlib.sha256(f"bench author {n}".encode()).digest())


def _circle(rng: random.Random, author: bytes, n: int) -> dict:
    start = dt.date(2027, 1, 4) + dt.timedelta(days=rng.randrange(300))
    return {
        "name": f"Learning circle {n}: {rng.choice(['Python', 'Statistics', 'Writing', 'Design'])}",
        "description": "We meet weekly to work through the course together. " * 3,
        "course": {"title": "Course title", "provider": "P2PU", "link": "https://p2pu.org/",
                   "format": "course", "topics": ["python", "data"], "language": "en"},
        "venue": {"name": "Public library", "city": "Cape Town", "country": "ZA",
                  "online": False},
        "language": "en", "timezone": "Africa/Johannesburg", "meeting_time": "18:00",
        "duration_min": 90, "meetings": meeting_dates(start, 6), "signup_limit": 12,
        "facilitators": [author],
    }


def _body(kind: str, rng: random.Random, author: bytes, circles: list, own: list, n: int,
          enc_key: bytes) -> dict:
    circle = rng.choice(circles) if circles else None
    if kind == "profile" or circle is None:
        return {"name": f"Learner {n}", "bio": "Curious about everything.", "enc_key": enc_key}
    cid, meetings = circle
    if kind == "circle":
        return _circle(rng, author, n)
    if kind == "circle.update":
        target = rng.choice(own) if own else cid
        return {"circle": target, "meeting_time": "18:30"}
    if kind == "join":
        return {"circle": cid, "action": "join", "display_name": f"Learner {n}",
                "sealed": [[author, rng.randbytes(120)]]}
    if kind == "join.accept":
        return {"circle": cid, "join": rng.randbytes(32), "accepted": True}
    if kind == "rsvp":
        return {"circle": cid, "date": rng.choice(meetings), "attending": rng.random() < 0.8}
    if kind == "meeting.note":
        return {"circle": cid, "date": rng.choice(meetings), "attendance": 9, "rating": 4,
                "plus": ["good pace", "great questions"], "delta": ["start on time"],
                "recap": "We finished chapter 3 and tried the exercises together."}
    if kind == "feedback":
        return {"circle": cid, "role": "learner", "course_rating": 5, "goal_rating": 4,
                "reason": "The group kept me going."}
    return {"blob": rng.randbytes(32), "size": rng.randrange(1, 10**8), "title": "Slides week 1",
            "media_type": "application/pdf", "format": "book", "circle": cid}


def make_feeds(authors: int, total: int, seed: int = 1) -> list[list[Entry]]:
    """`total` entries spread over `authors` feeds, each feed in seq order."""
    rng = random.Random(seed)
    identities = [_identity(n) for n in range(authors)]
    enc = SealingKey.from_private_bytes(hashlib.sha256(b"bench enc").digest()).public_bytes
    feeds: list[list[Entry]] = [[] for _ in identities]
    circles: list[tuple[bytes, list[str]]] = []
    own: list[list[bytes]] = [[] for _ in identities]
    kinds = [k for k, w in _KINDS for _ in range(w)]
    for n in range(total):
        index = n % authors
        who = identities[index]
        feed = feeds[index]
        kind = "profile" if not feed else ("circle" if not circles else rng.choice(kinds))
        body = _body(kind, rng, who.node_id, circles, own[index], n, enc)
        kind = "profile" if "enc_key" in body else kind
        validate_record(kind, body)
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
            circles.append((entry.id, body["meetings"]))
            own[index].append(entry.id)
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
