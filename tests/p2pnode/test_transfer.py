"""Resource transfer between real nodes on 127.0.0.1: swarm downloads, lying and vanishing peers,
resume after a restart, edge sizes, and the `share` / `resources` / `fetch` commands.

Peers that misbehave are real nodes speaking the real protocol whose blob service is patched in
the test to flip bytes in the chunks it serves, or to serve slowly (a test double of a network
peer). Nothing leaves loopback; mDNS is off.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from p2pnode.blobs import download as download_module
from p2pnode.blobs import service as transfer
from p2pnode.blobs import serving as serving_module
from p2pnode.cli import blobs as fetch_cli
from p2pnode.events import TransferFinished, TransferProgress
from p2pnode.node import Node
from protocol.blobs import CHUNK_SIZE, Bitmap
from protocol.identity import node_id_text

MiB = 1024 * 1024


def _write(path: Path, size: int, seed: int = 1) -> bytes:
    data = random.Random(seed).randbytes(size)
    path.write_bytes(data)
    return data


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def _until(check: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.01)


async def _connected(node: Node, count: int) -> None:
    await _until(lambda: len(node.peers.open_connections()) >= count, what="sessions")


async def _holders(node: Node, blob_id: bytes, count: int) -> None:
    await _until(lambda: len(node.blobs.holders(blob_id)) >= count, what="have_blobs")


async def _fetch(node: Node, blob_id: bytes, output: Path | None = None) -> list[dict[str, Any]]:
    return [u async for u in node.fetch_progress(blob_id, str(output) if output else None)]


def _slow(node: Node, delay: float) -> None:
    """Make `node` serve each chunk after `delay` seconds (a slow link, simulated; reads go to
    the blob I/O thread, as they would from a slow disk)."""
    node.blobs.inline_reads = False
    load = node.blobs._load_chunk

    def slow_load(blob_id: bytes, index: int) -> list[bytes]:
        time.sleep(delay)
        return load(blob_id, index)

    node.blobs._load_chunk = slow_load  # type: ignore[method-assign]


def _gate(node: Node, free: int) -> threading.Event:
    """Make `node` serve chunks below `free` at once and hold back the rest until the returned
    event is set (a peer that stalls midway, deterministically). Set it before closing `node`.
    Reads go to the blob I/O thread, so the held-back ones never block the event loop.
    """
    node.blobs.inline_reads = False
    gate = threading.Event()
    load = node.blobs._load_chunk

    def gated_load(blob_id: bytes, index: int) -> list[bytes]:
        if index >= free:
            gate.wait(20)
        return load(blob_id, index)

    node.blobs._load_chunk = gated_load  # type: ignore[method-assign]
    return gate


def _held_count(node: Node, blob_id: bytes) -> int:
    download = node.blobs._downloads.get(blob_id)
    return download.plan.held_count if download and download.plan else 0


# -- swarm ---------------------------------------------------------------------------------------
async def test_downloads_from_two_holders_at_once(nodes, tmp_path: Path) -> None:
    """A file held by two peers is fetched from both, verified, and reported as progress."""
    data = _write(tmp_path / "course.bin", 6 * MiB)
    a = await nodes.start("a")
    b = await nodes.start("b")
    shared = await a.blobs.share(tmp_path / "course.bin", title="Course notes")
    await b.blobs.share(tmp_path / "course.bin")
    c = await nodes.start("c", peers=[a, b])
    await _holders(c, shared.blob_id, 2)
    events: list[Any] = []

    async def collect() -> None:
        async for event in c.events():
            if isinstance(event, TransferProgress | TransferFinished):
                events.append(event)

    collector = asyncio.create_task(collect())
    try:
        updates = await _fetch(c, shared.blob_id, tmp_path / "out.bin")
        await _until(lambda: any(isinstance(e, TransferFinished) for e in events))
    finally:
        collector.cancel()
        await asyncio.gather(collector, return_exceptions=True)
    final = updates[-1]
    assert final.get("done"), final
    assert _sha((tmp_path / "out.bin").read_bytes()) == _sha(data)
    assert c.blobs.store.has(shared.blob_id)
    by_peer = {s["peer"]: s["chunks"] for s in final["sources"]}
    # each holder got a first window of its share (12) of the 24 chunks; the end-game may
    # duplicate a few
    assert by_peer[a.node_id] > 0 and by_peer[b.node_id] > 0
    assert sum(by_peer.values()) == 24
    assert a.blobs.chunks_served > 0 and b.blobs.chunks_served > 0
    assert any(isinstance(e, TransferProgress) and e.total_bytes == len(data) for e in events)
    assert [e.ok for e in events if isinstance(e, TransferFinished)] == [True]


async def test_lying_peer_is_penalised_and_the_download_completes(nodes,
                                                                   tmp_path: Path) -> None:
    """Chunks that do not verify are refused, the liar is scored down, honest peers finish."""
    data = _write(tmp_path / "video.mp4", 3 * MiB, seed=2)
    honest = await nodes.start("honest")
    liar = await nodes.start("liar")
    shared = await honest.blobs.share(tmp_path / "video.mp4")
    await liar.blobs.share(tmp_path / "video.mp4")
    _slow(honest, 0.01)  # so the liar's answers always arrive before any end-game duplicate
    load = liar.blobs._load_chunk

    def corrupt(blob_id: bytes, index: int) -> list[bytes]:
        pieces = [bytearray(piece) for piece in load(blob_id, index)]
        chunk = pieces[len(pieces) // 2]
        chunk[len(chunk) // 2] ^= 0xFF
        return [bytes(piece) for piece in pieces]

    liar.blobs._load_chunk = corrupt  # type: ignore[method-assign]
    c = await nodes.start("c", peers=[honest, liar])
    await _holders(c, shared.blob_id, 2)
    final = (await _fetch(c, shared.blob_id, tmp_path / "out.mp4"))[-1]
    assert final.get("done"), final
    assert _sha((tmp_path / "out.mp4").read_bytes()) == _sha(data)
    assert liar.blobs.chunks_served > 0
    assert {s["peer"] for s in final["sources"]} == {honest.node_id}
    assert c.peers.records[liar.node_id].score <= -transfer._BAD_CHUNK_PENALTY
    assert c.peers.records[honest.node_id].score >= 0


async def test_requests_keep_to_the_peers_frame_rate(nodes, tmp_path: Path) -> None:
    """More chunk requests than the peer's rate allows at once are paced, never dropped."""
    data = _write(tmp_path / "big.bin", 8 * MiB, seed=8)
    slow_rate = {"frame_rate": 50.0, "frame_burst": 20.0}  # 10 frames at once, then 50/s
    a = await nodes.start("a", session_limits=slow_rate)
    shared = await a.blobs.share(tmp_path / "big.bin")
    c = await nodes.start("c", peers=[a], session_limits=slow_rate)
    await _holders(c, shared.blob_id, 1)
    final = (await _fetch(c, shared.blob_id))[-1]
    assert final.get("done"), final
    assert _sha(Path(final["path"]).read_bytes()) == _sha(data)
    assert a.peers.records[c.node_id].score == 0  # no frame of c's was dropped as a flood
    assert c.blobs.chunks_requested == 32


