"""Queries over the derived tables: circle listings, one circle in full, resources, profiles.

Every function takes the store's connection and the current time (`now_ms`), so "upcoming",
"running" and "ended" are decided at query time in each circle's own timezone.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
from collections.abc import Iterable
from typing import Any

import msgpack

from p2pnode.store.models import (
    CircleDetail,
    CircleSummary,
    Feedback,
    Meeting,
    Participant,
    Person,
    Resource,
    zone,
)

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_SEARCH_TERM = re.compile(r"\w+", re.UNICODE)




def local_today(timezone: str, now_ms: int) -> str:
    """The date it is now in `timezone`, ISO form."""
    return dt.datetime.fromtimestamp(now_ms / 1000, zone(timezone)).date().isoformat()


def _status(state: dict[str, Any], cancelled: bool, now_ms: int) -> tuple[str, str | None]:
    today = local_today(state.get("timezone", "UTC"), now_ms)
    meetings = state["meetings"]
    upcoming = [d for d in meetings if d >= today]
    if cancelled:
        status = "cancelled"
    elif today < meetings[0]:
        status = "upcoming"
    elif today > meetings[-1]:
        status = "ended"
    else:
        status = "running"
    return status, (upcoming[0] if upcoming and not cancelled else None)


class _People:
    """Resolves node ids to `Person`s with one query per id, cached for one call."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._cache: dict[bytes, Person] = {}
        self._forked = {r[0] for r in conn.execute("SELECT author FROM feeds WHERE forked")}

    def prefetch(self, node_ids: Iterable[bytes]) -> None:
        """Resolve many ids in one query a chunk (a listing of 100 circles asked ~65 times)."""
        wanted = list({n for n in node_ids if n not in self._cache})
        for start in range(0, len(wanted), _IN_CHUNK):
            chunk = wanted[start:start + _IN_CHUNK]
            names = dict(self._conn.execute(
                "SELECT author, name FROM profiles WHERE author IN"
                f" ({','.join('?' * len(chunk))})", chunk))
            for node_id in chunk:
                self._cache[node_id] = Person(node_id, names.get(node_id),
                                              node_id in self._forked)

    def __call__(self, node_id: bytes) -> Person:
        person = self._cache.get(node_id)
        if person is None:
            row = self._conn.execute(
                "SELECT name FROM profiles WHERE author = ?", (node_id,)
            ).fetchone()
            person = Person(node_id, row[0] if row else None, node_id in self._forked)
            self._cache[node_id] = person
        return person


def _members(
    conn: sqlite3.Connection, circle_id: bytes, signup_limit: int | None
) -> list[tuple[bytes, bytes, str, str]]:
    """(author, join entry id, display name, status) for each current member, in sign-up order.

    The rules (PROTOCOL.md Appendix A, `join`), the same on every node:

    - A member is an author whose latest `join` record for the circle says `join`. Their
      sign-up is the run of `join` records since their last `leave`: joining again (to change a
      name, contact or answer) keeps its place and its standing; a `leave` ends it.
    - A facilitator's latest decision on any join of the run is the member's standing:
      `accepted` or `declined`.
    - Undecided members hold the seats left by the accepted ones in sign-up order (the
      timestamp of the run's first join, then its entry id): `pending` while a seat is left,
      `waiting` (the waiting list) after that. Without a `signup_limit` nobody waits.
    """
    rows, decisions = _signup_rows(conn, [circle_id])
    return _standing(rows.get(circle_id, []), decisions, signup_limit)


#: circles whose sign-ups one listing query fetches at once (SQLite's parameter limit is higher)
_IN_CHUNK = 500


def _signup_rows(conn: sqlite3.Connection, circle_ids: list[bytes]
                 ) -> tuple[dict[bytes, list[tuple]], dict[bytes, tuple[int, bool]]]:
    """The `join` rows of each circle (in author, seq order) and the facilitators' decisions by
    join id (with their order), for many circles in two queries a chunk: a listing must not
    ask twice per circle (bench/queries.py: 0.6 ms per listed circle when it did)."""
    rows: dict[bytes, list[tuple]] = {}
    decisions: dict[bytes, tuple[int, bool]] = {}
    for start in range(0, len(circle_ids), _IN_CHUNK):
        chunk = circle_ids[start:start + _IN_CHUNK]
        marks = ",".join("?" * len(chunk))
        for circle, *row in conn.execute(
            "SELECT circle, author, entry_id, display_name, action, timestamp_ms FROM joins"
            f" WHERE circle IN ({marks}) ORDER BY circle, author, seq",
            chunk,
        ):
            rows.setdefault(circle, []).append(tuple(row))
        # the order of decisions within one circle is what counts (the latest wins)
        for join_id, accepted in conn.execute(
            "SELECT a.join_id, a.accepted FROM join_accepts a"
            " JOIN circle_facilitators f ON f.circle = a.circle AND f.node_id = a.author"
            " JOIN entries e ON e.id = a.entry_id"  # seq breaks ties within one feed
            f" WHERE a.circle IN ({marks}) ORDER BY a.timestamp_ms, e.seq, a.entry_id",
            chunk,
        ):
            decisions[join_id] = (len(decisions), bool(accepted))
    return rows, decisions


