"""Announce a circle (or, for its facilitators, edit one): the circle form, then one signed
entry. Nothing is written while the protocol's validator refuses a field; a new meeting list
on an edit is a reschedule, which the learners' nodes notify them of."""

from __future__ import annotations

import dataclasses
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Button, Footer, Static

from p2pnode import actions
from p2pnode.store.models import CircleDetail
from tui.screens.base import NodeScreen
from tui.widgets.circle_form import FIELDS, CircleForm
from tui.widgets.status_bar import StatusBar

#: widget id -> its label, without "(optional)" and examples, for the summary line
LABELS = {f[0]: f[2].split(" (")[0] for f in FIELDS if isinstance(f, tuple)}


class AnnounceScreen(NodeScreen):
    """The circle form with Publish / Cancel."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("ctrl+s", "publish", "Publish"),
    ]

    @dataclasses.dataclass
    class Published(Message):
        circle_id: bytes

    def __init__(self, detail: CircleDetail | None = None) -> None:
        super().__init__()
        self.detail = detail
        self.original: dict[str, Any] = {}

    def compose(self) -> ComposeResult:
        yield StatusBar()
        title = (f"Edit “{self.detail.summary.name}”" if self.detail
                 else "Announce a learning circle")
        yield Static(f"[b]{title}[/b]  — fields marked optional may stay empty",
                     classes="screen-title")
        yield CircleForm(self.node.node_id, today=self.p2p.today(), detail=self.detail)
        yield Static(id="form-summary", classes="error")
        with Horizontal(classes="dialog-buttons"):
            yield Button("Save changes" if self.detail else "Publish", variant="primary",
                         id="publish")
            yield Button("Cancel", id="back")
        yield Footer()

    def on_mount(self) -> None:
        self.original, _ = self.query_one(CircleForm).read()
        self.query_one("#name").focus()

    @on(Button.Pressed, "#back")
    def _back(self) -> None:
        self.app.pop_screen()

    @on(Button.Pressed, "#publish")
    def action_publish(self) -> None:
        form = self.query_one(CircleForm)
        form.show_all = True
        errors = form.show_errors()
        summary = self.query_one("#form-summary", Static)
        if errors:
            labels = [LABELS.get(widget_id, widget_id) for widget_id in errors]
            summary.update(f"{len(errors)} field{'s' if len(errors) != 1 else ''} to fix: "
                           + "; ".join(labels))
            first = next(iter(errors))
            self.query_one(f"#{first}").focus()
            return
        summary.update("")
        record, _ = form.read()
        if self.detail is None:
            self.publish(record)
            return
        changes = form.changes(self.original)
        if not changes:
            self.notify("Nothing changed.")
            return
        self.save(self.detail.summary.id, changes)

    @work(exclusive=True, group="publish", exit_on_error=False)
    async def publish(self, record: dict[str, Any]) -> None:
        entry = await self.node.perform(actions.announce_circle, record)
        self.notify(f"Announced “{record['name']}”. Peers will see it as they sync.",
                    markup=False)
        self.p2p.replace_with_circle(entry.id)

    @work(exclusive=True, group="publish", exit_on_error=False)
    async def save(self, circle_id: bytes, changes: dict[str, Any]) -> None:
        await self.node.perform(actions.update_circle, circle_id, changes)
        what = "rescheduled" if "meetings" in changes or "meeting_time" in changes else "updated"
        self.notify(f"The circle is {what}; signed-up learners will be told.")
        self.app.pop_screen()