# -- resume and cancel ---------------------------------------------------------------------------
async def test_a_slow_write_moves_the_download_to_the_io_thread(nodes, tmp_path: Path,
                                                                monkeypatch) -> None:
    """Chunks are written on the loop until one write is slow; the rest go to the blob I/O
    thread, and the file still arrives whole."""
    monkeypatch.setattr(download_module, "_INLINE_WRITE_LIMIT", 0.0)  # every write is "slow"
    data = _write(tmp_path / "big.bin", 4 * MiB, seed=6)
    a = await nodes.start("a")
    shared = await a.blobs.share(tmp_path / "big.bin")
    c = await nodes.start("c", peers=[a])
    await _holders(c, shared.blob_id, 1)
    fetching = asyncio.create_task(_fetch(c, shared.blob_id))
    await _until(lambda: shared.blob_id in c.blobs._downloads, what="the download to start")
    download = c.blobs._downloads[shared.blob_id]
    final = (await fetching)[-1]
    assert final.get("done"), final
    assert not download.write_gate.inline
    assert _sha(Path(final["path"]).read_bytes()) == _sha(data)


async def test_serving_reads_move_to_the_io_thread_after_a_slow_one(nodes, tmp_path: Path,
                                                                    monkeypatch) -> None:
    """A holder reads chunks on its event loop while reads are quick; after a slow one (here:
    every read counts as slow) it reads in its blob I/O thread, and the file arrives whole."""
    monkeypatch.setattr(serving_module, "_INLINE_READ_LIMIT", 0.0)
    data = _write(tmp_path / "big.bin", 2 * MiB, seed=7)
    a = await nodes.start("a")
    shared = await a.blobs.share(tmp_path / "big.bin")
    threads: list[str] = []
    load = a.blobs._load_chunk

    def recording_load(blob_id: bytes, index: int) -> list[bytes]:
        threads.append(threading.current_thread().name)
        return load(blob_id, index)

    a.blobs._load_chunk = recording_load  # type: ignore[method-assign]
    c = await nodes.start("c", peers=[a])
    await _holders(c, shared.blob_id, 1)
    final = (await _fetch(c, shared.blob_id))[-1]
    assert final.get("done"), final
    assert _sha(Path(final["path"]).read_bytes()) == _sha(data)
    assert threads[0] == "MainThread"
    assert threads[1:] and all(name.startswith("p2pnode-blobs") for name in threads[1:])


