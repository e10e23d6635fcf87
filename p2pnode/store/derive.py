"""Keep the derived tables in step with the entry log.

`apply_entry` is called inside the ingest transaction for every accepted entry that has a body;
`forget_entry` undoes it when a `delete` drops a body. Circles are rebuilt from their base record
and their authorised changes (`refresh_circles`) once per transaction, for every circle touched.

Writes are batched (`Writes`): each kind's handler adds the row it derives, and the rows of one
statement run together with `executemany` when the transaction ends, or earlier when a handler
must read what the batch wrote (`Writes.flush`). Per-statement overhead, not B-tree work, was
most of the cost of ingesting real traffic.

Authority rules (DESIGN.md "Records"): anyone may join, RSVP or give feedback; only the circle's
author and its current facilitators may update or cancel it, accept joins, or write meeting notes.
Changes are applied in timestamp order across authors and in seq order within a feed (see
`_ordered_changes`); a change by someone without authority at that point is kept in the log but
has no effect. A cancellation is final, and a reschedule never drops a meeting that had already
started (`merge_circle`). Records may arrive before the circle they refer to:
they are stored by circle id and count once the circle arrives.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgpack

from protocol.codec import pack
from protocol.entry import Entry
from protocol.records import MAX_MEETINGS, UPDATABLE_CIRCLE_FIELDS

_CIRCLE_KINDS = ("circle.update", "circle.cancel")


_CHUNK = 500


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False)


class Writes:
    """The writes of one transaction, buffered per statement and run with `executemany`.

    Statements run in the order they were first added (rows of one statement in the order
    added); the tables they write do not depend on one another, so that order is the only one
    that matters. `dirty` holds the circles to rebuild when the transaction ends.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.dirty: set[bytes] = set()
        #: circles whose records have expired (see `Store._circle_expired`), read once
        self.expired: set[bytes] | None = None
        self._rows: dict[str, list[tuple[Any, ...]]] = {}
        #: author -> (seq, id) of the feed's new head; written once per feed at a flush
        self._heads: dict[bytes, tuple[int, bytes]] = {}

    def add(self, sql: str, row: tuple[Any, ...]) -> None:
        rows = self._rows.get(sql)
        if rows is None:
            self._rows[sql] = [row]
        else:
            rows.append(row)

    def set_head(self, author: bytes, seq: int, entry_id: bytes) -> None:
        self._heads[author] = (seq, entry_id)

    def flush(self) -> None:
        """Run what is buffered: call before reading anything this batch may have written."""
        pending, self._rows = self._rows, {}
        for sql, rows in pending.items():
            self.conn.executemany(sql, rows)
        if self._heads:
            heads, self._heads = self._heads, {}
            self.conn.executemany(
                "INSERT INTO feeds (author, seq, head) VALUES (?,?,?)"
                " ON CONFLICT (author) DO UPDATE SET seq = excluded.seq, head = excluded.head",
                [(author, seq, head) for author, (seq, head) in heads.items()],
            )

    def finish(self) -> None:
        """Flush, then rebuild the circles touched (the end of every write transaction)."""
        self.flush()
        if self.dirty:
            refresh_circles(self.conn, self.dirty)
            self.dirty.clear()


def apply_entry(out: Writes, entry: Entry, body: dict[str, Any]) -> None:
    """Record `entry`'s effect in the derived tables (buffered in `out`)."""
    handler = _APPLY.get(entry.header.kind)
    if handler is not None:
        handler(out, entry, body)


def _apply_profile(out: Writes, entry: Entry, body: dict[str, Any]) -> None:
    out.add(
        "INSERT INTO profiles (author, seq, name, bio, languages, enc_key) VALUES (?,?,?,?,?,?)"
        " ON CONFLICT (author) DO UPDATE SET seq=excluded.seq, name=excluded.name,"
        " bio=excluded.bio, languages=excluded.languages, enc_key=excluded.enc_key"
        " WHERE excluded.seq > profiles.seq",
        (
            entry.header.author,
            entry.header.seq,
            body["name"],
            body.get("bio"),
            json.dumps(body.get("languages") or []),
            body.get("enc_key"),
        ),
    )


