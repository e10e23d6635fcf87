"""What a user can do to the shared picture: each action checks its preconditions, builds a record
and appends it to our own feed through `Store.append` (validated, signed, durable).

These are synchronous and take an opened `Home`; the CLI calls them directly and the node wraps
them for its async API. Every refusal is a `NodeError` or `ProtocolError` with a one-line reason.
"""

from __future__ import annotations

import time
from typing import Any

from p2pnode.errors import InvalidInput, NotAllowed, NotFound
from p2pnode.home import Home
from p2pnode.store import queries
from protocol.entry import Entry
from protocol.errors import MalformedError
from protocol.identity import fingerprint
from protocol.sealing import seal, unseal


def now_ms() -> int:
    return int(time.time() * 1000)


def _append(home: Home, kind: str, body: dict[str, Any], at_ms: int | None) -> Entry:
    home.check_can_append()
    return home.store.append(home.identity, kind, body, now_ms=at_ms or now_ms())


def _circle_state(home: Home, circle_id: bytes) -> dict[str, Any]:
    state = queries.circle_state(home.store.conn, circle_id)
    if state is None:
        raise NotFound(f"no circle {fingerprint(circle_id)} is known here (yet)")
    return state


def _require_facilitator(home: Home, circle_id: bytes, what: str) -> dict[str, Any]:
    state = _circle_state(home, circle_id)
    if home.identity.node_id not in queries.facilitators_of(home.store.conn, circle_id):
        raise NotAllowed(f"only the circle's facilitators can {what}")
    return state


def set_profile(
    home: Home,
    name: str,
    *,
    bio: str | None = None,
    languages: list[str] | None = None,
    at_ms: int | None = None,
) -> Entry:
    """Publish our display name (and the sealing key joiners encrypt their details to)."""
    body: dict[str, Any] = {"name": name, "enc_key": home.sealing_key.public_bytes}
    if bio:
        body["bio"] = bio
    if languages:
        body["languages"] = languages
    return _append(home, "profile", body, at_ms)


def my_profile(home: Home) -> dict[str, Any] | None:
    return queries.profile(home.store.conn, home.identity.node_id)


def announce_circle(home: Home, record: dict[str, Any], *, at_ms: int | None = None) -> Entry:
    """Announce a new circle; we are its first facilitator.

    Raises:
        InvalidInput: we have not published a profile yet (joiners could not seal to us).
    """
    if my_profile(home) is None:
        raise InvalidInput("set your name first: p2pnode profile --name NAME")
    record = dict(record)
    others = [f for f in record.get("facilitators", []) if f != home.identity.node_id]
    record["facilitators"] = [home.identity.node_id, *others]
    return _append(home, "circle", record, at_ms)


def update_circle(
    home: Home, circle_id: bytes, changes: dict[str, Any], *, at_ms: int | None = None
) -> Entry:
    """Change fields of a circle we facilitate; a new `meetings` list is a reschedule."""
    if not changes:
        raise InvalidInput("nothing to change: give at least one field")
    _require_facilitator(home, circle_id, "update it")
    return _append(home, "circle.update", {"circle": circle_id, **changes}, at_ms)


def cancel_circle(
    home: Home, circle_id: bytes, reason: str | None = None, *, at_ms: int | None = None
) -> Entry:
    _require_facilitator(home, circle_id, "cancel it")
    body: dict[str, Any] = {"circle": circle_id}
    if reason:
        body["reason"] = reason
    return _append(home, "circle.cancel", body, at_ms)


def join_circle(
    home: Home,
    circle_id: bytes,
    display_name: str,
    *,
    contact: str | None = None,
    goal: str | None = None,
    answer: str | None = None,
    at_ms: int | None = None,
) -> Entry:
    """Sign up; contact, goal and answer are sealed so only the facilitators can read them.

    Raises:
        InvalidInput: details were given but no facilitator's sealing key is known yet.
    """
    state = _circle_state(home, circle_id)
    body: dict[str, Any] = {"circle": circle_id, "action": "join", "display_name": display_name}
    details = {k: v for k, v in (("contact", contact), ("goal", goal), ("answer", answer)) if v}
    if details:
        recipients = []
        for node_id in state.get("facilitators", []):
            profile = queries.profile(home.store.conn, node_id)
            if profile and profile.get("enc_key"):
                recipients.append((node_id, profile["enc_key"]))
        if not recipients:
            raise InvalidInput(
                "the facilitators' profiles have not arrived yet, so your details cannot be"
                " sealed to them; try again once connected, or join without --contact/--goal"
            )
        body["sealed"] = seal(details, recipients)
    return _append(home, "join", body, at_ms)


def leave_circle(home: Home, circle_id: bytes, *, at_ms: int | None = None) -> Entry:
    _circle_state(home, circle_id)
    name = (my_profile(home) or {}).get("name") or "learner"
    body = {"circle": circle_id, "action": "leave", "display_name": name}
    return _append(home, "join", body, at_ms)


def decide_join(
    home: Home, join_id: bytes, accepted: bool = True, *, at_ms: int | None = None
) -> Entry:
    """Accept (or decline) a sign-up: the facilitator's word settles who holds the last seats."""
    row = home.store.conn.execute(
        "SELECT circle FROM joins WHERE entry_id = ?", (join_id,)
    ).fetchone()
    if row is None:
        raise NotFound(f"no sign-up {fingerprint(join_id)} is known here")
    _require_facilitator(home, row[0], "accept sign-ups")
    body = {"circle": row[0], "join": join_id, "accepted": accepted}
    return _append(home, "join.accept", body, at_ms)


