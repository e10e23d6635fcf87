"""The app attached to a `p2pnode run` process (issue 11 item 4): `tui.run.open_node` attaches
when a node serves the home and starts one of its own otherwise; attached, the app shows what a
peer announces live, part 1's circle journey works (search, join, RSVP), a download, the peers
screen and an export work through the node, and quitting leaves the `run` process serving.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from builders import circle_body
from test_circles import names
from textual.widgets import Input
from tui_helpers import days_from_today, notifications, settle

from p2pnode import actions
from p2pnode.net.remote import RemoteNode
from p2pnode.node import Node
from tui.run import open_node
from tui.screens.detail import DetailScreen


async def test_open_node_attaches_only_when_a_node_serves_the_home(cli, tmp_path):
    """No node on the home: a Node of its own starts here (and holds the home); `p2pnode run`
    serving it: a RemoteNode to that process."""
    alone = await open_node(tmp_path / "alone", port=0, host="127.0.0.1", mdns=False)
    try:
        assert isinstance(alone, Node)
    finally:
        await alone.close()
    running = await cli.start(tmp_path / "served")
    attached = await open_node(tmp_path / "served", port=0, host="127.0.0.1", mdns=False)
    try:
        assert isinstance(attached, RemoteNode) and attached.port == running.control_port
        assert (await attached.status())["port"] == running.peer_port
    finally:
        await attached.close()


async def test_attached_app_shows_a_peers_circle_live_and_quitting_leaves_run(
        cli, nodes, open_app, tmp_path, eventually):
    """The app attached to `p2pnode run` lists a circle that a second node announces, without
    a key press, and says so; `q` closes the app and the run process keeps serving."""
    home = tmp_path / "me"
    running = await cli.start(home)
    assert (await cli.run(home, "profile", "--name", "Ana")).returncode == 0
    other = await nodes.start("other", peers=[running.address])
    await other.perform(actions.set_profile, "Zanele")
    node = await open_node(home)
    assert isinstance(node, RemoteNode)
    try:
        async with open_app(node, welcome=False, clock=time.time) as pilot:
            assert names(pilot) == []
            await other.perform(actions.announce_circle, circle_body(
                [], name="Guitar for Beginners", start=days_from_today(5), topics=["music"]))
            for _ in range(200):
                await settle(pilot)
                if "Guitar for Beginners" in names(pilot):
                    break
            assert names(pilot) == ["Guitar for Beginners"]
            assert any("New circle" in n and "Guitar for Beginners" in n and "Zanele" in n
                       for n in notifications(pilot.app))
            await pilot.press("q")
            await eventually(lambda: not pilot.app.is_running, timeout=5)
    finally:
        await node.close()
    assert running.proc.returncode is None
    done = await cli.run(home, "status", "--json")
    assert done.returncode == 0 and done.json()["peers_connected"] == 1


async def test_attached_circle_journey_live_arrival_search_join_rsvp(
        cli, nodes, open_app, tmp_path, eventually):
    """Part 1's circle journey against `p2pnode run`: a circle arrives live, search narrows
    to it, the detail opens, joining through the form reaches the facilitator's node (sealed
    details opened there only), and the RSVP is counted there; the palette's Quit says the
    node keeps running."""
    home = tmp_path / "me"
    running = await cli.start(home)
    assert (await cli.run(home, "profile", "--name", "Ana")).returncode == 0
    ben = await nodes.start("ben", peers=[running.address])
    await ben.perform(actions.set_profile, "Ben")
    await ben.perform(actions.announce_circle, circle_body(
        [], name="Python for Everybody", start=days_from_today(9), topics=["python"]))
    node = await open_node(home)
    try:
        async with open_app(node, welcome=False, clock=time.time) as pilot:
            await wait_for_names(pilot, ["Python for Everybody"])
            guitar = await ben.perform(actions.announce_circle, circle_body(
                [], name="Guitar for Beginners", start=days_from_today(5), topics=["music"]))
            await wait_for_names(pilot, ["Guitar for Beginners", "Python for Everybody"])
            await pilot.press("slash", *"guit")
            await settle(pilot)
            assert names(pilot) == ["Guitar for Beginners"]
            await pilot.press("escape", "enter")
            await settle(pilot)
            assert isinstance(pilot.app.screen, DetailScreen)
            await pilot.press("j")
            await settle(pilot)
            pilot.app.screen.query_one("#contact", Input).value = "ana@example.org"
            await pilot.click("#ok")
            await settle(pilot)
            joins = await eventually(lambda: ben.perform(actions.list_joins, guitar.id),
                                     timeout=15)
            assert [(j["display_name"], j["details"]) for j in joins] == [
                ("Ana", {"contact": "ana@example.org"})]
            await pilot.press("r")
            await settle(pilot)
            await pilot.click("#ok")

            async def going() -> bool:
                return (await ben.circle(guitar.id)).meetings[0].attending == 1

            await eventually(going, timeout=15)
            commands = {c.title: c.help for c in pilot.app.get_system_commands(pilot.app.screen)}
            assert commands["Quit"] == "Leave; the node keeps running (p2pnode run)"
    finally:
        await node.close()
    assert running.proc.returncode is None


async def test_attached_download_peers_and_export(cli, nodes, open_app, tmp_path, eventually):
    """Attached to `p2pnode run`: a resource Ben shares downloads with its bar to an identical
    file in the home's downloads folder; the peers screen lists Ben; an export written
    through the node lands where asked."""
    from protocol.blobs import CHUNK_SIZE
    from tui.widgets.keyed_table import KeyedTable

    home = tmp_path / "me"
    running = await cli.start(home)
    ben = await nodes.start("ben", peers=[running.address], upload_rate=600_000)
    await ben.perform(actions.set_profile, "Ben")
    data = os.urandom(6 * CHUNK_SIZE)
    (tmp_path / "notes.pdf").write_bytes(data)
    shared = await ben.share(tmp_path / "notes.pdf", title="Notes")
    node = await open_node(home)
    try:
        async with open_app(node, welcome=False, clock=time.time) as pilot:
            await pilot.press("2")
            for _ in range(200):
                await settle(pilot)
                table = pilot.app.screen.query_one("#resources", KeyedTable)
                if table.row_count and str(table.get_row_at(0)[3]) == "1":
                    break
            await pilot.press("enter")
            for _ in range(300):
                await settle(pilot)
                transfer = pilot.app.transfers.get(shared.blob_id)
                if transfer is not None and (transfer.path or transfer.error):
                    break
            assert transfer.path and Path(transfer.path).read_bytes() == data
            assert Path(transfer.path).parent == home / "downloads"
            await pilot.press("3")
            for _ in range(100):
                await settle(pilot)
                table = pilot.app.screen.query_one("#connected", KeyedTable)
                if table.row_count and str(table.get_row_at(0)[0]) == "Ben":
                    break
            assert str(table.get_row_at(0)[1]) == ben.identity.fingerprint
            await pilot.press("4")
            await settle(pilot)
            target = tmp_path / "out.p2pu"
            pilot.app.screen.query_one("#export-path", Input).value = str(target)
            await pilot.press("x")
            await eventually(lambda: target.exists(), timeout=10)
    finally:
        await node.close()
    assert running.proc.returncode is None


async def wait_for_names(pilot, expected: list[str]) -> None:
    for _ in range(200):
        await settle(pilot)
        if names(pilot) == expected:
            return
    assert names(pilot) == expected
