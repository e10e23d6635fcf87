"""Downloads the learner started from the app, followed for as long as the app runs, whichever
screen is showing: several at once, each with its progress, speed, ETA and peers serving it.

`Transfers` belongs to the app (not to the resources screen, which comes and goes). Each
download is followed by an app worker over `NodeAPI.fetch_progress`; every step updates its
`Transfer` and posts `TransfersChanged` (one replaces another, so a fast download costs a
repaint, not a flood). The learner's list of downloads is remembered in the home
(`DOWNLOADS_PREFERENCE`), so after a restart of the app the unfinished ones resume (the node
keeps the bytes that arrived). When one ends the learner is told how: where the file is, that
a peer sent bad data and was dropped (the file still verified), or why it failed.
"""

from __future__ import annotations

import asyncio
import collections
import json
import mimetypes
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.message import Message

from p2pnode.files import human_size
from protocol.identity import fingerprint

if TYPE_CHECKING:
    from tui.app import P2PApp

#: the home's note of the downloads this app started and not yet finished or cancelled
DOWNLOADS_PREFERENCE = "tui.downloads"
#: seconds of progress the speed is measured over
_SPEED_WINDOW = 5.0
#: where downloads are saved, in the node's home (the node keeps its own copy in blobs/)
DOWNLOADS_FOLDER = "downloads"
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]")


def file_name(title: str, media_type: str | None) -> str:
    """A file name for a resource: its title made safe, with an extension its media type
    suggests when the title has none."""
    name = _UNSAFE.sub("_", title).strip(" .") or "download"
    if not Path(name).suffix and media_type:
        name += mimetypes.guess_extension(media_type, strict=False) or ""
    return name[:120]


def free_path(folder: Path, name: str) -> Path:
    """`folder/name`, or ``name (2)``… when that exists: a download never replaces a file."""
    folder.mkdir(parents=True, exist_ok=True)
    candidate = folder / name
    stem, suffix = Path(name).stem, Path(name).suffix
    number = 2
    while os.path.lexists(candidate):
        candidate = folder / f"{stem} ({number}){suffix}"
        number += 1
    return candidate




def duration(seconds: float | None) -> str:
    """``0:42``, ``12:05``, ``1:02:03``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return (f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours
            else f"{rest // 60}:{rest % 60:02d}")


@dataclass
class Transfer:
    """One download as the app shows it."""

    blob: bytes
    title: str
    media_type: str | None = None
    state: str = "starting"
    done_bytes: int = 0
    total_bytes: int | None = None
    peers: int = 0
    #: where the finished file is (the node's blob store, or where the learner asked)
    path: str | None = None
    error: str | None = None
    samples: collections.deque[tuple[float, int]] = field(
        default_factory=lambda: collections.deque(maxlen=64))

    @property
    def active(self) -> bool:
        return self.path is None and self.error is None

    def update(self, step: dict[str, Any], now: float) -> None:
        self.state = str(step.get("state") or self.state)
        self.done_bytes = int(step.get("done_bytes") or self.done_bytes)
        if step.get("total_bytes") is not None:
            self.total_bytes = int(step["total_bytes"])
        self.peers = int(step.get("peers") or 0)
        self.samples.append((now, self.done_bytes))
        while self.samples and now - self.samples[0][0] > _SPEED_WINDOW:
            self.samples.popleft()

    def speed(self) -> float | None:
        """Bytes a second over the last few seconds, or None before there is a measure."""
        if len(self.samples) < 2:
            return None
        (t0, b0), (t1, b1) = self.samples[0], self.samples[-1]
        return (b1 - b0) / (t1 - t0) if t1 - t0 > 0.2 else None

    def eta(self) -> float | None:
        speed = self.speed()
        if not speed or self.total_bytes is None:
            return None
        return max(0.0, (self.total_bytes - self.done_bytes) / speed)

    def summary(self) -> str:
        """``45%  3.2/7.0 MiB · 1.2 MB/s · ETA 0:04 · 2 peers``, or how it ended."""
        if self.error is not None:
            return self.error
        if self.path is not None:
            return f"done · {human_size(self.total_bytes)} · {self.path}"
        if self.state in ("finding peers", "waiting for peers"):
            return "waiting for a peer that holds it…"
        total = self.total_bytes
        percent = f"{100 * self.done_bytes // total}%  " if total else ""
        speed = self.speed()
        rate = f"{speed / 1e6:.1f} MB/s" if speed is not None else "measuring…"
        return (f"{percent}{human_size(self.done_bytes)}/{human_size(total)} · {rate}"
                f" · ETA {duration(self.eta())} · {self.peers} peer"
                f"{'s' if self.peers != 1 else ''}")


class TransfersChanged(Message, bubble=False):
    """A download moved, started or ended (screens showing transfers repaint)."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, TransfersChanged)