def _standing(rows: list[tuple], decisions: dict[bytes, tuple[int, bool]],
              signup_limit: int | None) -> list[tuple[bytes, bytes, str, str]]:
    """`_members` from one circle's join rows and the decisions (see its rules)."""
    runs: dict[bytes, list[tuple]] = {}
    for row in rows:
        if row[3] == "join":
            runs.setdefault(row[0], []).append(row)
        else:
            runs.pop(row[0], None)
    signups = []
    for author, run in runs.items():
        decided = [decisions[r[1]] for r in run if r[1] in decisions]
        standing = max(decided)[1] if decided else None
        first, latest = run[0], run[-1]
        signups.append(((first[4], first[1]), author, latest[1], latest[2], standing))
    signups.sort(key=lambda signup: signup[0])
    free = None
    if signup_limit is not None:
        free = signup_limit - sum(1 for s in signups if s[4] is True)
    members = []
    for _, author, join_id, name, standing in signups:
        if standing is not None:
            status = "accepted" if standing else "declined"
        elif free is None or free > 0:
            status = "pending"
            if free is not None:
                free -= 1
        else:
            status = "waiting"
        members.append((author, join_id, name, status))
    return members


#: statuses that hold a seat (the others: declined, waiting)
SEATED = ("accepted", "pending")


def _summary(row: tuple, state: dict[str, Any], members: list[tuple], people: _People,
             now_ms: int) -> CircleSummary:
    circle_id, author, cancelled, _ = row
    status, next_meeting = _status(state, bool(cancelled), now_ms)
    seats = sum(1 for m in members if m[3] in SEATED)
    course, venue = state.get("course", {}), state.get("venue", {})
    facilitators = tuple(dict.fromkeys([*state.get("facilitators", ())]))
    return CircleSummary(
        id=circle_id,
        name=state["name"],
        course_title=course.get("title", ""),
        language=state["language"],
        venue=venue.get("name", ""),
        city=venue.get("city", ""),
        online=bool(venue.get("online", False)),
        timezone=state["timezone"],
        meeting_time=state["meeting_time"],
        duration_min=state.get("duration_min", 90),
        start_date=state["meetings"][0],
        end_date=state["meetings"][-1],
        weekday=WEEKDAYS[dt.date.fromisoformat(state["meetings"][0]).weekday()],
        next_meeting=next_meeting,
        status=status,
        seats_taken=seats,
        signup_limit=state.get("signup_limit"),
        topics=tuple(course.get("topics", ())),
        facilitators=tuple(people(f) for f in facilitators),
        author=people(author),
    )


def _fts_query(text: str) -> str | None:
    terms = _SEARCH_TERM.findall(text)
    return " ".join(f'"{t}"*' for t in terms) if terms else None


def list_circles(
    conn: sqlite3.Connection,
    *,
    now_ms: int,
    search: str | None = None,
    topic: str | None = None,
    language: str | None = None,
    weekday: int | None = None,
    include_past: bool = False,
    limit: int = 500,
) -> list[CircleSummary]:
    """Circles matching every filter given; by default only upcoming and running ones.

    Args:
        search: words matched (as prefixes, accents folded) against name, description, course,
            venue and topics.
        weekday: 0 = Monday … 6 = Sunday, the weekday of the first meeting.
        include_past: also list ended and cancelled circles.

    Returns:
        Soonest next meeting first; circles with no meeting ahead last, latest first.
    """
    where, args = [], []
    if search:
        query = _fts_query(search)
        if query is None:
            return []
        where.append("c.rowid IN (SELECT rowid FROM circles_fts WHERE circles_fts MATCH ?)")
        args.append(query)
    if topic:
        where.append("c.id IN (SELECT circle FROM circle_topics WHERE topic = ?)")
        args.append(topic.strip().lower())
    if language:
        where.append("(c.language = ? OR c.language LIKE ?)")
        args.extend([language, f"{language}-%"])
    if weekday is not None:
        where.append("c.weekday = ?")
        args.append(weekday)
    if not include_past:
        # a day of slack either side: the exact local date is decided per circle below
        yesterday = dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC).date() - dt.timedelta(1)
        where.append("c.end_date >= ? AND c.cancelled = 0")
        args.append(yesterday.isoformat())
    sql = "SELECT c.id, c.author, c.cancelled, c.state FROM circles c"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY c.start_date LIMIT ?"
    people = _People(conn)
    found = conn.execute(sql, (*args, limit)).fetchall()
    states = [msgpack.unpackb(row[3], raw=False) for row in found]
    people.prefetch([row[1] for row in found]
                    + [f for state in states for f in state.get("facilitators", ())])
    joins, decisions = _signup_rows(conn, [row[0] for row in found])
    summaries = [
        _summary(row, state, _standing(joins.get(row[0], []), decisions,
                                       state.get("signup_limit")), people, now_ms)
        for row, state in zip(found, states, strict=True)
    ]
    if not include_past:
        summaries = [s for s in summaries if s.status in ("upcoming", "running")]
    summaries.sort(key=lambda s: (s.next_meeting is None, s.next_meeting or "", s.start_date,
                                  s.id))
    return summaries


