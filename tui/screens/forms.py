"""Small dialogs of the circle screen: join, RSVP, feedback, meeting note, cancel, calendar,
add a peer, and a yes/no confirmation. Each checks its input with the protocol's own validator
(`protocol.records.validate_record`) before it returns, so what it accepts a peer accepts too.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Input, Label, Select, Static, TextArea

from p2pnode import actions
from p2pnode.errors import InvalidInput
from p2pnode.files import write_file_atomically
from p2pnode.store.models import CircleDetail
from protocol.errors import InvalidRecordError
from protocol.records import validate_record
from tui import format as fmt
from tui.screens.base import NodeModal

_ANY_ID = b"\x00" * 32
_RATINGS = [(f"{n} {'★' * n}", n) for n in range(5, 0, -1)]


def _buttons(ok: str) -> ComposeResult:
    with Horizontal(classes="dialog-buttons"):
        yield Button(ok, variant="primary", id="ok")
        yield Button("Cancel", id="cancel")


class Dialog(NodeModal):
    """A titled box with an error line and OK/Cancel; subclasses fill `body()` and `result()`."""

    TITLE_TEXT = ""
    OK = "OK"

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog"):
            yield Static(f"[b]{self.TITLE_TEXT}[/b]", classes="dialog-title")
            yield from self.body()
            yield Static(id="error", classes="error")
            yield from _buttons(self.OK)

    def body(self) -> ComposeResult:
        return iter(())

    def on_mount(self) -> None:
        for widget in self.query("Input, Select"):
            widget.compact = True  # type: ignore[attr-defined]

    def result(self) -> Any:
        """The value to return, or raise InvalidRecordError / InvalidInput to stay open."""
        return True

    def show_error(self, text: str) -> None:
        self.query_one("#error", Static).update(text)

    @on(Button.Pressed, "#ok")
    @on(Input.Submitted)
    def _ok(self) -> None:
        self.submit()

    def submit(self) -> None:
        try:
            value = self.result()
        except InvalidRecordError as exc:
            self.show_error(f"{exc.field}: {exc.reason}")
            return
        except InvalidInput as exc:
            self.show_error(str(exc))
            return
        self.dismiss(value)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)

    def text(self, widget_id: str) -> str:
        widget = self.query_one(f"#{widget_id}")
        return (widget.text if isinstance(widget, TextArea) else widget.value).strip()

    def chosen(self, widget_id: str) -> Any:
        value = self.query_one(f"#{widget_id}", Select).value
        return None if value is Select.NULL else value


def _optional_int(text: str, what: str) -> int | None:
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise InvalidInput(f"{what} must be a whole number") from None


class Confirm(Dialog):
    def __init__(self, question: str, ok: str = "Yes") -> None:
        super().__init__()
        self.question, self.OK = question, ok

    def body(self) -> ComposeResult:
        yield Static(self.question)


class JoinForm(Dialog):
    """Sign up: the group sees the display name; contact, goal and answer are sealed."""

    TITLE_TEXT = "Join this circle"
    OK = "Join"

    def __init__(self, detail: CircleDetail, name: str | None) -> None:
        super().__init__()
        self.detail, self.known_name = detail, name

    def body(self) -> ComposeResult:
        yield Label("Your name, as the group will see it")
        yield Input(self.known_name or "", id="display_name")
        yield Label("How the facilitators can reach you (email, phone…)")
        yield Input(id="contact")
        yield Label("What you hope to learn")
        yield Input(id="goal")
        if self.detail.signup_question:
            yield Label(f"The facilitators ask: {self.detail.signup_question}")
            yield Input(id="answer")
        yield Static("Your contact, goal and answer are [b]sealed[/b]: only this circle's "
                     "facilitators can read them. Everyone in the network sees your name.",
                     classes="hint")

    def result(self) -> dict[str, Any]:
        values: dict[str, Any] = {"display_name": self.text("display_name")}
        for key in ("contact", "goal", "answer"):
            if self.query(f"#{key}") and self.text(key):
                values[key] = self.text(key)
        validate_record("join", {"circle": _ANY_ID, "action": "join",
                                 "display_name": values["display_name"]})
        return values


class RsvpForm(Dialog):
    TITLE_TEXT = "RSVP"
    OK = "Going"

    def __init__(self, detail: CircleDetail) -> None:
        super().__init__()
        self.detail = detail

    def body(self) -> ComposeResult:
        s = self.detail.summary
        number = next((m.number for m in self.detail.meetings if m.date == s.next_meeting), "?")
        label = fmt.meeting_label(s.next_meeting or "", s.meeting_time, s.timezone)
        yield Static(f"Will you come to meeting {number}, {label}?")
        yield Button("Not going", id="no")

    @on(Button.Pressed, "#no")
    def _no(self) -> None:
        self.dismiss(False)


class FeedbackForm(Dialog):
    TITLE_TEXT = "Feedback on this circle"
    OK = "Send"

    def body(self) -> ComposeResult:
        yield Select(_RATINGS, prompt="How was the course? (1-5)", id="course_rating")
        yield Select(_RATINGS, prompt="Would you recommend it? (1-5)",
                     id="recommendation_rating")
        yield Input(placeholder="Your goal", id="goal")
        yield Select(_RATINGS, prompt="How well did you reach it? (1-5)", id="goal_rating")
        yield TextArea(id="reason", placeholder="Why? (optional)")
        yield Input(placeholder="What next? (optional)", id="next_steps")

    def result(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for key in ("course_rating", "recommendation_rating", "goal_rating"):
            if self.chosen(key) is not None:
                values[key] = self.chosen(key)
        for key in ("goal", "reason", "next_steps"):
            if self.text(key):
                values[key] = self.text(key)
        if "course_rating" not in values:
            raise InvalidInput("please rate the course")
        validate_record("feedback", {"circle": _ANY_ID, "role": "learner", **values})
        return values


class NoteForm(Dialog):
    """A facilitator's plus/delta for one meeting."""

    TITLE_TEXT = "Meeting note"
    OK = "Save"

    def __init__(self, detail: CircleDetail) -> None:
        super().__init__()
        self.detail = detail

    def body(self) -> ComposeResult:
        s = self.detail.summary
        options = [(f"{m.number}. {fmt.meeting_label(m.date, s.meeting_time, s.timezone)}",
                    m.number) for m in self.detail.meetings]
        past = [m.number for m in self.detail.meetings if not s.next_meeting
                or m.date < s.next_meeting]
        yield Select(options, value=past[-1] if past else 1, allow_blank=False, id="number")
        yield Input(placeholder="How many came?", id="attendance", type="integer")
        yield Label("What went well (+), one per line")
        yield TextArea(id="plus")
        yield Label("What to change (Δ), one per line")
        yield TextArea(id="delta")
        yield Input(placeholder="Recap (optional)", id="recap")

    def result(self) -> dict[str, Any]:
        values: dict[str, Any] = {
            "number": self.chosen("number"),
            "plus": [line.strip() for line in self.text("plus").splitlines() if line.strip()],
            "delta": [line.strip() for line in self.text("delta").splitlines() if line.strip()],
        }
        attendance = _optional_int(self.text("attendance"), "attendance")
        if attendance is not None:
            values["attendance"] = attendance
        if self.text("recap"):
            values["recap"] = self.text("recap")
        body = {k: v for k, v in values.items() if k != "number"}
        validate_record("meeting.note", {"circle": _ANY_ID, "date": "2000-01-01", **body})
        return values


