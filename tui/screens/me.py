"""Me: the learner's display name (editable), fingerprint and node id (shown in full and copied
with a key), the network (open, or a private key's id: switching needs a restart, and it says
how), the home's path, and the sneakernet: export every entry to a file for a USB stick, import
one, each with a progress bar, and the import's report (accepted, already held, refused with
reasons).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Footer, Input, ProgressBar, Static

from p2pnode import actions
from p2pnode.config import OPEN_NETWORK_KEY, network_id
from p2pnode.errors import NodeError
from p2pnode.store.exchange import ImportReport
from protocol.errors import InvalidRecordError
from protocol.identity import node_id_text
from tui.screens.base import NodeScreen, plain_error
from tui.screens.share import PathSuggester
from tui.widgets.status_bar import StatusBar

_OPEN = network_id(OPEN_NETWORK_KEY)


def tilde(path: Path | str) -> str:
    """`path` with the user's home directory written ``~`` (shorter, and what they type)."""
    text, home = str(path), str(Path.home())
    return "~" + text[len(home):] if text == home or text.startswith(home + "/") else text
_REASONS_SHOWN = 8


def import_summary(report: ImportReport) -> Text:
    """The import's report as a learner reads it."""
    text = Text()
    text.append(f"{report.new} accepted", style="bold green")
    text.append(f" · {report.known} already held · ")
    text.append(f"{report.rejected} refused", style="bold red" if report.rejected else "")
    for reason in report.reasons[:_REASONS_SHOWN]:
        text.append(f"\n  refused {reason}")
    if report.rejected > _REASONS_SHOWN:
        text.append(f"\n  … and {report.rejected - _REASONS_SHOWN} more")
    if report.truncated:
        text.append(f"\n  {report.truncated}", style="bold red")
    return text


