"""What `blobs/` needs of the node and of a peer session, and nothing more: the whole contract of
the blob exchange with the rest of p2pnode, in one place. `p2pnode.node.Node` implements
`BlobHost` and `p2pnode.net.connection.PeerConnection` implements `PeerLink`; `blobs/` imports
neither (the layering test in tests/test_layers.py keeps it so).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from p2pnode.events import EventBus
    from protocol import frames as fr
    from protocol.session import Session

T = TypeVar("T")


class PeerLink(Protocol):
    """One open peer session, as the blob exchange uses it."""

    #: the peer's node id once the handshake is done
    peer_id: bytes | None
    #: the session state machine: request room and the peer's frame rate (`send_credit`)
    session: Session
    #: frame type -> handler, for the blob frames (`BlobService.session_opened` fills them in)
    handlers: dict[type, Callable[[Any], Any]]

    @property
    def is_open(self) -> bool: ...

    @property
    def label(self) -> str:
        """Who the peer is, for logs: fingerprint@address."""

    def send(self, frame: fr.Frame) -> None:
        """Encrypt and queue a small control frame now."""

    async def send_bulk(self, frame: fr.Frame) -> None:
        """Queue a frame once the outgoing queue (and, but for blob data, the rate) has room."""

    async def wait_closed(self) -> None:
        """Return once the session has ended."""


class BlobHost(Protocol):
    """The node as the blob exchange sees it."""

    #: where transfer progress is published, and own `resource` entries are noticed
    bus: EventBus

    async def perform(self, action: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one of `p2pnode.actions` (or `blobs.resources`) against the home."""

    def penalise(self, link: PeerLink, reason: str, amount: float) -> None:
        """Lower the peer's score for misbehaviour (a bad chunk, a lying manifest)."""
