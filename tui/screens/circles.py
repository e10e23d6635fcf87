"""The first screen: every circle known here, soonest first, narrowed as the learner types.

Live: when entries arrive the table reloads in a worker and is updated in place (cursor and
scroll kept). With nothing to show, an empty state says how peers are being looked for, how to
add one by address and how to announce a circle.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.markup import escape
from textual.message import Message
from textual.widgets import Footer, Input, Static

from p2pnode.store.models import CircleSummary
from tui.screens.base import NodeScreen
from tui.widgets.circle_table import CircleTable
from tui.widgets.filter_bar import CircleQuery, FilterBar
from tui.widgets.status_bar import StatusBar

#: rows shown at most (the soonest); typing narrows further. Two screens' worth at 160x50 keeps
#: each keystroke's query and repaint well under 50 ms on a home of 10 000 circles.
ROW_LIMIT = 100
_RECENT_QUERIES = 32
_CIRCLE_KINDS = frozenset({"circle", "circle.update", "circle.cancel", "join", "join.accept",
                           "profile"})


def empty_state(status: dict[str, Any] | None, query: CircleQuery) -> str:
    """What to say when the table is empty: why, and what the learner can do."""
    if query.filtered:
        return ("No circle matches this search or these filters.\n\n"
                "Clear the search box, choose [b]Any status[/b], or untick [b]Mine[/b].")
    status = status or {}
    lines = ["[b]No circles here yet.[/b]", ""]
    if status.get("mdns"):
        where = f"on {status['interface']}" if status.get("interface") else "on every interface"
        lines.append(f"Looking for peers on the local network by mDNS ({where}).")
    else:
        lines.append("mDNS is off: peers on this network will not be found by themselves.")
    manual = status.get("manual_peers") or []
    if manual:
        lines.append("Also dialling: " + escape(", ".join(manual)) + ".")
    peers = status.get("peers_connected", 0)
    lines.append(f"Connected to {peers} peer{'s' if peers != 1 else ''}"
                 + (": circles appear here as they arrive." if peers else "."))
    lines += ["",
              "• Press [b]p[/b] to add a peer by address (host:port), e.g. a friend's laptop.",
              "• Press [b]a[/b] to announce a circle of your own.",
              "• Press [b]?[/b] for help."]
    return "\n".join(lines)


class CirclesScreen(NodeScreen):
    """Find circles; Enter opens one."""

    #: never the search box by default: `a`, `p` and `q` must act, not type
    AUTO_FOCUS = "CircleTable"

    BINDINGS = [
        Binding("slash", "focus_search", "Search"),
        Binding("enter", "open", "Open", show=True),
        Binding("a", "announce", "Announce"),
        Binding("m", "toggle_mine", "Mine"),
        Binding("p", "add_peer", "Add peer"),
        Binding("n", "notices", "Notices"),
        Binding("escape", "focus_table", "Table", show=False),
    ]

    @dataclasses.dataclass
    class Loaded(Message):
        """A worker fetched the circles for `query`."""

        query: CircleQuery
        circles: list[CircleSummary]
        mine: dict[bytes, str]
        facets: tuple[set[str], set[str]] | None

    def __init__(self) -> None:
        super().__init__()
        self.query_now = CircleQuery()
        #: the query whose results the table shows (None before the first load)
        self.shown_query: CircleQuery | None = None
        #: results of recent queries, dropped whenever entries arrive
        self._recent: dict[CircleQuery, CirclesScreen.Loaded] = {}
        self._count_text = ""

    def compose(self) -> ComposeResult:
        yield StatusBar()
        yield FilterBar()
        yield CircleTable(id="circles")
        yield Static(id="count", classes="count-line")
        yield Static(id="empty", classes="empty-state")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(CircleTable).focus()
        self.reload()

    # -- loading -----------------------------------------------------------------------------
    def reload(self) -> None:
        cached = self._recent.get(self.query_now)
        if cached is not None:  # e.g. backspacing to a search shown a moment ago
            self.workers.cancel_group(self, "circles")
            self._show(cached)
            return
        self.load_circles(self.query_now)

    @work(exclusive=True, group="circles", exit_on_error=False)
    async def load_circles(self, query: CircleQuery) -> None:
        node = self.node
        past = query.status not in ("current", "upcoming", "running")
        circles = await node.circles(search=query.search or None, topic=query.topic,
                                     language=query.language, weekday=query.weekday,
                                     include_past=past, limit=ROW_LIMIT)
        mine = await node.my_circles()
        if query.status not in ("current", "any"):
            circles = [c for c in circles if c.status == query.status]
        if query.mine:
            circles = [c for c in circles if c.id in mine]
        facets = None
        if query.topic is None and query.language is None and not query.search:
            facets = ({t.lower() for c in circles for t in c.topics},
                      {c.language for c in circles})
        self.post_message(self.Loaded(query, circles, mine, facets))

    @on(Loaded)
    def _show(self, message: Loaded) -> None:
        self._recent[message.query] = message
        if len(self._recent) > _RECENT_QUERIES:
            del self._recent[next(iter(self._recent))]
        if message.query != self.query_now:
            return  # the learner typed on; a newer load is coming
        table = self.query_one(CircleTable)
        table.show(message.circles, message.mine)
        if message.facets is not None:
            self.query_one(FilterBar).offer(*message.facets)
        self.shown_query = message.query
        self.p2p.first_paint_done()
        count = len(message.circles)
        self._count_line(f"the {count} soonest shown: type or filter to narrow"
                         if count >= ROW_LIMIT else f"{count} circle{'s' if count != 1 else ''}")
        self._show_empty_state(not message.circles)

    def _count_line(self, text: str) -> None:
        if text != self._count_text:
            self._count_text = text
            # one line, full width (app.tcss): a repaint, not a layout of the whole screen
            self.query_one("#count", Static).update(text, layout=False)

    def _show_empty_state(self, empty: bool) -> None:
        panel = self.query_one("#empty", Static)
        panel.display = empty
        self.query_one("#count", Static).display = not empty
        table = self.query_one(CircleTable)
        table.display = not empty
        if empty and table.has_focus:
            self.set_focus(None)  # so that the screen's keys (a, p, ?) work
        elif not empty and self.focused is None:
            table.focus()
        if empty:
            panel.update(empty_state(self.p2p.node_status, self.query_now))

    def on_screen_resume(self) -> None:
        """Back from a dialog or another screen: keys go to the table, or (when it is empty)
        to the screen, so that `a`, `p` and `q` act instead of typing into the search box."""
        table = self.query_one(CircleTable)
        if table.display:
            table.focus()
        else:
            self.set_focus(None)

    def node_changed(self, kinds: frozenset[str]) -> None:
        """Called by the app when entries were stored."""
        if kinds & _CIRCLE_KINDS:
            self._recent.clear()
            self.reload()

    def status_changed(self) -> None:
        if self.query_one("#empty", Static).display:
            self._show_empty_state(True)

    @on(Input.Submitted, "#search")
    def _search_done(self) -> None:
        self.action_focus_table()

    @on(FilterBar.Changed)
    def _filters(self, message: FilterBar.Changed) -> None:
        if message.query == self.query_now:
            return  # e.g. the controls announcing their first values as they mount
        self.query_now = message.query
        self.reload()

    # -- actions -----------------------------------------------------------------------------
    @on(CircleTable.RowSelected)
    def _row_selected(self, event: CircleTable.RowSelected) -> None:
        if self.query_one(CircleTable).display:
            self.p2p.open_circle(event.circle_id)

    def action_open(self) -> None:
        circle_id = self.query_one(CircleTable).selected_id
        if circle_id is not None and self.query_one(CircleTable).display:
            self.p2p.open_circle(circle_id)

    def action_focus_search(self) -> None:
        self.query_one("#search").focus()

    def action_focus_table(self) -> None:
        self.query_one(CircleTable).focus()

    def action_toggle_mine(self) -> None:
        self.query_one(FilterBar).toggle_mine()

    def action_announce(self) -> None:
        self.p2p.action_announce()

    def action_add_peer(self) -> None:
        self.p2p.action_add_peer()

    def action_notices(self) -> None:
        self.p2p.action_notices()