class MeScreen(NodeScreen):
    """Who I am on the network, and the sneakernet."""

    AUTO_FOCUS = None  # the screen's keys act; `n` goes to the name
    BINDINGS = [
        Binding("n", "edit_name", "Name"),
        Binding("c", "copy_id", "Copy id"),
        Binding("f", "copy_fingerprint", "Copy fingerprint", show=False),
        Binding("x", "export", "Export"),
        Binding("i", "import_file", "Import"),
    ]
    DEFAULT_CSS = """
    MeScreen #me-body {
        padding: 0 1;
    }
    MeScreen .row {
        height: auto;
        margin-top: 1;
    }
    MeScreen .row Input {
        width: 1fr;
    }
    MeScreen .row Button {
        margin-left: 1;
        min-width: 12;
    }
    MeScreen ProgressBar {
        margin-top: 1;
    }
    MeScreen .value {
        color: $accent;
    }
    """

    @dataclasses.dataclass
    class Loaded(Message):
        status: dict[str, Any]

    def __init__(self) -> None:
        super().__init__()
        self.status: dict[str, Any] = {}

    def compose(self) -> ComposeResult:
        yield StatusBar()
        with VerticalScroll(id="me-body"):
            yield Static("Display name", classes="section")
            with Horizontal(classes="row"):
                yield Input(placeholder="how others see you", id="name", compact=True,
                            max_length=80)
                yield Button("Save", id="save-name", compact=True)
            yield Static("Identity", classes="section")
            yield Static(id="identity")
            yield Static("Network", classes="section")
            yield Static(id="network")
            yield Static("This node's home", classes="section")
            yield Static(id="home")
            yield Static("Sneakernet (a file for a USB stick)", classes="section")
            with Horizontal(classes="row"):
                yield Input(id="export-path", compact=True, suggester=PathSuggester())
                yield Button("Export", id="export", compact=True)
            yield ProgressBar(id="export-bar", show_eta=False)
            yield Static(id="export-result")
            with Horizontal(classes="row"):
                yield Input(placeholder="a .p2pu file someone gave you", id="import-path",
                            compact=True, suggester=PathSuggester())
                yield Button("Import", id="import", compact=True)
            yield ProgressBar(id="import-bar", show_eta=False)
            yield Static(id="import-result")
        yield Footer()

    def on_mount(self) -> None:
        for bar in self.query(ProgressBar):
            bar.display = False
        self.query_one("#export-path", Input).value = tilde(self.default_export_path())
        self.reload()

    def default_export_path(self) -> Path:
        return self.node.home_path.parent / f"p2pnode-{self.p2p.today():%Y-%m-%d}.p2pu"

    def status_changed(self) -> None:
        self.reload()

    @work(exclusive=True, group="me", exit_on_error=False)
    async def reload(self) -> None:
        self.post_message(self.Loaded(await self.node.status()))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        status = message.status
        name_box = self.query_one("#name", Input)
        if not name_box.has_focus and name_box.value != (status.get("name") or ""):
            name_box.value = status.get("name") or ""
        self.status = status
        node_id = status.get("node_id")
        self.query_one("#identity", Static).update(Text.assemble(
            "Fingerprint  ", (status.get("fingerprint", ""), "bold"), "\n",
            "Node id      ", (node_id_text(node_id) if node_id else "", "bold"), "\n",
            ("c copies the node id, f the fingerprint. Others see your name with the"
             " fingerprint beside it.", "italic")))
        network = status.get("network", "")
        if network == _OPEN:
            where = Text.assemble(("the open network", "bold"), f" (id {network})")
        else:
            where = Text.assemble(("a private network", "bold"), f", id {network}")
        self.query_one("#network", Static).update(Text.assemble(
            where, "\nSwitching needs a restart: quit, then start with --network-key FILE"
            " (or without it for the open network)."))
        self.query_one("#home", Static).update(Text(tilde(status.get("home", ""))))

    # -- name ----------------------------------------------------------------------------
    def action_edit_name(self) -> None:
        self.query_one("#name", Input).focus()

    @on(Button.Pressed, "#save-name")
    @on(Input.Submitted, "#name")
    def _save_name(self) -> None:
        self.save_name(self.query_one("#name", Input).value.strip())

    @work(exclusive=True, group="name", exit_on_error=False)
    async def save_name(self, name: str) -> None:
        profile = await self.node.perform(actions.my_profile) or {}
        try:
            await self.node.perform(actions.set_profile, name, bio=profile.get("bio"),
                                    languages=profile.get("languages"))
        except InvalidRecordError as exc:
            self.notify(plain_error(exc), title="Not saved", severity="error", markup=False)
            return
        self.notify(f"Peers now see you as {name}.", title="Name saved", markup=False)
        self.set_focus(None)
        self.p2p.refresh_status()

    # -- identity ------------------------------------------------------------------------
    def action_copy_id(self) -> None:
        node_id = self.status.get("node_id")
        if node_id:
            self.app.copy_to_clipboard(node_id_text(node_id))
            self.notify("Node id copied to the clipboard.", markup=False)

    def action_copy_fingerprint(self) -> None:
        if self.status.get("fingerprint"):
            self.app.copy_to_clipboard(self.status["fingerprint"])
            self.notify("Fingerprint copied to the clipboard.", markup=False)

    # -- sneakernet ----------------------------------------------------------------------
    def action_export(self) -> None:
        self.export(self.query_one("#export-path", Input).value.strip())

    def action_import_file(self) -> None:
        path = self.query_one("#import-path", Input).value.strip()
        if not path:
            self.query_one("#import-path", Input).focus()
            return
        self.import_file(path)

    @on(Button.Pressed, "#export")
    @on(Input.Submitted, "#export-path")
    def _export_pressed(self) -> None:
        self.action_export()

    @on(Button.Pressed, "#import")
    @on(Input.Submitted, "#import-path")
    def _import_pressed(self) -> None:
        self.action_import_file()

    @work(exclusive=True, group="export", exit_on_error=False)
    async def export(self, path: str) -> None:
        bar, result = self.query_one("#export-bar", ProgressBar), self.query_one(
            "#export-result", Static)
        if not path:
            result.update("Give a file name to export to.")
            return
        bar.update(total=None, progress=0)
        bar.display = True
        result.update("exporting…")
        result.scroll_visible()
        try:
            async for step in self.node.export_progress(path):
                bar.update(total=max(1, step.get("total") or 1), progress=step.get("entries", 0))
                if step.get("done"):
                    result.update(Text(f"Exported {step['entries']} entries to {step['path']}."
                                       " Carry it to another node and import it there."))
        except NodeError as exc:
            bar.display = False
            result.update(Text(plain_error(exc), style="red"))

    @work(exclusive=True, group="import", exit_on_error=False)
    async def import_file(self, path: str) -> None:
        bar, result = self.query_one("#import-bar", ProgressBar), self.query_one(
            "#import-result", Static)
        bar.update(total=None, progress=0)
        bar.display = True
        result.update("importing…")
        result.scroll_visible()
        try:
            async for step in self.node.import_progress(path):
                if step.get("done"):
                    bar.update(total=1, progress=1)
                    result.update(import_summary(step["report"]))
                else:
                    bar.update(total=max(1, step.get("total_bytes") or 1),
                               progress=step.get("read_bytes", 0))
        except NodeError as exc:
            bar.display = False
            result.update(Text(plain_error(exc), style="red"))