class CancelForm(Dialog):
    TITLE_TEXT = "Cancel this circle"
    OK = "Cancel the circle"

    def body(self) -> ComposeResult:
        yield Static("Everyone who signed up is told, with your reason.")
        yield Input(placeholder="Reason (optional)", id="reason")

    def result(self) -> str:
        reason = self.text("reason")
        validate_record("circle.cancel", {"circle": _ANY_ID, **({"reason": reason}
                                                                if reason else {})})
        return reason


class AddPeerForm(Dialog):
    TITLE_TEXT = "Add a peer by address"
    OK = "Connect"

    def body(self) -> ComposeResult:
        yield Static("The other node prints its port when it starts (p2pnode run), e.g. "
                     "192.168.1.20:7654.")
        yield Input(placeholder="host:port", id="address")

    def result(self) -> str:
        from p2pnode.net.server import split_host_port

        address = self.text("address")
        try:
            split_host_port(address)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        return address


class CalendarForm(Dialog):
    """Write the meetings as an .ics file; never over an existing file."""

    TITLE_TEXT = "Add to calendar"
    OK = "Write"

    def __init__(self, detail: CircleDetail, path: Path) -> None:
        super().__init__()
        self.detail, self.path = detail, path

    def body(self) -> ComposeResult:
        yield Static("An .ics file your calendar app can import, one event per meeting.")
        yield Input(str(self.path), id="path")

    def result(self) -> Path:
        path = Path(self.text("path")).expanduser()
        if not self.text("path"):
            raise InvalidInput("give a file name")
        if path.exists():
            raise InvalidInput(f"{path} already exists; choose another name")
        return path

    def submit(self) -> None:
        try:
            path = self.result()
        except InvalidInput as exc:
            self.show_error(str(exc))
            return
        self.write(path)

    @work(exclusive=True, group="calendar", exit_on_error=False)
    async def write(self, path: Path) -> None:
        data = await self.node.perform(actions.circle_calendar_file, self.detail.summary.id)
        await asyncio.to_thread(write_file_atomically, path, data)
        self.notify(f"Calendar written to {path}", timeout=10, markup=False)
        self.dismiss(path)
