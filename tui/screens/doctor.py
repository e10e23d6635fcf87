"""`d` on the peers screen (and the palette): the checks of `p2pnode doctor` for the running
node, as a checklist — identity, network id, interfaces, the port, discovery, the address
others can add, each known peer — with a hint under whatever is not fine.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Static

from tui.screens.base import NodeModal

_MARKS = {True: ("✓", "green"), False: ("✗", "red"), None: ("•", "yellow")}


def checklist(report: dict[str, Any]) -> Text:
    """One line per check (a mark, the check, what it found) and its hint below (dim when the
    check is fine: e.g. the firewall hint under the address others dial)."""
    text = Text()
    for check in report.get("checks", []):
        mark, colour = _MARKS.get(check.get("ok"), _MARKS[None])
        text.append(f" {mark} ", style=f"bold {colour}")
        text.append(f"{check.get('check')}: ", style="bold")
        text.append(f"{check.get('detail')}\n")
        if check.get("hint"):
            text.append(f"     {check['hint']}\n", style="italic dim" if check.get("ok")
                        else "italic")
    return text


class DoctorScreen(NodeModal):
    """Runs the checks in a worker (a port probe takes a moment) and shows them."""

    BINDINGS = [("escape", "dismiss_none", "Close"), ("r", "rerun", "Check again")]

    @dataclasses.dataclass
    class Checked(Message):
        report: dict[str, Any]

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog wide doctor"):
            yield Static("[b]Why can't I see peers?[/b]  (r checks again, escape closes)",
                         classes="dialog-title")
            yield Static("checking…", id="checks")

    def on_mount(self) -> None:
        self.run_checks()

    def action_rerun(self) -> None:
        self.query_one("#checks", Static).update("checking…")
        self.run_checks()

    @work(exclusive=True, group="doctor", exit_on_error=False)
    async def run_checks(self) -> None:
        self.post_message(self.Checked(await self.node.doctor()))

    @on(Checked)
    def _checked(self, message: Checked) -> None:
        self.query_one("#checks", Static).update(checklist(message.report))