def _apply_circle(out: Writes, entry: Entry, body: dict[str, Any]) -> None:
    out.add(
        "INSERT OR IGNORE INTO circle_bases (id, author, timestamp_ms, body) VALUES (?,?,?,?)",
        (entry.id, entry.header.author, entry.header.timestamp_ms, entry.body_bytes),
    )
    out.dirty.add(entry.id)


def _apply_circle_change(out: Writes, entry: Entry, body: dict[str, Any]) -> None:
    out.add(
        "INSERT OR IGNORE INTO circle_changes (entry_id, circle, author, kind, timestamp_ms, body)"
        " VALUES (?,?,?,?,?,?)",
        (
            entry.id,
            body["circle"],
            entry.header.author,
            entry.header.kind,
            entry.header.timestamp_ms,
            entry.body_bytes,
        ),
    )
    out.dirty.add(body["circle"])


def _apply_join(out: Writes, entry: Entry, body: dict[str, Any]) -> None:
    out.add(
        "INSERT OR IGNORE INTO joins"
        " (entry_id, circle, author, seq, timestamp_ms, action, display_name, sealed)"
        " VALUES (?,?,?,?,?,?,?,?)",
        (
            entry.id,
            body["circle"],
            entry.header.author,
            entry.header.seq,
            entry.header.timestamp_ms,
            body["action"],
            body["display_name"],
            pack(body["sealed"]) if body.get("sealed") else None,
        ),
    )


def _apply_join_accept(out: Writes, entry: Entry, body: dict[str, Any]) -> None:
    out.add(
        "INSERT OR IGNORE INTO join_accepts"
        " (entry_id, circle, join_id, author, timestamp_ms, accepted) VALUES (?,?,?,?,?,?)",
        (
            entry.id,
            body["circle"],
            body["join"],
            entry.header.author,
            entry.header.timestamp_ms,
            int(body["accepted"]),
        ),
    )


def _apply_rsvp(out: Writes, entry: Entry, body: dict[str, Any]) -> None:
    out.add(
        "INSERT OR IGNORE INTO rsvps (entry_id, circle, author, seq, date, attending)"
        " VALUES (?,?,?,?,?,?)",
        (
            entry.id,
            body["circle"],
            entry.header.author,
            entry.header.seq,
            body["date"],
            int(body["attending"]),
        ),
    )


def _apply_meeting_note(out: Writes, entry: Entry, body: dict[str, Any]) -> None:
    out.add(
        "INSERT OR IGNORE INTO meeting_notes (entry_id, circle, author, timestamp_ms, date, body)"
        " VALUES (?,?,?,?,?,?)",
        (
            entry.id,
            body["circle"],
            entry.header.author,
            entry.header.timestamp_ms,
            body["date"],
            entry.body_bytes,
        ),
    )


def _apply_feedback(out: Writes, entry: Entry, body: dict[str, Any]) -> None:
    out.add(
        "INSERT OR IGNORE INTO feedback (entry_id, circle, author, role, course_rating,"
        " recommendation_rating, goal_rating, body) VALUES (?,?,?,?,?,?,?,?)",
        (
            entry.id,
            body["circle"],
            entry.header.author,
            body["role"],
            body.get("course_rating"),
            body.get("recommendation_rating"),
            body.get("goal_rating"),
            entry.body_bytes,
        ),
    )


def _apply_resource(out: Writes, entry: Entry, body: dict[str, Any]) -> None:
    out.add(
        "INSERT OR IGNORE INTO resources (entry_id, blob, author, timestamp_ms, size, title,"
        " media_type, format, licence, caption, circle) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (
            entry.id,
            body["blob"],
            entry.header.author,
            entry.header.timestamp_ms,
            body["size"],
            body["title"],
            body["media_type"],
            body["format"],
            body.get("licence"),
            body.get("caption"),
            body.get("circle"),
        ),
    )


def _apply_delete(out: Writes, entry: Entry, body: dict[str, Any]) -> None:
    out.flush()  # the targets may have arrived in this very batch
    conn, author = out.conn, entry.header.author
    for target in body["entries"]:
        row = conn.execute(
            "SELECT kind, body IS NOT NULL FROM entries WHERE id = ? AND author = ?",
            (target, author),
        ).fetchone()
        if row is None:
            continue
        # marked dropped even when the body never arrived here, so it is never filled in later
        conn.execute("UPDATE entries SET body = NULL, dropped = 1 WHERE id = ?", (target,))
        if row[1]:
            forget_entry(conn, target, row[0], out.dirty)


