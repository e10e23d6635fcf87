"""A facilitator's review of a circle's sign-ups: names with their sealed details opened
(contact, goal, answer — readable only with this node's key), accept or decline each."""

from __future__ import annotations

import dataclasses
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Footer, Static

from p2pnode import actions
from protocol.identity import fingerprint
from tui.screens.base import NodeScreen
from tui.widgets.status_bar import StatusBar


class SignupsScreen(NodeScreen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("a", "decide(True)", "Accept"),
        Binding("d", "decide(False)", "Decline"),
    ]

    @dataclasses.dataclass
    class Loaded(Message):
        rows: list[dict[str, Any]]

    def __init__(self, circle_id: bytes) -> None:
        super().__init__()
        self.circle_id = circle_id
        self.rows: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        yield StatusBar()
        yield Static("[b]Sign-ups[/b]  — details are sealed to the facilitators; "
                     "[b]a[/b] accepts, [b]d[/b] declines", classes="screen-title")
        yield DataTable(id="signups", cursor_type="row", zebra_stripes=True)
        yield Static(id="empty", classes="empty-state")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns("Name", "Status", "Contact", "Goal", "Answer")
        self.reload()

    def reload(self) -> None:
        self.load()

    def node_changed(self, kinds: frozenset[str]) -> None:
        if kinds & {"join", "join.accept", "delete"}:
            self.reload()

    @work(exclusive=True, group="signups", exit_on_error=False)
    async def load(self) -> None:
        rows = await self.node.perform(actions.list_joins, self.circle_id)
        self.post_message(self.Loaded(rows))

    @on(Loaded)
    def _show(self, message: Loaded) -> None:
        self.rows = message.rows
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        for r in message.rows:
            details = r["details"]
            table.add_row(f"{r['display_name']} ({fingerprint(r['node_id'])})", r["status"],
                          details.get("contact", details.get("error", "")),
                          details.get("goal", ""), details.get("answer", ""),
                          key=r["join_id"].hex())
        if message.rows:
            table.move_cursor(row=min(row, len(message.rows) - 1))
        empty = self.query_one("#empty", Static)
        empty.display = not message.rows
        empty.update("Nobody has signed up yet.")

    def action_decide(self, accepted: bool) -> None:
        table = self.query_one(DataTable)
        if not self.rows or table.cursor_row >= len(self.rows):
            return
        row = self.rows[table.cursor_row]
        self.decide(row["join_id"], accepted, row["display_name"])

    @work(exclusive=True, group="decide", exit_on_error=False)
    async def decide(self, join_id: bytes, accepted: bool, name: str) -> None:
        await self.node.perform(actions.decide_join, join_id, accepted)
        self.notify(f"{'Accepted' if accepted else 'Declined'} {name}.", markup=False)
        self.reload()
