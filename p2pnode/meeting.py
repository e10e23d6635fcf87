"""Meeting mode, without the screen: a learning-circle meeting the P2PU way — check-in,
coursework, a group activity, and a plus/delta to close — as timed phases, with attendance ticked
off and the plus/delta typed as it is said, kept as a durable draft in the home, and finished into
exactly one signed `meeting.note`.

Rules it keeps:
- Time comes from one place: every transition takes `now` (wall-clock seconds) from its caller,
  so the app has one clock and tests drive it. Wall time, not a monotonic clock: a meeting
  resumed after a restart must count the time it ran meanwhile.
- Phase lengths default to 10/45/20/15 minutes of 90, scaled to the circle's duration (whole
  minutes, adding up to it); a facilitator's own plan for a circle is remembered for the next
  meeting (`save_plan`).
- A draft is a small JSON file under HOME/meetings/, replaced atomically (temp file, fsync,
  rename) on every change before the change is reported done: quitting or a crash mid-meeting
  resumes where it was.
- A meeting's note is written once: the draft records the entry id as soon as it is written, and
  finishing a draft whose id was lost (a crash between the two writes) first looks for our own
  note of that circle and date written since the draft began. A dry run writes no note.
- Drafts are the facilitator's own: only facilitators open one for a real meeting.

The functions taking a `Home` are actions in the sense of `p2pnode.actions`: the app runs them
with `Node.perform` (in the store thread); `phase_status` and the transitions are pure.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from p2pnode import actions
from p2pnode.errors import InvalidInput, NotAllowed, NotFound
from p2pnode.files import write_file_atomically
from p2pnode.home import Home
from p2pnode.store import queries
from protocol.errors import ProtocolError
from protocol.identity import fingerprint, node_id_text, parse_id

#: The four phases of every P2PU meeting, and their minutes in a 90-minute meeting.
PHASES: tuple[str, ...] = ("check-in", "coursework", "activity", "plus/delta")
DEFAULT_MINUTES: tuple[int, ...] = (10, 45, 20, 15)
#: The one phase during which plus and delta items are collected on screen.
PLUS_DELTA = len(PHASES) - 1
#: `meeting.note` limits (protocol/records.py): items per column and characters per item.
MAX_ITEMS = 20
MAX_ITEM_LENGTH = 280
#: Marks a rehearsal: it runs like a meeting but never writes a note.
DRY_RUN = "dry-run"
_DRAFTS_DIR = "meetings"
_PLANS_FILE = "plans.json"


@dataclasses.dataclass(frozen=True)
class MeetingDraft:
    """Where a meeting stands. Times are wall-clock seconds from the caller's clock."""

    circle: bytes
    #: the meeting's date (ISO), or `DRY_RUN`
    date: str
    #: minutes per phase, in `PHASES` order
    plan: tuple[int, ...]
    created_at: float
    #: index into `PHASES`; len(PHASES) once the last phase was left
    phase: int = 0
    #: when the current phase (re)started running; None while paused or not started
    running_since: float | None = None
    #: seconds the current phase ran before its last pause
    ran_before: float = 0.0
    #: seconds added to each phase ("add time")
    extra: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)
    #: who came: learner node ids (base32) or names typed for those without one
    present: tuple[str, ...] = ()
    plus: tuple[str, ...] = ()
    delta: tuple[str, ...] = ()
    #: the `meeting.note` entry once written
    note: bytes | None = None

    @property
    def dry_run(self) -> bool:
        return self.date == DRY_RUN

    @property
    def started(self) -> bool:
        return self.running_since is not None or self.ran_before > 0 or self.phase > 0

    @property
    def paused(self) -> bool:
        return self.running_since is None

    @property
    def finished(self) -> bool:
        return self.note is not None


@dataclasses.dataclass(frozen=True)
class PhaseStatus:
    """The current phase as the screen shows it."""

    index: int
    name: str
    allotted_s: float
    elapsed_s: float

    @property
    def remaining_s(self) -> float:
        return max(0.0, self.allotted_s - self.elapsed_s)

    @property
    def over_s(self) -> float:
        """How far the phase ran past its time (0 while within it)."""
        return max(0.0, self.elapsed_s - self.allotted_s)


