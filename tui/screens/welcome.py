"""The first start on a new home: what the network is, and the learner's display name.
Skippable; the app remembers it was shown (a home preference) and never asks again."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, Static

from p2pnode import actions
from protocol.errors import InvalidRecordError
from protocol.records import validate_record
from tui.screens.base import NodeModal

WELCOME_PREFERENCE = "tui.welcomed"
ABOUT = ("Learning circles are small groups that meet to take a course together. This app "
         "finds circles on the computers around you and shares yours with them, with no "
         "central server: what you publish is signed by this computer's key and copied from "
         "peer to peer.")


class WelcomeScreen(NodeModal):
    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static("[b]Welcome to P2PU learning circles[/b]", classes="dialog-title")
            yield Static(ABOUT)
            yield Label("Your name, as others will see it (you can skip this)")
            yield Input(placeholder="e.g. Ana", id="name", compact=True)
            yield Static(id="error", classes="error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save", variant="primary", id="save")
                yield Button("Skip", id="skip")

    @on(Button.Pressed, "#save")
    @on(Input.Submitted)
    def _save(self) -> None:
        name = self.query_one("#name", Input).value.strip()
        try:
            validate_record("profile", {"name": name, "enc_key": b"\0" * 32})
        except InvalidRecordError as exc:
            self.query_one("#error", Static).update(f"name {exc.reason}")
            return
        self.finish(name)

    @on(Button.Pressed, "#skip")
    def action_dismiss_none(self) -> None:
        self.finish(None)

    @work(exclusive=True, group="welcome", exit_on_error=False)
    async def finish(self, name: str | None) -> None:
        if name:
            await self.node.perform(actions.set_profile, name)
        await self.node.set_preference(WELCOME_PREFERENCE, "1")
        self.dismiss(name)
