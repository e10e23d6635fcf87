"""The part of `Node`'s public API that works with files and checks: sharing a file, the
downloads in progress (and cancelling one), sneakernet export and import with progress, and the
checks of `p2pnode doctor`. A mixin of `p2pnode.node.Node` (kept apart so that node.py stays
readable); `p2pnode.api.NodeAPI` lists these methods, and `RemoteNode` offers the same ones over
the control API.

Rules it keeps:

- Paths are the node's: a relative path is relative to the node process's directory (an
  attached client makes its paths absolute before sending them).
- Nothing overwrites a learner's file: an export to a path that exists is refused.
- Store work (export, import) runs on the node's store thread; its progress crosses to the
  event loop through a queue, so a consumer on the loop sees steps as they happen. A consumer
  that stops listening does not stop the job (a thread cannot be interrupted): the export
  still completes, atomically, or leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from p2pnode import doctor
from p2pnode.errors import NotRunning
from p2pnode.store.exchange import ImportReport, export_entries, import_entries
from p2pnode.store.models import Shared

if TYPE_CHECKING:
    from p2pnode.node import Node

_END = object()


class NodeFiles:
    """Mixin: see the module docstring. `self` is a started `Node`."""

    #: quitting an app that runs this node in its own process stops the node
    quitting_stops_node = True

    async def share(self: Node, path: str | Path, *, title: str | None = None,
                    circle: bytes | None = None, licence: str | None = None,
                    caption: str | None = None) -> Shared:
        """Copy the file at `path` into the blob store, publish its `resource` record and tell
        connected peers; returns what was shared.

        Raises:
            InvalidInput: a bad field, or `path` is not a readable regular file (nothing is
                copied).
            NotFound: `circle` is not known here.
            BlobStoreError, OSError: the copy failed (too large, disk full, unreadable).
        """
        if self.blobs is None:
            raise NotRunning("the node has not been started")
        return await self.blobs.share(Path(path).expanduser(), title=title, circle=circle,
                                      licence=licence, caption=caption)

    async def transfers(self: Node) -> list[dict[str, Any]]:
        """Downloads running now (state, bytes done and total, peers serving), then downloads
        stopped part-way and kept on disk (state ``paused``): fetching one resumes it."""
        if self.blobs is None:
            return []
        running = self.blobs.transfers()
        paused = await self.blobs._io(self.blobs.paused)
        return running + paused

    async def cancel_fetch(self: Node, blob_id: bytes) -> bool:
        """Stop downloading `blob_id` (for every follower), keeping what arrived; whoever
        follows it gets a last progress dict with ``error`` saying so. Returns whether a
        download was running."""
        return self.blobs is not None and self.blobs.cancel(blob_id)

    async def export_progress(self: Node, path: str | Path) -> AsyncIterator[dict[str, Any]]:
        """Write every entry to a new sneakernet file at `path`; yields ``{"entries": n,
        "total": N}`` as it goes, and last ``{"done": True, "entries": n, "path": ...}``.

        Raises:
            InvalidInput: `path` exists (it is never replaced).
            NodeError: the file cannot be written (nothing is left behind).
        """
        assert self.home is not None
        store = self.home.store
        target = Path(path).expanduser()
        total = sum((await self._in_thread(store.counts_by_kind)).values())

        def job(step: Callable[[Any], None]) -> int:
            return export_entries(store, target, replace=False,
                                  progress=lambda n: step({"entries": n, "total": total}))

        async for item in self._store_job(job):
            if isinstance(item, dict):
                yield item
            else:
                yield {"done": True, "entries": item, "total": total, "path": str(target)}

    async def import_progress(self: Node, path: str | Path) -> AsyncIterator[dict[str, Any]]:
        """Read a sneakernet file and store every valid entry in it (validated as from the
        wire); yields ``{"read_bytes", "total_bytes", "new", "known", "rejected"}`` as it goes
        and last ``{"done": True, "report": ImportReport}`` (accepted, already held, refused
        with reasons, and whether the file broke off).

        Raises:
            InvalidInput: the file cannot be read or is not an export file.
        """
        assert self.home is not None
        store = self.home.store
        source = Path(path).expanduser()

        def step_of(read: int, size: int, report: ImportReport) -> dict[str, Any]:
            return {"read_bytes": read, "total_bytes": size, "new": report.new,
                    "known": report.known, "rejected": report.rejected}

        def job(step: Callable[[Any], None]) -> ImportReport:
            return import_entries(store, source, now_ms=_now_ms(),
                                  progress=lambda *a: step(step_of(*a)))

        async for item in self._store_job(job):
            if isinstance(item, dict):
                yield item
                await self._scan()  # what this batch stored reaches peers and screens now
            else:
                await self._scan()
                yield {"done": True, "report": item}

    async def _store_job(self: Node, job: Callable[[Callable[[Any], None]], Any]
                         ) -> AsyncIterator[Any]:
        """Run `job(step)` on the store thread; yield each value it passes to `step`, then
        what it returned. Its exception is raised here."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()

        def step(value: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, value)

        task = self._spawn(self._in_thread(job, step), "store-job")
        task.add_done_callback(lambda _: queue.put_nowait(_END))
        while True:
            item = await queue.get()
            if item is _END:
                break
            yield item
        # the last steps may be queued behind the end marker's callback: drain them
        while not queue.empty():
            item = queue.get_nowait()
            if item is not _END:
                yield item
        with contextlib.suppress(asyncio.CancelledError):
            result = task.result()
            yield result
            return
        raise NotRunning("the node is stopping")

    async def doctor(self: Node) -> dict[str, Any]:
        """The checks of `p2pnode doctor` for this running node (`p2pnode.doctor.diagnose`):
        network id, interfaces, port, discovery, the address others can dial, each peer; the
        multicast probe only when this node uses mDNS."""
        assert self.home is not None and self.port is not None
        report = doctor.Report()
        report.check("identity", True, f"{self.identity.text} ({self.identity.fingerprint})")
        return await doctor.diagnose(
            report, running=await self.status(), peers=await self.peers_info(),
            interface=self.interface, probe_mdns=self.mdns)


def _now_ms() -> int:
    from p2pnode import node  # the tests fix the node's clock there

    return node._now_ms()
