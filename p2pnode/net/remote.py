"""`RemoteNode`: a node running in another process (`p2pnode run`), reached through its local
control API, with the same interface as an in-process `Node` (`p2pnode.api.NodeAPI`).

It reads the home's `control.json` (port) and 0600 `control.token`, and talks to 127.0.0.1 only:
queries at ``POST /v1/api/NAME`` (downloads streamed at ``/v1/stream/NAME``), actions at
``POST /v1/actions/NAME`` (by the action function's name; the node runs only those in its
registry), events over the ``/v1/events`` WebSocket. Bodies are msgpack (`net/codec.py`), so
results are the same dataclasses with the same bytes ids, and a refusal is raised here as the
node raised it, same type and message.

Closing a `RemoteNode` closes its connections, never the node: quitting an attached app leaves
`p2pnode run` running. If the node stops meanwhile, calls raise `NotRunning` and the event feed
ends with `NotRunning`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from p2pnode import config
from p2pnode.errors import InvalidInput, NodeError, NotRunning
from p2pnode.events import NodeEvent
from p2pnode.net import codec
from p2pnode.net.server import EVENTS_HEARTBEAT, EVENTS_READY, split_host_port
from p2pnode.store.inbox import Notice
from p2pnode.store.models import CircleDetail, CircleSummary, Resource, Shared

log = logging.getLogger(__name__)
T = TypeVar("T")

#: seconds to wait for one answer of the node (a query or an action)
_CALL_TIMEOUT = 60.0
_CONNECT_TIMEOUT = 5.0
#: the modules whose functions are actions (the node's registry, `p2pnode.api.ACTIONS`, decides)
_ACTION_MODULES = frozenset({"p2pnode.actions", "p2pnode.blobs.resources", "p2pnode.meeting"})


def control_endpoint(home: Path) -> tuple[int, str] | None:
    """The control API port and token a running node wrote into `home`, or None."""
    try:
        info = json.loads((home / config.CONTROL_FILE).read_text())
        token = (home / config.TOKEN_FILE).read_text().strip()
        return int(info["port"]), token
    except (OSError, ValueError, KeyError, TypeError):
        return None


class RemoteNode:
    """The node serving `home` in another process. ``async with RemoteNode(home) as node``.

    Raises (from `start`):
        NotRunning: no node answers for this home.
        NodeError: the node refused the home's token.
    """

    def __init__(self, home: Path | str) -> None:
        self.home_path = Path(home)
        self.port: int | None = None
        #: event feeds connected now (each subscribed on the node)
        self.feeds_open = 0
        #: set once the node stopped answering (a refused connection, the event feed ended)
        self.lost = asyncio.Event()
        self._token = ""
        self._node_id: bytes | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------
    async def __aenter__(self) -> RemoteNode:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Find the node of the home and check that it answers to the home's token."""
        endpoint = control_endpoint(self.home_path)
        if endpoint is None:
            raise self._not_running()
        self.port, self._token = endpoint
        self._session = aiohttp.ClientSession(
            f"http://127.0.0.1:{self.port}",
            headers={"Authorization": f"Bearer {self._token}"},
            timeout=aiohttp.ClientTimeout(total=_CALL_TIMEOUT, connect=_CONNECT_TIMEOUT),
        )
        try:
            status = await self.status()
        except BaseException:
            await self.close()
            raise
        self._node_id = status["node_id"]

    async def close(self) -> None:
        """Close the connections to the node (the node keeps running); safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    @property
    def node_id(self) -> bytes:
        if self._node_id is None:
            raise NotRunning("not attached to a node yet")
        return self._node_id

    def _not_running(self) -> NotRunning:
        if self._node_id is not None and not self._closed:
            self.lost.set()
        return NotRunning(f"no node is running for {self.home_path}; start one with: p2pnode run")

    # -- calls -----------------------------------------------------------------------------
    async def _call(self, path: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self._session is None or self._closed:
            raise NotRunning("not attached to a node")
        body = codec.encode({"args": list(args), "kwargs": kwargs})
        try:
            async with self._session.post(
                    path, data=body, headers={"Content-Type": codec.MEDIA_TYPE}) as response:
                data = await response.read()
                status, media_type = response.status, response.content_type
        except (aiohttp.ClientConnectionError, TimeoutError):
            raise self._not_running() from None
        if media_type != codec.MEDIA_TYPE:
            raise NodeError(f"the node answered {path} with HTTP {status} (is it this version?)")
        answer = codec.decode(data)
        if not isinstance(answer, dict):
            raise codec.WireError("the node sent an unreadable answer")
        if status == 200 and "result" in answer:
            return answer["result"]
        raise codec.error_from_wire(answer.get("error"))

    async def _query(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return await self._call(f"/v1/api/{name}", args, kwargs)

    async def perform(self, action: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Ask the node to run `action` (one of `p2pnode.api.ACTIONS`, sent by its name).

        Raises:
            InvalidInput: `action` is not one of the node's actions (nothing is sent).
            NodeError, ProtocolError: the action's own refusal, as the node raised it.
        """
        name = getattr(action, "__name__", "")
        if getattr(action, "__module__", None) not in _ACTION_MODULES:
            raise InvalidInput(f"{name or action!r} is not one of the node's actions")
        return await self._call(f"/v1/actions/{name}", args, kwargs)

    async def status(self) -> dict[str, Any]:
        return await self._query("status")

    async def peers_info(self) -> list[dict[str, Any]]:
        return await self._query("peers_info")

    async def circles(self, **filters: Any) -> list[CircleSummary]:
        return await self._query("circles", **filters)

    async def circle(self, circle_id: bytes) -> CircleDetail | None:
        return await self._query("circle", circle_id)

    async def resources(self, circle: bytes | None = None) -> list[Resource]:
        return await self._query("resources", circle)

    async def my_circles(self) -> dict[bytes, str]:
        return await self._query("my_circles")

    async def take_notices(self) -> list[Notice]:
        return await self._query("take_notices")

    async def preference(self, key: str) -> str | None:
        return await self._query("preference", key)

    async def set_preference(self, key: str, value: str | None) -> None:
        await self._query("set_preference", key, value)

    def add_peer(self, address: str) -> None:
        """Ask the node to keep a session with "host:port" (sent in the background, as an
        in-process node dials in the background).

        Raises:
            InvalidInput: `address` is not HOST:PORT (checked here, before anything is sent).
        """
        try:
            split_host_port(address)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        task = asyncio.get_running_loop().create_task(self._add_peer(address), name="add-peer")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _add_peer(self, address: str) -> None:
        try:
            await self._query("add_peer", address)
        except NodeError as exc:
            log.warning("could not ask the node to dial %s: %s", address, exc)

    async def fetch_progress(self, blob_id: bytes, output: str | None
                             ) -> AsyncIterator[dict[str, Any]]:
        """Download a resource on the node; yields its progress dicts, the last one with `done`
        or `error`. Closing the iterator early cancels the download (the node keeps what it
        has). A relative `output` is relative to this process's directory, not the node's."""
        if output is not None:
            output = str(Path(output).absolute())
        async with contextlib.aclosing(self._stream("fetch_progress", blob_id, output)) as items:
            async for item in items:
                yield item

    # -- files and checks (p2pnode.node_files on the node) -----------------------------------
    #: quitting an attached app leaves `p2pnode run` running
    quitting_stops_node = False

    async def share(self, path: str | Path, *, title: str | None = None,
                    circle: bytes | None = None, licence: str | None = None,
                    caption: str | None = None) -> Shared:
        """Ask the node to share the file at `path` (made absolute here: the node's directory
        is not ours). Raises as `Node.share` does."""
        return await self._query("share", str(Path(path).expanduser().absolute()), title=title,
                                 circle=circle, licence=licence, caption=caption)

    async def transfers(self) -> list[dict[str, Any]]:
        return await self._query("transfers")

    async def cancel_fetch(self, blob_id: bytes) -> bool:
        return await self._query("cancel_fetch", blob_id)

    async def doctor(self) -> dict[str, Any]:
        return await self._query("doctor")

    async def export_progress(self, path: str | Path) -> AsyncIterator[dict[str, Any]]:
        """`Node.export_progress` on the node; `path` made absolute here."""
        target = str(Path(path).expanduser().absolute())
        async with contextlib.aclosing(self._stream("export_progress", target)) as items:
            async for item in items:
                yield item

    async def import_progress(self, path: str | Path) -> AsyncIterator[dict[str, Any]]:
        """`Node.import_progress` on the node; `path` made absolute here."""
        source = str(Path(path).expanduser().absolute())
        async with contextlib.aclosing(self._stream("import_progress", source)) as items:
            async for item in items:
                yield item

    async def _stream(self, name: str, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        if self._session is None or self._closed:
            raise NotRunning("not attached to a node")
        body = codec.encode({"args": list(args), "kwargs": kwargs})
        # no total timeout: a download takes as long as it takes; the node sends a step a second
        timeout = aiohttp.ClientTimeout(total=None, connect=_CONNECT_TIMEOUT,
                                        sock_read=_CALL_TIMEOUT)
        try:
            async with self._session.post(
                    f"/v1/stream/{name}", data=body, timeout=timeout,
                    headers={"Content-Type": codec.MEDIA_TYPE}) as response:
                if response.content_type != codec.MEDIA_TYPE:
                    raise NodeError(f"the node answered {name} with HTTP {response.status}")
                if response.status != 200:
                    answer = codec.decode(await response.read())
                    raise codec.error_from_wire(
                        answer.get("error") if isinstance(answer, dict) else None)
                decoder = codec.unpacker()
                async for chunk in response.content.iter_any():
                    decoder.feed(chunk)
                    for message in decoder:
                        if not isinstance(message, dict):
                            raise codec.WireError("the node sent an unreadable answer")
                        if "item" in message:
                            yield message["item"]
                        elif "error" in message:
                            raise codec.error_from_wire(message["error"])
                        else:
                            return
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError):
            raise self._not_running() from None
        raise NodeError("the node stopped answering midway")

    # -- events ----------------------------------------------------------------------------
    async def events(self) -> AsyncIterator[NodeEvent]:
        """The node's events from now on, in order, `Lagged` included.

        Raises:
            NotRunning: the node stopped (or was never reachable).
        """
        if self._session is None or self._closed:
            raise NotRunning("not attached to a node")
        try:
            ws = await self._session.ws_connect(
                "/v1/events", heartbeat=EVENTS_HEARTBEAT, autoclose=True, max_msg_size=1 << 20,
                timeout=aiohttp.ClientWSTimeout(ws_close=2.0))
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status == 401:
                raise NodeError("the node refused this home's control token") from None
            raise NodeError(f"the node refused the event feed (HTTP {exc.status})") from None
        except (aiohttp.ClientConnectionError, TimeoutError):
            raise self._not_running() from None
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(ws.close)
            ready = await ws.receive(timeout=_CALL_TIMEOUT)
            if ready.type != aiohttp.WSMsgType.BINARY or codec.decode(ready.data) != EVENTS_READY:
                raise NodeError("the node's event feed did not start")
            self.feeds_open += 1
            stack.callback(self._feed_closed)
            async for message in ws:
                if message.type == aiohttp.WSMsgType.BINARY:
                    yield codec.decode(message.data)
        if not self._closed:
            self.lost.set()
            raise NotRunning(f"the node serving {self.home_path} stopped")

    def _feed_closed(self) -> None:
        self.feeds_open -= 1

    def __repr__(self) -> str:
        return f"<RemoteNode {self.home_path} port={self.port}>"
