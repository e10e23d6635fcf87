"""Resources: every file shared on the network (title, size, format, licence, circle, who shared
it, how many connected peers hold it, whether it is here), narrowed by circle and by text; share
a file, download several at once with a bar each, cancel, and say where a file went.

Downloads belong to the app (`tui.transfers`), so they go on while other screens show; this
screen lists them under the table. Live: new `resource` entries, peers coming and going and
transfers ending reload the table in a worker (cursor kept).
"""

from __future__ import annotations

import dataclasses

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import DataTable, Footer, Input, Select, Static

from p2pnode.store.models import Resource, Shared
from protocol.identity import fingerprint
from tui.screens.base import NodeScreen
from tui.transfers import human_size
from tui.widgets.keyed_table import KeyedTable
from tui.widgets.status_bar import StatusBar
from tui.widgets.transfer_list import TransferList

COLUMNS = ("Title", "Size", "Here", "Holders", "Format", "Licence", "Circle", "Shared by")
_KINDS = frozenset({"resource", "delete", "circle", "circle.update", "profile"})
#: seconds between refreshes of the holders while the screen shows
_REFRESH = 2.0


def here_text(resource: Resource, transfer) -> str:
    if resource.held:
        return "held"
    if transfer is not None and transfer.active and transfer.total_bytes:
        return f"↓ {100 * transfer.done_bytes // transfer.total_bytes}%"
    if transfer is not None and transfer.active:
        return "↓ …"
    return "-"


