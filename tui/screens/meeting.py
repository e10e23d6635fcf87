"""Meeting mode: run a learning-circle meeting the P2PU way from the facilitator's laptop —
check-in, coursework, a group activity, plus/delta — with a timer per phase readable from across
a table, attendance ticked off against who said they would come, and the plus/delta typed as it
is said, published at the end as one signed `meeting.note`.

Rules it keeps:
- One clock: the app's (`P2PApp.clock`, which tests drive); the screen redraws from it at most
  once a second (`set_interval`), and every transition takes "now" from it.
- The draft (`p2pnode.meeting.MeetingDraft`) is the one truth: every change is a pure transition
  of it, saved through the node (`meeting.update_meeting`) in order, on an app worker so a save
  outlives the screen. Leaving or quitting mid-meeting and coming back resumes it.
- A phase that runs over says so once, gently; nothing stops by itself.
- A dry run (any day that is not a meeting day) runs the same and publishes nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.markup import escape
from textual.message import Message
from textual.widgets import Footer, Input, OptionList, SelectionList, Static

from p2pnode import meeting
from p2pnode.errors import InvalidInput
from p2pnode.meeting import PLUS_DELTA, MeetingDraft
from p2pnode.store.models import CircleDetail
from tui import format as fmt
from tui.screens import forms
from tui.screens.base import NodeScreen
from tui.screens.meeting_dialogs import PastNotes, PlanForm
from tui.widgets.meeting_clock import PHASE_TITLES, PhaseClock, PhaseStrip
from tui.widgets.meeting_day import circle_today, note_lines, past_meetings_with_notes
from tui.widgets.meeting_notes import Attendance, ItemColumn
from tui.widgets.status_bar import StatusBar

#: minutes one press of "+" gives the current phase
ADD_MINUTES = 5
#: how often the clock is redrawn (seconds): never more than once a second
_TICK_S = 1.0
#: from this width on, last time's plus/delta stays in view as a fourth column
_LAST_TIME_MIN_WIDTH = 120
_BIG_CLOCK_MIN_HEIGHT = 40
_ROSTER_KINDS = frozenset({"rsvp", "join", "join.accept", "profile", "delete", "meeting.note",
                           "circle.update", "circle.cancel"})


class MeetingScreen(NodeScreen):
    """One meeting of a circle (`date`), or a dry run (`date` None)."""

    BINDINGS = [
        Binding("s", "toggle_clock", "Go/pause"),
        Binding("n", "next_phase", "Next"),
        Binding("plus,equals_sign", "add_time", f"+{ADD_MINUTES} min", key_display="+"),
        Binding("f", "finish", "Finish"),
        Binding("h", "past_notes", "Last time"),
        Binding("e", "edit_plan", "Plan"),
        Binding("escape", "leave", "Back"),
    ]

    DEFAULT_CSS = """
    MeetingScreen #last-time {
        width: 1fr; height: 1fr; border: round $panel; padding: 0 1; color: $text-muted;
    }
    """

    @dataclasses.dataclass
    class Opened(Message):
        draft: MeetingDraft
        roster: list[dict[str, Any]]
        detail: CircleDetail | None

    @dataclasses.dataclass
    class Refreshed(Message):
        roster: list[dict[str, Any]]
        detail: CircleDetail | None

    def __init__(self, circle_id: bytes, date: str | None) -> None:
        super().__init__()
        self.circle_id, self.date = circle_id, date
        self.draft: MeetingDraft | None = None
        self.roster: list[dict[str, Any]] = []
        self.detail: CircleDetail | None = None
        #: phases whose running over was already pointed out
        self._warned: set[int] = set()
        self._saved: MeetingDraft | None = None
        self._save_lock = asyncio.Lock()

    def compose(self) -> ComposeResult:
        yield StatusBar()
        yield Static(id="meeting-title", classes="screen-title")
        yield PhaseStrip(id="phase-strip")
        yield PhaseClock(id="phase-clock")
        with Horizontal(id="meeting-lower"):
            yield Attendance(id="attendance")
            yield ItemColumn("plus")
            yield ItemColumn("delta")
            yield Static(id="last-time")
        yield Footer()

    def on_mount(self) -> None:
        self.open()
        self.set_interval(_TICK_S, self.tick)

    def now(self) -> float:
        return self.p2p.clock()

    def on_resize(self) -> None:
        # last time's plus/delta beside this meeting's, where there is room for a 4th column
        self.query_one("#last-time").display = self.size.width >= _LAST_TIME_MIN_WIDTH
        # the time in block pixels where the terminal is tall enough to spare the rows
        self.query_one(PhaseClock).big = self.size.height >= _BIG_CLOCK_MIN_HEIGHT

    # -- loading -----------------------------------------------------------------------------
    @work(exclusive=True, group="meeting-open", exit_on_error=False)
    async def open(self) -> None:
        draft = await self.node.perform(meeting.open_meeting, self.circle_id, self.date,
                                        now=self.now())
        roster = await self.node.perform(meeting.meeting_roster, self.circle_id, self.date)
        detail = await self.node.circle(self.circle_id)
        self.post_message(self.Opened(draft, roster, detail))

    @on(Opened)
    def _opened(self, message: Opened) -> None:
        self.draft = self._saved = message.draft
        self.roster, self.detail = message.roster, message.detail
        self._show_title()
        self._show_last_time()
        self._show_all()
        if message.draft.finished:
            self.notify("This meeting's note is already published.", timeout=6)
        elif message.draft.started:
            self.notify("Resumed where you left off.", timeout=4)
        if message.draft.phase == PLUS_DELTA:
            self.query_one("#plus-input", Input).focus()
        else:
            self.query_one("#attendance-list", SelectionList).focus()

    def node_changed(self, kinds: frozenset[str]) -> None:
        if kinds & _ROSTER_KINDS and self.draft is not None:
            self.refresh_roster()

    @work(exclusive=True, group="meeting-roster", exit_on_error=False)
    async def refresh_roster(self) -> None:
        roster = await self.node.perform(meeting.meeting_roster, self.circle_id, self.date)
        self.post_message(self.Refreshed(roster, await self.node.circle(self.circle_id)))

    @on(Refreshed)
    def _refreshed(self, message: Refreshed) -> None:
        self.roster, self.detail = message.roster, message.detail
        self._show_last_time()
        if self.draft is not None:
            self.query_one(Attendance).show(self.roster, self.draft.present)

    # -- drawing -----------------------------------------------------------------------------
    def _show_title(self) -> None:
        d, draft = self.detail, self.draft
        name = escape(d.summary.name) if d else "this circle"
        if draft is None or draft.dry_run:
            text = f"[b]Dry run[/b] · {name} · a rehearsal: nothing is published"
        else:
            number = next((m.number for m in d.meetings if m.date == draft.date), "?") if d \
                else "?"
            label = fmt.meeting_label(draft.date, d.summary.meeting_time, d.summary.timezone) \
                if d else draft.date
            total = len(d.meetings) if d else "?"
            text = f"[b]{name}[/b] · meeting {number} of {total} · {escape(label)}"
        self.query_one("#meeting-title", Static).update(text)

    def _show_last_time(self) -> None:
        panel = self.query_one("#last-time", Static)
        if self.detail is None:
            return
        before = self.date or circle_today(self.detail, self.now())
        earlier = past_meetings_with_notes(self.detail, before)
        if not earlier:
            panel.update("[b]Last time[/b]\nno plus/delta from earlier meetings yet")
            return
        last = earlier[0]
        lines = "\n".join(escape(line) for line in note_lines(last.notes))
        panel.update(f"[b]Last time you said[/b] (meeting {last.number})\n{lines}")

    def _show_all(self) -> None:
        draft = self.draft
        if draft is None:
            return
        self.query_one(PhaseStrip).show(draft)
        self.query_one(Attendance).show(self.roster, draft.present)
        for column in ("plus", "delta"):
            widget = self.query_one(f"#{column}-column", ItemColumn)
            widget.show(getattr(draft, column))
            widget.set_class(draft.phase == PLUS_DELTA, "-active")
        self.tick()

    def tick(self) -> None:
        """Redraw the clock from the app's clock; say once when a phase runs over."""
        if self.draft is None:
            return
        status = self.query_one(PhaseClock).show(self.draft, self.now())
        if (status is not None and status.over_s > 0 and self.draft.started
                and not self.draft.finished and status.index not in self._warned):
            self._warned.add(status.index)
            minutes = status.allotted_s / 60
            self.notify(f"{PHASE_TITLES[status.name]} has had its {minutes:g} minute"
                        f"{'' if minutes == 1 else 's'}. Move on"
                        f" with n, or give it {ADD_MINUTES} more with +.", title="Time",
                        timeout=12, markup=False)

    # -- changing the draft ------------------------------------------------------------------
    def _usable(self) -> MeetingDraft | None:
        if self.draft is None:
            return None
        if self.draft.finished:
            self.notify("This meeting's note is already published.", timeout=4)
            return None
        return self.draft

    def change(self, draft: MeetingDraft) -> None:
        """Show `draft` and save it (saves run in order; the latest always lands last)."""
        if draft == self.draft:
            return
        moved = self.draft is not None and draft.phase != self.draft.phase
        self.draft = draft
        self._show_all()
        if moved and draft.phase == PLUS_DELTA:
            self.query_one("#plus-input", Input).focus()
        self.app.run_worker(self._save_latest(), group="meeting-save", exit_on_error=False)

    async def _save_latest(self) -> None:
        async with self._save_lock:
            draft = self.draft
            if draft is not None and draft != self._saved and not draft.finished:
                await self.node.perform(meeting.update_meeting, draft)
                self._saved = draft

    def _apply(self, transition: Any, *args: Any) -> None:
        draft = self._usable()
        if draft is None:
            return
        try:
            self.change(transition(draft, *args))
        except InvalidInput as exc:
            self.notify(str(exc), severity="warning", timeout=6, markup=False)

    def action_toggle_clock(self) -> None:
        draft = self.draft
        if draft is not None and draft.phase >= len(meeting.PHASES):
            return
        self._apply(meeting.start if draft is None or draft.paused else meeting.pause,
                    self.now())

    def action_next_phase(self) -> None:
        self._apply(meeting.next_phase, self.now())

    def action_add_time(self) -> None:
        draft = self.draft
        self._apply(meeting.add_time, ADD_MINUTES)
        if draft is not None and self.draft is not draft:
            self.notify(f"+{ADD_MINUTES} min for {PHASE_TITLES[meeting.PHASES[draft.phase]]}",
                        timeout=3)

    @on(Attendance.Toggled)
    def _toggled(self, message: Attendance.Toggled) -> None:
        before = self.draft
        self._apply(meeting.set_present, message.who, message.present)
        if self.draft is not before:
            self.query_one("#walk-in", Input).value = ""
        elif self.draft is not None:  # refused: the boxes show the draft again
            self.query_one(Attendance).show(self.roster, self.draft.present)

    @on(ItemColumn.Added)
    def _added(self, message: ItemColumn.Added) -> None:
        before = self.draft
        self._apply(meeting.add_item, message.column, message.text)
        if self.draft is not before:
            self.query_one(f"#{message.column}-input", Input).value = ""

    @on(ItemColumn.Removed)
    def _removed(self, message: ItemColumn.Removed) -> None:
        self._apply(meeting.remove_item, message.column, message.index)

    def action_edit_plan(self) -> None:
        if self._usable() is None or self.draft is None:
            return
        duration = self.detail.summary.duration_min if self.detail else sum(self.draft.plan)
        self.app.push_screen(PlanForm(self.draft.plan, duration), self._planned)

    def _planned(self, plan: tuple[int, ...] | None) -> None:
        if plan is None or self.draft is None:
            return
        self._apply(meeting.set_plan, plan)
        self.remember_plan(plan)

    @work(group="meeting-plan", exit_on_error=False)
    async def remember_plan(self, plan: tuple[int, ...]) -> None:
        await self.node.perform(meeting.save_plan, self.circle_id, plan)
        self.notify("Plan remembered for this circle's next meetings.", timeout=4)

    def action_past_notes(self) -> None:
        if self.detail is None:
            return
        before = self.date or circle_today(self.detail, self.now())
        self.app.push_screen(PastNotes(self.detail, before))

    # -- leaving and finishing ---------------------------------------------------------------
    def action_leave(self) -> None:
        """Escape leaves a text box for its list first; from elsewhere, back to the circle
        (the meeting is kept: opening meeting mode again resumes it)."""
        focused = self.focused
        if isinstance(focused, Input) and focused.parent is not None:
            found = focused.parent.query(OptionList)  # SelectionList is an OptionList
            if found:
                listed = found.first()
                if isinstance(focused.parent, ItemColumn) and listed.option_count:
                    listed.highlighted = listed.option_count - 1  # the item just typed
                listed.focus()
                return
        if self.draft is not None and self.draft.started and not self.draft.finished:
            self.notify("The meeting is kept: open meeting mode again to carry on.", timeout=5)
        self.app.pop_screen()

    def action_finish(self) -> None:
        draft = self._usable()
        if draft is None:
            return
        if draft.dry_run:
            question = "End the dry run? Nothing is published and the rehearsal is thrown away."
            self.app.push_screen(forms.Confirm(question, "End dry run"), self._confirmed)
            return
        came = len(draft.present)
        question = (f"Finish the meeting and publish its note?\n\n{came} came · "
                    f"{len(draft.plus)} plus · {len(draft.delta)} delta\n\nIt is signed and "
                    "sent to every learner of the circle; it cannot be taken back.")
        self.app.push_screen(forms.Confirm(question, "Publish note"), self._confirmed)

    def _confirmed(self, yes: bool | None) -> None:
        if yes:
            self.finish()

    @work(exclusive=True, group="meeting-finish", exit_on_error=False)
    async def finish(self) -> None:
        draft = self.draft
        assert draft is not None
        if draft.dry_run:
            await self.node.perform(meeting.discard_meeting, self.circle_id, draft.date)
            self.notify("Dry run ended; nothing was published.", timeout=5)
        else:
            await self._save_latest()
            done = await self.node.perform(meeting.finish_meeting, self.circle_id, draft.date,
                                           now=self.now())
            self.draft = self._saved = done
            self.notify(f"Meeting note published: {len(done.present)} came,"
                        f" {len(done.plus)} plus, {len(done.delta)} delta.", timeout=8)
        if self.app.screen is self:
            self.app.pop_screen()
