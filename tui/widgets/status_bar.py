"""The line at the top of every screen: who I am, which network, peers, mDNS, sync activity."""

from __future__ import annotations

from typing import Any

from textual.widgets import Static

from p2pnode.config import OPEN_NETWORK_KEY, network_id


def status_line(status: dict[str, Any] | None, syncing: int) -> str:
    if not status:
        return "p2pnode · starting…"
    me = f"{status.get('name') or 'no name yet'} ({status.get('fingerprint', '')})"
    network = status.get("network", "")
    network_text = "open network" if network == _OPEN_NETWORK_ID else f"network {network}"
    peers = status.get("peers_connected", 0)
    peers_text = f"{peers} peer{'s' if peers != 1 else ''}"
    mdns = "mDNS on" if status.get("mdns") else "mDNS off"
    if status.get("mdns") and status.get("interface"):
        mdns += f" ({status['interface']})"
    if status.get("recovery_pending"):
        sync = "recovering my feed…"
    elif syncing:
        sync = f"syncing (+{syncing})"
    else:
        sync = "up to date"
    return f"{me} · {network_text} · {peers_text} · {mdns} · {sync}"


_OPEN_NETWORK_ID = network_id(OPEN_NETWORK_KEY)


class StatusBar(Static):
    """Follows the app's `status_text` (refreshed by a worker once a second)."""

    DEFAULT_CSS = """
    StatusBar {
        dock: top;
        height: 1;
        padding: 0 1;
        background: $primary;
        color: $text;
        text-style: bold;
    }
    """

    def on_mount(self) -> None:
        self.watch(self.app, "status_text", self._show)

    def _show(self, text: str) -> None:
        self.update(text)