async def test_resumes_after_the_downloader_restarts(nodes, tmp_path: Path) -> None:
    """Chunks verified before a restart are not asked for again: the fetch continues."""
    data = _write(tmp_path / "big.bin", 8 * MiB, seed=3)
    chunks = 8 * MiB // CHUNK_SIZE
    a = await nodes.start("a")
    shared = await a.blobs.share(tmp_path / "big.bin")
    gate = _gate(a, free=10)
    c1 = await nodes.start("c", peers=[a])
    await _holders(c1, shared.blob_id, 1)
    first = asyncio.create_task(_fetch(c1, shared.blob_id))
    await _until(lambda: _held_count(c1, shared.blob_id) == 10, what="the first 10 chunks")
    closing = time.monotonic()
    await c1.close()
    assert time.monotonic() - closing < 5.0  # the download stops with the node
    updates = await first
    assert updates[-1]["error"].startswith("stopped: the node is shutting down")
    assert "fetch again to resume" in updates[-1]["error"]
    bitmap_file = tmp_path / "c" / "blobs" / f"{shared.blob_id.hex()}.bitmap"
    assert Bitmap.from_bytes(chunks, bitmap_file.read_bytes()).count_set == 10

    gate.set()
    c2 = await nodes.start("c", peers=[a])
    await _holders(c2, shared.blob_id, 1)
    final = (await _fetch(c2, shared.blob_id))[-1]
    assert final.get("done"), final
    assert c2.blobs.chunks_requested == chunks - 10
    assert _sha(Path(final["path"]).read_bytes()) == _sha(data)


async def test_resumes_when_the_only_holder_restarts(nodes, tmp_path: Path) -> None:
    """The one holder going away midway stalls the fetch; when it is back (same home, same
    port) the fetch goes on from where it was, asking only for what is missing."""
    size = 16 * MiB  # 64 chunks: more than one window (32) past the 12 served at once
    data = _write(tmp_path / "big.bin", size, seed=4)
    chunks = size // CHUNK_SIZE
    a1 = await nodes.start("a")
    shared = await a1.blobs.share(tmp_path / "big.bin")
    gate = _gate(a1, free=12)
    c = await nodes.start("c", peers=[a1])
    await _holders(c, shared.blob_id, 1)
    fetching = asyncio.create_task(_fetch(c, shared.blob_id))
    await _until(lambda: _held_count(c, shared.blob_id) == 12, what="the first 12 chunks")
    port = a1.port
    gate.set()  # some held-back chunks may still arrive: at most one window
    await a1.close()
    await _until(lambda: not c.blobs.holders(shared.blob_id), what="the holder to go")
    download = c.blobs._downloads[shared.blob_id]
    await _until(lambda: not download.writes, what="received chunks to be written")
    held = _held_count(c, shared.blob_id)
    assert 12 <= held < chunks
    assert not fetching.done()  # stalled, waiting for a holder, not failed
    # the state `p2pnode fetch` turns into "waiting for a peer that holds it…"
    await _until(lambda: download.progress()["state"] in fetch_cli._WAITING_STATES,
                 what="the waiting state")

    a2 = await nodes.start("a", port=port)  # the same home: it still holds the blob
    final = (await asyncio.wait_for(fetching, 30))[-1]
    assert final.get("done"), final
    assert a2.blobs.chunks_served == chunks - held  # only what was missing
    assert _sha(Path(final["path"]).read_bytes()) == _sha(data)