# -- the plan ---------------------------------------------------------------------------------
def scaled_plan(duration_min: int) -> tuple[int, ...]:
    """The default phases scaled to a meeting of `duration_min` minutes: whole minutes, each at
    least one, adding up to the duration (largest remainders get the spare minutes)."""
    if duration_min < len(PHASES):
        raise InvalidInput(f"a meeting of {duration_min} minutes is too short for four phases")
    total = sum(DEFAULT_MINUTES)
    exact = [m * duration_min / total for m in DEFAULT_MINUTES]
    minutes = [max(1, int(x)) for x in exact]
    order = sorted(range(len(exact)), key=lambda i: exact[i] - int(exact[i]), reverse=True)
    i = 0
    while sum(minutes) < duration_min:
        minutes[order[i % len(order)]] += 1
        i += 1
    while sum(minutes) > duration_min:  # only when several phases were raised to 1 minute
        largest = max(range(len(minutes)), key=lambda k: minutes[k])
        minutes[largest] -= 1
    return tuple(minutes)


def check_plan(plan: Any) -> tuple[int, ...]:
    """A plan as given by a facilitator: four whole numbers of minutes, 1-240 each."""
    if (not isinstance(plan, list | tuple) or len(plan) != len(PHASES)
            or not all(isinstance(m, int) and not isinstance(m, bool) and 1 <= m <= 240
                       for m in plan)):
        raise InvalidInput(f"a meeting plan is {len(PHASES)} phases of 1-240 minutes each")
    return tuple(plan)


def _plans_path(home: Home) -> Path:
    return home.path / _DRAFTS_DIR / _PLANS_FILE


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read {path}: {exc}") from None


def saved_plan(home: Home, circle_id: bytes) -> tuple[int, ...] | None:
    """The plan this facilitator last used for the circle, if any."""
    plans = _read_json(_plans_path(home)) or {}
    plan = plans.get(node_id_text(circle_id)) if isinstance(plans, dict) else None
    try:
        return check_plan(plan) if plan is not None else None
    except InvalidInput:
        return None  # a hand-edited file: fall back to the default


def save_plan(home: Home, circle_id: bytes, plan: list[int] | tuple[int, ...]) -> None:
    """Remember a circle's plan for its next meetings."""
    plan = check_plan(plan)
    path = _plans_path(home)
    path.parent.mkdir(exist_ok=True)
    plans = _read_json(path)
    plans = plans if isinstance(plans, dict) else {}
    plans[node_id_text(circle_id)] = list(plan)
    write_file_atomically(path, json.dumps(plans, indent=1).encode())


# -- pure transitions ---------------------------------------------------------------------------
def phase_status(draft: MeetingDraft, now: float) -> PhaseStatus | None:
    """The current phase at `now`, or None once the last phase was left."""
    if draft.phase >= len(PHASES):
        return None
    elapsed = draft.ran_before
    if draft.running_since is not None:
        elapsed += max(0.0, now - draft.running_since)
    allotted = draft.plan[draft.phase] * 60.0 + draft.extra[draft.phase]
    return PhaseStatus(draft.phase, PHASES[draft.phase], allotted, elapsed)


def start(draft: MeetingDraft, now: float) -> MeetingDraft:
    """Start the clock (or resume after a pause)."""
    if draft.phase >= len(PHASES) or draft.running_since is not None:
        return draft
    return dataclasses.replace(draft, running_since=now)


def pause(draft: MeetingDraft, now: float) -> MeetingDraft:
    if draft.running_since is None:
        return draft
    ran = draft.ran_before + max(0.0, now - draft.running_since)
    return dataclasses.replace(draft, running_since=None, ran_before=ran)


def next_phase(draft: MeetingDraft, now: float) -> MeetingDraft:
    """Move on to the next phase; it starts running at once (the previous one may have been
    paused: moving on is the facilitator's signal to go)."""
    if draft.phase >= len(PHASES):
        return draft
    return dataclasses.replace(draft, phase=draft.phase + 1, ran_before=0.0,
                               running_since=now if draft.phase + 1 < len(PHASES) else None)


def set_plan(draft: MeetingDraft, plan: list[int] | tuple[int, ...]) -> MeetingDraft:
    """Use another plan from now on (the phase under way keeps the time it already ran)."""
    return dataclasses.replace(draft, plan=check_plan(plan))


