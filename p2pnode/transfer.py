"""Resource transfer between peers (placeholder until the blob exchange lands)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .connection import PeerConnection
    from .models import Resource
    from .node import Node


class BlobService:
    def __init__(self, node: Node) -> None:
        self.node = node

    def session_opened(self, conn: PeerConnection) -> None:
        pass

    def annotate(self, resource: Resource) -> Resource:
        return resource

    async def fetch(self, blob_id: bytes, output: str | None) -> AsyncIterator[dict[str, Any]]:
        yield {"error": "resource transfer is not available yet"}

    async def close(self) -> None:
        pass
