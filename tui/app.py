"""The Textual app: a thin shell around a running node (`p2pnode.api.NodeAPI`: a `Node` in
the same event loop, or a `RemoteNode` attached to `p2pnode run`; no screen knows which).

It owns the node's event subscription (one worker turning entries into `NodeChanged`, notices
and "new circle" notifications), the status line, the command palette and the theme; the
screens in `tui/screens/` do the rest. The app never starts or stops the node: whoever made
it does (`tui.run`), so a test can drive the app against a node it controls.
"""

from __future__ import annotations

import collections
import datetime as dt
import gc
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.reactive import reactive
from textual.screen import Screen
from textual.worker import Worker

from p2pnode.api import NodeAPI
from p2pnode.events import EntryArrived, PeerDown, PeerUp
from p2pnode.store.inbox import Notice
from p2pnode.store.models import CircleDetail
from protocol.identity import fingerprint
from tui.messages import CircleAnnounced, NodeChanged, NoticesTaken, StatusUpdated
from tui.screens.base import report_worker_failure
from tui.transfers import Transfers, TransfersChanged
from tui.widgets.status_bar import status_line

_NOTICE_KINDS = frozenset({"circle.update", "circle.cancel", "join", "join.accept"})
#: how long received entries count as "sync activity" in the status line
_SYNC_WINDOW = 5.0
_STATUS_INTERVAL = 1.0
_GO = Binding.Group("Circles Resources Peers Me", compact=True)
#: the app's sections, by name: full screens kept alive while another one shows
SECTIONS = ("circles", "resources", "peers", "me")


