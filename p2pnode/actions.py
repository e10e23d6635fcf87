"""What a user can do to the shared picture: each action checks its preconditions, builds a record
and appends it to our own feed through `Store.append` (validated, signed, durable).

These are synchronous and take an opened `Home`; the CLI calls them directly and the node wraps
them for its async API. Every refusal is a `NodeError` or `ProtocolError` with a one-line reason.

What every node derives from the records (seats and the waiting list, reschedules that keep the
meetings held, a final cancellation: PROTOCOL.md Appendix A.1) is checked here first, so the user
hears of it rather than writing a record with no effect; the checks that are this node's own
policy (the announce window, capacity, who may give feedback, honest no-ops) live only here.
Each action takes `at_ms`, the clock its checks and its entry use (default: now).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable
from typing import Any

from p2pnode.errors import InvalidInput, NotAllowed, NotFound
from p2pnode.home import Home
from p2pnode.store import queries
from p2pnode.store.derive import keep_past_meetings, meetings_started_by
from protocol.entry import Entry
from protocol.errors import MalformedError
from protocol.identity import fingerprint
from protocol.records import MAX_FACILITATORS, MAX_MEETINGS, meeting_dates
from protocol.sealing import seal, unseal

#: a circle may be announced up to this many days after its first meeting
ANNOUNCE_DAYS_BACK = 7
#: ... and no further ahead than this (a start in year 9999 is a typo)
ANNOUNCE_DAYS_AHEAD = 2 * 366


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


def _require_open(home: Home, circle_id: bytes, at_ms: int, what: str) -> dict[str, Any]:
    """The circle's state, unless it is cancelled or has ended (then `what` is refused)."""
    state = _circle_state(home, circle_id)
    status = queries.circle_status(home.store.conn, circle_id, now_ms=at_ms)
    if status == "cancelled":
        reason = queries.cancel_reason(home.store.conn, circle_id)
        because = f" ({reason})" if reason else ""
        raise NotAllowed(f"circle {fingerprint(circle_id)} was cancelled{because}; cannot {what}")
    if status == "ended":
        raise NotAllowed(
            f"circle {fingerprint(circle_id)} ended on {state['meetings'][-1]}; cannot {what}"
        )
    return state


def _local_today(timezone: str, at_ms: int) -> dt.date:
    return dt.date.fromisoformat(queries.local_today(timezone, at_ms))


def check_new_schedule(meetings: Any, timezone: Any, at_ms: int) -> None:
    """Refuse new meetings (a new circle's, or those a reschedule adds) when the first is more
    than `ANNOUNCE_DAYS_BACK` days past, or more than `ANNOUNCE_DAYS_AHEAD` days ahead
    (malformed values are left to the validator).

    Raises:
        InvalidInput: naming the date and the limit.
    """
    if not isinstance(meetings, list) or not meetings or not isinstance(timezone, str):
        return
    try:
        first = dt.date.fromisoformat(meetings[0])
    except (TypeError, ValueError):
        return
    today = _local_today(timezone, at_ms)
    if (today - first).days > ANNOUNCE_DAYS_BACK:
        raise InvalidInput(
            f"the first meeting, {first}, is {(today - first).days} days in the past; a circle"
            f" can be announced (or a meeting added) at most {ANNOUNCE_DAYS_BACK} days after it"
        )
    if (first - today).days > ANNOUNCE_DAYS_AHEAD:
        raise InvalidInput(
            f"the first meeting, {first}, is more than {ANNOUNCE_DAYS_AHEAD // 366} years ahead;"
            " check the year"
        )


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
    record["facilitators"] = list(dict.fromkeys([home.identity.node_id, *others]))
    check_new_schedule(record.get("meetings"), record.get("timezone"), at_ms or now_ms())
    return _append(home, "circle", record, at_ms)


def circle_author(home: Home, circle_id: bytes) -> bytes:
    row = home.store.conn.execute(
        "SELECT author FROM circles WHERE id = ?", (circle_id,)
    ).fetchone()
    if row is None:
        raise NotFound(f"no circle {fingerprint(circle_id)} is known here (yet)")
    return row[0]


def change_facilitators(
    home: Home,
    circle_id: bytes,
    *,
    add: Iterable[bytes] = (),
    remove: Iterable[bytes] = (),
    hand_over: bool = False,
) -> list[bytes]:
    """The circle's facilitator list with `add` appended and `remove` taken out.

    Co-facilitators are added to the list, never replace it. The circle's author stays on it
    unless `hand_over` says they mean to leave it (the author keeps the authority to update
    the circle, as every node grants it; they stop receiving sign-up details).

    Raises:
        InvalidInput: adding one already there, removing one not there, removing the author
            without `hand_over`, or a list that would be empty or longer than 5.
    """
    state = _circle_state(home, circle_id)
    current = list(state.get("facilitators", []))
    author = circle_author(home, circle_id)
    for node_id in remove:
        if node_id not in current:
            raise InvalidInput(f"{fingerprint(node_id)} is not a facilitator of this circle")
        if node_id == author and not hand_over:
            raise InvalidInput(
                f"{fingerprint(node_id)} announced this circle; to hand it over and leave the"
                " facilitators, say so with --hand-over"
            )
        current.remove(node_id)
    for node_id in add:
        if node_id in current:
            raise InvalidInput(f"{fingerprint(node_id)} is already a facilitator")
        current.append(node_id)
    if not current:
        raise InvalidInput("a circle needs at least one facilitator")
    if len(current) > MAX_FACILITATORS:
        raise InvalidInput(
            f"a circle has at most {MAX_FACILITATORS} facilitators; this would make"
            f" {len(current)}"
        )
    return current


