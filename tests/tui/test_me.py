"""The me screen (issue 11 item 3) and the app's sections: editing the display name publishes a
profile (keeping the bio); the id and fingerprint are shown in full and copied; export to a
file and import it into a fresh home show progress and the import's report; keys 1-4 and the
palette reach every section; quitting says whether the node stops.
"""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input, ProgressBar, Static
from tui_helpers import screen_text, settle, two_nodes, wait_for

from p2pnode import actions
from protocol.identity import node_id_text
from tui.screens.circles import CirclesScreen
from tui.screens.me import MeScreen, tilde
from tui.screens.peers import PeersScreen
from tui.screens.resources import ResourcesScreen


async def open_me(pilot) -> MeScreen:
    await pilot.press("4")
    await settle(pilot)
    assert isinstance(pilot.app.screen, MeScreen)
    return pilot.app.screen


def shown(screen, widget_id: str) -> str:
    return str(screen.query_one(f"#{widget_id}", Static).render())


async def test_edit_name_and_copy_the_identity(nodes, open_app):
    """n edits the name: Enter publishes a profile with the new name and the old bio; the
    node id and fingerprint are shown in full, and c / f copy them."""
    me = await nodes.start("me")
    await me.perform(actions.set_profile, "Ana", bio="Teacher in Durban")
    async with open_app(me, welcome=False) as pilot:
        screen = await open_me(pilot)
        await wait_for(pilot, lambda: screen.query_one("#name", Input).value == "Ana")
        full_id = node_id_text(me.node_id)
        assert full_id in shown(screen, "identity")
        assert me.identity.fingerprint in shown(screen, "identity")
        assert "the open network" in shown(screen, "network")
        assert "needs a restart" in shown(screen, "network")
        assert shown(screen, "home") == tilde(me.home_path)
        await pilot.press("c")
        assert pilot.app.clipboard == full_id
        await pilot.press("f")
        assert pilot.app.clipboard == me.identity.fingerprint
        await pilot.press("n")
        name = screen.query_one("#name", Input)
        assert name.has_focus
        name.value = "Ana M"
        await pilot.press("enter")
        await wait_for(pilot, lambda: "Ana M (" in pilot.app.status_text)
    profile = await me.perform(actions.my_profile)
    assert profile["name"] == "Ana M" and profile["bio"] == "Teacher in Durban"


async def test_export_then_import_into_a_fresh_home_shows_the_report(
        tmp_path, nodes, open_app, eventually):
    """Export from my node's app writes the file (refusing to overwrite it the second time);
    a fresh node's app imports it: the bar completes and the report says how many were
    accepted; importing again says they are all already held, and a file that is not an
    export is one red line."""
    _ben, me, circle_id = await two_nodes(nodes, eventually)
    stick = tmp_path / "stick" / "circles.p2pu"
    stick.parent.mkdir()
    total = (await me.status())["entries"]
    async with open_app(me, welcome=False) as pilot:
        screen = await open_me(pilot)
        screen.query_one("#export-path", Input).value = str(stick)
        await pilot.press("x")
        await wait_for(pilot, lambda: "Exported" in shown(screen, "export-result"))
        assert f"Exported {total} entries to {stick}" in shown(screen, "export-result")
        await pilot.press("x")
        await wait_for(pilot, lambda: "already exists" in shown(screen, "export-result"))
    fresh = await nodes.start("fresh")
    async with open_app(fresh, welcome=False) as pilot:
        screen = await open_me(pilot)
        screen.query_one("#import-path", Input).value = str(stick)
        await pilot.press("i")
        await wait_for(pilot, lambda: "accepted" in shown(screen, "import-result"))
        assert shown(screen, "import-result") == f"{total} accepted · 0 already held · 0 refused"
        bar = screen.query_one("#import-bar", ProgressBar)
        assert bar.progress == bar.total
        assert await fresh.circle(circle_id) is not None
        await pilot.press("i")
        await wait_for(pilot, lambda: f"0 accepted · {total} already held" in shown(
            screen, "import-result"))
        screen.query_one("#import-path", Input).value = str(tmp_path / "stick")
        await pilot.press("i")
        await wait_for(pilot, lambda: "stick" in shown(screen, "import-result")
                       and "accepted" not in shown(screen, "import-result"))
        assert pilot.app.is_running


async def test_sections_by_key_and_palette(nodes, open_app):
    """1-4 switch between Circles, Resources, Peers and Me (each kept alive: the me screen
    is the same object when shown again) but never out of a form; the palette lists them,
    and its Quit says that an in-process node stops."""
    me = await nodes.start("me")
    async with open_app(me, welcome=False) as pilot:
        assert isinstance(pilot.app.screen, CirclesScreen)
        seen = []
        for key, kind in (("2", ResourcesScreen), ("3", PeersScreen), ("4", MeScreen),
                          ("1", CirclesScreen)):
            await pilot.press(key)
            await settle(pilot)
            assert isinstance(pilot.app.screen, kind)
            seen.append(pilot.app.screen)
        await pilot.press("4")
        await settle(pilot)
        assert pilot.app.screen is seen[2]
        await pilot.press("1", "a")  # the announce form: a digit there never leaves it
        await settle(pilot)
        form = pilot.app.screen
        pilot.app.set_focus(None)
        await pilot.press("2")
        await settle(pilot)
        assert pilot.app.screen is form
        await pilot.press("escape")
        await settle(pilot)
        commands = {c.title: c.help for c in pilot.app.get_system_commands(pilot.app.screen)}
        for name in ("Circles", "Resources", "Peers", "Me"):
            assert f"Go to {name}" in commands
        assert commands["Quit"] == "Stop the node and leave"
        await pilot.press("question_mark")
        await settle(pilot)
        assert "quit (the node stops cleanly)" in screen_text(pilot.app)


async def test_downloads_resume_after_the_app_restarts(tmp_path, nodes, open_app, eventually):
    """A download left unfinished when the app closed starts again by itself on the next
    start and completes (the node kept the bytes that arrived)."""
    import os

    from protocol.blobs import CHUNK_SIZE

    ben = await nodes.start("ben", upload_rate=400_000)
    await ben.perform(actions.set_profile, "Ben")
    me = await nodes.start("me", peers=[ben])
    data = os.urandom(10 * CHUNK_SIZE)
    (tmp_path / "talk.mp4").write_bytes(data)
    shared = await ben.share(tmp_path / "talk.mp4", title="Talk")

    async def holders():
        return [r for r in await me.resources() if r.holders]

    await eventually(holders, timeout=10)
    async with open_app(me, welcome=False) as pilot:
        pilot.app.transfers.start(shared.blob_id, "Talk", "video/mp4")
        await wait_for(pilot, lambda: pilot.app.transfers.items[shared.blob_id].done_bytes
                       >= CHUNK_SIZE)
    async with open_app(me, welcome=False) as pilot:
        await wait_for(pilot, lambda: shared.blob_id in pilot.app.transfers.items
                       and pilot.app.transfers.items[shared.blob_id].path is not None,
                       rounds=400)
        assert Path(pilot.app.transfers.items[shared.blob_id].path).read_bytes() == data
