"""Meeting mode's dialogs: the phase plan (minutes per phase, remembered per circle), and past
meetings' plus/delta, so a facilitator can open with "last time you said…".
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.markup import escape
from textual.widgets import Button, Input, Static

from p2pnode.errors import InvalidInput
from p2pnode.meeting import PHASES, check_plan
from p2pnode.store.models import CircleDetail
from tui import format as fmt
from tui.screens.base import NodeModal
from tui.screens.forms import Dialog
from tui.widgets.meeting_clock import PHASE_HINTS, PHASE_TITLES
from tui.widgets.meeting_day import note_lines, past_meetings_with_notes


class PlanForm(Dialog):
    """Minutes per phase for this meeting and the circle's next ones."""

    TITLE_TEXT = "Phase plan"
    OK = "Use this plan"
    DEFAULT_CSS = """
    PlanForm .plan-row { height: 1; margin-top: 1; }
    PlanForm .plan-name { width: 14; }
    PlanForm .plan-row Input { width: 6; margin-right: 1; }
    PlanForm .plan-hint { width: 1fr; height: 1; }
    """

    def __init__(self, plan: tuple[int, ...], duration_min: int) -> None:
        super().__init__()
        self.plan, self.duration_min = plan, duration_min

    def body(self) -> ComposeResult:
        yield Static(f"Minutes for each phase (the circle meets for {self.duration_min} min)."
                     " The plan is remembered for this circle's next meetings.")
        for index, name in enumerate(PHASES):
            with Horizontal(classes="plan-row"):
                yield Static(PHASE_TITLES[name], classes="plan-name")
                yield Input(str(self.plan[index]), id=f"phase-{index}", type="integer",
                            max_length=3)
                yield Static(f"min  [dim]{PHASE_HINTS[name]}[/dim]", classes="plan-hint")
        yield Static(id="plan-total", classes="hint")

    def on_input_changed(self, event: Input.Changed) -> None:
        try:
            total = sum(int(self.text(f"phase-{i}")) for i in range(len(PHASES)))
        except ValueError:
            return
        note = "" if total == self.duration_min else f" (the circle meets for" \
            f" {self.duration_min})"
        self.query_one("#plan-total", Static).update(f"{total} min in all{note}")

    def result(self) -> tuple[int, ...]:
        minutes = []
        for index, name in enumerate(PHASES):
            try:
                minutes.append(int(self.text(f"phase-{index}")))
            except ValueError:
                raise InvalidInput(f"{PHASE_TITLES[name]}: a whole number of minutes"
                                   ) from None
        return check_plan(minutes)


class PastNotes(NodeModal):
    """Earlier meetings' plus/delta, the latest first."""

    BINDINGS = [Binding("escape,h", "dismiss_none", "Close")]

    def __init__(self, detail: CircleDetail, before: str) -> None:
        super().__init__()
        self.detail, self.before = detail, before

    def compose(self) -> ComposeResult:
        s = self.detail.summary
        with VerticalScroll(classes="dialog wide"):
            yield Static("[b]Last time you said…[/b]", classes="dialog-title")
            meetings = past_meetings_with_notes(self.detail, self.before)
            if not meetings:
                yield Static("No plus/delta from earlier meetings yet.")
            for m in meetings:
                label = fmt.meeting_label(m.date, s.meeting_time, s.timezone)
                lines = "\n".join("  " + escape(line) for line in note_lines(m.notes))
                yield Static(f"[b]Meeting {m.number}[/b] · {escape(label)}\n{lines}",
                             classes="past-note")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Close", id="close", variant="primary")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)