def reschedule(
    home: Home,
    circle_id: bytes,
    *,
    start: dt.date | None = None,
    weeks: int | None = None,
    dates: Iterable[str] | None = None,
    at_ms: int | None = None,
) -> list[str]:
    """A circle's new `meetings` list: the meetings that have started stay as they are.

    Args:
        start: the first meeting still to come; weekly from there.
        weeks: the number of meetings in all, those held included (default: as now). Without
            `start`, meetings are added weekly after the last one, or the last ones dropped.
        dates: the meetings to come, explicitly (instead of `start` / `weeks`).

    Raises:
        InvalidInput: a new date before a meeting that was held, or too few / too many weeks.
    """
    state = _circle_state(home, circle_id)
    at = at_ms or now_ms()
    current = list(state["meetings"])
    held = meetings_started_by(state, at)
    last_held = held[-1] if held else None
    if dates is not None:
        future = sorted(set(dates) - set(held))
    else:
        total = len(current) if weeks is None else weeks
        if not len(held) < total <= MAX_MEETINGS:
            since = f" (meetings in all; {len(held)} have taken place)" if held else ""
            raise InvalidInput(
                f"--weeks must be {len(held) + 1}-{MAX_MEETINGS}, not {total}{since}"
            )
        count = total - len(held)
        if start is not None:
            future = _weekly(start, count)
        else:
            upcoming = current[len(held):]
            if count <= len(upcoming):
                future = upcoming[:count]
            else:
                anchor = dt.date.fromisoformat(current[-1])
                future = upcoming + _weekly(anchor, count - len(upcoming) + 1)[1:]
    if last_held is not None and future and future[0] <= last_held:
        raise InvalidInput(
            f"{future[0]} is not after {last_held}, the last meeting that took place; only the"
            " meetings still to come can be moved"
        )
    return keep_past_meetings(state, future, at)


def _weekly(start: dt.date, count: int) -> list[str]:
    try:
        return meeting_dates(start, count)
    except OverflowError:
        raise InvalidInput(f"{start} plus {count} weeks is past the year 9999") from None


def update_circle(
    home: Home,
    circle_id: bytes,
    changes: dict[str, Any],
    *,
    hand_over: bool = False,
    at_ms: int | None = None,
) -> Entry:
    """Change fields of a circle we facilitate; a new `meetings` list is a reschedule.

    The rules every node applies anyway are checked here first, so the user hears of them:
    a cancelled circle cannot change; a new `meetings` list keeps the meetings that took place
    (`reschedule`); the author stays among the `facilitators` unless `hand_over`; the
    `signup_limit` cannot drop below the sign-ups already accepted.

    Raises:
        NotAllowed: not a facilitator, or the circle is cancelled.
        InvalidInput: no changes, or one of the rules above.
    """
    if not changes:
        raise InvalidInput("nothing to change: give at least one field")
    state = _require_facilitator(home, circle_id, "update it")
    at = at_ms or now_ms()
    if queries.circle_status(home.store.conn, circle_id, now_ms=at) == "cancelled":
        raise NotAllowed(
            f"circle {fingerprint(circle_id)} is cancelled, and a cancellation is final;"
            " announce a new circle instead"
        )
    changes = dict(changes)
    if isinstance(changes.get("meetings"), list):
        changes["meetings"] = keep_past_meetings(state, changes["meetings"], at)
        if len(changes["meetings"]) > MAX_MEETINGS:
            raise InvalidInput(f"a circle has at most {MAX_MEETINGS} meetings")
        added = [d for d in changes["meetings"] if d not in state["meetings"]]
        check_new_schedule(added, changes.get("timezone", state["timezone"]), at)
    facilitators = changes.get("facilitators")
    if isinstance(facilitators, list):
        author = circle_author(home, circle_id)
        if author in state.get("facilitators", []) and author not in facilitators \
                and not hand_over:
            raise InvalidInput(
                "the new facilitators leave out the circle's author; to hand the circle over,"
                " say so (--hand-over)"
            )
    limit = changes.get("signup_limit")
    if isinstance(limit, int) and not isinstance(limit, bool):
        accepted = sum(1 for m in queries.members(home.store.conn, circle_id)
                       if m[3] == "accepted")
        if limit < accepted:
            raise InvalidInput(
                f"a capacity of {limit} is below the {accepted} sign-ups already accepted;"
                f" give at least {accepted}, or decline some first"
            )
    return _append(home, "circle.update", {"circle": circle_id, **changes}, at)


