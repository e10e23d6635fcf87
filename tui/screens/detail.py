"""One circle in full: description, course, venue, facilitators, every meeting (the next one
marked, with RSVP counts and plus/delta notes), who is going, ratings and resources; and what
I can do about it, by key and by button. Facilitators also edit, cancel, take notes and review
sign-ups.
"""

from __future__ import annotations

import dataclasses

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import ItemGrid, VerticalScroll
from textual.markup import escape
from textual.message import Message
from textual.widgets import Button, DataTable, Footer, Markdown, Static

from p2pnode import actions
from p2pnode.store.models import CircleDetail
from protocol.identity import fingerprint
from tui import format as fmt
from tui.screens import forms
from tui.screens.base import NodeScreen
from tui.widgets.meeting_day import circle_today, meeting_day_text, meeting_on
from tui.widgets.status_bar import StatusBar

_DETAIL_KINDS = frozenset({"circle", "circle.update", "circle.cancel", "join", "join.accept",
                           "rsvp", "meeting.note", "feedback", "resource", "profile", "delete"})

#: action name -> (button label, who may do it); the order is the buttons' order
ACTIONS = {
    "meeting": "Meeting mode", "join": "Join", "leave": "Leave",
    "forget": "Delete sign-up",
    "rsvp": "RSVP next", "calendar": "Add to calendar", "feedback": "Give feedback",
    "edit": "Edit", "cancel": "Cancel circle", "note": "Meeting note", "signups": "Sign-ups",
}
#: a column fits the widest label (15) and a compact button's padding; four columns at 80
_BUTTON_WIDTH = 19
#: the meetings table: "▶ 12", "Sat 16 Jan 10:00 +0530", counts, notes (shortened to 60)
_MEETING_COLUMNS = (("#", 4), ("When", 22), ("Going", 5), ("Not going", 9), ("Notes", 60))
_FACILITATOR_ONLY = {"meeting", "edit", "cancel", "note", "signups"}