async def test_closing_the_fetch_cancels_and_keeps_the_partial(nodes, tmp_path: Path) -> None:
    """A follower that goes away cancels the requests at the peer; the .part stays on disk."""
    _write(tmp_path / "big.bin", 4 * MiB, seed=4)
    a = await nodes.start("a")
    shared = await a.blobs.share(tmp_path / "big.bin")
    gate = _gate(a, free=3)
    c = await nodes.start("c", peers=[a])
    await _holders(c, shared.blob_id, 1)
    updates = c.fetch_progress(shared.blob_id, None)
    async for update in updates:
        if update.get("done_bytes") == 3 * CHUNK_SIZE:
            break
    await updates.aclose()
    await _until(lambda: not c.blobs._downloads, what="the download to stop")
    (serving,) = a.blobs._peers.values()
    await _until(lambda: not serving.queued and serving.current_cancelled, what="the cancels")
    gate.set()
    await _until(lambda: serving.current is None, what="the cancelled read")
    await asyncio.sleep(0.1)
    assert a.blobs.chunks_served == 3  # the chunk being read when cancelled was not sent
    part = tmp_path / "c" / "blobs" / f"{shared.blob_id.hex()}.part"
    assert part.exists() and not c.blobs.store.has(shared.blob_id)


async def test_holders_joining_and_leaving_mid_download(nodes, tmp_path: Path) -> None:
    """A holder that connects midway is used; one that disconnects hands its chunks back."""
    data = _write(tmp_path / "big.bin", 8 * MiB, seed=5)
    a = await nodes.start("a")
    shared = await a.blobs.share(tmp_path / "big.bin")
    gate = _gate(a, free=4)  # a serves 4 chunks, then stalls with requests open
    c = await nodes.start("c", peers=[a])
    await _holders(c, shared.blob_id, 1)
    fetching = asyncio.create_task(_fetch(c, shared.blob_id))
    await _until(lambda: _held_count(c, shared.blob_id) == 4, what="a's chunks")
    b = await nodes.start("b", peers=[c])
    await b.blobs.share(tmp_path / "big.bin")
    await _until(lambda: b.blobs.chunks_served >= 2, what="the late holder to serve")
    gate.set()
    await a.close()
    final = (await fetching)[-1]
    assert final.get("done"), final
    by_peer = {s["peer"]: s["chunks"] for s in final["sources"]}
    assert by_peer[a.node_id] >= 4 and by_peer[b.node_id] >= 2
    assert sum(by_peer.values()) == 32
    assert _sha(Path(final["path"]).read_bytes()) == _sha(data)


# -- failures and edge sizes ---------------------------------------------------------------------
async def test_a_resource_nobody_holds_fails_promptly(nodes, monkeypatch) -> None:
    """Without a holder among the connected peers, fetch ends with one clear line."""
    monkeypatch.setattr(download_module, "_HOLDER_WAIT", 0.3)
    a = await nodes.start("a")
    c = await nodes.start("c", peers=[a])
    await _connected(c, 1)
    started = time.monotonic()
    updates = await _fetch(c, bytes(range(32)))
    assert updates[-1]["error"] == "no connected peer holds this resource"
    assert time.monotonic() - started < 2.0
    assert not list((c.home_path / "blobs").glob("*.part"))


async def test_empty_and_one_byte_files(nodes, tmp_path: Path) -> None:
    """A zero-byte file (no chunks) and a one-byte file travel like any other."""
    a = await nodes.start("a")
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "one").write_bytes(b"x")
    empty = await a.blobs.share(tmp_path / "empty")
    one = await a.blobs.share(tmp_path / "one")
    c = await nodes.start("c", peers=[a])
    await _holders(c, one.blob_id, 1)
    for shared, content in ((empty, b""), (one, b"x")):
        out = tmp_path / f"got-{len(content)}"
        final = (await _fetch(c, shared.blob_id, out))[-1]
        assert final.get("done") and final["size"] == len(content), final
        assert out.read_bytes() == content


