"""A running node notices entries that another process wrote to its home (p2pnode/node.py's
database watch), with or without being told over the control API."""

from __future__ import annotations

import asyncio

from p2pnode import actions
from p2pnode.events import EntryArrived
from p2pnode.home import Home


def _write_profile_elsewhere(home_path, name: str) -> None:
    """What a second process does: its own connection to the store, no refresh call."""
    with Home.open(home_path) as home:
        actions.set_profile(home, name)


async def test_a_write_by_another_connection_is_noticed_without_a_refresh(nodes, eventually):
    """A commit on another SQLite connection, with nobody calling /v1/refresh, still reaches
    the node's event stream (the stat-gated data_version check), within a few seconds."""
    a = await nodes.start("a")
    seen = await nodes.record(a)
    await asyncio.to_thread(_write_profile_elsewhere, nodes.home("a"), "Written elsewhere")
    await eventually(lambda: any(isinstance(e, EntryArrived) and e.kind == "profile" and e.own
                                 for e in seen), timeout=5)


async def test_an_idle_node_leaves_sqlite_alone(nodes):
    """An idle node writes nothing to its store, so the files' stamp stays put and the watch
    never hands a data_version check to the store thread."""
    a = await nodes.start("a")
    await asyncio.sleep(0.2)
    stamp = a._database_stamp()
    await asyncio.sleep(2.5)
    assert a._database_stamp() == stamp