class DetailScreen(NodeScreen):
    """A circle and its actions."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("m", "meeting", "Meeting mode"),
        Binding("j", "join", "Join"),
        Binding("l", "leave", "Leave"),
        Binding("D", "forget", "Leave+delete"),
        Binding("r", "rsvp", "RSVP"),
        Binding("c", "calendar", "Calendar"),
        Binding("b", "feedback", "Feedback"),
        Binding("e", "edit", "Edit"),
        Binding("x", "cancel", "Cancel"),
        Binding("n", "note", "Note"),
        Binding("s", "signups", "Sign-ups"),
    ]

    @dataclasses.dataclass
    class Loaded(Message):
        detail: CircleDetail | None
        role: str | None  # facilitating / joined / None

    def __init__(self, circle_id: bytes) -> None:
        super().__init__()
        self.circle_id = circle_id
        self.detail: CircleDetail | None = None
        self.role: str | None = None
        #: my display name, offered when I join
        self.my_name: str | None = None
        #: true while a loaded circle is being put on the page
        self.showing = False

    def compose(self) -> ComposeResult:
        yield StatusBar()
        with VerticalScroll(id="detail-body"):
            yield Static(id="title", classes="circle-title")
            yield Static(id="facts")
            yield Static(id="meeting-day")
            yield Markdown(id="description")
            yield Static("Meetings", classes="section")
            yield DataTable(id="meetings", cursor_type="row", zebra_stripes=True)
            yield Static(id="people")
            yield Static(id="extras")
        # buttons wrap onto a second row rather than run off a narrow terminal
        with ItemGrid(id="actions", min_column_width=_BUTTON_WIDTH):
            for name, label in ACTIONS.items():
                yield Button(label, id=f"do-{name}", compact=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#meetings", DataTable)
        # fixed widths: columns sized to their rows would shift as rows arrive, and a page read
        # in between (a snapshot, a dialog opened over it) showed header-wide columns
        for label, width in _MEETING_COLUMNS:
            table.add_column(label, width=width)
        self.reload()

    def reload(self) -> None:
        self.load_circle()

    @work(exclusive=True, group="detail", exit_on_error=False)
    async def load_circle(self) -> None:
        detail = await self.node.circle(self.circle_id)
        mine = await self.node.my_circles()
        profile = await self.node.perform(actions.my_profile)
        self.my_name = (profile or {}).get("name")
        self.post_message(self.Loaded(detail, mine.get(self.circle_id)))

    def node_changed(self, kinds: frozenset[str]) -> None:
        if kinds & _DETAIL_KINDS:
            self.reload()

    # -- showing -----------------------------------------------------------------------------
    @on(Loaded)
    async def _show(self, message: Loaded) -> None:
        # the description's Markdown is awaited: meanwhile the page is half filled
        self.showing = True
        try:
            await self._fill(message)
        finally:
            self.showing = False

    async def _fill(self, message: Loaded) -> None:
        if message.detail is None:
            self.notify("This circle is not known here (yet).", severity="warning")
            return
        self.detail, self.role = message.detail, message.role
        d, s = message.detail, message.detail.summary
        status = s.status.upper() if s.status == "cancelled" else s.status
        badge = {"facilitating": " · you facilitate it", "joined": " · you signed up"}.get(
            self.role or "", "")
        self.query_one("#title", Static).update(
            f"[b]{escape(s.name)}[/b]  \\[{status}]{badge}")
        self.query_one("#facts", Static).update(self._facts(d))
        self._show_meeting_day(d)
        self._show_meetings(d)
        await self.query_one("#description", Markdown).update(d.description)
        self.query_one("#people", Static).update(self._people(d))
        self.query_one("#extras", Static).update(self._extras(d))
        for name in ACTIONS:
            self.query_one(f"#do-{name}", Button).display = bool(self._allowed(name))
        self.refresh_bindings()

    def _facts(self, d: CircleDetail) -> str:
        s = d.summary
        course = d.course.get("title", "")
        if d.course.get("provider"):
            course += f" ({d.course['provider']})"
        if d.course.get("link"):
            course += f" — {d.course['link']}"
        venue = d.venue
        if venue.get("online"):
            place = "online"
        else:
            place = ", ".join(str(venue[k]) for k in ("name", "address", "city", "region",
                                                      "country") if venue.get(k))
        if venue.get("details"):
            place += f"\n           {venue['details']}"
        course, place = escape(course), escape(place)
        lines = [
            f"[b]Course[/b]     {course}",
            f"[b]Where[/b]      {place}",
            f"[b]When[/b]       {s.weekday}s {s.meeting_time} ({s.timezone}), {s.duration_min}"
            f" min, {s.start_date} to {s.end_date}",
            f"[b]Language[/b]   {s.language}   [b]Seats[/b] {fmt.seats(s)}"
            f"{'' if s.signup_limit else ' (no limit)'}",
            "[b]Facilitators[/b] " + escape(", ".join(fmt.person(p) for p in s.facilitators)),
        ]
        if s.topics:
            lines.append("[b]Topics[/b]     " + escape(", ".join(s.topics)))
        if s.status == "cancelled":
            reason = escape(d.cancel_reason or "no reason given")
            lines.append(f"[b red]Cancelled[/b red]: {reason}")
        if d.rescheduled:
            lines.append("[i]The schedule has changed since the circle was announced.[/i]")
        if d.signup_question:
            lines.append(f"[b]Sign-up question[/b] {escape(d.signup_question)}")
        return "\n".join(lines)

    def _show_meeting_day(self, d: CircleDetail) -> None:
        """On a meeting day: the meeting's shape and last time's plus/delta; facilitators get
        meeting mode offered first (any other day it is a dry run)."""
        now = self.app.clock()
        text = meeting_day_text(d, now, facilitating=self.role == "facilitating")
        section = self.query_one("#meeting-day", Static)
        section.update(text)
        section.display = bool(text)
        button = self.query_one("#do-meeting", Button)
        today = meeting_on(d, circle_today(d, now)) is not None
        button.label = "▶ Run meeting" if today else "Dry-run meeting"
        button.variant = "success" if today else "default"

    def _show_meetings(self, d: CircleDetail) -> None:
        table = self.query_one("#meetings", DataTable)
        table.clear()
        s = d.summary
        for m in d.meetings:
            mark = "▶ " if m.date == s.next_meeting else "  "
            notes = []
            for note in m.notes:
                notes += [f"+ {p}" for p in note.get("plus", [])]
                notes += [f"Δ {p}" for p in note.get("delta", [])]
                if note.get("attendance") is not None:
                    notes.append(f"{note['attendance']} came")
            table.add_row(f"{mark}{m.number}", fmt.meeting_label(m.date, s.meeting_time,
                                                                s.timezone),
                          str(m.attending), str(m.not_attending),
                          fmt.shorten("; ".join(notes), 60), key=m.date)

    def _people(self, d: CircleDetail) -> str:
        counts = {"accepted": 0, "pending": 0, "declined": 0}
        for p in d.participants:
            counts[p.status] = counts.get(p.status, 0) + 1
        line = (f"[b]Who is going[/b]  {counts['accepted']} accepted, {counts['pending']}"
                f" waiting for a facilitator")
        if counts.get("waiting"):
            line += f", {counts['waiting']} on the waiting list"
        for hint in d.health_hints(int(self.app.clock() * 1000)):
            line += f"\n  [i]{escape(hint)}[/i]"
        if self.role == "facilitating" and d.participants:
            names = [f"{p.display_name} ({fingerprint(p.person.node_id)}, {p.status})"
                     for p in d.participants]
            line += "\n  " + escape("\n  ".join(names))
        return line

    def _extras(self, d: CircleDetail) -> str:
        r = d.ratings
        lines = [f"[b]Ratings[/b]  course {fmt.rating(r.get('course'))}, would recommend "
                 f"{fmt.rating(r.get('recommendation'))}, goals reached "
                 f"{fmt.rating(r.get('goal'))} ({d.feedback_count} responses)"]
        if d.resources:
            lines.append("[b]Resources[/b]")
            for res in d.resources:
                held = "here" if res.held else "on peers"
                lines.append(escape(f"  {res.title} ({res.media_type}, {res.size:,} bytes,"
                                    f" {held})"))
        else:
            lines.append("[b]Resources[/b]  none shared yet")
        return "\n".join(lines)

    # -- what may be done --------------------------------------------------------------------
    def _allowed(self, name: str) -> bool:
        d = self.detail
        if d is None:
            return False
        status = d.summary.status
        facilitating = self.role == "facilitating"
        joined = self.role == "joined"
        if name in _FACILITATOR_ONLY:
            return facilitating and (name in ("signups", "note") or status != "cancelled")
        return {
            "join": not facilitating and not joined and status in ("upcoming", "running"),
            "leave": joined,
            "forget": joined,
            "rsvp": (joined or facilitating) and d.summary.next_meeting is not None,
            "calendar": True,
            "feedback": (joined or facilitating) and status == "ended",
        }.get(name, False)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ACTIONS:
            return self._allowed(action)
        return True

    @on(Button.Pressed)
    def _button(self, event: Button.Pressed) -> None:
        name = (event.button.id or "").removeprefix("do-")
        if name in ACTIONS:
            getattr(self, f"action_{name}")()

    # -- actions -----------------------------------------------------------------------------
    @work(exclusive=True, group="act", exit_on_error=False)
    async def perform(self, done: str, action, *args, **kwargs) -> None:
        """Run one of `p2pnode.actions` on the node, then say so and reload."""
        await self.node.perform(action, *args, **kwargs)
        self.notify(done)
        self.reload()

    def action_join(self) -> None:
        assert self.detail is not None
        self.app.push_screen(forms.JoinForm(self.detail, self.my_name), self._joined)

    def _joined(self, values: dict | None) -> None:
        if values:
            self.perform("Signed up. The facilitators will see your details.",
                         actions.join_circle, self.circle_id, values.pop("display_name"),
                         **values)

    def action_leave(self) -> None:
        self.perform("You left the circle.", actions.leave_circle, self.circle_id)

    def action_forget(self) -> None:
        self.app.push_screen(forms.Confirm(
            "Leave this circle and ask every node to delete your sign-up (name, contact and "
            "answers)?", "Leave and delete"), self._forget)

    def _forget(self, yes: bool | None) -> None:
        if yes:
            self.perform("You left; your sign-up is being deleted everywhere.",
                         actions.leave_and_delete_signup, self.circle_id)

    def action_rsvp(self) -> None:
        assert self.detail is not None
        self.app.push_screen(forms.RsvpForm(self.detail), self._rsvp)

    def _rsvp(self, attending: bool | None) -> None:
        if attending is not None and self.detail and self.detail.summary.next_meeting:
            self.perform("RSVP recorded: " + ("going." if attending else "not going."),
                         actions.rsvp, self.circle_id, date=self.detail.summary.next_meeting,
                         attending=attending)

    def action_calendar(self) -> None:
        assert self.detail is not None
        self.app.push_screen(forms.CalendarForm(self.detail, self.p2p.calendar_path(
            self.detail)))

    def action_feedback(self) -> None:
        self.app.push_screen(forms.FeedbackForm(), self._feedback)

    def _feedback(self, values: dict | None) -> None:
        if values:
            self.perform("Thank you: feedback recorded.", actions.give_feedback,
                         self.circle_id, **values)

    def action_edit(self) -> None:
        assert self.detail is not None
        from tui.screens.announce import AnnounceScreen

        self.app.push_screen(AnnounceScreen(self.detail))

    def action_cancel(self) -> None:
        self.app.push_screen(forms.CancelForm(), self._cancelled)

    def _cancelled(self, reason: str | None) -> None:
        if reason is not None:
            self.perform("The circle is cancelled; learners will be told.",
                         actions.cancel_circle, self.circle_id, reason or None)

    def action_note(self) -> None:
        assert self.detail is not None
        self.app.push_screen(forms.NoteForm(self.detail), self._noted)

    def _noted(self, values: dict | None) -> None:
        if values:
            self.perform("Meeting note recorded.", actions.add_meeting_note, self.circle_id,
                         **values)

    def action_meeting(self) -> None:
        """Today's meeting on a meeting day (in the circle's zone), else a dry run."""
        assert self.detail is not None
        from tui.screens.meeting import MeetingScreen

        today = circle_today(self.detail, self.app.clock())
        date = today if meeting_on(self.detail, today) is not None else None
        self.app.push_screen(MeetingScreen(self.circle_id, date))

    def action_signups(self) -> None:
        from tui.screens.signups import SignupsScreen

        self.app.push_screen(SignupsScreen(self.circle_id))
