"""The app attached to a `p2pnode run` process (issue 11 item 4): `tui.run.open_node` attaches
when a node serves the home and starts one of its own otherwise; attached, the app shows what a
peer announces live, and quitting it leaves the `run` process serving.
"""

from __future__ import annotations

import time

from builders import circle_body
from test_circles import names
from tui_helpers import days_from_today, notifications, settle

from p2pnode import actions
from p2pnode.net.remote import RemoteNode
from p2pnode.node import Node
from tui.run import open_node


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