def add_time(draft: MeetingDraft, minutes: float) -> MeetingDraft:
    """Give the current phase more time."""
    if draft.phase >= len(PHASES):
        return draft
    if not 0 < minutes <= 120:
        raise InvalidInput("add 1-120 minutes at a time")
    extra = list(draft.extra)
    extra[draft.phase] += minutes * 60.0
    return dataclasses.replace(draft, extra=tuple(extra))


def set_present(draft: MeetingDraft, who: str, present: bool = True) -> MeetingDraft:
    """Tick (or untick) someone as here: a learner's node id, or a name for a walk-in."""
    who = who.strip()
    if not who or len(who) > 128:
        raise InvalidInput("a name of 1-128 characters")
    others = tuple(p for p in draft.present if p != who)
    return dataclasses.replace(draft, present=(*others, who) if present else others)


def add_item(draft: MeetingDraft, column: str, text: str) -> MeetingDraft:
    """Add one plus or delta item (what worked / what to change), as typed."""
    items = _column(draft, column)
    text = text.strip()
    if not text:
        raise InvalidInput(f"an empty {column} item")
    if len(text) > MAX_ITEM_LENGTH:
        raise InvalidInput(f"a {column} item is at most {MAX_ITEM_LENGTH} characters"
                           f" ({len(text)} given)")
    if len(items) >= MAX_ITEMS:
        raise InvalidInput(f"a note holds at most {MAX_ITEMS} {column} items")
    return dataclasses.replace(draft, **{column: (*items, text)})


def remove_item(draft: MeetingDraft, column: str, index: int) -> MeetingDraft:
    items = _column(draft, column)
    if not 0 <= index < len(items):
        raise InvalidInput(f"no {column} item {index + 1}")
    return dataclasses.replace(draft, **{column: items[:index] + items[index + 1:]})


def _column(draft: MeetingDraft, column: str) -> tuple[str, ...]:
    if column not in ("plus", "delta"):
        raise InvalidInput(f"the columns are plus and delta, not {column!r}")
    return getattr(draft, column)


# -- who is expected ----------------------------------------------------------------------------
def meeting_roster(home: Home, circle_id: bytes, date: str | None) -> list[dict[str, Any]]:
    """Who may come to the meeting on `date` (None or a dry run: nobody has RSVP'd): the
    circle's accepted learners and anyone else who said they would come, each as
    ``{"key", "node_id", "name", "status", "rsvp"}`` — `key` is what `set_present` takes,
    `status` the sign-up's (None for someone who RSVP'd without one), `rsvp` True/False/None.
    Those who said yes come first, then by name.

    Raises:
        NotFound: no such circle here.
    """
    conn = home.store.conn
    if queries.circle_state(conn, circle_id) is None:
        raise NotFound(f"no circle {fingerprint(circle_id)} is known here (yet)")
    facilitators = queries.facilitators_of(conn, circle_id)
    rsvps: dict[bytes, bool] = {}
    if date not in (None, DRY_RUN):
        # each person's latest RSVP for that date (the detail's counts use the same rule)
        rsvps = {author: bool(attending) for author, attending in conn.execute(
            "SELECT r.author, r.attending FROM rsvps r WHERE r.circle = ? AND r.date = ?"
            " AND r.seq = (SELECT max(seq) FROM rsvps q WHERE q.circle = r.circle"
            "   AND q.author = r.author AND q.date = r.date)", (circle_id, date))}
    people: dict[bytes, dict[str, Any]] = {}
    for author, _join, name, status in queries.members(conn, circle_id):
        if status == "accepted" or rsvps.get(author):
            people[author] = {"name": name, "status": status}
    for author, attending in rsvps.items():
        if attending and author not in people and author not in facilitators:
            profile = queries.profile(conn, author) or {}
            people[author] = {"name": profile.get("name") or "unknown", "status": None}
    roster = [{"key": node_id_text(author), "node_id": author, "name": person["name"],
               "status": person["status"], "rsvp": rsvps.get(author)}
              for author, person in people.items()]
    roster.sort(key=lambda p: (p["rsvp"] is not True, p["name"].casefold()))
    return roster


