"""Peers: who is connected now (name, fingerprint, address, found by mDNS or by address, since
when, entries and bytes each way, score), and who is known but not reachable, with the last
error in plain words. `p` adds a peer by address, `d` runs `p2pnode doctor`'s checks.

Live: peers coming and going reload it at once; counters refresh every few seconds.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Footer, Static

from p2pnode.doctor import ago, plain_error
from protocol.identity import fingerprint
from tui.screens.base import NodeScreen
from tui.transfers import human_size
from tui.widgets.keyed_table import KeyedTable
from tui.widgets.status_bar import StatusBar

CONNECTED = ("Name", "Fingerprint", "Address", "Found by", "Since", "Entries ↑/↓",
             "Bytes ↑/↓", "Score")
AWAY = ("Name", "Fingerprint", "Address", "Last error")
_REFRESH = 3.0
_HOW = {"mdns": "mDNS", "manual": "address", "incoming": "they dialled"}


def short_size(n: int) -> str:
    """``0``, ``512 B``, ``2.9 MiB``: bytes moved, short enough for a table cell."""
    return "0" if not n else human_size(n).replace(" bytes", " B")


def _key(peer: dict[str, Any]) -> str:
    return peer["node_id"].hex() if peer.get("node_id") else f"addr:{peer.get('address')}"


def connected_row(peer: dict[str, Any], now: float) -> tuple[str, ...]:
    node_id = peer.get("node_id")
    return (peer.get("name") or "unknown", fingerprint(node_id) if node_id else "?",
            peer.get("address") or "-", _HOW.get(peer.get("how") or "", peer.get("how") or "-"),
            ago(peer.get("connected_since_ms"), now),
            f"{peer.get('entries_sent', 0)}/{peer.get('entries_received', 0)}",
            f"{short_size(peer.get('bytes_sent', 0))}/{short_size(peer.get('bytes_received', 0))}",
            f"{peer.get('score', 0):.0f}")


def away_row(peer: dict[str, Any]) -> tuple[str, ...]:
    node_id = peer.get("node_id")
    return (peer.get("name") or "unknown", fingerprint(node_id) if node_id else "?",
            peer.get("address") or "-", plain_error(peer.get("last_error")))


class PeersScreen(NodeScreen):
    """Connected and unreachable peers; `p` add one, `d` check the network."""

    BINDINGS = [
        Binding("p", "add_peer", "Add peer"),
        Binding("d", "doctor", "Check network"),
    ]
    DEFAULT_CSS = """
    PeersScreen .section {
        padding: 0 1;
    }
    PeersScreen #connected {
        max-height: 50%;
    }
    PeersScreen #away {
        height: 1fr;
    }
    """

    @dataclasses.dataclass
    class Loaded(Message):
        peers: list[dict[str, Any]]

    def compose(self) -> ComposeResult:
        yield StatusBar()
        yield Static("Connected now", classes="section", id="connected-title")
        yield KeyedTable(CONNECTED, id="connected")
        yield Static(id="connected-empty", classes="count-line")
        yield Static("Known, not connected", classes="section", id="away-title")
        yield KeyedTable(AWAY, id="away")
        yield Static(id="away-empty", classes="count-line")
        yield Footer()

    def on_mount(self) -> None:
        self.reload()
        self.set_interval(_REFRESH, self.reload)

    def on_screen_resume(self) -> None:
        self.reload()

    def peers_changed(self) -> None:
        self.reload()

    @work(exclusive=True, group="peers", exit_on_error=False)
    async def reload(self) -> None:
        if self.is_current:
            self.post_message(self.Loaded(await self.node.peers_info()))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        now = self.p2p.clock()
        up = [p for p in message.peers if p.get("connected")]
        away = [p for p in message.peers if not p.get("connected")]
        self.query_one("#connected", KeyedTable).show(
            [(_key(p), connected_row(p, now)) for p in up])
        self.query_one("#away", KeyedTable).show([(_key(p), away_row(p)) for p in away])
        self.query_one("#connected", KeyedTable).display = bool(up)
        self.query_one("#away", KeyedTable).display = bool(away)
        status = self.p2p.node_status or {}
        how = ("mDNS is on: nodes on this network appear by themselves." if status.get("mdns")
               else "mDNS is off: only peers added by address connect.")
        self.query_one("#connected-empty", Static).update(
            f"{len(up)} connected" if up else
            f"No peer is connected. {how} Press p to add one by address, d to check why.")
        self.query_one("#away-empty", Static).update(
            "" if away else "None: every peer this node knows is connected.")

    def action_add_peer(self) -> None:
        self.p2p.action_add_peer()

    def action_doctor(self) -> None:
        self.p2p.action_doctor()