class ResourcesScreen(NodeScreen):
    """Shared files: `enter` downloads, `s` shares, `x` cancels, `o` says where it is."""

    AUTO_FOCUS = "#resources"
    BINDINGS = [
        Binding("slash", "focus_search", "Search"),
        Binding("enter", "download", "Download", show=True),
        Binding("s", "share", "Share"),
        Binding("x", "cancel", "Cancel"),
        Binding("o", "open_folder", "Where"),
        Binding("escape", "focus_table", "Table", show=False),
    ]
    DEFAULT_CSS = """
    ResourcesScreen #resource-filters {
        height: auto;
        padding: 0 1;
    }
    ResourcesScreen #resource-search {
        width: 1fr;
    }
    ResourcesScreen #resource-circle {
        width: 36;
    }
    ResourcesScreen #resources {
        height: 1fr;
    }
    """

    @dataclasses.dataclass
    class Loaded(Message):
        resources: list[Resource]
        circles: dict[bytes, str]

    def __init__(self) -> None:
        super().__init__()
        self.resources: list[Resource] = []
        self.circle_names: dict[bytes, str] = {}

    def compose(self) -> ComposeResult:
        yield StatusBar()
        with Horizontal(id="resource-filters"):
            yield Input(placeholder="/ search titles, people, circles", id="resource-search",
                        compact=True)
            yield Select([], prompt="All circles", id="resource-circle", compact=True)
        yield KeyedTable(COLUMNS, id="resources")
        yield Static(id="resource-count", classes="count-line")
        yield Static(id="resource-empty", classes="empty-state")
        yield TransferList()
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#resource-empty").display = False
        self.reload()
        self.transfers_changed()
        # which peers hold what changes without an entry (a peer announces its files)
        self.set_interval(_REFRESH, self._tick)

    def _tick(self) -> None:
        if self.is_current:
            self.reload()

    def on_screen_resume(self) -> None:
        self.reload()

    # -- loading -------------------------------------------------------------------------
    @work(exclusive=True, group="resources", exit_on_error=False)
    async def reload(self) -> None:
        resources = await self.node.resources()
        circles = await self.node.circles(include_past=True, limit=500)
        self.post_message(self.Loaded(resources, {c.id: c.name for c in circles}))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        self.resources = message.resources
        self.circle_names = message.circles
        select = self.query_one("#resource-circle", Select)
        used = sorted({r.circle for r in message.resources if r.circle},
                      key=lambda c: self._circle_name(c).lower())
        options = [(self._circle_name(c), c.hex()) for c in used]
        if [value for _, value in options] != getattr(self, "_options", None):
            chosen = select.value
            self._options = [value for _, value in options]
            select.set_options(options)
            if chosen in self._options:
                select.value = chosen
        self._show()

    def _circle_name(self, circle: bytes | None) -> str:
        if circle is None:
            return ""
        return self.circle_names.get(circle) or fingerprint(circle)

    def _visible(self) -> list[Resource]:
        text = self.query_one("#resource-search", Input).value.strip().lower()
        circle = self.query_one("#resource-circle", Select).value
        shown = []
        for r in self.resources:
            if isinstance(circle, str) and (r.circle is None or r.circle.hex() != circle):
                continue
            haystack = " ".join((r.title, r.caption or "", r.author.label,
                                 self._circle_name(r.circle), r.media_type)).lower()
            if text and not all(word in haystack for word in text.split()):
                continue
            shown.append(r)
        return shown

    def _show(self) -> None:
        visible = self._visible()
        transfers = self.p2p.transfers
        rows = [(r.entry_id.hex(),
                 (r.title, human_size(r.size), here_text(r, transfers.get(r.blob)),
                  str(len(r.holders)), r.format, r.licence or "-",
                  self._circle_name(r.circle) or "-", r.author.label))
                for r in visible]
        table = self.query_one("#resources", KeyedTable)
        table.show(rows)
        empty = not self.resources
        table.display = not empty
        self.query_one("#resource-count", Static).update(
            f"{len(visible)} of {len(self.resources)} resources" if len(visible) != len(
                self.resources) else f"{len(visible)} resource{'s' if len(visible) != 1 else ''}")
        panel = self.query_one("#resource-empty", Static)
        panel.display = empty
        if empty:
            panel.update("[b]No shared files yet.[/b]\n\nPress [b]s[/b] to share one: course"
                         " notes, slides, a recording. Files others share appear here as"
                         " their entries arrive; [b]enter[/b] downloads one.")

    # -- live ----------------------------------------------------------------------------
    def node_changed(self, kinds: frozenset[str]) -> None:
        if kinds & _KINDS:
            self.reload()

    def peers_changed(self) -> None:
        self.reload()

    def transfers_changed(self) -> None:
        items = list(self.p2p.transfers.items.values())
        self.query_one(TransferList).refresh_from(items)
        if any(not t.active for t in items):
            self.reload()  # a download ended: "held" changed
        else:
            self._show()

    @on(Input.Changed, "#resource-search")
    @on(Select.Changed, "#resource-circle")
    def _filters(self) -> None:
        self._show()

    @on(Input.Submitted, "#resource-search")
    def _search_done(self) -> None:
        self.action_focus_table()

    # -- actions -------------------------------------------------------------------------
    def selected(self) -> Resource | None:
        key = self.query_one("#resources", KeyedTable).selected_key
        return next((r for r in self.resources if r.entry_id.hex() == key), None)

    @on(DataTable.RowSelected)
    def _row_selected(self) -> None:
        self.action_download()

    def action_download(self) -> None:
        resource = self.selected()
        if resource is None:
            return
        transfer = self.p2p.transfers.get(resource.blob)
        if resource.held and transfer is not None and transfer.path is not None:
            self.action_open_folder()
            return
        if not self.p2p.transfers.start(resource.blob, resource.title, resource.media_type):
            self.notify("Already downloading it.", markup=False)
            return
        if not resource.holders and not resource.held:
            self.notify("No connected peer holds it right now: the download waits for one.",
                        markup=False)

    @work(group="cancel", exit_on_error=False)
    async def action_cancel(self) -> None:
        resource = self.selected()
        if resource is None or not await self.p2p.transfers.cancel(resource.blob):
            self.notify("Nothing is downloading on this row.", markup=False)

    def action_open_folder(self) -> None:
        """Say where the file went (and copy the path): the saved copy of a download, else
        the downloads folder the next one goes to."""
        resource = self.selected()
        transfer = self.p2p.transfers.get(resource.blob) if resource else None
        if resource is None or transfer is None or transfer.path is None:
            folder = str(self.p2p.transfers.folder)
            self.notify(f"Downloads are saved in {folder}" + (
                "; this one is held by the node: enter saves a copy there" if resource
                and resource.held else "; enter downloads this one"),
                title="Where files go", timeout=15, markup=False)
            return
        self.notify(transfer.path, title=f"{resource.title} is at", timeout=15, markup=False)
        self.app.copy_to_clipboard(transfer.path)

    def action_share(self) -> None:
        from tui.screens.share import ShareForm

        options = sorted(((name, cid) for cid, name in self.circle_names.items()),
                         key=lambda option: option[0].lower())

        def shared(result: Shared | None) -> None:
            if result is not None:
                self.notify(f"{result.body['title']} ({human_size(result.body['size'])})"
                            " is offered to peers now", title="Shared", markup=False)
                self.reload()

        self.app.push_screen(ShareForm(options), shared)

    def action_focus_search(self) -> None:
        self.query_one("#resource-search", Input).focus()

    def action_focus_table(self) -> None:
        self.query_one("#resources", KeyedTable).focus()
