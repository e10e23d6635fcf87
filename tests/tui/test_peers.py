"""The peers screen (issue 11 item 2) on real nodes on loopback: Ben shows as connected (name,
fingerprint, found by address), then under "not connected" with a plain-words error when his
node stops; a peer added by address from this screen connects; `d` shows doctor's checks as a
checklist.
"""

from __future__ import annotations

from textual.widgets import Button, Input, Static
from tui_helpers import settle, two_nodes, wait_for

from p2pnode import actions
from tui.screens.doctor import DoctorScreen
from tui.screens.peers import PeersScreen
from tui.widgets.keyed_table import KeyedTable


def rows(pilot, table_id: str) -> list[list[str]]:
    if not isinstance(pilot.app.screen, PeersScreen):
        return []  # the add-peer dialog is still closing
    table = pilot.app.screen.query_one(f"#{table_id}", KeyedTable)
    if not table.display:
        return []
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


async def open_peers(pilot) -> PeersScreen:
    await pilot.press("3")
    await settle(pilot)
    assert isinstance(pilot.app.screen, PeersScreen)
    return pilot.app.screen


async def test_a_connected_peer_then_gone_when_it_stops(tmp_path, nodes, open_app,
                                                       eventually, fast_redial):
    """Ben is listed connected with his name and fingerprint, found by address; when his node
    stops he moves to the not-connected list with the reason in plain words."""
    ben, me, _ = await two_nodes(nodes, eventually)
    async with open_app(me, welcome=False) as pilot:
        await open_peers(pilot)
        await wait_for(pilot, lambda: bool(rows(pilot, "connected")))
        (row,) = rows(pilot, "connected")
        assert row[:4] == ["Ben", ben.identity.fingerprint, f"127.0.0.1:{ben.port}", "address"]
        assert rows(pilot, "away") == []
        await ben.close()
        await wait_for(pilot, lambda: not rows(pilot, "connected") and rows(pilot, "away"))
        (gone,) = rows(pilot, "away")
        assert gone[:3] == ["Ben", ben.identity.fingerprint, f"127.0.0.1:{ben.port}"]
        assert gone[3] and "Traceback" not in gone[3]
        assert "No peer is connected" in str(
            pilot.app.screen.query_one("#connected-empty", Static).render())


async def test_add_a_peer_by_address(tmp_path, nodes, open_app, eventually):
    """p on the peers screen opens the add-peer dialog; a bad address is refused in it; a
    good one is dialled and the peer shows as connected."""
    ben = await nodes.start("ben")
    await ben.perform(actions.set_profile, "Ben")
    me = await nodes.start("me")
    async with open_app(me, welcome=False) as pilot:
        await open_peers(pilot)
        assert rows(pilot, "connected") == []
        await pilot.press("p")
        await settle(pilot)
        dialog = pilot.app.screen
        dialog.query_one("#address", Input).value = "no port here"
        await pilot.click("#ok")
        await settle(pilot)
        assert "HOST:PORT" in str(dialog.query_one("#error", Static).render())
        dialog.query_one("#address", Input).value = f"127.0.0.1:{ben.port}"
        # pressed, not clicked: the error line above it has just moved the button
        dialog.query_one("#ok", Button).press()
        # connected at once; his name once his profile has synced (the screen refreshes)
        await wait_for(pilot, lambda: [r[:2] for r in rows(pilot, "connected")]
                       == [["Ben", ben.identity.fingerprint]])


async def test_doctor_checklist_is_one_key_away(tmp_path, nodes, open_app, eventually):
    """d shows the checks of `p2pnode doctor` for this node as a checklist: the port answers,
    discovery is off (information), and the connected peer is fine."""
    ben, me, _ = await two_nodes(nodes, eventually)
    async with open_app(me, welcome=False) as pilot:
        await open_peers(pilot)
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, DoctorScreen)
                       and "checking" not in str(pilot.app.screen.query_one(
                           "#checks", Static).render()))
        shown = str(pilot.app.screen.query_one("#checks", Static).render())
        assert f"✓ port: the peer endpoint answers on 127.0.0.1:{me.port}" in shown
        assert "• discovery: the running node has mDNS off" in shown
        assert f"✓ peer Ben {ben.identity.fingerprint}: connected" in shown
        assert "✓ network" in shown and "✓ interfaces" in shown
