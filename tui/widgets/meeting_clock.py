"""Meeting mode's clock: the four phases in a strip, and the current one large enough to read
from across a table (a band with the phase's name, the time left in `Digits`, and how far the
meeting has come).

The widgets only draw what they are given (a draft and "now"); the screen owns the clock.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Center, Horizontal, Vertical
from textual.reactive import reactive
from textual.widgets import Digits, ProgressBar, Static

from p2pnode import meeting
from p2pnode.meeting import PHASES, MeetingDraft, PhaseStatus
from tui.widgets.big_clock import BigClock

#: how each phase is named on screen, and what it is for (P2PU's meeting shape)
PHASE_TITLES = {"check-in": "Check-in", "coursework": "Coursework", "activity": "Activity",
                "plus/delta": "Plus / delta"}
PHASE_HINTS = {
    "check-in": "how is everyone; what did you do since last time",
    "coursework": "work through the course together; help each other",
    "activity": "a group activity: discuss, present, practise",
    "plus/delta": "what worked (plus), what to change (delta)",
}


def clock_text(seconds: float) -> str:
    """mm:ss (h:mm:ss past an hour), rounded up so a phase shows 00:00 only when it is up."""
    whole = int(-(-seconds // 1))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes:02}:{secs:02}"


def phase_plan_line(plan: tuple[int, ...], current: int | None = None) -> str:
    """The phases with their minutes, the current one marked (▶) and those done ticked (✓)."""
    parts = []
    for index, (name, minutes) in enumerate(zip(PHASES, plan, strict=True)):
        title = f"{PHASE_TITLES[name]} {minutes}m"
        if current is None:
            parts.append(title)
        elif index < current:
            parts.append(f"[dim]✓ {title}[/dim]")
        elif index == current:
            parts.append(f"[b reverse] ▶ {title} [/b reverse]")
        else:
            parts.append(f"○ {title}")
    return "  ".join(parts)


class PhaseStrip(Static):
    """The four phases in one line, where the meeting stands among them."""

    DEFAULT_CSS = """
    PhaseStrip { height: 1; padding: 0 1; }
    """

    def show(self, draft: MeetingDraft) -> None:
        self.update(phase_plan_line(draft.plan, draft.phase))


class PhaseClock(Vertical):
    """The current phase, big: its name on a band, the time left (or over) in digits."""

    DEFAULT_CSS = """
    PhaseClock { height: auto; }
    PhaseClock #phase-band {
        height: 3; content-align: center middle; text-style: bold;
        background: $primary; color: $text;
    }
    PhaseClock.-over #phase-band { background: $warning; color: $background; }
    PhaseClock.-paused #phase-band { background: $panel; color: $text-muted; }
    PhaseClock.-done #phase-band { background: $success; color: $background; }
    PhaseClock Center { height: auto; }
    PhaseClock Digits { width: auto; }
    PhaseClock BigClock { display: none; height: 12; color: $text; }
    PhaseClock.-big BigClock { display: block; }
    PhaseClock.-big Center { display: none; }
    PhaseClock.-over Digits, PhaseClock.-over BigClock { color: $warning; }
    PhaseClock #phase-line { height: 1; padding: 0 1; }
    PhaseClock #phase-caption { width: 1fr; color: $text-muted; }
    PhaseClock ProgressBar { width: auto; }
    PhaseClock ProgressBar Bar { width: 20; }
    """

    #: draw the time in block pixels (`BigClock`) instead of three-row `Digits`
    big = reactive(False, toggle_class="-big")

    def compose(self) -> ComposeResult:
        yield Static(id="phase-band")
        with Center():
            yield Digits("00:00", id="phase-time")
        yield BigClock(id="phase-time-big")
        with Horizontal(id="phase-line"):
            yield Static(id="phase-caption")
            yield ProgressBar(total=100, show_eta=False, id="meeting-progress")

    def show(self, draft: MeetingDraft, now: float) -> PhaseStatus | None:
        """Draw the meeting at `now`; returns the current phase (None once all are done)."""
        status = meeting.phase_status(draft, now)
        band = self.query_one("#phase-band", Static)
        digits = self.query_one("#phase-time", Digits)
        caption = self.query_one("#phase-caption", Static)
        over = status is not None and status.over_s > 0
        self.set_class(status is None or draft.finished, "-done")
        self.set_class(over, "-over")
        self.set_class(status is not None and draft.paused and not over, "-paused")
        if status is None:
            band.update("ALL FOUR PHASES DONE" + (" — NOTE PUBLISHED" if draft.finished
                                                   else " — FINISH WITH f"))
            time_text = clock_text(0)
            caption.update("the meeting is over" if draft.finished
                           else "press f to finish and publish the note")
        else:
            title = PHASE_TITLES[status.name].upper()
            state = ("  ·  NOT STARTED" if not draft.started
                     else "  ·  PAUSED" if draft.paused else "")
            band.update(f"{status.index + 1}/{len(PHASES)}  {title}{state}")
            time_text = (f"+{clock_text(status.over_s)}" if over
                         else clock_text(status.remaining_s))
            minutes = status.allotted_s / 60
            spent = f"{clock_text(status.elapsed_s)} of {minutes:g} min"
            caption.update(f"{spent} — over by {clock_text(status.over_s)}" if over
                           else f"{spent} — {PHASE_HINTS[status.name]}")
        digits.update(time_text)
        self.query_one(BigClock).value = time_text
        self.query_one(ProgressBar).update(total=100, progress=_progress(draft, status))
        return status


def _progress(draft: MeetingDraft, status: PhaseStatus | None) -> float:
    """How far through the planned meeting, in percent (phases done count in full)."""
    allotted = [m * 60.0 + extra for m, extra in zip(draft.plan, draft.extra, strict=True)]
    if status is None:
        return 100.0
    done = sum(allotted[:status.index]) + min(status.elapsed_s, status.allotted_s)
    return 100.0 * done / sum(allotted)
