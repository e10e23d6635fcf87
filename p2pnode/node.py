"""`Node`: the running peer. It owns the home (keys, store), the peer endpoint and control API,
the peer manager and discovery, and offers the public async API that the CLI and TUI use:
queries, actions, and a stream of events. Nothing outside this package touches SQLite or sockets.

Lifecycle: ``async with Node(home_path, ...) as node:``, or `start()` / `close()`; `close()` is
safe to call twice and shuts down in reverse order of start. The store is driven from one worker
thread, so SQLite work (and the signature checks inside `Store.ingest`) never blocks the loop.

Every new entry, whoever wrote it (this node, a peer, an import, a CLI process on the same home),
is noticed the same way: by scanning the entries table past the last row seen. The scan runs after
each write of ours, on `/v1/refresh` from a CLI (which every writing command sends), and, for any
other writer, when SQLite's `data_version` says another connection committed. That check costs a
thread hop, so it is made only when the database files' stat changed (`_database_stamp`, a
`stat` on the loop every `_WATCH_INTERVAL`): an idle node wakes once a second and touches SQLite
not at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import json
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from aiohttp import web

from p2pnode import actions, api, config
from p2pnode.blobs.host import PeerLink
from p2pnode.blobs.service import BlobService
from p2pnode.errors import DiskFull, HomeError, InvalidInput, NodeError, NotRunning, StorageError
from p2pnode.events import EntryArrived, EventBus, NodeEvent, PeerDiscovered
from p2pnode.home import Home
from p2pnode.net.connection import PeerConnection
from p2pnode.net.forwarding import ForwardingDriver
from p2pnode.net.peers import PeerManager, selection_limits
from p2pnode.net.server import control_app, peer_app, split_host_port
from p2pnode.node_files import NodeFiles
from p2pnode.store import inbox, queries
from p2pnode.store.database import IngestReport
from p2pnode.store.models import CircleDetail, CircleSummary, Resource
from protocol.entry import Entry
from protocol.frames import REPLICATION_VERSION
from protocol.identity import fingerprint, node_id_text

log = logging.getLogger(__name__)

#: How often the database files are looked at for commits by other processes. CLI writes do
#: not wait for it (they call /v1/refresh); it bounds an idle node's wake-ups (bench/idle.py).
_WATCH_INTERVAL = 1.0
_PRUNE_INTERVAL = 6 * 3600.0
#: held (flock) by the one node serving a home, for as long as it runs
LOCK_FILE = "node.lock"
#: seconds between attempts to write while the disk is full
_SPACE_PROBE_INTERVAL = 2.0
T = TypeVar("T")


def node_running(home: Path | str) -> bool:
    """Whether a node (in this or another process) serves `home` now: its lock is held."""
    path = Path(home) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing releases a lock we took
    return False


def _now_ms() -> int:
    return int(time.time() * 1000)


class Node(NodeFiles):
    """A p2pnode peer. See the module docstring.

    Args:
        home: the node home (created with a fresh identity when missing).
        port: TCP port for peers (0: any free port; see `port` once started).
        host: address(es) to listen on for peers; "0.0.0.0" (all) by default.
        peers: "host:port" of peers to keep a session with (for networks without multicast).
        mdns: advertise and browse on the local network.
        interface: confine mDNS to this interface name or address.
        network_key: the 32-byte network key (default: the open network).
        control: serve the local control API and write `control.json` for CLIs.
        cooperating_responders: skip mDNS name probing (tests only).
        session_limits: keyword overrides for `protocol.session.Session` limits (tests only).
        upload_rate: serve resources at no more than this many bytes a second (None: no limit).
        max_peers: cap on sessions with discovered peers, dialled or dialling us (None: 8 + 24;
            see `p2pnode.net.selection`); manual peers come on top.
    """

    def __init__(
        self,
        home: Path | str,
        *,
        port: int = config.DEFAULT_PORT,
        host: str | list[str] = "0.0.0.0",
        peers: list[str] | None = None,
        mdns: bool = True,
        interface: str | None = None,
        network_key: bytes = config.OPEN_NETWORK_KEY,
        control: bool = True,
        cooperating_responders: bool = False,
        session_limits: dict[str, Any] | None = None,
        upload_rate: float | None = None,
        max_peers: int | None = None,
        replication_version: int = REPLICATION_VERSION,
    ) -> None:
        self.home_path = Path(home)
        self.requested_port = port
        self.host = host
        self.initial_peers = list(peers or [])
        self.mdns = mdns
        self.interface = interface
        self.network_key = network_key
        self.serve_control = control
        self.cooperating_responders = cooperating_responders
        self.session_limits = dict(session_limits or {})
        self.upload_rate = upload_rate
        #: the replication version sessions speak (1 only in tests: a node that pushes all)
        self.replication_version = replication_version
        #: set while the disk holding the home is full (what peers send is not stored)
        self._disk_full: DiskFull | None = None
        self.bus = EventBus()
        self.peers = PeerManager(self, None if max_peers is None else selection_limits(max_peers))
        self.forwarding = ForwardingDriver(self.clock_view, self.peers.open_connections)
        self.home: Home | None = None
        self.port: int | None = None
        self.started_ms: int | None = None
        self.discovery: Any = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="p2pnode-store")
        self._runners: list[web.AppRunner] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._lock_fd: int | None = None
        self._clock: dict[bytes, int] = {}
        self._last_rowid = 0
        self._scan_lock = asyncio.Lock()
        self._recovery_target: int | None = None
        #: mirrors Home.recovery_pending, so that the event loop never reads SQLite for it
        self._recovering = False
        self._started = False
        self._closed = False
        self.blobs: Any = None  # the resource transfer service, set up in start()

    # -- lifecycle -------------------------------------------------------------------------
    async def __aenter__(self) -> Node:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Open the home, listen, start discovery and dial the given peers."""
        if self._started:
            raise NodeError("this node was already started")
        self._started = True
        try:
            self.home = await self._in_thread(Home.open, self.home_path, create=True)
            self._take_lock()
            await self._in_thread(self.home.store.prune_expired, now_ms=_now_ms())
            self._clock = await self._in_thread(self.home.store.clock)
            self._last_rowid = await self._in_thread(self.home.store.max_rowid)
            self._recovering = await self._in_thread(lambda: self.home.recovery_pending)
            await self._start_services()
        except BaseException:
            await self.close()
            raise
        self.started_ms = _now_ms()
        log.info("node %s listening on port %s", self.identity.text, self.port)

    async def _start_services(self) -> None:
        self.blobs = BlobService(self, self.home.blobs_path, upload_rate=self.upload_rate)
        runner = web.AppRunner(peer_app(self, self.peers), handle_signals=False, access_log=None)
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(runner, self.host, self.requested_port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            raise NodeError(
                f"cannot listen on port {self.requested_port}: {exc.strerror}; is another node"
                " running? (try --port 0 for any free port)"
            ) from None
        self.port = _bound_port(runner)
        if self.serve_control:
            await self._start_control()
        for address in self.initial_peers:
            self.add_peer(address)
        if self.mdns:
            await self._start_discovery()
        self._spawn(self.forwarding.run(), "forwarding")
        self._spawn(self._watch_database(), "watch-database")
        self._spawn(self._prune_periodically(), "prune")

    async def _start_control(self) -> None:
        token = secrets.token_urlsafe(32)
        token_path = self.home_path / config.TOKEN_FILE
        token_path.unlink(missing_ok=True)
        fd = os.open(token_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(token)
        runner = web.AppRunner(control_app(self, token, api.ACTIONS), handle_signals=False,
                               access_log=None)
        await runner.setup()
        self._runners.append(runner)
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        info = {"port": _bound_port(runner), "pid": os.getpid(), "peer_port": self.port}
        tmp = self.home_path / f".{config.CONTROL_FILE}.tmp"
        tmp.write_text(json.dumps(info))
        os.replace(tmp, self.home_path / config.CONTROL_FILE)

    async def _start_discovery(self) -> None:
        from p2pnode.net.discovery import Discovery, PeerFound, PeerLost, resolve_interfaces

        def on_event(event: Any) -> None:
            if isinstance(event, PeerFound):
                self.bus.publish(PeerDiscovered(event.node_id, tuple(event.addresses),
                                                event.port))
                self.peers.discovered(event.node_id, event.addresses, event.port)
            elif isinstance(event, PeerLost):
                self.peers.vanished(event.node_id)

        interfaces = resolve_interfaces(self.interface) if self.interface else None
        assert self.port is not None
        self.discovery = Discovery(
            self.identity.node_id,
            self.port,
            self.network_key,
            interfaces=interfaces,
            on_event=on_event,
            cooperating_responders=self.cooperating_responders,
        )
        await self.discovery.start()

    async def close(self) -> None:
        """Stop everything, in reverse order of start; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        if self.discovery is not None:
            log.debug("closing: discovery")
            with contextlib.suppress(Exception):
                await self.discovery.close()
        log.debug("closing: peers")
        await self.peers.close()
        if self.blobs is not None:
            await self.blobs.close()
        for runner in reversed(self._runners):
            log.debug("closing: server")
            with contextlib.suppress(Exception):
                await runner.cleanup()
        log.debug("closing: store")
        if self.serve_control and self._lock_fd is not None:
            for name in (config.CONTROL_FILE, config.TOKEN_FILE):
                (self.home_path / name).unlink(missing_ok=True)
        if self.home is not None:
            home = self.home
            await asyncio.get_running_loop().run_in_executor(self._executor, home.close)
        self._executor.shutdown(wait=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _take_lock(self) -> None:
        path = self.home_path / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise HomeError(f"another node is already running for {self.home_path}") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _in_thread(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    # -- identity --------------------------------------------------------------------------
    @property
    def identity(self):
        if self.home is None:
            raise NotRunning("the node has not been started")
        return self.home.identity

    @property
    def node_id(self) -> bytes:
        return self.identity.node_id

    # -- entries in and out ----------------------------------------------------------------
    def clock_snapshot(self) -> dict[bytes, int]:
        """A copy of our clock: author -> latest seq held."""
        return dict(self._clock)

    def clock_view(self) -> Mapping[bytes, int]:
        """Our clock, read-only and not copied (for per-frame checks)."""
        return MappingProxyType(self._clock)

    async def read_feed(self, author: bytes, from_seq: int, limit: int) -> list[Entry]:
        assert self.home is not None
        return await self._in_thread(self.home.store.feed_entries, author, from_seq, limit)

    async def missing_bodies(self, limit: int) -> list[tuple[bytes, bytes, int]]:
        assert self.home is not None
        return await self._in_thread(self.home.store.entries_missing_body, limit)

    async def entries_with_bodies(self, ids: list[bytes]) -> list[Entry]:
        assert self.home is not None
        return await self._in_thread(self.home.store.entries_with_bodies, ids)

    async def ingest_from_peer(self, entries: tuple[Entry, ...]) -> IngestReport:
        assert self.home is not None
        job = self._spawn(
            self._in_thread(self.home.store.ingest, entries, now_ms=_now_ms()), "ingest"
        )
        try:
            report = await asyncio.shield(job)
        except DiskFull as exc:
            self._disk_is_full(exc)
            raise
        except asyncio.CancelledError:
            # The session ended mid-ingest; the store thread still commits: dispatch what it
            # stored, or clocks, pushes and events would miss it until the next write.
            if not self._closed:
                job.add_done_callback(lambda _: self._closed or self._spawn(self._scan(), "scan"))
            raise
        if report.accepted:
            await self._scan()
        return report

    def _disk_is_full(self, exc: DiskFull) -> None:
        """Say so once, then probe until there is room again (sessions refetch what they
        could not store)."""
        if self._disk_full is None:
            self._disk_full = exc
            log.warning("%s: not storing what peers send until there is room", exc)
            self._spawn(self._wait_for_space(), "wait-for-space")

    async def _wait_for_space(self) -> None:
        assert self.home is not None
        while True:
            await asyncio.sleep(_SPACE_PROBE_INTERVAL)
            try:
                await self._in_thread(self.home.store.probe_space)
            except StorageError:
                continue
            self._disk_full = None
            log.warning("there is room on the disk again: storing what peers send")
            for conn in self.peers.open_connections():
                conn.storage_resumed()
            return

    async def refresh(self) -> int:
        """Notice entries written by another process on this home; returns how many."""
        return await self._scan()

    async def _scan(self) -> int:
        """Dispatch every entry stored since the last scan: clocks, pushes, events."""
        assert self.home is not None
        count = 0
        async with self._scan_lock:
            while True:
                rows = await self._in_thread(self.home.store.rows_after, self._last_rowid)
                if not rows:
                    break
                self._last_rowid = rows[-1][0]
                count += len(rows)
                self._dispatch(rows)
        return count

    def _dispatch(self, rows: list[tuple[int, bytes, bytes, int, str]]) -> None:
        own = self.node_id
        seqs = []
        for _, entry_id, author, seq, kind in rows:
            if seq > self._clock.get(author, 0):
                self._clock[author] = seq
            seqs.append((author, seq))
            self.bus.publish(EntryArrived(entry_id, author, seq, kind, author == own))
        self.forwarding.stored({author for author, _ in seqs})
        for conn in self.peers.open_connections():
            conn.entries_stored(seqs)
        if self._recovery_target is not None and self._clock.get(own, 0) >= self._recovery_target:
            self._finish_recovery()

    async def _watch_database(self) -> None:
        assert self.home is not None
        stamp = self._database_stamp()
        version = await self._in_thread(self.home.store.data_version)
        while True:
            await asyncio.sleep(_WATCH_INTERVAL)
            current_stamp = self._database_stamp()
            if current_stamp == stamp:
                continue
            stamp = current_stamp
            current = await self._in_thread(self.home.store.data_version)
            if current != version:
                version = current
                await self._scan()

    def _database_stamp(self) -> tuple[tuple[int, int, int] | None, ...]:
        """The database and WAL files' identity, size and mtime: every commit, ours or another
        process's, changes it (a commit appends to the WAL; a checkpoint writes the database).
        A few microseconds of `stat`, cheap enough for the loop."""
        stamps = []
        for suffix in ("", "-wal"):
            try:
                st = os.stat(self.home_path / f"{config.DATABASE_FILE}{suffix}")
            except OSError:
                stamps.append(None)
            else:
                stamps.append((st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(stamps)

    async def _prune_periodically(self) -> None:
        assert self.home is not None
        while True:
            await asyncio.sleep(_PRUNE_INTERVAL)
            with contextlib.suppress(StorageError):  # a full disk: next time
                await self._in_thread(self.home.store.prune_expired, now_ms=_now_ms())

    # -- sessions --------------------------------------------------------------------------
    def remember_peer(self, node_id: bytes, address: str | None, how: str,
                      error: str | None = None) -> None:
        """Keep what we know of a peer in the store, for `p2pnode doctor` when no node runs."""
        if self.home is not None and not self._closed:
            store = self.home.store

            async def remember() -> None:
                with contextlib.suppress(StorageError):  # only for `doctor`: not worth a fuss
                    await self._in_thread(store.record_peer, node_id, address=address, how=how,
                                          now_ms=_now_ms(), error=error)
            self._spawn(remember(), "remember-peer")

    def on_session_open(self, conn: PeerConnection) -> None:
        if self.blobs is not None:
            self.blobs.session_opened(conn)

    def on_peer_clock(self, conn: PeerConnection) -> None:
        """The peer's whole clock is in: settle a pending recovery of our own feed."""
        if not self._recovering:
            return
        held_there = conn.replication.peer_clock.get(self.node_id, 0)
        if held_there == 0:
            # This peer never saw our feed: that proves nothing (another may hold it). Only a
            # peer holding it, or the user (`p2pnode recover --none`), ends the recovery.
            log.info("%s holds none of our earlier entries; still recovering", conn.label)
        elif held_there <= self._clock.get(self.node_id, 0):
            self._finish_recovery()
        else:
            self._recovery_target = max(self._recovery_target or 0, held_there)
            log.info("recovering our own feed: %d entries held by %s", held_there, conn.label)

    def _finish_recovery(self) -> None:
        assert self.home is not None
        self._recovery_target = None
        self._recovering = False
        self._spawn(self._in_thread(self.home.finish_recovery), "finish-recovery")
        log.info("own feed recovered up to seq %d", self._clock.get(self.node_id, 0))

    def penalise(self, link: PeerLink, reason: str, amount: float) -> None:
        """Lower a peer's score (the blob exchange caught it misbehaving)."""
        assert isinstance(link, PeerConnection)
        self.peers.penalise(link, reason, amount)

    # -- public API: events ----------------------------------------------------------------
    def events(self) -> AsyncIterator[NodeEvent]:
        """Subscribe to node events (entries, peers, transfers) from now on."""
        return self.bus.subscribe()

    # -- public API: queries ---------------------------------------------------------------
    async def circles(self, **filters: Any) -> list[CircleSummary]:
        """See `queries.list_circles` for the filters."""
        assert self.home is not None
        conn = self.home.store.conn
        return await self._in_thread(queries.list_circles, conn, now_ms=_now_ms(), **filters)

    async def circle(self, circle_id: bytes) -> CircleDetail | None:
        assert self.home is not None
        return await self._in_thread(
            queries.get_circle, self.home.store.conn, circle_id, now_ms=_now_ms()
        )

    async def resources(self, circle: bytes | None = None) -> list[Resource]:
        assert self.home is not None
        found = await self._in_thread(queries.list_resources, self.home.store.conn, circle=circle)
        return [self.blobs.annotate(r) for r in found] if self.blobs else found

    async def status(self) -> dict[str, Any]:
        assert self.home is not None
        store = self.home.store
        counts = await self._in_thread(store.counts_by_kind)
        profile = await self._in_thread(actions.my_profile, self.home)
        return {
            "node_id": self.node_id,
            "fingerprint": fingerprint(self.node_id),
            "name": (profile or {}).get("name"),
            "network": config.network_id(self.network_key),
            "port": self.port,
            "home": str(self.home_path),
            "started_ms": self.started_ms,
            "mdns": self.mdns,
            "interface": self.interface,
            "manual_peers": list(self.initial_peers),
            "peers_connected": len(self.peers.open_connections()),
            "feeds": len(self._clock),
            "entries": sum(counts.values()),
            "entries_by_kind": counts,
            "recovery_pending": await self._in_thread(lambda: self.home.recovery_pending),
        }

    async def peers_info(self) -> list[dict[str, Any]]:
        """Known peers: connected ones first, then ones seen or dialled, with their last error."""
        assert self.home is not None
        names = {}
        for node_id in self.peers.records:
            profile = await self._in_thread(queries.profile, self.home.store.conn, node_id)
            names[node_id] = (profile or {}).get("name")
        out = []
        transferred = self.blobs.peer_stats() if self.blobs is not None else {}
        for node_id, rec in self.peers.records.items():
            conn = self.peers.connections.get(node_id)
            moved = transferred.get(node_id, {}) if conn is not None else {}
            out.append({
                "node_id": node_id,
                "name": names.get(node_id),
                "address": conn.address if conn else (rec.address or ", ".join(rec.addresses)),
                "how": conn.how if conn else rec.how,
                "connected": conn is not None and conn.is_open,
                "connected_since_ms": conn.connected_since_ms if conn else None,
                "entries_sent": conn.replication.entries_sent if conn else 0,
                "entries_received": conn.replication.entries_received if conn else 0,
                "bytes_sent": moved.get("bytes_sent", 0),
                "bytes_received": moved.get("bytes_received", 0),
                "score": rec.score,
                "last_error": rec.last_error,
            })
        for address, error in self.peers.address_errors().items():
            out.append({"node_id": None, "name": None, "address": address, "how": "manual",
                        "connected": False, "connected_since_ms": None, "entries_sent": 0,
                        "entries_received": 0, "bytes_sent": 0, "bytes_received": 0,
                        "score": 0.0, "last_error": error})
        out.sort(key=lambda p: (not p["connected"], p["address"] or ""))
        return out

    async def my_circles(self) -> dict[bytes, str]:
        """Circles this node's user facilitates ("facilitating") or joined ("joined")."""
        assert self.home is not None
        return await self._in_thread(inbox.my_circles, self.home.store.conn, self.node_id)

    async def take_notices(self) -> list[inbox.Notice]:
        """Notices (reschedules, cancellations, sign-ups, accepts) about my circles that no
        interface has taken yet, oldest first; each is returned once per home, across restarts.
        """
        assert self.home is not None
        return await self._in_thread(inbox.take_notices, self.home.store, self.node_id)

    async def preference(self, key: str) -> str | None:
        """A setting a user interface remembers in this home (e.g. that it said welcome)."""
        assert self.home is not None
        return await self._in_thread(inbox.preference, self.home.store, key)

    async def set_preference(self, key: str, value: str | None) -> None:
        assert self.home is not None
        await self._in_thread(inbox.set_preference, self.home.store, key, value)

    def add_peer(self, address: str) -> None:
        """Keep a session with the peer at "host:port": dialled now, redialled after failures.

        Raises:
            InvalidInput: `address` is not HOST:PORT.
        """
        try:
            host, port = split_host_port(address)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        self.peers.add_address(host, port)

    # -- public API: actions ---------------------------------------------------------------
    async def perform(self, action: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one of `p2pnode.actions` (e.g. ``actions.announce_circle``) against this node's
        home, then push what it wrote to peers. Errors are raised as the action raises them."""
        assert self.home is not None
        result = await self._in_thread(action, self.home, *args, **kwargs)
        await self._scan()
        return result

    async def announce_circle(self, record: dict[str, Any]) -> Entry:
        return await self.perform(actions.announce_circle, record)

    async def set_profile(self, name: str, **kwargs: Any) -> Entry:
        return await self.perform(actions.set_profile, name, **kwargs)

    async def join_circle(self, circle_id: bytes, display_name: str, **kwargs: Any) -> Entry:
        return await self.perform(actions.join_circle, circle_id, display_name, **kwargs)

    async def fetch_progress(self, blob_id: bytes, output: str | None
                             ) -> AsyncIterator[dict[str, Any]]:
        """Download a resource; yields progress dicts, the last one with `done` or `error`."""
        async with contextlib.aclosing(self.blobs.fetch(blob_id, output)) as updates:
            async for update in updates:
                yield update

    def __repr__(self) -> str:
        who = node_id_text(self.home.identity.node_id)[:8] if self.home else "?"
        return f"<Node {who} port={self.port}>"


def _bound_port(runner: web.AppRunner) -> int:
    for site in runner.sites:
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            return server.sockets[0].getsockname()[1]
    raise NodeError("the server did not bind a socket")