_APPLY = {
    "profile": _apply_profile,
    "circle": _apply_circle,
    "circle.update": _apply_circle_change,
    "circle.cancel": _apply_circle_change,
    "join": _apply_join,
    "join.accept": _apply_join_accept,
    "rsvp": _apply_rsvp,
    "meeting.note": _apply_meeting_note,
    "feedback": _apply_feedback,
    "resource": _apply_resource,
    "delete": _apply_delete,
}

_FORGET_SQL = {
    "join": "DELETE FROM joins WHERE entry_id = ?",
    "join.accept": "DELETE FROM join_accepts WHERE entry_id = ?",
    "rsvp": "DELETE FROM rsvps WHERE entry_id = ?",
    "meeting.note": "DELETE FROM meeting_notes WHERE entry_id = ?",
    "feedback": "DELETE FROM feedback WHERE entry_id = ?",
    "resource": "DELETE FROM resources WHERE entry_id = ?",
}


def forget_entry(conn: sqlite3.Connection, entry_id: bytes, kind: str, dirty: set[bytes]) -> None:
    """Remove what a now body-less entry contributed to the derived tables."""
    if kind == "circle":
        conn.execute("DELETE FROM circle_bases WHERE id = ?", (entry_id,))
        dirty.add(entry_id)
    elif kind in _CIRCLE_KINDS:
        row = conn.execute(
            "DELETE FROM circle_changes WHERE entry_id = ? RETURNING circle", (entry_id,)
        ).fetchone()
        if row:
            dirty.add(row[0])
    elif kind == "profile":
        # The profile reverts to nothing rather than to an older one: the author asked to forget.
        conn.execute(
            "DELETE FROM profiles WHERE author = (SELECT author FROM entries WHERE id = ?)"
            " AND seq = (SELECT seq FROM entries WHERE id = ?)",
            (entry_id, entry_id),
        )
    elif kind in _FORGET_SQL:
        conn.execute(_FORGET_SQL[kind], (entry_id,))


def merge_circle(
    author: bytes,
    base: dict[str, Any],
    changes: list[tuple[bytes, str, dict[str, Any], int]],
) -> tuple[dict[str, Any], bool, str | None, bool]:
    """Apply authorised changes, in the order given, to a circle's base record.

    Two rules make the result the same on every node whatever the order entries arrived in:

    - A cancellation is final: changes applied after it (updates, a second cancel) have no
      effect, so the first reason stays.
    - A reschedule keeps history: a new `meetings` list never drops a meeting that had started
      by the change's effective time (its date and the circle's `meeting_time` in the circle's
      `timezone`, both as they were before the change). Those dates are merged into the new
      list, so the meetings that took place keep their numbers, RSVPs and notes.

    Args:
        author: the circle's author (always authorised).
        base: the `circle` record.
        changes: (author, kind, body, effective time in ms) of `circle.update` /
            `circle.cancel`, in apply order.

    Returns:
        (current state, cancelled, cancel reason, rescheduled).
    """
    state = dict(base)
    cancelled, reason, rescheduled = False, None, False
    for change_author, kind, body, at_ms in changes:
        if cancelled:
            break
        if change_author != author and change_author not in state.get("facilitators", ()):
            continue
        if kind == "circle.cancel":
            cancelled, reason = True, body.get("reason")
            continue
        new_meetings = None
        if isinstance(body.get("meetings"), list):
            new_meetings = keep_past_meetings(state, body["meetings"], at_ms)
        for field in UPDATABLE_CIRCLE_FIELDS:
            if field not in body:
                continue
            if body[field] is None:
                state.pop(field, None)
            else:
                value = new_meetings if field == "meetings" else body[field]
                if field == "meetings" and value != state.get("meetings"):
                    rescheduled = True
                state[field] = value
    return state, cancelled, reason, rescheduled