def list_joins(home: Home, circle_id: bytes) -> list[dict[str, Any]]:
    """Current sign-ups with their sealed details opened (facilitators only)."""
    _require_facilitator(home, circle_id, "see sign-up details")
    import msgpack

    out = []
    for author, join_id, name, status, sealed_bytes in queries.join_rows(
        home.store.conn, circle_id
    ):
        details: dict[str, Any] | None = None
        if sealed_bytes:
            try:
                details = unseal(
                    msgpack.unpackb(sealed_bytes, raw=False),
                    home.identity.node_id,
                    home.sealing_key.private_key,
                )
            except MalformedError:
                details = {"error": "could not be opened with this node's sealing key"}
        out.append(
            {"join_id": join_id, "node_id": author, "display_name": name, "status": status,
             "details": details or {}}
        )
    return out


def delete_entries(
    home: Home, entry_ids: list[bytes], reason: str | None = None, *, at_ms: int | None = None
) -> Entry:
    """Ask every node to drop the bodies of some of our own entries (headers stay)."""
    for entry_id in entry_ids:
        entry = home.store.get_entry(entry_id)
        if entry is None:
            raise NotFound(f"no entry {fingerprint(entry_id)} is known here")
        if entry.author != home.identity.node_id:
            raise NotAllowed(f"entry {fingerprint(entry_id)} is not yours to delete")
    body: dict[str, Any] = {"entries": list(dict.fromkeys(entry_ids))}
    if reason:
        body["reason"] = reason
    return _append(home, "delete", body, at_ms)


def meeting_date(state: dict[str, Any], number: int | None, date: str | None) -> str:
    """The date of meeting `number` (1-based), or `date` checked against the schedule."""
    meetings = state["meetings"]
    if number is not None:
        if not 1 <= number <= len(meetings):
            raise InvalidInput(f"--number must be 1-{len(meetings)} for this circle")
        if date is not None and meetings[number - 1] != date:
            raise InvalidInput(f"meeting {number} is on {meetings[number - 1]}, not {date}")
        return meetings[number - 1]
    if date is None:
        raise InvalidInput("give the meeting's --number or --date")
    if date not in meetings:
        raise InvalidInput(f"{date} is not one of this circle's meeting dates")
    return date


def add_meeting_note(
    home: Home,
    circle_id: bytes,
    *,
    number: int | None = None,
    date: str | None = None,
    attendance: int | None = None,
    rating: int | None = None,
    plus: list[str] | None = None,
    delta: list[str] | None = None,
    recap: str | None = None,
    at_ms: int | None = None,
) -> Entry:
    """Record a meeting's plus/delta (facilitators only)."""
    state = _require_facilitator(home, circle_id, "write meeting notes")
    body: dict[str, Any] = {
        "circle": circle_id,
        "date": meeting_date(state, number, date),
        "plus": plus or [],
        "delta": delta or [],
    }
    for key, value in (("attendance", attendance), ("rating", rating), ("recap", recap)):
        if value is not None:
            body[key] = value
    return _append(home, "meeting.note", body, at_ms)


def rsvp(
    home: Home,
    circle_id: bytes,
    *,
    number: int | None = None,
    date: str | None = None,
    attending: bool = True,
    at_ms: int | None = None,
) -> Entry:
    state = _circle_state(home, circle_id)
    body = {"circle": circle_id, "date": meeting_date(state, number, date), "attending": attending}
    return _append(home, "rsvp", body, at_ms)


def give_feedback(
    home: Home,
    circle_id: bytes,
    *,
    course_rating: int | None = None,
    recommendation_rating: int | None = None,
    goal: str | None = None,
    goal_rating: int | None = None,
    reason: str | None = None,
    next_steps: str | None = None,
    at_ms: int | None = None,
) -> Entry:
    _circle_state(home, circle_id)
    is_facilitator = home.identity.node_id in queries.facilitators_of(home.store.conn, circle_id)
    body: dict[str, Any] = {"circle": circle_id,
                            "role": "facilitator" if is_facilitator else "learner"}
    for key, value in (
        ("course_rating", course_rating),
        ("recommendation_rating", recommendation_rating),
        ("goal", goal),
        ("goal_rating", goal_rating),
        ("reason", reason),
        ("next_steps", next_steps),
    ):
        if value is not None:
            body[key] = value
    return _append(home, "feedback", body, at_ms)


def leave_and_delete_signup(home: Home, circle_id: bytes, *, at_ms: int | None = None) -> Entry:
    """Leave a circle and ask every node to drop the bodies of all our sign-ups for it (name,
    sealed contact and answers): one step for "leave and delete my sign-up everywhere".

    Returns:
        The `delete` entry.
    """
    from p2pnode.store.inbox import my_join_entries

    leave_circle(home, circle_id, at_ms=at_ms)
    ids = my_join_entries(home.store.conn, home.identity.node_id, circle_id)
    return delete_entries(home, ids, "left the circle", at_ms=at_ms)


def circle_calendar_file(home: Home, circle_id: bytes) -> bytes:
    """A circle's meetings as iCalendar bytes (what `p2pnode circle ics` writes)."""
    from p2pnode.calendar import circle_calendar

    state = _circle_state(home, circle_id)
    row = home.store.conn.execute("SELECT cancelled FROM circles WHERE id = ?",
                                  (circle_id,)).fetchone()
    return circle_calendar(circle_id, state, cancelled=bool(row and row[0]))