class Transfers:
    """The app's downloads (see the module docstring)."""

    def __init__(self, app: P2PApp) -> None:
        self.app = app
        self.items: dict[bytes, Transfer] = {}

    def get(self, blob: bytes) -> Transfer | None:
        return self.items.get(blob)

    @property
    def folder(self) -> Path:
        return self.app.node.home_path / DOWNLOADS_FOLDER

    def start(self, blob: bytes, title: str, media_type: str | None = None) -> bool:
        """Download `blob` into the downloads folder unless it is being downloaded; returns
        whether it started."""
        current = self.items.get(blob)
        if current is not None and current.active:
            return False
        self.items[blob] = Transfer(blob, title, media_type)
        self.app.run_worker(self._follow(self.items[blob]), group=f"fetch-{blob.hex()}",
                            name=f"download {fingerprint(blob)}", exit_on_error=False)
        self.app.post_message(TransfersChanged())
        self.app.run_worker(self._remember(), group="downloads-note", exclusive=True,
                            exit_on_error=False)
        return True

    async def cancel(self, blob: bytes) -> bool:
        """Stop a download (the node keeps what arrived: downloading again resumes)."""
        transfer = self.items.get(blob)
        if transfer is None or not transfer.active:
            return False
        transfer.state = "cancelling"
        self.app.post_message(TransfersChanged())
        running = await self.app.node.cancel_fetch(blob)
        if not running:  # not started on the node yet: stop following it
            self.app.workers.cancel_group(self.app, f"fetch-{blob.hex()}")
            transfer.error = "cancelled"
            self.app.post_message(TransfersChanged())
        await self._remember(dropping=blob)
        return True

    async def resume_remembered(self) -> None:
        """After a restart: start again the downloads the learner had not finished."""
        text = await self.app.node.preference(DOWNLOADS_PREFERENCE)
        try:
            remembered = json.loads(text) if text else []
        except ValueError:
            remembered = []
        held = {r.blob: r for r in await self.app.node.resources()}
        for item in remembered if isinstance(remembered, list) else []:
            try:
                blob, title = bytes.fromhex(item["blob"]), str(item["title"])
            except (KeyError, TypeError, ValueError):
                continue
            resource = held.get(blob)
            if resource is not None and not resource.held:
                self.start(blob, title, resource.media_type)
        await self._remember()

    async def _remember(self, dropping: bytes | None = None) -> None:
        active = [{"blob": t.blob.hex(), "title": t.title} for t in self.items.values()
                  if t.active and t.blob != dropping]
        await self.app.node.set_preference(DOWNLOADS_PREFERENCE,
                                           json.dumps(active) if active else None)

    async def _follow(self, transfer: Transfer) -> None:
        app = self.app
        final: dict[str, Any] | None = None
        try:
            output = await asyncio.to_thread(free_path, self.folder,
                                             file_name(transfer.title, transfer.media_type))
            async for step in app.node.fetch_progress(transfer.blob, str(output)):
                if "error" in step or step.get("done"):
                    final = step
                    break
                transfer.update(step, time.monotonic())
                app.post_message(TransfersChanged())
        except Exception as exc:  # the node went away: say so, as any failure
            final = {"error": str(exc) or type(exc).__name__}
        self._finish(transfer, final or {"error": "the node stopped answering"})
        await self._remember()

    def _finish(self, transfer: Transfer, final: dict[str, Any]) -> None:
        app = self.app
        bad = final.get("bad_peers") or []
        if bad:
            app.notify(f"{len(bad)} peer{'s' if len(bad) != 1 else ''} sent data that failed"
                       " verification and " + ("were" if len(bad) != 1 else "was")
                       + " dropped; the file came from others and checks out.",
                       title="A peer sent bad data", severity="warning", timeout=12,
                       markup=False)
        if final.get("done"):
            transfer.path = str(final.get("path"))
            transfer.done_bytes = transfer.total_bytes = int(final.get("size") or 0)
            app.notify(f"{transfer.title}\nis at {transfer.path}", title="Downloaded",
                       timeout=12, markup=False)
        else:
            transfer.error = str(final.get("error") or "the download failed").replace(
                "fetch again to resume", "enter resumes")  # the node words it for the CLI
            cancelled = transfer.error.startswith("cancelled")
            app.notify(f"{transfer.title}: {transfer.error}",
                       title="Download stopped" if cancelled else "Download failed",
                       severity="information" if cancelled else "error", timeout=12,
                       markup=False)
        app.post_message(TransfersChanged())