class P2PApp(App[None]):
    """Find, join and run learning circles on a running node."""

    CSS_PATH = Path(__file__).parent / "app.tcss"  # absolute: subclasses live elsewhere
    TITLE = "p2pnode"
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        # after Help: at 80 columns the footer cuts the end, and `?` lists them too
        Binding("1", "section('circles')", "Circles", group=_GO),
        Binding("2", "section('resources')", "Resources", group=_GO),
        Binding("3", "section('peers')", "Peers", group=_GO),
        Binding("4", "section('me')", "Me", group=_GO),
        Binding("ctrl+t", "toggle_theme", "Theme", show=False),
    ]

    status_text = reactive("p2pnode · starting…")

    def __init__(self, node: NodeAPI, *, clock: Callable[[], float] = time.time,
                 welcome: bool = True) -> None:
        super().__init__()
        self.node = node
        self.clock = clock
        self.welcome = welcome
        self.node_status: dict[str, Any] | None = None
        self.notices: list[tuple[Notice, bool]] = []
        self._received: collections.deque[tuple[float, int]] = collections.deque()
        self._started = False
        self.transfers = Transfers(self)
        self._sections: dict[str, Screen] = {}

    def today(self) -> dt.date:
        return dt.datetime.fromtimestamp(self.clock()).date()

    def on_mount(self) -> None:
        self.push_screen(self._section_screen("circles"))
        self.watch_node()

    def first_paint_done(self) -> None:
        """Called once the circle table first shows: only then the status line, notices and
        welcome queue their queries behind it on the node's store thread."""
        if self._started:
            return
        self._started = True
        # What start-up built (modules, styles, the node) lives as long as the app: out of the
        # collector's way, a full collection no longer stalls a keystroke for 100-200 ms
        # (bench/app_speed.py on 10 000 circles). After the paint: freezing is quick, a
        # collection first would not be.
        self.call_after_refresh(gc.freeze)
        self.refresh_status()
        self.set_interval(_STATUS_INTERVAL, self.refresh_status)
        self.take_notices(away=True)
        self.run_worker(self.transfers.resume_remembered(), group="resume-downloads",
                        exit_on_error=False)
        if self.welcome:
            self.maybe_welcome()

    # -- node → UI ---------------------------------------------------------------------------
    @work(exclusive=True, group="events", exit_on_error=False)
    async def watch_node(self) -> None:
        """Turn node events into messages; a burst is merged into one NodeChanged."""
        async for event in self.node.events():
            if isinstance(event, EntryArrived):
                self.post_message(NodeChanged(frozenset({event.kind}), 0 if event.own else 1))
                if event.kind == "circle" and not event.own:
                    self.announce_arrival(event.entry_id)
            elif isinstance(event, PeerUp | PeerDown):
                self.refresh_status()
                self._tell_screens("peers_changed")

    @on(NodeChanged)
    def _node_changed(self, message: NodeChanged) -> None:
        if message.foreign:
            self._received.append((time.monotonic(), message.foreign))
        self._tell_screens("node_changed", message.kinds)
        if message.kinds & _NOTICE_KINDS and message.foreign:
            self.take_notices(away=False)

    @work(group="notices", exit_on_error=False)
    async def take_notices(self, away: bool) -> None:
        notices = await self.node.take_notices()
        if notices:
            self.post_message(NoticesTaken(notices, away))

    @on(NoticesTaken)
    def _notices(self, message: NoticesTaken) -> None:
        self.notices += [(n, message.away) for n in message.notices]
        if message.away:
            shown = message.notices[-3:]
            more = len(message.notices) - len(shown)
            text = "\n".join(f"• {n.text}" for n in shown)
            if more:
                text += f"\n…and {more} more (press n)"
            self.notify(text, title="While you were away", timeout=20, markup=False)
        else:
            for notice in message.notices:
                severity = "warning" if notice.kind in ("cancelled", "rescheduled") \
                    else "information"
                self.notify(notice.text, title=notice.kind.capitalize(), severity=severity,
                            timeout=15, markup=False)

    @work(group="arrivals", exit_on_error=False)
    async def announce_arrival(self, circle_id: bytes) -> None:
        detail = await self.node.circle(circle_id)
        if detail is not None:
            who = detail.summary.author.label
            self.post_message(CircleAnnounced(detail.summary.name, who))

    @on(CircleAnnounced)
    def _circle_announced(self, message: CircleAnnounced) -> None:
        self.notify(f"{message.name}\nby {message.who}", title="New circle", timeout=8,
                    markup=False)

    @work(exclusive=True, group="status", exit_on_error=False)
    async def refresh_status(self) -> None:
        status = await self.node.status()
        horizon = time.monotonic() - _SYNC_WINDOW
        while self._received and self._received[0][0] < horizon:
            self._received.popleft()
        self.post_message(StatusUpdated(status, sum(n for _, n in self._received)))

    @on(StatusUpdated)
    def _status(self, message: StatusUpdated) -> None:
        changed = message.status != self.node_status
        self.node_status = message.status
        self.status_text = status_line(message.status, message.syncing)
        if changed:
            self._tell_screens("status_changed")

    @on(TransfersChanged)
    def _transfers_changed(self) -> None:
        self._tell_screens("transfers_changed")

    def _tell_screens(self, method: str, *args: Any) -> None:
        """Call `method` on every screen that has it, the sections in the background included
        (screens being torn down are skipped)."""
        screens = list(self.screen_stack)
        screens += [s for s in self._sections.values() if s not in screens]
        for screen in screens:
            handler = getattr(screen, method, None)
            if handler is None or not screen.is_attached:
                continue
            try:
                handler(*args)
            except NoMatches:  # the screen is closing: its widgets are gone
                continue

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        report_worker_failure(event, self.notify)

    # -- navigation and actions --------------------------------------------------------------
    @work(exclusive=True, group="welcome-check", exit_on_error=False)
    async def maybe_welcome(self) -> None:
        from tui.screens.welcome import WELCOME_PREFERENCE, WelcomeScreen

        if await self.node.preference(WELCOME_PREFERENCE):
            return
        status = await self.node.status()
        if status.get("name"):
            await self.node.set_preference(WELCOME_PREFERENCE, "1")
            return
        self.push_screen(WelcomeScreen(), lambda _: self.refresh_status())

    def open_circle(self, circle_id: bytes) -> None:
        from tui.screens.detail import DetailScreen

        self.push_screen(DetailScreen(circle_id))

    def replace_with_circle(self, circle_id: bytes) -> None:
        """After announcing: the form gives way to the new circle."""
        from tui.screens.detail import DetailScreen

        self.switch_screen(DetailScreen(circle_id))

    def calendar_path(self, detail: CircleDetail) -> Path:
        """Where "add to calendar" suggests writing: next to the node's home."""
        slug = "".join(ch if ch.isalnum() else "-" for ch in detail.summary.name.lower())
        slug = "-".join(part for part in slug.split("-") if part)[:40] or "circle"
        return self.node.home_path.parent / f"{slug}-{fingerprint(detail.summary.id)}.ics"

    def action_announce(self) -> None:
        from tui.screens.announce import AnnounceScreen

        self.push_screen(AnnounceScreen())

    def _section_screen(self, name: str) -> Screen:
        screen = self._sections.get(name)
        if screen is None:
            from tui.screens.circles import CirclesScreen
            from tui.screens.me import MeScreen
            from tui.screens.peers import PeersScreen
            from tui.screens.resources import ResourcesScreen

            made = {"circles": CirclesScreen, "resources": ResourcesScreen,
                    "peers": PeersScreen, "me": MeScreen}[name]()
            self.install_screen(made, f"section-{name}")  # kept alive while another shows
            self._sections[name] = screen = made
        return screen

    def action_section(self, name: str) -> None:
        """Show one of the sections (Circles, Resources, Peers, Me), closing any dialog or
        circle above the current one."""
        if name not in SECTIONS:
            return
        while len(self.screen_stack) > 2:
            self.pop_screen()
        screen = self._section_screen(name)
        if self.screen is not screen:
            self.switch_screen(screen)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The section keys work on a section or a circle, not in a form or dialog: a digit
        there must never throw away what the learner typed (the palette still goes)."""
        if action == "section" and len(self.screen_stack) > 2:
            from tui.screens.detail import DetailScreen

            return isinstance(self.screen, DetailScreen)
        return True

    def action_share(self) -> None:
        self.action_section("resources")
        self.call_after_refresh(lambda: self._sections["resources"].action_share())

    def action_doctor(self) -> None:
        from tui.screens.doctor import DoctorScreen

        self.push_screen(DoctorScreen())

    def action_help(self) -> None:
        from tui.screens.help import HelpScreen

        self.push_screen(HelpScreen())

    def action_notices(self) -> None:
        from tui.screens.notices import NoticesScreen

        self.push_screen(NoticesScreen(self.notices))

    def action_add_peer(self) -> None:
        from tui.screens.forms import AddPeerForm

        def added(address: str | None) -> None:
            if address:
                self.node.add_peer(address)
                self.notify(f"Dialling {address}; it stays on the list while the app runs.",
                            markup=False)
                self.refresh_status()

        self.push_screen(AddPeerForm(), added)

    def action_search(self) -> None:
        self._on_circles(lambda screen: screen.action_focus_search())

    def action_filter(self) -> None:
        self._on_circles(lambda screen: screen.query_one("#topic").focus())

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.theme == "textual-dark" else "textual-dark"

    def _on_circles(self, then: Callable[[Any], None]) -> None:
        self.action_section("circles")
        self.call_after_refresh(lambda: then(self._sections["circles"]))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield SystemCommand("Announce a circle", "Publish a new learning circle",
                            self.action_announce)
        yield SystemCommand("Search circles", "Type to narrow the list", self.action_search)
        yield SystemCommand("Filter circles", "By topic, language, weekday, status, mine",
                            self.action_filter)
        for name, help_text in (("circles", "Find, join and run learning circles"),
                                ("resources", "Shared files: share, download, transfers"),
                                ("peers", "Who is connected, who is not and why"),
                                ("me", "Name, identity, network, export and import")):
            yield SystemCommand(f"Go to {name.capitalize()}", help_text,
                                lambda name=name: self.action_section(name))
        yield SystemCommand("Share a file", "Publish a file as a resource for peers",
                            self.action_share)
        yield SystemCommand("Add a peer", "Connect to a node by host:port",
                            self.action_add_peer)
        yield SystemCommand("Check the network (doctor)",
                            "Interfaces, multicast, port, firewall, network id",
                            self.action_doctor)
        yield SystemCommand("Notifications", "Reschedules, cancellations, sign-ups",
                            self.action_notices)
        yield SystemCommand("Toggle light/dark theme", "Switch the colour theme",
                            self.action_toggle_theme)
        yield SystemCommand("Help", "Keys and how peers are found", self.action_help)
        yield SystemCommand("Quit", "Stop the node and leave" if self.node.quitting_stops_node
                            else "Leave; the node keeps running (p2pnode run)",
                            self.action_quit)
