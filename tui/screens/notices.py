"""Notifications that matter, newest first: reschedules, cancellations, sign-ups and accepts
about my circles, including those that came while the app was closed."""

from __future__ import annotations

import datetime as dt

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from p2pnode.store.inbox import Notice
from tui.screens.base import NodeModal


class NoticesScreen(NodeModal):
    BINDINGS = [("escape", "dismiss_none", "Close"), ("enter", "open", "Open circle")]

    def __init__(self, notices: list[tuple[Notice, bool]]) -> None:
        super().__init__()
        self.notices = list(reversed(notices))

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Static("[b]Notifications[/b]", classes="dialog-title")
            if not self.notices:
                yield Static("Nothing yet. Reschedules, cancellations and sign-ups about your "
                             "circles show up here.")
            table = DataTable(cursor_type="row")
            table.add_columns("When", "What")
            for notice, away in self.notices:
                when = dt.datetime.fromtimestamp(notice.at_ms / 1000, dt.UTC)
                table.add_row(f"{when:%d %b %H:%M}{' (away)' if away else ''}", notice.text)
            yield table

    def action_open(self) -> None:
        table = self.query_one(DataTable)
        if self.notices and 0 <= table.cursor_row < len(self.notices):
            circle = self.notices[table.cursor_row][0].circle
            self.dismiss(None)
            self.p2p.open_circle(circle)
