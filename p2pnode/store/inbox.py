"""What concerns this node's own user: the circles I facilitate or joined, and the notices a user
interface should raise about them (reschedules, cancellations, sign-ups, accepts).

Notices are computed from the entry log past a mark kept in the store's meta table, so that each
is shown once per home, whether it arrived while an app was open or while only `p2pnode run`
(or nothing) was running. Own entries never make notices.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from typing import Any

import msgpack

from p2pnode.store.database import Store

#: the meta key holding the rowid of the last entry looked at for notices
NOTICE_MARK = "notices_seen_rowid"
_PREFERENCE_PREFIX = "pref."
_SCHEDULE_FIELDS = ("meetings", "meeting_time", "timezone", "duration_min")
_NOTICE_KINDS = ("circle.update", "circle.cancel", "join", "join.accept")


@dataclasses.dataclass(frozen=True)
class Notice:
    """Something that happened to a circle I facilitate or joined."""

    rowid: int
    #: rescheduled, changed, cancelled, signed-up, left, accepted, declined
    kind: str
    circle: bytes
    circle_name: str
    text: str
    at_ms: int


def my_circles(conn: sqlite3.Connection, me: bytes) -> dict[bytes, str]:
    """Circles I facilitate ("facilitating") or am signed up for ("joined")."""
    mine: dict[bytes, str] = {}
    for (circle,) in conn.execute(
        "SELECT j.circle FROM joins j WHERE j.author = ? AND j.action = 'join'"
        " AND j.seq = (SELECT max(seq) FROM joins k WHERE k.circle = j.circle AND k.author = ?)",
        (me, me),
    ):
        mine[circle] = "joined"
    for (circle,) in conn.execute(
        "SELECT circle FROM circle_facilitators WHERE node_id = ?", (me,)
    ):
        mine[circle] = "facilitating"
    return mine


def _circle_name(conn: sqlite3.Connection, circle: bytes) -> str | None:
    row = conn.execute("SELECT name FROM circles WHERE id = ?", (circle,)).fetchone()
    return row[0] if row else None


def _facilitators(conn: sqlite3.Connection, circle: bytes) -> set[bytes]:
    return {r[0] for r in conn.execute(
        "SELECT node_id FROM circle_facilitators WHERE circle = ?", (circle,))}


def _notice(conn: sqlite3.Connection, me: bytes, mine: dict[bytes, str], kind: str,
            author: bytes, body: dict[str, Any]) -> tuple[str, bytes, str] | None:
    """(notice kind, circle, text without the circle name) when the entry concerns me."""
    circle = body.get("circle")
    if not isinstance(circle, bytes) or circle not in mine:
        return None
    if kind in ("circle.update", "circle.cancel"):
        if author not in _facilitators(conn, circle):
            return None  # not applied by the views: nothing changed
        if kind == "circle.cancel":
            reason = body.get("reason")
            return "cancelled", circle, "was cancelled" + (f": {reason}" if reason else "")
        if any(field in body for field in _SCHEDULE_FIELDS):
            parts = []
            if body.get("meetings"):
                dates = body["meetings"]
                parts.append(f"meetings now {dates[0]} to {dates[-1]} ({len(dates)})")
            if "meeting_time" in body:
                parts.append(f"at {body['meeting_time']}")
            if "timezone" in body:
                parts.append(f"({body['timezone']})")
            return "rescheduled", circle, "was rescheduled: " + " ".join(parts or ["new times"])
        changed = ", ".join(sorted(k for k in body if k != "circle"))
        return "changed", circle, f"changed: {changed}"
    if kind == "join" and mine[circle] == "facilitating":
        name = body.get("display_name", "someone")
        if body.get("action") == "leave":
            return "left", circle, f": {name} left"
        return "signed-up", circle, f": {name} signed up"
    if kind == "join.accept" and author in _facilitators(conn, circle):
        row = conn.execute("SELECT author FROM joins WHERE entry_id = ?",
                           (body.get("join"),)).fetchone()
        if row is None or row[0] != me:
            return None
        if body.get("accepted"):
            return "accepted", circle, ": your sign-up was accepted"
        return "declined", circle, ": your sign-up was declined"
    return None


def take_notices(store: Store, me: bytes, *, limit: int = 50) -> list[Notice]:
    """The notices past the stored mark (oldest first, at most the newest `limit`), and move
    the mark past every entry looked at, so that each notice is taken once."""
    conn = store.conn
    mark = int(store.get_meta(NOTICE_MARK) or 0)
    newest = conn.execute("SELECT coalesce(max(rowid), 0) FROM entries").fetchone()[0]
    if newest <= mark:
        return []
    mine = my_circles(conn, me)
    notices: list[Notice] = []
    if mine:
        marks = ",".join("?" * len(_NOTICE_KINDS))
        for rowid, author, kind, timestamp_ms, body_bytes in conn.execute(
            f"SELECT rowid, author, kind, timestamp_ms, body FROM entries WHERE rowid > ?"
            f" AND rowid <= ? AND author != ? AND body IS NOT NULL AND kind IN ({marks})"
            " ORDER BY rowid",
            (mark, newest, me, *_NOTICE_KINDS),
        ):
            try:
                body = msgpack.unpackb(body_bytes, raw=False)
            except (ValueError, msgpack.UnpackException):
                continue
            found = _notice(conn, me, mine, kind, author, body) if isinstance(body, dict) \
                else None
            if found is None:
                continue
            notice_kind, circle, text = found
            name = _circle_name(conn, circle) or "a circle"
            joiner = "" if text.startswith(":") else " "
            notices.append(Notice(rowid, notice_kind, circle, name, f"{name}{joiner}{text}",
                                  timestamp_ms))
    store.set_meta(NOTICE_MARK, str(newest))
    return notices[-limit:]


def my_join_entries(conn: sqlite3.Connection, me: bytes, circle: bytes) -> list[bytes]:
    """Ids of every sign-up (join or leave) I wrote for a circle whose body is still held."""
    return [r[0] for r in conn.execute(
        "SELECT j.entry_id FROM joins j WHERE j.author = ? AND j.circle = ? ORDER BY j.seq",
        (me, circle))]


def preference(store: Store, key: str) -> str | None:
    """A user interface's remembered setting (e.g. that the welcome was shown)."""
    return store.get_meta(_PREFERENCE_PREFIX + key)


def set_preference(store: Store, key: str, value: str | None) -> None:
    store.set_meta(_PREFERENCE_PREFIX + key, value)