def circle_state(conn: sqlite3.Connection, circle_id: bytes) -> dict[str, Any] | None:
    """The merged current record of a circle (after authorised updates), or None."""
    row = conn.execute("SELECT state FROM circles WHERE id = ?", (circle_id,)).fetchone()
    return msgpack.unpackb(row[0], raw=False) if row else None


def circle_status(conn: sqlite3.Connection, circle_id: bytes, *, now_ms: int) -> str | None:
    """upcoming / running / ended / cancelled at `now_ms`, or None for an unknown circle."""
    row = conn.execute("SELECT cancelled, state FROM circles WHERE id = ?", (circle_id,)).fetchone()
    if row is None:
        return None
    return _status(msgpack.unpackb(row[1], raw=False), bool(row[0]), now_ms)[0]


def cancel_reason(conn: sqlite3.Connection, circle_id: bytes) -> str | None:
    row = conn.execute("SELECT cancel_reason FROM circles WHERE id = ?", (circle_id,)).fetchone()
    return row[0] if row else None


def members(conn: sqlite3.Connection, circle_id: bytes) -> list[tuple[bytes, bytes, str, str]]:
    """(author, latest join id, display name, status) of the current members, in sign-up
    order (the rules are `_members`')."""
    state = circle_state(conn, circle_id) or {}
    return _members(conn, circle_id, state.get("signup_limit"))


def facilitators_of(conn: sqlite3.Connection, circle_id: bytes) -> set[bytes]:
    return {
        r[0]
        for r in conn.execute(
            "SELECT node_id FROM circle_facilitators WHERE circle = ?", (circle_id,)
        )
    }


def get_circle(conn: sqlite3.Connection, circle_id: bytes, *, now_ms: int) -> CircleDetail | None:
    """One circle with its meetings, RSVPs, notes, participants, resources and ratings."""
    row = conn.execute(
        "SELECT id, author, cancelled, state, cancel_reason, rescheduled FROM circles"
        " WHERE id = ?",
        (circle_id,),
    ).fetchone()
    if row is None:
        return None
    people = _People(conn)
    state = msgpack.unpackb(row[3], raw=False)
    members = _members(conn, circle_id, state.get("signup_limit"))
    summary = _summary(row[:4], state, members, people, now_ms)
    rsvp_counts: dict[str, list[int]] = {}
    for date, attending, count in conn.execute(
        "SELECT r.date, r.attending, count(*) FROM rsvps r WHERE r.circle = ?"
        " AND r.seq = (SELECT max(seq) FROM rsvps q WHERE q.circle = r.circle"
        "   AND q.author = r.author AND q.date = r.date) GROUP BY r.date, r.attending",
        (circle_id,),
    ):
        rsvp_counts.setdefault(date, [0, 0])[0 if attending else 1] += count
    notes: dict[str, list[dict[str, Any]]] = {}
    for author, date, body in conn.execute(
        "SELECT n.author, n.date, n.body FROM meeting_notes n"
        " JOIN circle_facilitators f ON f.circle = n.circle AND f.node_id = n.author"
        " WHERE n.circle = ? ORDER BY n.timestamp_ms",
        (circle_id,),
    ):
        note = msgpack.unpackb(body, raw=False)
        note.pop("circle", None)
        note["author"] = people(author)
        notes.setdefault(date, []).append(note)
    meetings = tuple(
        Meeting(
            number=i + 1,
            date=date,
            attending=rsvp_counts.get(date, [0, 0])[0],
            not_attending=rsvp_counts.get(date, [0, 0])[1],
            notes=tuple(notes.get(date, ())),
        )
        for i, date in enumerate(state["meetings"])
    )
    participants = tuple(
        Participant(people(author), name, join_id, status)
        for author, join_id, name, status in members
    )
    feedback = _feedback(conn, circle_id, people)
    return CircleDetail(
        summary=summary,
        description=state.get("description", ""),
        course=state.get("course", {}),
        venue=state.get("venue", {}),
        signup_question=state.get("signup_question"),
        cancel_reason=row[4],
        rescheduled=bool(row[5]),
        meetings=meetings,
        participants=participants,
        resources=tuple(list_resources(conn, circle=circle_id, people=people)),
        ratings={key: _average(f.ratings[key] for f in feedback)
                 for key in ("course", "recommendation", "goal")},
        feedback_count=len(feedback),
        feedback=tuple(feedback),
    )