def meetings_started_by(state: dict[str, Any], at_ms: int) -> list[str]:
    """The dates of `state`'s meetings that had started at `at_ms` (circle-local time)."""
    try:
        zone: dt.tzinfo = ZoneInfo(state.get("timezone", "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        zone = dt.UTC
    now = dt.datetime.fromtimestamp(at_ms / 1000, zone)
    today, clock = now.date().isoformat(), now.strftime("%H:%M")
    started_today = state.get("meeting_time", "00:00") <= clock  # "HH:MM" compare as text
    return [d for d in state.get("meetings", ()) if d < today or (d == today and started_today)]


def keep_past_meetings(state: dict[str, Any], meetings: list[str], at_ms: int) -> list[str]:
    """`meetings` with the meetings of `state` that had started by `at_ms` merged back in.

    The merged list stays within `MAX_MEETINGS`: past meetings first, then the earliest of the
    new dates that fit.
    """
    past = meetings_started_by(state, at_ms)
    if not past:
        return list(meetings)
    kept = set(past)
    merged = sorted(kept | set(meetings))
    if len(merged) > MAX_MEETINGS:
        later = [d for d in merged if d not in kept][: max(0, MAX_MEETINGS - len(kept))]
        merged = sorted(kept | set(later))
    return merged


def _ordered_changes(rows: list[tuple]) -> list[tuple[bytes, str, bytes, int]]:
    """(author, kind, body, effective time) in apply order, from rows sorted by (author, seq).

    Across authors, changes apply in timestamp order; within one feed, in seq order even when
    the author's clock went backwards: a change's effective time is the latest timestamp of its
    feed up to it. Ties are broken by author and seq, so every node applies the same order.
    """
    keyed = []
    last_author, running = None, 0
    for author, kind, body, timestamp_ms, seq, _entry_id in rows:
        if author != last_author:
            last_author, running = author, timestamp_ms
        running = max(running, timestamp_ms)
        keyed.append(((running, author, seq), (author, kind, body, running)))
    keyed.sort(key=lambda pair: pair[0])
    return [change for _, change in keyed]


def refresh_circles(conn: sqlite3.Connection, circle_ids: Iterable[bytes]) -> None:
    """Rebuild the rows, topics, facilitators and search text of these circles from the log."""
    ids = list(circle_ids)
    for start in range(0, len(ids), _CHUNK):
        _refresh_chunk(conn, ids[start : start + _CHUNK])


def refresh_circle(conn: sqlite3.Connection, circle_id: bytes) -> None:
    """Rebuild one circle (see `refresh_circles`)."""
    refresh_circles(conn, [circle_id])


@dataclass
class _Rebuilt:
    """What one circle's rebuild writes, before it is written."""

    values: tuple[Any, ...]
    topics: list[str]
    facilitators: set[bytes]
    search: tuple[str, ...]


def _derive_circle(
    author: bytes, created_ms: int, base_bytes: bytes, change_rows: list[tuple]
) -> _Rebuilt:
    """A circle's derived row from its base record and its changes, (author, seq)-ordered."""
    changes = _ordered_changes(change_rows)
    state, cancelled, reason, rescheduled = merge_circle(
        author, unpack(base_bytes), [(a, k, unpack(b), t) for a, k, b, t in changes]
    )
    updated_ms = max([created_ms, *(c[3] for c in changes)])
    meetings = state["meetings"]
    start = meetings[0]
    values = (
        author,
        created_ms,
        updated_ms,
        state["name"],
        state["language"],
        start,
        meetings[-1],
        dt.date.fromisoformat(start).weekday(),
        state.get("signup_limit"),
        int(cancelled),
        reason,
        int(rescheduled),
        pack(state),
    )
    return _Rebuilt(values, *_listed_parts(author, state))


def _listed_parts(
    author: bytes, state: dict[str, Any]
) -> tuple[list[str], set[bytes], tuple[str, ...]]:
    """(topics, facilitators, search document) of a circle's current state."""
    course = state.get("course", {})
    venue = state.get("venue", {})
    topics = list(dict.fromkeys(t.lower() for t in course.get("topics", [])))
    search = (
        state["name"],
        state.get("description", ""),
        " ".join(str(course.get(k, "")) for k in ("title", "provider", "caption")),
        " ".join(str(venue.get(k, "")) for k in ("name", "city", "region", "address")),
        " ".join(topics),
    )
    return topics, {author, *state.get("facilitators", ())}, search


def _refresh_chunk(conn: sqlite3.Connection, ids: list[bytes]) -> None:
    marks = ",".join("?" * len(ids))
    bases = {
        row[0]: row[1:]
        for row in conn.execute(
            f"SELECT id, author, timestamp_ms, body FROM circle_bases WHERE id IN ({marks})", ids
        )
    }
    old = {
        row[0]: row[1:]
        for row in conn.execute(
            f"SELECT id, rowid, author, state FROM circles WHERE id IN ({marks})", ids
        )
    }
    changes: dict[bytes, list[tuple]] = {}
    for row in conn.execute(
        "SELECT c.circle, c.author, c.kind, c.body, c.timestamp_ms, e.seq, c.entry_id"
        " FROM circle_changes c JOIN entries e ON e.id = c.entry_id"
        f" WHERE c.circle IN ({marks}) ORDER BY c.circle, c.author, e.seq",
        ids,
    ):
        changes.setdefault(row[0], []).append(row[1:])
    gone = [(circle_id, rowid) for circle_id, (rowid, _, _) in old.items()
            if circle_id not in bases]
    next_rowid = None
    inserts, updates, fts_drop, fts_add, topic_drop, topic_add, facil_drop, facil_add = (
        [], [], [], [], [], [], [], [])
    for circle_id in ids:
        base = bases.get(circle_id)
        if base is None:
            continue
        author, created_ms, base_bytes = base
        rebuilt = _derive_circle(author, created_ms, base_bytes, changes.get(circle_id, []))
        held = old.get(circle_id)
        if held is None:
            if next_rowid is None:
                next_rowid = conn.execute(
                    "SELECT coalesce(max(rowid), 0) + 1 FROM circles").fetchone()[0]
            rowid, next_rowid = next_rowid, next_rowid + 1
            inserts.append((rowid, *rebuilt.values, circle_id))
            fts_add.append((rowid, *rebuilt.search))
            topic_add.extend((circle_id, t) for t in rebuilt.topics)
            facil_add.extend((circle_id, f) for f in rebuilt.facilitators)
            continue
        rowid = held[0]
        updates.append((*rebuilt.values, rowid))
        stale = _listed_parts(held[1], unpack(held[2]))
        # Most updates change the time or the limit: the search document, topics and
        # facilitators are rewritten only when they changed (an FTS delete is costly).
        if rebuilt.search != stale[2]:
            fts_drop.append((rowid,))
            fts_add.append((rowid, *rebuilt.search))
        if rebuilt.topics != stale[0]:
            topic_drop.append((circle_id,))
            topic_add.extend((circle_id, t) for t in rebuilt.topics)
        if rebuilt.facilitators != stale[1]:
            facil_drop.append((circle_id,))
            facil_add.extend((circle_id, f) for f in rebuilt.facilitators)
    for circle_id, rowid in gone:
        fts_drop.append((rowid,))
        topic_drop.append((circle_id,))
        facil_drop.append((circle_id,))
    conn.executemany("DELETE FROM circles_fts WHERE rowid = ?", fts_drop)
    conn.executemany("DELETE FROM circle_topics WHERE circle = ?", topic_drop)
    conn.executemany("DELETE FROM circle_facilitators WHERE circle = ?", facil_drop)
    conn.executemany("DELETE FROM circles WHERE rowid = ?", [(rowid,) for _, rowid in gone])
    conn.executemany(
        "UPDATE circles SET author=?, created_ms=?, updated_ms=?, name=?, language=?,"
        " start_date=?, end_date=?, weekday=?, signup_limit=?, cancelled=?, cancel_reason=?,"
        " rescheduled=?, state=? WHERE rowid = ?",
        updates,
    )
    conn.executemany(
        "INSERT INTO circles (rowid, author, created_ms, updated_ms, name, language, start_date,"
        " end_date, weekday, signup_limit, cancelled, cancel_reason, rescheduled, state, id)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        inserts,
    )
    conn.executemany("INSERT OR IGNORE INTO circle_topics (circle, topic) VALUES (?, ?)",
                     topic_add)
    conn.executemany(
        "INSERT OR IGNORE INTO circle_facilitators (circle, node_id) VALUES (?, ?)", facil_add)
    conn.executemany(
        "INSERT INTO circles_fts (rowid, name, description, course, venue, topics)"
        " VALUES (?,?,?,?,?,?)",
        fts_add,
    )
