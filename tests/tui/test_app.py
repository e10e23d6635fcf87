"""The app's frame: help, themes, the command palette's actions, and the status line."""

from __future__ import annotations

from scenes import network, seeded_home
from textual.app import SystemCommand
from tui_helpers import settle

from tui.screens.circles import CirclesScreen
from tui.screens.help import HelpScreen


async def test_help_theme_and_palette(tmp_path, nodes, open_app):
    """`?` opens help and closes again; ctrl+t switches light and dark; the palette offers
    announce, search, filter, add peer and quit."""
    seeded_home(tmp_path / "me", "tui me")
    network(tmp_path / "me")
    node = await nodes.start("me")
    async with open_app(node) as pilot:
        await pilot.press("question_mark")
        await settle(pilot)
        assert isinstance(pilot.app.screen, HelpScreen)
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(pilot.app.screen, CirclesScreen)
        before = pilot.app.theme
        await pilot.press("ctrl+t")
        assert pilot.app.theme != before
        assert {"textual-dark", "textual-light"} == {before, pilot.app.theme}
        commands = [c.title for c in pilot.app.get_system_commands(pilot.app.screen)
                    if isinstance(c, SystemCommand)]
        for wanted in ("Announce a circle", "Search circles", "Filter circles", "Add a peer",
                       "Quit"):
            assert wanted in commands


async def test_status_line_names_network_peers_and_mdns(tmp_path, nodes, open_app, eventually):
    """The status line counts a peer once it connects, says mDNS is off, and the network."""
    seeded_home(tmp_path / "me", "tui me")
    network(tmp_path / "me")
    node = await nodes.start("me")
    async with open_app(node) as pilot:
        assert "Ana (tm37cait) · open network · 0 peers · mDNS off" in pilot.app.status_text
        await nodes.start("friend", peers=[node])

        async def one_peer():
            await settle(pilot)
            return "· 1 peer ·" in pilot.app.status_text
        await eventually(one_peer, timeout=10)
