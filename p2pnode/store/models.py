"""Read-only views returned by the node's queries: plain frozen dataclasses, JSON-ready.

Ids are raw bytes in the views; `to_jsonable` turns them into the base32 text people see, so the
CLI's `--json` and the TUI show the same thing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from protocol.entry import Entry
from protocol.identity import fingerprint, node_id_text


@lru_cache(maxsize=256)
def zone(name: str) -> dt.tzinfo:
    """A circle's time zone by IANA name (UTC for a name this machine does not know: records
    are validated against the same tzdata, so that is a local install problem, not the
    record's)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return dt.UTC


@dataclasses.dataclass(frozen=True)
class Person:
    node_id: bytes
    name: str | None
    #: an author who signed two different entries for one seq: shown with a warning everywhere
    forked: bool = False

    @property
    def label(self) -> str:
        """Display name with fingerprint, e.g. ``Ana (k3x9ab2c)`` — names are not identities."""
        mark = " [FORKED FEED]" if self.forked else ""
        return f"{self.name or 'unknown'} ({fingerprint(self.node_id)}){mark}"


@dataclasses.dataclass(frozen=True)
class CircleSummary:
    id: bytes
    name: str
    course_title: str
    language: str
    venue: str
    city: str
    online: bool
    timezone: str
    meeting_time: str
    duration_min: int
    start_date: str
    end_date: str
    weekday: str
    next_meeting: str | None
    status: str
    seats_taken: int
    signup_limit: int | None
    topics: tuple[str, ...]
    facilitators: tuple[Person, ...]
    author: Person


@dataclasses.dataclass(frozen=True)
class Participant:
    person: Person
    display_name: str
    join_id: bytes
    #: accepted / pending (holds a seat, undecided) / waiting (waiting list) / declined
    status: str


@dataclasses.dataclass(frozen=True)
class Meeting:
    number: int
    date: str
    attending: int
    not_attending: int
    notes: tuple[dict[str, Any], ...]


@dataclasses.dataclass(frozen=True)
class Resource:
    entry_id: bytes
    blob: bytes
    title: str
    size: int
    media_type: str
    format: str
    licence: str | None
    caption: str | None
    circle: bytes | None
    author: Person
    #: filled in by the node: whether the file is held locally, and which peers hold it
    held: bool = False
    holders: tuple[bytes, ...] = ()


@dataclasses.dataclass(frozen=True)
class Shared:
    """What sharing a file did: the blob (as copied) and the record that announces it."""

    blob_id: bytes
    entry: Entry
    body: dict[str, Any]
    #: True when we had already shared these bytes with the same details: no new record
    already: bool = False


@dataclasses.dataclass(frozen=True)
class Feedback:
    """One person's latest feedback on a circle (records are public, never sealed)."""

    #: None once the circle's personal records expired (the ratings still count)
    author: Person | None
    role: str  # learner / facilitator
    #: course, recommendation, goal: 1-5 or None
    ratings: dict[str, int | None]
    goal: str | None
    reason: str | None
    next_steps: str | None


@dataclasses.dataclass(frozen=True)
class CircleDetail:
    summary: CircleSummary
    description: str
    course: dict[str, Any]
    venue: dict[str, Any]
    signup_question: str | None
    cancel_reason: str | None
    rescheduled: bool
    meetings: tuple[Meeting, ...]
    participants: tuple[Participant, ...]
    resources: tuple[Resource, ...]
    #: averages over `feedback`, None where nobody rated
    ratings: dict[str, float | None]
    feedback_count: int
    feedback: tuple[Feedback, ...] = ()

    @property
    def accepted(self) -> int:
        return sum(1 for p in self.participants if p.status == "accepted")

    def health_hints(self, now_ms: int) -> tuple[str, ...]:
        """P2PU's experience in plain words: circles work best with 4-15 participants. Hints
        only, never a block: few accepted sign-ups close to the start, or more than 15."""
        s = self.summary
        if s.status in ("cancelled", "ended"):
            return ()
        hints = []
        accepted = self.accepted
        if s.status == "upcoming":
            try:
                start = dt.datetime.combine(dt.date.fromisoformat(s.start_date),
                                            dt.time.fromisoformat(s.meeting_time),
                                            ZoneInfo(s.timezone))
            except (ValueError, KeyError):
                start = None
            if start is not None:
                days = (start.timestamp() * 1000 - now_ms) / 86_400_000
                if 0 <= days <= HEALTH_SOON_DAYS and accepted < HEALTH_MIN_PEOPLE:
                    hints.append(
                        f"only {accepted} accepted sign-up{'s' if accepted != 1 else ''} with"
                        f" {max(0, round(days))} day{'s' if round(days) != 1 else ''} to go:"
                        f" circles work best with {HEALTH_MIN_PEOPLE}-{HEALTH_MAX_PEOPLE}"
                        " people; invite a few more")
        if accepted > HEALTH_MAX_PEOPLE:
            hints.append(f"{accepted} accepted: circles work best with {HEALTH_MIN_PEOPLE}-"
                         f"{HEALTH_MAX_PEOPLE} people; consider a second circle")
        return tuple(hints)


#: P2PU: learning circles work best with 4-15 participants (hints, never limits).
HEALTH_MIN_PEOPLE = 4
HEALTH_MAX_PEOPLE = 15
#: How close to the start a circle with too few sign-ups is pointed out.
HEALTH_SOON_DAYS = 3


def to_jsonable(value: Any) -> Any:
    """Convert views to JSON-ready data: bytes of 32 become base32 ids, others hex."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, Person):
            out["fingerprint"] = fingerprint(value.node_id)
        return out
    if isinstance(value, bytes):
        return node_id_text(value) if len(value) == 32 else value.hex()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value
