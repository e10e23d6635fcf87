"""The node's two HTTP faces (aiohttp):

- the peer endpoint: one WebSocket per peer at `/p2pu/v1`, on the node's port and `--listen`
  address (all interfaces by default; `--interface` confines discovery, not this listener);
- the control API: JSON over HTTP on 127.0.0.1 only, for the CLI and TUI of the same home; every
  request carries the bearer token from the home's 0600 `control.token`.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from p2pnode.errors import NodeError, NotFound
from p2pnode.net.connection import PeerConnection, max_ws_message
from p2pnode.store.models import to_jsonable
from protocol.errors import ProtocolError
from protocol.identity import parse_id
from protocol.session import WEBSOCKET_PATH

if TYPE_CHECKING:
    from p2pnode.net.host import ControlHost, PeerHost
    from p2pnode.net.peers import PeerManager

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def peer_app(host: PeerHost, manager: PeerManager) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        address = f"{request.remote}"
        handshake_seconds = manager.admit(address)
        if handshake_seconds is None:
            return web.Response(status=503, text="too many peers\n")
        ws = web.WebSocketResponse(
            max_msg_size=max_ws_message(), compress=False, autoping=True, timeout=2.0
        )
        if not ws.can_prepare(request).ok:
            return web.Response(status=426, text="p2pnode peers speak WebSocket here\n")
        await ws.prepare(request)
        conn = PeerConnection(host, manager, ws, initiator=False, address=address,
                              how="incoming", handshake_timeout=handshake_seconds)
        await manager.serve(conn)
        return ws

    app = web.Application(client_max_size=4096)
    app.router.add_get(WEBSOCKET_PATH, handle)
    return app


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(to_jsonable(data)), content_type="application/json"
    )


def control_app(node: ControlHost, token: str) -> web.Application:
    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return _json({"error": "missing or wrong control token"}, 401)
        try:
            return await handler(request)
        except NotFound as exc:
            return _json({"error": str(exc)}, 404)
        except (NodeError, ProtocolError, ValueError) as exc:
            return _json({"error": str(exc)}, 400)

    async def status(request: web.Request) -> web.Response:
        return _json(await node.status())

    async def peers(request: web.Request) -> web.Response:
        return _json(await node.peers_info())

    async def refresh(request: web.Request) -> web.Response:
        count = await node.refresh()
        return _json({"new_entries": count})

    async def add_peer(request: web.Request) -> web.Response:
        body = await request.json()
        host, port = split_host_port(str(body.get("address", "")))
        node.add_peer(host, port)
        return _json({"dialling": f"{host}:{port}"})

    async def fetch(request: web.Request) -> web.StreamResponse:
        """Download a blob; streams one JSON line per progress step, the last with the result."""
        body = await request.json()
        blob_id = parse_id(str(body.get("blob", "")), "blob")
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        # aclosing: a client that goes away cancels the download now (its partial is kept)
        updates = node.fetch_progress(blob_id, body.get("output"))
        try:
            async with contextlib.aclosing(updates):
                async for update in updates:
                    await response.write(json.dumps(to_jsonable(update)).encode() + b"\n")
            await response.write_eof()
        except ConnectionError:
            pass  # the CLI went away (Ctrl-C)
        return response

    async def resources(request: web.Request) -> web.Response:
        circle = request.query.get("circle")
        return _json(await node.resources(parse_id(circle, "circle") if circle else None))

    app = web.Application(middlewares=[auth], client_max_size=65536)
    app.router.add_get("/v1/status", status)
    app.router.add_get("/v1/peers", peers)
    app.router.add_post("/v1/refresh", refresh)
    app.router.add_post("/v1/peers", add_peer)
    app.router.add_post("/v1/fetch", fetch)
    app.router.add_get("/v1/resources", resources)
    return app


def split_host_port(text: str) -> tuple[str, int]:
    """Parse ``host:port`` or ``[v6]:port``.

    Raises:
        ValueError: not of that form, or the port is out of range.
    """
    text = text.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"port must be 1-65535, got {port}")
    return host.strip("[]"), port
