"""The node's two HTTP faces (aiohttp):

- the peer endpoint: one WebSocket per peer at `/p2pu/v1`, on the node's port and `--listen`
  address (all interfaces by default; `--interface` confines discovery, not this listener);
- the control API on 127.0.0.1 only, for the CLI and an attached app of the same home; every
  request, the event feed included, carries the bearer token from the home's 0600
  `control.token`. The CLI's routes speak JSON; an attached app's (`/v1/api/NAME`,
  `/v1/actions/NAME`, the `/v1/events` WebSocket) speak msgpack (`net/codec.py`), so it gets
  back the very values an in-process node returns. README's "Local control API" lists them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import inspect
import json
import logging
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import WSCloseCode, web

from p2pnode.errors import InvalidInput, NodeError, NotFound
from p2pnode.net import codec
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

#: the node's queries an attached app may call by name (each a method of `ControlHost`)
QUERIES = frozenset({"status", "peers_info", "circles", "circle", "resources", "my_circles",
                     "take_notices", "preference", "set_preference", "add_peer", "share",
                     "transfers", "cancel_fetch", "doctor"})
#: the node's streamed queries (async iterators), by name: one msgpack value per item
STREAMS = frozenset({"fetch_progress", "export_progress", "import_progress"})
#: the first message of the event feed: the node subscribed, every later event will follow
EVENTS_READY = {"events": "subscribed"}
#: seconds between pings on the event feed; a client silent for twice as long is dropped
EVENTS_HEARTBEAT = 10.0
_CALL_BODY_LIMIT = 1 << 20


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


def _msgpack(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=codec.encode(data), content_type=codec.MEDIA_TYPE)


def _error_status(error: BaseException) -> int:
    if isinstance(error, NotFound):
        return 404
    if isinstance(error, NodeError | ProtocolError | ValueError | TypeError):
        return 400
    return 500


async def _call_arguments(request: web.Request) -> tuple[list[Any], dict[str, Any]]:
    """The ``{"args": [...], "kwargs": {...}}`` msgpack body of a call.

    Raises:
        InvalidInput: another shape.
    """
    data = codec.decode(await request.read()) if request.can_read_body else {}
    args = data.get("args", []) if isinstance(data, dict) else None
    kwargs = data.get("kwargs", {}) if isinstance(data, dict) else None
    if (not isinstance(args, list) or not isinstance(kwargs, dict)
            or not all(isinstance(k, str) for k in kwargs)):
        raise InvalidInput('a call\'s body is msgpack {"args": [...], "kwargs": {...}}')
    return args, kwargs


def control_app(node: ControlHost, token: str,
                actions: Mapping[str, Callable[..., Any]] | None = None) -> web.Application:
    """The control API of `node`, guarded by `token`.

    Args:
        actions: the actions `/v1/actions/NAME` may run, by name (`p2pnode.api.ACTIONS`); any
            other name is refused, so no request can make the node run an arbitrary function.
    """
    registry = dict(actions or {})
    event_sockets: weakref.WeakSet[web.WebSocketResponse] = weakref.WeakSet()

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            refusal = {"error": "missing or wrong control token"}
            if request.path.startswith(("/v1/api/", "/v1/actions/", "/v1/stream/")):
                return _msgpack({"error": codec.error_to_wire(NodeError(refusal["error"]))},
                                401)
            return _json(refusal, 401)
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
        address = str(body.get("address", ""))
        node.add_peer(address)
        return _json({"dialling": address})

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

    async def answer(call: Callable[[], Awaitable[Any]], what: str) -> web.Response:
        """Run one call of an attached app; its result or its error as msgpack."""
        try:
            return _msgpack({"result": await call()})
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            status_code = _error_status(exc)
            if status_code == 500:
                log.error("control API: %s failed", what, exc_info=exc)
            return _msgpack({"error": codec.error_to_wire(exc)}, status_code)

    async def query(request: web.Request) -> web.Response:
        name = request.match_info["name"]

        async def call() -> Any:
            if name not in QUERIES:
                raise NotFound(f"the control API has no query {name!r}")
            args, kwargs = await _call_arguments(request)
            result = getattr(node, name)(*args, **kwargs)
            return await result if inspect.isawaitable(result) else result

        return await answer(call, name)

    async def action(request: web.Request) -> web.Response:
        name = request.match_info["name"]

        async def call() -> Any:
            function = registry.get(name)
            if function is None:
                raise InvalidInput(f"{name!r} is not one of the node's actions")
            args, kwargs = await _call_arguments(request)
            return await node.perform(function, *args, **kwargs)

        return await answer(call, name)

    async def stream(request: web.Request) -> web.StreamResponse:
        """A streamed query: ``{"item": ...}`` values back to back, then ``{"end": True}`` or
        ``{"error": ...}``. A client that goes away closes the iterator (a download stops)."""
        name = request.match_info["name"]
        try:
            if name not in STREAMS:
                raise NotFound(f"the control API has no stream {name!r}")
            args, kwargs = await _call_arguments(request)
            items = getattr(node, name)(*args, **kwargs)
        except Exception as exc:
            return _msgpack({"error": codec.error_to_wire(exc)}, _error_status(exc))
        response = web.StreamResponse(headers={"Content-Type": codec.MEDIA_TYPE})
        await response.prepare(request)
        end: dict[str, Any] = {"end": True}
        try:
            async with contextlib.aclosing(items):
                async for item in items:
                    await response.write(codec.encode({"item": item}))
        except ConnectionError:
            return response  # the client went away
        except Exception as exc:
            if _error_status(exc) == 500:
                log.error("control API: stream %s failed", name, exc_info=exc)
            end = {"error": codec.error_to_wire(exc)}
        with contextlib.suppress(ConnectionError):
            await response.write(codec.encode(end))
            await response.write_eof()
        return response

    async def events(request: web.Request) -> web.StreamResponse:
        """The node's events, one msgpack WebSocket message each, after `EVENTS_READY`."""
        ws = web.WebSocketResponse(heartbeat=EVENTS_HEARTBEAT, compress=False)
        if not ws.can_prepare(request).ok:
            return _json({"error": "the event feed is a WebSocket"}, 426)
        await ws.prepare(request)
        event_sockets.add(ws)

        async def pump() -> None:
            async with contextlib.aclosing(node.events()) as feed:
                first = asyncio.ensure_future(anext(feed))  # its first step subscribes
                try:
                    await asyncio.sleep(0)
                    await ws.send_bytes(codec.encode(EVENTS_READY))
                    await ws.send_bytes(codec.encode(await first))
                finally:
                    if not first.done():
                        first.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await first
                async for event in feed:
                    await ws.send_bytes(codec.encode(event))

        async def drain() -> None:
            async for _ in ws:  # the client sends nothing; this ends when it goes away
                pass

        tasks = {asyncio.ensure_future(pump()), asyncio.ensure_future(drain())}
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if not task.cancelled() and task.exception() is not None \
                        and not isinstance(task.exception(), ConnectionError):
                    log.warning("control API: event feed ended: %r", task.exception())
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await ws.close()
        return ws

    async def close_event_feeds(app: web.Application) -> None:
        for ws in list(event_sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"node stopping")

    app = web.Application(middlewares=[auth], client_max_size=_CALL_BODY_LIMIT)
    app.on_shutdown.append(close_event_feeds)
    app.router.add_post("/v1/api/{name}", query)
    app.router.add_post("/v1/actions/{name}", action)
    app.router.add_post("/v1/stream/{name}", stream)
    app.router.add_get("/v1/events", events)
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