# -- drafts on disk -----------------------------------------------------------------------------
def _draft_path(home: Home, circle_id: bytes, date: str) -> Path:
    return home.path / _DRAFTS_DIR / f"{node_id_text(circle_id)}-{date}.json"


def _to_json(draft: MeetingDraft) -> bytes:
    data = dataclasses.asdict(draft)
    data["circle"] = node_id_text(draft.circle)
    data["note"] = node_id_text(draft.note) if draft.note else None
    return json.dumps(data, indent=1).encode()


def _from_json(data: Any, path: Path) -> MeetingDraft:
    try:
        fields = {**data, "circle": parse_id(data["circle"], "circle"),
                  "note": parse_id(data["note"], "note") if data.get("note") else None}
        for name in ("plan", "extra", "present", "plus", "delta"):
            fields[name] = tuple(fields[name])
        return MeetingDraft(**fields)
    except (KeyError, TypeError, ValueError, ProtocolError) as exc:
        raise InvalidInput(f"the meeting draft {path.name} is damaged ({exc})") from None


def load_draft(home: Home, circle_id: bytes, date: str) -> MeetingDraft | None:
    path = _draft_path(home, circle_id, date)
    data = _read_json(path)
    return None if data is None else _from_json(data, path)


def save_draft(home: Home, draft: MeetingDraft) -> MeetingDraft:
    """Write the draft durably (it survives a crash once this returns) and return it."""
    path = _draft_path(home, draft.circle, draft.date)
    path.parent.mkdir(exist_ok=True)
    write_file_atomically(path, _to_json(draft))
    return draft


def open_meeting(home: Home, circle_id: bytes, date: str | None, *, now: float) -> MeetingDraft:
    """The draft of the circle's meeting on `date` (None: a dry run): resumed when one exists,
    else new, with the remembered or the default plan.

    Raises:
        NotFound: no such circle here.
        NotAllowed: a real meeting, and we do not facilitate the circle.
        InvalidInput: `date` is not one of its meetings.
    """
    state = queries.circle_state(home.store.conn, circle_id)
    if state is None:
        raise NotFound(f"no circle {fingerprint(circle_id)} is known here (yet)")
    if date is None:
        date = DRY_RUN
    else:
        if home.identity.node_id not in queries.facilitators_of(home.store.conn, circle_id):
            raise NotAllowed("only the circle's facilitators run its meetings")
        actions.meeting_date(state, None, date)
    found = load_draft(home, circle_id, date)
    if found is not None:
        return found
    plan = saved_plan(home, circle_id) or scaled_plan(int(state.get("duration_min", 90)))
    return save_draft(home, MeetingDraft(circle_id, date, plan, created_at=now))


def update_meeting(home: Home, draft: MeetingDraft) -> MeetingDraft:
    """Save a draft the app changed with the transitions above (refused once finished)."""
    current = load_draft(home, draft.circle, draft.date)
    if current is not None and current.finished:
        raise NotAllowed("this meeting's note is already written")
    return save_draft(home, draft)


def finish_meeting(home: Home, circle_id: bytes, date: str, *, now: float,
                   rating: int | None = None, recap: str | None = None) -> MeetingDraft:
    """Write the meeting's note (attendance, plus, delta) once, and return the finished draft.

    Raises:
        NotFound: no draft for that meeting.
        NotAllowed: a dry run (it writes nothing), or no longer a facilitator.
    """
    draft = load_draft(home, circle_id, date)
    if draft is None:
        raise NotFound("no meeting in progress for that circle and date")
    if draft.dry_run:
        raise NotAllowed("a dry run writes no note")
    if draft.finished:
        return draft
    written = queries.own_note_since(home.store.conn, draft.circle, draft.date,
                                     home.identity.node_id, int(draft.created_at * 1000))
    if written is None:
        entry = actions.add_meeting_note(
            home, circle_id, date=date, attendance=len(draft.present),
            plus=list(draft.plus), delta=list(draft.delta), rating=rating, recap=recap,
        )
        written = entry.id
    draft = pause(draft, now)
    return save_draft(home, dataclasses.replace(draft, phase=len(PHASES), note=written))


def discard_meeting(home: Home, circle_id: bytes, date: str) -> bool:
    """Throw a draft away (a dry run, or a meeting that did not happen); True if there was one."""
    path = _draft_path(home, circle_id, date)
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True
