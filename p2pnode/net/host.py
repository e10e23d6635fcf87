"""What `net/` needs of the node, and nothing more: the whole contract of the network layer with
the rest of p2pnode, in one place. `p2pnode.node.Node` implements both protocols; `net/` never
imports it (the layering test in tests/test_layers.py keeps it so).

- `PeerHost` is what the peer manager and each peer session use: our identity and network key,
  our clock, reading and ingesting entries, the event bus, and a few hooks.
- `ControlHost` is what the local control API serves to the CLI and to an attached app: the
  same queries, actions and events as `p2pnode.api.NodeAPI` (which `Node` satisfies).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from p2pnode.events import EventBus, NodeEvent
    from p2pnode.net.connection import PeerConnection
    from p2pnode.net.forwarding import ForwardingDriver
    from p2pnode.store.database import IngestReport
    from p2pnode.store.inbox import Notice
    from p2pnode.store.models import CircleDetail, CircleSummary, Resource
    from protocol.entry import Entry
    from protocol.identity import Identity

T = TypeVar("T")


class PeerHost(Protocol):
    """The node as the peer sessions see it."""

    @property
    def identity(self) -> Identity: ...

    #: the 32-byte network key (the Noise PSK)
    network_key: bytes
    #: keyword overrides for `protocol.session.Session` limits (tests only)
    session_limits: Mapping[str, Any]
    #: where peers coming and going are published
    bus: EventBus
    #: which peer forwards which author to us (replication v2)
    forwarding: ForwardingDriver
    #: the replication version sessions speak (1 only in tests)
    replication_version: int

    def clock_snapshot(self) -> dict[bytes, int]:
        """A copy of our clock: author -> latest seq held."""

    def clock_view(self) -> Mapping[bytes, int]:
        """Our clock, read-only and not copied (for per-frame checks)."""

    async def read_feed(self, author: bytes, from_seq: int, limit: int) -> list[Entry]:
        """Up to `limit` entries of `author`'s feed from `from_seq` on, in seq order."""

    async def ingest_from_peer(self, entries: tuple[Entry, ...]) -> IngestReport:
        """Verify and store a batch a peer sent; durable before this returns."""

    async def missing_bodies(self, limit: int) -> list[tuple[bytes, bytes, int]]:
        """(entry id, author, seq) of entries held without a body a peer may still send."""

    async def entries_with_bodies(self, ids: list[bytes]) -> list[Entry]:
        """Those of `ids` we hold with their body."""

    def on_session_open(self, conn: PeerConnection) -> None:
        """A session finished its handshake and was kept."""

    def on_peer_clock(self, conn: PeerConnection) -> None:
        """The peer's whole clock is in (`conn.replication.peer_clock`)."""

    def remember_peer(self, node_id: bytes, address: str | None, how: str,
                      error: str | None = None) -> None:
        """Keep what we know of a peer across restarts (for `p2pnode doctor`)."""


class ControlHost(Protocol):
    """The node as the local control API serves it."""

    async def status(self) -> dict[str, Any]: ...

    async def peers_info(self) -> list[dict[str, Any]]: ...

    async def refresh(self) -> int:
        """Notice entries another process wrote to the home; returns how many."""

    def add_peer(self, address: str) -> None:
        """Keep a session with the peer at "host:port" (dialled now and redialled).

        Raises:
            InvalidInput: not HOST:PORT.
        """

    def fetch_progress(self, blob_id: bytes, output: str | None
                       ) -> AsyncIterator[dict[str, Any]]:
        """Download a resource; yields progress dicts, the last one with `done` or `error`."""

    async def resources(self, circle: bytes | None = None) -> list[Resource]: ...

    async def circles(self, **filters: Any) -> list[CircleSummary]: ...

    async def circle(self, circle_id: bytes) -> CircleDetail | None: ...

    async def my_circles(self) -> dict[bytes, str]: ...

    async def take_notices(self) -> list[Notice]: ...

    async def preference(self, key: str) -> str | None: ...

    async def set_preference(self, key: str, value: str | None) -> None: ...

    async def perform(self, action: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run an action against the home (the control API passes only registered ones)."""

    def events(self) -> AsyncIterator[NodeEvent]:
        """Subscribe to node events from now on."""
