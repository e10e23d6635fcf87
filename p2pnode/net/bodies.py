"""Fetching bodies a relay stripped (PROTOCOL.md 5, "Missing bodies").

A relay may forward entries without their bodies; an entry first heard of that way would stay
bodiless here for good, since replication never sends an entry twice. While we hold entries
without a body (not dropped on purpose), `BodyFetcher` asks the open sessions whose clock shows
the entry for its body with `want_bodies`, one peer at a time, and another peer when the first
stays silent (`protocol.replication.BodyRequests`). Answers are plain `entries` frames; the store
fills a body in once it hashes to the header's `body_hash`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from p2pnode.errors import StorageError
from protocol import frames as fr
from protocol.replication import BODY_ASK_AGAIN, BODY_RETRY, BodyRequests

if TYPE_CHECKING:
    from p2pnode.net.host import PeerHost
    from p2pnode.net.peers import PeerManager

log = logging.getLogger(__name__)

#: missing bodies considered per round (the oldest first)
_ROUND = 4 * fr.MAX_BODY_IDS
#: seconds between rounds while nothing new happens but bodies are still missing
_IDLE_ROUND = BODY_ASK_AGAIN


class BodyFetcher:
    """One task per node: asks peers for missing bodies until none is missing."""

    def __init__(self, host: PeerHost, manager: PeerManager) -> None:
        self.host = host
        self.manager = manager
        self.requests = BodyRequests()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def wake(self) -> None:
        """Something changed (a session opened, bodiless entries arrived): look again."""
        self._wake.set()
        if not self._closed and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._run(), name="body-fetcher")

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                missing = await self.host.missing_bodies(_ROUND)
            except StorageError as exc:  # the next `wake` tries again
                log.info("cannot list missing bodies: %s", exc)
                return
            if not missing:
                return  # the next `wake` starts a new task
            holders = {c.peer_id: c.replication.peer_clock
                       for c in self.manager.open_connections()
                       if c.peer_id is not None and c.replication.peer_clock_final}
            plan = self.requests.plan(missing, holders, time.monotonic())
            for peer, ids in plan.items():
                conn = self.manager.connections.get(peer)
                if conn is not None and conn.is_open:
                    log.debug("asking %s for %d missing bodies", conn.label, len(ids))
                    conn.send(fr.WantBodies(tuple(ids)))
            # ask the next holder once the first had its chance; otherwise wait for news
            delay = BODY_RETRY + 0.1 if self.requests.awaiting else _IDLE_ROUND
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
