"""Keep the derived tables in step with the entry log.

`apply_entry` is called inside the ingest transaction for every accepted entry that has a body;
`forget_entry` undoes it when a `delete` drops a body. Circles are rebuilt from their base record
and their authorised changes (`refresh_circle`) once per transaction, for each circle touched.

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
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgpack

from protocol.codec import pack
from protocol.entry import Entry
from protocol.records import MAX_MEETINGS, UPDATABLE_CIRCLE_FIELDS

_CIRCLE_KINDS = ("circle.update", "circle.cancel")


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False)


def apply_entry(conn: sqlite3.Connection, entry: Entry, body: dict[str, Any], dirty: set[bytes]):
    """Record `entry`'s effect in the derived tables; add circles to rebuild to `dirty`."""
    kind = entry.header.kind
    handler = _APPLY.get(kind)
    if handler is not None:
        handler(conn, entry, body, dirty)


def _apply_profile(conn, entry, body, dirty):
    conn.execute(
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


def _apply_circle(conn, entry, body, dirty):
    conn.execute(
        "INSERT OR IGNORE INTO circle_bases (id, author, timestamp_ms, body) VALUES (?,?,?,?)",
        (entry.id, entry.header.author, entry.header.timestamp_ms, entry.body_bytes),
    )
    dirty.add(entry.id)


def _apply_circle_change(conn, entry, body, dirty):
    conn.execute(
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
    dirty.add(body["circle"])


def _apply_join(conn, entry, body, dirty):
    conn.execute(
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


def _apply_join_accept(conn, entry, body, dirty):
    conn.execute(
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


def _apply_rsvp(conn, entry, body, dirty):
    conn.execute(
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


def _apply_meeting_note(conn, entry, body, dirty):
    conn.execute(
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


def _apply_feedback(conn, entry, body, dirty):
    conn.execute(
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


def _apply_resource(conn, entry, body, dirty):
    conn.execute(
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


def _apply_delete(conn, entry, body, dirty):
    author = entry.header.author
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
            forget_entry(conn, target, row[0], dirty)


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


def refresh_circle(conn: sqlite3.Connection, circle_id: bytes) -> None:
    """Rebuild one circle's row, topics, facilitators and search text from the log."""
    row = conn.execute(
        "SELECT author, timestamp_ms, body FROM circle_bases WHERE id = ?", (circle_id,)
    ).fetchone()
    old = conn.execute("SELECT rowid FROM circles WHERE id = ?", (circle_id,)).fetchone()
    if old:
        conn.execute("DELETE FROM circles_fts WHERE rowid = ?", (old[0],))
    conn.execute("DELETE FROM circle_topics WHERE circle = ?", (circle_id,))
    conn.execute("DELETE FROM circle_facilitators WHERE circle = ?", (circle_id,))
    if row is None:
        conn.execute("DELETE FROM circles WHERE id = ?", (circle_id,))
        return
    author, created_ms, base_bytes = row
    changes = _ordered_changes(conn.execute(
        "SELECT c.author, c.kind, c.body, c.timestamp_ms, e.seq, c.entry_id"
        " FROM circle_changes c JOIN entries e ON e.id = c.entry_id"
        " WHERE c.circle = ? ORDER BY c.author, e.seq",
        (circle_id,),
    ).fetchall())
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
    if old:
        conn.execute(
            "UPDATE circles SET author=?, created_ms=?, updated_ms=?, name=?, language=?,"
            " start_date=?, end_date=?, weekday=?, signup_limit=?, cancelled=?, cancel_reason=?,"
            " rescheduled=?, state=? WHERE rowid = ?",
            (*values, old[0]),
        )
        rowid = old[0]
    else:
        rowid = conn.execute(
            "INSERT INTO circles (author, created_ms, updated_ms, name, language, start_date,"
            " end_date, weekday, signup_limit, cancelled, cancel_reason, rescheduled, state, id)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (*values, circle_id),
        ).lastrowid
    course = state.get("course", {})
    venue = state.get("venue", {})
    topics = list(dict.fromkeys(t.lower() for t in course.get("topics", [])))
    conn.executemany(
        "INSERT OR IGNORE INTO circle_topics (circle, topic) VALUES (?, ?)",
        [(circle_id, t) for t in topics],
    )
    facilitators = {author, *state.get("facilitators", ())}
    conn.executemany(
        "INSERT OR IGNORE INTO circle_facilitators (circle, node_id) VALUES (?, ?)",
        [(circle_id, f) for f in facilitators],
    )
    conn.execute(
        "INSERT INTO circles_fts (rowid, name, description, course, venue, topics)"
        " VALUES (?,?,?,?,?,?)",
        (
            rowid,
            state["name"],
            state.get("description", ""),
            " ".join(str(course.get(k, "")) for k in ("title", "provider", "caption")),
            " ".join(str(venue.get(k, "")) for k in ("name", "city", "region", "address")),
            " ".join(topics),
        ),
    )