async def test_a_file_changing_while_shared_gives_a_consistent_blob(nodes,
                                                                     tmp_path: Path) -> None:
    """The blob is exactly the bytes copied, whatever the file did meanwhile."""
    source = tmp_path / "draft.pdf"
    _write(source, 3 * MiB, seed=6)
    a = await nodes.start("a")
    calls = []

    def meddle(done: int, total: int) -> None:  # runs between the 1 MiB pieces of the copy
        if not calls:
            with source.open("r+b") as f:
                f.seek(2 * MiB)
                f.write(b"\0" * MiB)
                f.seek(0, os.SEEK_END)
                f.write(b"appended while sharing")
        calls.append(done)

    shared = await a.blobs.share(source, progress=meddle)
    manifest = a.blobs.store.manifest(shared.blob_id)
    assert manifest is not None and shared.body["size"] == manifest.size
    assert shared.body["format"] == "book" and shared.body["media_type"] == "application/pdf"
    for index in range(manifest.chunk_count):
        a.blobs.store.read_chunk(shared.blob_id, index)  # raises CorruptBlob on a mismatch
    c = await nodes.start("c", peers=[a])
    await _holders(c, shared.blob_id, 1)
    final = (await _fetch(c, shared.blob_id))[-1]
    assert final.get("done"), final
    assert (Path(final["path"]).read_bytes()
            == a.blobs.store.path(shared.blob_id).read_bytes())


# -- the command line ----------------------------------------------------------------------------
def _cli(home: Path, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "p2pnode.cli", "--home", str(home), *args],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, "COLUMNS": "100"},
    )


class _RunningNode:
    """`p2pnode run` in a subprocess, on loopback without mDNS."""

    def __init__(self, home: Path, peers: tuple[int, ...] = ()) -> None:
        args = [sys.executable, "-m", "p2pnode.cli", "--home", str(home), "run", "--port", "0",
                "--listen", "127.0.0.1", "--no-mdns"]
        for port in peers:
            args += ["--peer", f"127.0.0.1:{port}"]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        found = re.search(r"port (\d+)", line)
        if not found:
            self.stop()
            raise AssertionError(f"p2pnode run said {line!r}")
        self.port = int(found.group(1))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def test_cli_share_list_and_fetch_between_running_nodes(tmp_path: Path) -> None:
    """share → resources → fetch -o through two `p2pnode run` processes, exit codes included."""
    data = _write(tmp_path / "Intro to Python.mp4", 2 * MiB + 5, seed=7)
    home_a, home_b = tmp_path / "a", tmp_path / "b"
    for home in (home_a, home_b):
        assert _cli(home, "init", "--name", home.name.upper()).returncode == 0
    node_a = _RunningNode(home_a)
    node_b = None
    try:
        node_b = _RunningNode(home_b, peers=(node_a.port,))
        shared = _cli(home_a, "share", str(tmp_path / "Intro to Python.mp4"), "--licence",
                      "CC-BY", "--caption", "Week 1")
        assert shared.returncode == 0, shared.stderr
        blob_text = shared.stdout.strip()
        assert len(blob_text) == 52

        deadline = time.monotonic() + 15
        while True:
            listed = _cli(home_b, "resources", "--json")
            assert listed.returncode == 0, listed.stderr
            rows = json.loads(listed.stdout)
            if rows and rows[0]["holders"]:
                break
            assert time.monotonic() < deadline, rows
            time.sleep(0.2)
        row = rows[0]
        assert (row["blob"], row["title"], row["format"]) == (blob_text, "Intro to Python.mp4",
                                                               "video")
        assert row["author"]["name"] == "A" and row["held"] is False
        text = _cli(home_b, "resources").stdout
        assert "Intro to Python.mp4" in text and "held by 1 connected peer: A (" in text

        out = tmp_path / "got.mp4"
        fetched = _cli(home_b, "fetch", blob_text[:10], "-o", str(out))
        assert fetched.returncode == 0, fetched.stderr
        assert fetched.stdout.strip() == str(out)
        assert _sha(out.read_bytes()) == _sha(data)
        again = _cli(home_b, "fetch", blob_text, "-o", str(out))
        assert again.returncode == 1 and "exists; not overwriting" in again.stderr
        missing = _cli(home_b, "fetch", node_id_text(bytes(32)))
        assert missing.returncode == 1
        assert missing.stderr.strip().endswith("no connected peer holds this resource")
    finally:
        if node_b is not None:
            node_b.stop()
        node_a.stop()
    stopped = _cli(home_b, "fetch", blob_text)
    assert stopped.returncode == 1 and "no node is running" in stopped.stderr
