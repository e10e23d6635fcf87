"""The local control API's guards, against a real `p2pnode run` process: it listens on 127.0.0.1
only, every route (the event feed included) wants the home's token, and an attached client can
run only the node's registered actions and queries, never an arbitrary function.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from pathlib import Path

import aiohttp
import msgpack
import pytest

from p2pnode import actions, config
from p2pnode.errors import InvalidInput, NodeError, NotFound, NotRunning
from p2pnode.net import codec
from p2pnode.net.remote import RemoteNode
from p2pnode.net.server import control_app


def _token(home: Path) -> str:
    return (home / config.TOKEN_FILE).read_text().strip()


def _routes() -> list[tuple[str, str]]:
    """(method, path) of every route the control API serves, with a real name in each pattern."""
    app = control_app(None, "unused", {})  # type: ignore[arg-type]  # handlers never run here
    found = []
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        path = route.resource.canonical
        path = path.replace("{name}", "set_profile" if "actions" in path else "status")
        found.append((route.method, path))
    return found


def test_the_route_list_covers_the_attach_routes():
    """The guard test below sees every route, the new ones included (so it can fail)."""
    routes = _routes()
    assert ("POST", "/v1/api/status") in routes and ("POST", "/v1/actions/set_profile") in routes
    assert ("GET", "/v1/events") in routes and ("GET", "/v1/status") in routes
    assert len(routes) >= 9


async def test_every_route_wants_the_token(cli, tmp_path):
    """Without the token or with a wrong one, every route answers 401 and does nothing (no
    profile written); the event feed's WebSocket handshake is refused the same way."""
    home = tmp_path / "home"
    running = await cli.start(home)
    base = f"http://127.0.0.1:{running.control_port}"
    body = codec.encode({"args": ["Mallory"], "kwargs": {}})
    async with aiohttp.ClientSession(base) as session:
        for method, path in _routes():
            for headers in ({}, {"Authorization": "Bearer not-the-token"},
                            {"Authorization": _token(home)}):
                async with session.request(method, path, data=body, headers=headers) as answer:
                    assert answer.status == 401, (method, path, headers)
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect("/v1/events",
                                     headers={"Authorization": "Bearer not-the-token"})
        assert refused.value.status == 401
        ok = {"Authorization": f"Bearer {_token(home)}"}
        async with session.post("/v1/api/status", data=codec.encode({}), headers=ok) as answer:
            assert answer.status == 200
            assert codec.decode(await answer.read())["result"]["name"] is None  # untouched


async def test_it_listens_on_loopback_only(cli, tmp_path):
    """The control port accepts on 127.0.0.1 and refuses on 127.0.0.2, which a listener on all
    addresses would accept; the kernel's table lists it bound to 127.0.0.1."""
    running = await cli.start(tmp_path / "home")
    port = running.control_port
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.close()
    await writer.wait_closed()
    with pytest.raises(OSError):
        await asyncio.wait_for(asyncio.open_connection("127.0.0.2", port), 5)
    listening = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, port_hex = local.split(":")
        if state == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
            listening.append(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    assert listening == ["127.0.0.1"]


async def test_only_registered_actions_and_queries_run(cli, tmp_path):
    """A function outside the registry is refused by the client before sending and by the node
    if sent anyway (a real function of p2pnode.actions that is not an action, a builtin's
    name); unknown queries are NotFound; a body naming an unknown type is refused."""
    home = tmp_path / "home"
    await cli.start(home)
    victim = tmp_path / "keep-me"
    victim.write_text("still here")
    async with RemoteNode(home) as node:
        with pytest.raises(InvalidInput, match="not one of the node's actions"):
            await node.perform(os.remove, str(victim))
        with pytest.raises(InvalidInput, match="'check_new_schedule' is not one of the node's"):
            await node.perform(actions.check_new_schedule, [], "UTC", 0)
        with pytest.raises(NotFound, match="no query 'close'"):
            await node._query("close")
    assert victim.read_text() == "still here"
    ok = {"Authorization": f"Bearer {_token(home)}"}
    async with aiohttp.ClientSession(f"http://127.0.0.1:{_port(home)}") as session:
        async with session.post("/v1/actions/remove", headers=ok,
                                data=codec.encode({"args": [str(victim)]})) as answer:
            assert answer.status == 400
            error = codec.error_from_wire(codec.decode(await answer.read())["error"])
            assert isinstance(error, InvalidInput)
        popen = msgpack.ExtType(1, msgpack.packb(["Popen", [["touch", str(victim) + "2"]]]))
        async with session.post("/v1/actions/set_profile", headers=ok,
                                data=msgpack.packb({"args": [popen]})) as answer:
            assert answer.status == 400
            assert "'Popen' is not a type" in (await answer.read()).decode(errors="replace")
    assert not (tmp_path / "keep-me2").exists()
    assert victim.read_text() == "still here"


def _port(home: Path) -> int:
    return int(json.loads((home / config.CONTROL_FILE).read_text())["port"])


async def test_a_wrong_token_or_no_node_is_a_clear_error(cli, tmp_path, eventually):
    """Attaching with a token the node does not know is refused in words; attaching where no
    node runs is NotRunning; a node that stops ends the event feed with NotRunning."""
    with pytest.raises(NotRunning, match="no node is running"):
        await RemoteNode(tmp_path / "nowhere").start()
    home = tmp_path / "home"
    running = await cli.start(home)
    impostor = tmp_path / "impostor"
    impostor.mkdir()
    (impostor / config.CONTROL_FILE).write_text((home / config.CONTROL_FILE).read_text())
    (impostor / config.TOKEN_FILE).write_text("guessed")
    with pytest.raises(NodeError, match="missing or wrong control token"):
        await RemoteNode(impostor).start()

    async with RemoteNode(home) as node:
        feed = node.events()
        waiting = asyncio.ensure_future(anext(feed))
        await eventually(lambda: node.feeds_open, timeout=10)
        await running.stop()
        with pytest.raises(NotRunning, match="stopped"):
            await asyncio.wait_for(waiting, 10)
        with pytest.raises(NotRunning):
            await node.status()
        await feed.aclose()
