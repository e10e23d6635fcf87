"""The least a transfer over our stack can do: a baseline for `bench/transfer.py`.

A server process sends the file as ChaCha20-Poly1305-sealed pieces of the size a ``blob_data``
frame carries, one per aiohttp WebSocket message (read 256 KiB at a time in a thread, sealed on
the loop); a client process opens them on its loop and SHA-256es each 256 KiB chunk, checks it
against the expected hash and writes it with one ``pwritev`` (never fsynced: durability is a
cost only our node pays), on the loop: a thread hand-off per chunk costs more CPU than it saves
on two cores (``inline=False`` measures that). No handshake, frames, requests, windows, scores,
bitmaps or progress: only the work every receiver of ours must do (decrypt, hash, write) and
every sender (read, encrypt), through the same libraries. What it reaches on this machine is an
upper bound for our node, which does all that and runs the protocol besides.

Both roles bind or connect to 127.0.0.1 only and end by themselves.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import resource
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from protocol.blobs import CHUNK_SIZE
from protocol.frames import MAX_BLOB_DATA

_KEY = bytes(range(32))
_NONCE_PREFIX = bytes(4)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _nonce(n: int) -> bytes:
    return _NONCE_PREFIX + n.to_bytes(8, "little")


async def start_on_loopback(app: web.Application) -> tuple[web.AppRunner, int]:
    """Serve `app` on 127.0.0.1 at a free port: its runner (clean it up) and the port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]


def chunk_hashes(path: Path) -> list[str]:
    """The SHA-256 of each chunk of the file, hex (what the client checks against)."""
    hashes = []
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            hashes.append(hashlib.sha256(chunk).hexdigest())
    return hashes


async def serve(path: Path, until_stdin_closes) -> None:
    """Print ``{"port": N}``; send the whole file to each client that says ``go``."""
    aead = ChaCha20Poly1305(_KEY)
    pool = ThreadPoolExecutor(1)
    fd = os.open(path, os.O_RDONLY)
    size = os.fstat(fd).st_size

    async def handle(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        await ws.receive()  # "go"
        loop = asyncio.get_running_loop()
        nonce = 0
        ahead = loop.run_in_executor(pool, os.pread, fd, CHUNK_SIZE, 0)
        for offset in range(0, size, CHUNK_SIZE):
            chunk = await ahead
            if offset + CHUNK_SIZE < size:
                ahead = loop.run_in_executor(pool, os.pread, fd, CHUNK_SIZE, offset + CHUNK_SIZE)
            for start in range(0, len(chunk), MAX_BLOB_DATA):
                await ws.send_bytes(aead.encrypt(_nonce(nonce), chunk[start:start + MAX_BLOB_DATA],
                                                 None))
                nonce += 1
        await ws.receive()  # the client closes when it has written everything
        return ws

    app = web.Application()
    app.router.add_get("/", handle)
    runner, port = await start_on_loopback(app)
    print(json.dumps({"port": port}), flush=True)
    cpu = _cpu_seconds()
    await until_stdin_closes()
    print(json.dumps({"cpu": _cpu_seconds() - cpu}), flush=True)
    await runner.cleanup()
    pool.shutdown()
    os.close(fd)


async def fetch(port: int, out: Path, size: int, hashes: list[str], *, inline: bool = True
                ) -> dict[str, float]:
    """Receive, open, hash, check and write the file; its seconds and CPU seconds."""
    aead = ChaCha20Poly1305(_KEY)
    pool = ThreadPoolExecutor(1)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    expected = [bytes.fromhex(h) for h in hashes]

    def store(index: int, pieces: list[bytes]) -> None:
        hasher = hashlib.sha256()
        for piece in pieces:
            hasher.update(piece)
        if hasher.digest() != expected[index]:
            raise ValueError(f"chunk {index} does not match")
        os.pwritev(fd, pieces, index * CHUNK_SIZE)

    try:
        async with aiohttp.ClientSession() as session, session.ws_connect(
            f"http://127.0.0.1:{port}/", max_msg_size=0
        ) as ws:
            loop = asyncio.get_running_loop()
            start, cpu = time.perf_counter(), _cpu_seconds()
            await ws.send_bytes(b"go")
            nonce = 0
            writes = []
            for index, offset in enumerate(range(0, size, CHUNK_SIZE)):
                length = min(CHUNK_SIZE, size - offset)
                pieces = []
                for _ in range(0, length, MAX_BLOB_DATA):
                    message = await ws.receive()
                    pieces.append(aead.decrypt(_nonce(nonce), message.data, None))
                    nonce += 1
                if inline:
                    store(index, pieces)
                else:
                    writes.append(loop.run_in_executor(pool, store, index, pieces))
            await asyncio.gather(*writes)
            seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    finally:
        pool.shutdown()
        os.close(fd)
    return {"seconds": seconds, "cpu": cpu}