def _average(values: Iterable[int | None]) -> float | None:
    given = [v for v in values if v is not None]
    return sum(given) / len(given) if given else None


def _feedback(conn: sqlite3.Connection, circle_id: bytes, people: _People) -> list[Feedback]:
    """Each author's latest feedback on the circle, oldest first (anonymised ones each count:
    their author was dropped when the circle's personal records expired)."""
    out = []
    for author, role, course, recommendation, goal, body in conn.execute(
        "SELECT f.author, f.role, f.course_rating, f.recommendation_rating, f.goal_rating, f.body"
        " FROM feedback f JOIN entries e ON e.id = f.entry_id WHERE f.circle = ?"
        " AND (f.author IS NULL OR e.seq = (SELECT max(e2.seq) FROM feedback g"
        "   JOIN entries e2 ON e2.id = g.entry_id WHERE g.circle = f.circle"
        "   AND g.author = f.author))"
        " ORDER BY e.timestamp_ms, f.entry_id",
        (circle_id,),
    ):
        text = msgpack.unpackb(body, raw=False) if body else {}
        out.append(Feedback(
            author=people(author) if author else None,
            role=role,
            ratings={"course": course, "recommendation": recommendation, "goal": goal},
            goal=text.get("goal"),
            reason=text.get("reason"),
            next_steps=text.get("next_steps"),
        ))
    return out


def list_resources(
    conn: sqlite3.Connection, *, circle: bytes | None = None, people: _People | None = None
) -> list[Resource]:
    """Shared resources, newest first: one row per blob and author, from the author's latest
    `resource` record for that blob (sharing a file again updates its title, caption, circle)."""
    people = people or _People(conn)
    # one circle's: only the (blob, author) pairs that ever named it are ranked (by index),
    # not every resource known here
    only = (" WHERE (r.blob, r.author) IN (SELECT blob, author FROM resources WHERE circle = ?)"
            if circle is not None else "")
    sql = (
        "SELECT entry_id, blob, title, size, media_type, format, licence, caption, circle,"
        " author FROM (SELECT r.*, row_number() OVER (PARTITION BY r.blob, r.author"
        " ORDER BY e.seq DESC) AS newest FROM resources r JOIN entries e ON e.id = r.entry_id"
        f"{only}) WHERE newest = 1"
    )
    args: Iterable[Any] = ()
    if circle is not None:
        sql += " AND circle = ?"
        args = (circle, circle)
    sql += " ORDER BY timestamp_ms DESC, entry_id"
    return [Resource(*r[:9], author=people(r[9])) for r in conn.execute(sql, tuple(args))]


def profile(conn: sqlite3.Connection, node_id: bytes) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT name, bio, languages, enc_key FROM profiles WHERE author = ?", (node_id,)
    ).fetchone()
    if row is None:
        return None
    return {"name": row[0], "bio": row[1], "languages": json.loads(row[2] or "[]"),
            "enc_key": row[3]}


def join_rows(conn: sqlite3.Connection, circle_id: bytes) -> list[tuple[bytes, bytes, str, str,
                                                                     bytes | None]]:
    """(author, join id, display name, status, sealed) of current members, for facilitators."""
    sealed = dict(conn.execute(
        "SELECT entry_id, sealed FROM joins WHERE circle = ?", (circle_id,)).fetchall())
    state = circle_state(conn, circle_id) or {}
    members = _members(conn, circle_id, state.get("signup_limit"))
    return [(a, j, n, s, sealed.get(j)) for a, j, n, s in members]


def own_note_since(conn: sqlite3.Connection, circle: bytes, date: str, author: bytes,
                   since_ms: int) -> bytes | None:
    """The entry id of `author`'s latest note for the circle's meeting on `date` written at or
    after `since_ms` (meeting mode: was the note already written before a crash?)."""
    row = conn.execute(
        "SELECT entry_id FROM meeting_notes WHERE circle = ? AND date = ? AND author = ?"
        " AND timestamp_ms >= ? ORDER BY timestamp_ms DESC LIMIT 1",
        (circle, date, author, since_ms),
    ).fetchone()
    return row[0] if row else None