def cancel_circle(
    home: Home, circle_id: bytes, reason: str | None = None, *, at_ms: int | None = None
) -> Entry:
    """Cancel a circle we facilitate (final: every node ignores changes after it).

    Raises:
        NotAllowed: not a facilitator.
        InvalidInput: it is already cancelled.
    """
    _require_facilitator(home, circle_id, "cancel it")
    if queries.circle_status(home.store.conn, circle_id, now_ms=at_ms or now_ms()) == "cancelled":
        raise InvalidInput(f"circle {fingerprint(circle_id)} is already cancelled")
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

    Joining again (to change the name or details) keeps the sign-up's place and standing.
    Beyond the circle's capacity the sign-up is on the waiting list (`my_signup` says so).

    Raises:
        NotAllowed: the circle is cancelled or has ended.
        InvalidInput: details were given but no facilitator's sealing key is known yet.
    """
    state = _require_open(home, circle_id, at_ms or now_ms(), "sign up")
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


def my_signup(home: Home, circle_id: bytes) -> dict[str, Any] | None:
    """Our current sign-up: join id, status (accepted, pending, waiting, declined), our place
    on the waiting list (1 = next), seats taken and the limit; None when we are not signed up."""
    members = queries.members(home.store.conn, circle_id)
    state = _circle_state(home, circle_id)
    waiting = [m[0] for m in members if m[3] == "waiting"]
    for author, join_id, name, status in members:
        if author == home.identity.node_id:
            return {
                "join_id": join_id,
                "display_name": name,
                "status": status,
                "waiting_position": waiting.index(author) + 1 if author in waiting else None,
                "seats_taken": sum(1 for m in members if m[3] in queries.SEATED),
                "signup_limit": state.get("signup_limit"),
            }
    return None


def leave_circle(home: Home, circle_id: bytes, *, at_ms: int | None = None) -> Entry:
    """Withdraw our sign-up.

    Raises:
        InvalidInput: we are not signed up (nothing to leave).
    """
    _circle_state(home, circle_id)
    if my_signup(home, circle_id) is None:
        raise InvalidInput(f"you are not signed up for {fingerprint(circle_id)}; nothing to leave")
    name = (my_profile(home) or {}).get("name") or "learner"
    body = {"circle": circle_id, "action": "leave", "display_name": name}
    return _append(home, "join", body, at_ms)


def decide_join(
    home: Home,
    join_id: bytes,
    accepted: bool = True,
    *,
    over_capacity: bool = False,
    at_ms: int | None = None,
) -> Entry:
    """Accept (or decline) a sign-up: the facilitator's word settles who holds the last seats.

    Raises:
        NotFound: no such sign-up here.
        NotAllowed: not a facilitator.
        InvalidInput: the sign-up was withdrawn or is already so decided, or accepting it would
            go beyond the capacity and `over_capacity` was not given.
    """
    row = home.store.conn.execute(
        "SELECT circle, author FROM joins WHERE entry_id = ?", (join_id,)
    ).fetchone()
    if row is None:
        raise NotFound(f"no sign-up {fingerprint(join_id)} is known here")
    state = _require_facilitator(home, row[0], "accept sign-ups")
    members = queries.members(home.store.conn, row[0])
    member = next((m for m in members if m[0] == row[1]), None)
    if member is None:
        raise InvalidInput(f"sign-up {fingerprint(join_id)} was withdrawn (they left the circle)")
    if member[3] == ("accepted" if accepted else "declined"):
        raise InvalidInput(f"sign-up {fingerprint(join_id)} is already {member[3]}")
    limit = state.get("signup_limit")
    if accepted and limit is not None and not over_capacity:
        others = sum(1 for m in members if m[3] == "accepted" and m[0] != row[1])
        if others >= limit:
            raise InvalidInput(
                f"the circle is full: {others} of {limit} seats are accepted; accept with"
                " --over-capacity to go beyond, or raise the capacity"
            )
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
        if entry.body_bytes is None:
            raise InvalidInput(f"entry {fingerprint(entry_id)} is already deleted")
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
    """Say whether we will attend a meeting.

    Raises:
        NotAllowed: the circle is cancelled or has ended.
        InvalidInput: no such meeting.
    """
    state = _require_open(home, circle_id, at_ms or now_ms(), "RSVP")
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
    """Rate a circle we took part in, once its first meeting has started.

    Raises:
        NotAllowed: we neither facilitate it nor hold a seat in it.
        InvalidInput: it has not started yet.
    """
    state = _circle_state(home, circle_id)
    is_facilitator = home.identity.node_id in queries.facilitators_of(home.store.conn, circle_id)
    if not is_facilitator:
        signup = my_signup(home, circle_id)
        if signup is None or signup["status"] not in queries.SEATED:
            raise NotAllowed("feedback is for the circle's learners and facilitators: sign up"
                             " first")
    if not meetings_started_by(state, at_ms or now_ms()):
        raise InvalidInput(
            f"circle {fingerprint(circle_id)} has not started yet (first meeting"
            f" {state['meetings'][0]}); give feedback once it has"
        )
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
