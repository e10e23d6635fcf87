"""Resource transfer: a 256 MiB file fetched from 1 and from 2 peers over real sessions on
loopback, next to baselines measured in the same run.

Baselines:
- crypto+hash bound: what decrypting the file as 64 KiB ChaCha20-Poly1305 messages (Noise's
  cipher, via `cryptography`) plus SHA-256 over it cost on one core: the least work a receiver
  must do, so no receiver of ours can beat it;
- aiohttp static: the same file served by aiohttp's `web.FileResponse` (sendfile) in another
  process and read by an aiohttp client: what plain HTTP over loopback does here;
- minimal pipeline (`minimal_pipeline.py`): the same two processes doing only what any
  sender (read, encrypt) and receiver (decrypt, SHA-256, check, pwritev) of ours must do,
  through the same libraries, with no protocol at all: an upper bound for our node here.

Our runs: every node in its own process (the machine's cores are shared by whoever is busy), and
all nodes in this one process for comparison. Peak RSS (VmHWM) is reported for each node process.
Targets: ≥ 60% of the crypto+hash bound from one peer; under 150 MB of memory per node.

Everything binds to 127.0.0.1, every child is killed after `--timeout`, and temp files go when it
ends. ``--dir /dev/shm`` takes the disk out of the picture (a download fsyncs every 16 MiB, in a
thread of its own). ``--profile DIR`` writes cProfile stats of each node process there.

    .venv/bin/python bench/transfer.py [--size-mib 256] [--dir DIR] [--repeat 3]
                                       [--profile DIR] [--serves 2] [--untrusted]
                                       [--set _WINDOW=16 ...]

What bounds it (2-core VM, 256 MiB; see the CPU lines it prints): the transfer is CPU-bound and
the downloader's event loop sets the pace: ~0.5 CPU-s per 256 MiB (recv, decrypt, SHA-256,
pwritev, and the protocol's own work) against ~0.35 for the minimal pipeline's receiver. The
server spends ~0.25 (pread, encrypt, send; a blob it knows verified as a whole, from its
``.verified`` sidecar, is not hashed again: ``--untrusted`` removes those, ~0.4). The
crypto+hash bound is one core doing only the receiver's share with hot caches.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import logging
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import minimal_pipeline
from aiohttp import web
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from p2pnode.blobs.store import BlobStore
from p2pnode.home import Home
from protocol.identity import node_id_text, parse_id
from protocol.session import FRAME_RATE

MiB = 1024 * 1024
#: The rate used to show what blob transfers do when blob_get frames are not rate-limited.
_RAISED_RATE = 20000.0
_NOISE_MESSAGE = 65535 - 16


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM), in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6
    return float("nan")


def cpu_seconds() -> float:
    """User + system CPU time of this process so far (all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def make_file(path: Path, size: int) -> None:
    with path.open("wb") as f:
        left = size
        while left:
            piece = min(left, MiB)
            f.write(os.urandom(piece))
            left -= piece


# -- baselines ----------------------------------------------------------------------------------
def crypto_hash_bound(path: Path) -> tuple[float, float, float]:
    """Seconds to decrypt the file as Noise-sized messages, and to SHA-256 it in chunks."""
    aead = ChaCha20Poly1305(os.urandom(32))
    nonce = bytes(12)
    decrypt = 0.0
    digest = 0.0
    with path.open("rb", buffering=0) as f:
        while chunk := f.read(256 * 1024):
            sealed = [aead.encrypt(nonce, chunk[i : i + _NOISE_MESSAGE], None)
                      for i in range(0, len(chunk), _NOISE_MESSAGE)]
            start = time.perf_counter()
            for message in sealed:
                aead.decrypt(nonce, message, None)
            decrypt += time.perf_counter() - start
            start = time.perf_counter()
            hashlib.sha256(chunk).digest()
            digest += time.perf_counter() - start
    size = path.stat().st_size
    return size / (decrypt + digest) / 1e6, size / decrypt / 1e6, size / digest / 1e6


def disk_write(directory: Path, size: int) -> float:
    """MB/s of writing `size` bytes to a new file in `directory` and fsyncing it: what the
    disk under the bench takes, before any network or crypto (a download must write too)."""
    path = directory / "disk-write.tmp"
    piece = os.urandom(MiB)
    start = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(size // MiB):
            os.write(fd, piece)
        os.fsync(fd)
    finally:
        os.close(fd)
    seconds = time.perf_counter() - start
    path.unlink()
    return size / seconds / 1e6


async def aiohttp_static(path: Path, timeout: float) -> float:
    """MB/s of the file served by aiohttp's FileResponse in a child, read by an aiohttp client."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--role", "static", "--file", str(path),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        info = json.loads(await asyncio.wait_for(child.stdout.readline(), timeout))
        url = f"http://127.0.0.1:{info['port']}/file"
        async with aiohttp.ClientSession() as session:
            best = 0.0
            for _ in range(2):
                start = time.perf_counter()
                got = 0
                async with session.get(url) as response:
                    async for data in response.content.iter_chunked(256 * 1024):
                        got += len(data)
                elapsed = time.perf_counter() - start
                assert got == path.stat().st_size
                best = max(best, got / elapsed / 1e6)
        return best
    finally:
        await _stop(child)


async def minimal(root: Path, source: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The median run of `minimal_pipeline` (server and client in processes of their own)."""
    hashes = root / "hashes.json"
    hashes.write_text(json.dumps(minimal_pipeline.chunk_hashes(source)))
    server = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--role", "raw-serve", "--file", str(source),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )
    runs = []
    try:
        assert server.stdout is not None
        port = json.loads(await asyncio.wait_for(server.stdout.readline(), 30))["port"]
        for _ in range(args.repeat):
            client = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--role", "raw-fetch", "--port", str(port),
                "--file", str(root / "raw.out"), "--blob", str(hashes),
                stdout=asyncio.subprocess.PIPE,
            )
            try:
                out, _ = await asyncio.wait_for(client.communicate(), args.timeout)
            except TimeoutError:
                client.kill()
                await client.wait()
                raise
            runs.append(json.loads(out.decode().strip().splitlines()[-1]))
    finally:
        tail = await _stop(server)
    runs.sort(key=lambda r: r["seconds"])
    result = runs[len(runs) // 2]
    result["server_cpu"] = json.loads(tail)["cpu"] / len(runs) if tail.startswith("{") else 0.0
    result["runs"] = [r["seconds"] for r in runs]
    return result


async def _stop(child: asyncio.subprocess.Process) -> str:
    """Close the child's stdin (its cue to exit) and collect its last line."""
    out = b""
    with contextlib.suppress(Exception):
        if child.stdin is not None:
            child.stdin.close()
        assert child.stdout is not None
        out = await asyncio.wait_for(child.stdout.read(), 15)
    try:
        # wait first: kill() polls, and a poll that reaps the child races asyncio's watcher
        await asyncio.wait_for(child.wait(), 10)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            child.kill()
        await child.wait()
    return out.decode().strip().splitlines()[-1] if out.strip() else ""


# -- child roles --------------------------------------------------------------------------------
async def _until_stdin_closes() -> None:
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.buffer.read)


def _profiled(args: argparse.Namespace, name: str):
    if not args.profile:
        return contextlib.nullcontext()
    import cProfile

    @contextlib.contextmanager
    def run():
        profile = cProfile.Profile()
        profile.enable()
        try:
            yield
        finally:
            profile.disable()
            profile.dump_stats(str(Path(args.profile) / f"{name}-{os.getpid()}.prof"))

    return run()


async def role_static(args: argparse.Namespace) -> None:
    path = Path(args.file)

    async def handle(request: web.Request) -> web.FileResponse:
        return web.FileResponse(path)

    app = web.Application()
    app.router.add_get("/file", handle)
    runner, port = await minimal_pipeline.start_on_loopback(app)
    print(json.dumps({"port": port, "pid": os.getpid()}), flush=True)
    await _until_stdin_closes()
    await runner.cleanup()


async def role_raw_serve(args: argparse.Namespace) -> None:
    await minimal_pipeline.serve(Path(args.file), _until_stdin_closes)


async def role_raw_fetch(args: argparse.Namespace) -> None:
    out = Path(args.file)
    hashes = json.loads(Path(args.blob).read_text())
    size = Path(args.file).parent.joinpath("file.bin").stat().st_size
    result = await minimal_pipeline.fetch(args.port, out, size, hashes)
    out.unlink()
    print(json.dumps(result), flush=True)


async def role_serve(args: argparse.Namespace) -> None:
    from p2pnode.node import Node

    node = Node(args.home, port=0, host="127.0.0.1", mdns=False, control=False,
                session_limits=_limits(args), upload_rate=args.upload_rate)
    async with node:
        print(json.dumps({"port": node.port, "pid": os.getpid()}), flush=True)
        cpu = cpu_seconds()
        loop_cpu = time.thread_time()
        served = 0
        loop = asyncio.get_running_loop()
        with _profiled(args, "serve"):
            # each line on stdin asks for the figures since the previous one; EOF ends it
            while await loop.run_in_executor(None, sys.stdin.buffer.readline):
                now, now_loop = cpu_seconds(), time.thread_time()
                print(json.dumps({"served": node.blobs.chunks_served - served, "cpu": now - cpu,
                                  "loop_cpu": now_loop - loop_cpu}), flush=True)
                cpu, loop_cpu, served = now, now_loop, node.blobs.chunks_served
        served = node.blobs.chunks_served - served
        cpu = cpu_seconds() - cpu
        loop_cpu = time.thread_time() - loop_cpu
    print(json.dumps({"rss_mb": peak_rss_mb(), "served": served, "cpu": cpu,
                      "loop_cpu": loop_cpu}), flush=True)


async def role_fetch(args: argparse.Namespace) -> None:
    from p2pnode.node import Node

    blob_id = parse_id(args.blob)
    node = Node(args.home, port=0, host="127.0.0.1", mdns=False, control=False,
                peers=[f"127.0.0.1:{p}" for p in args.peer], session_limits=_limits(args))
    result: dict[str, Any] = {}
    async with node:
        deadline = time.monotonic() + 10
        while len(node.blobs.holders(blob_id)) < len(args.peer):
            if time.monotonic() > deadline:
                raise SystemExit("the peers did not announce the blob")
            await asyncio.sleep(0.01)
        start = time.perf_counter()
        cpu = cpu_seconds()
        loop_cpu = time.thread_time()
        with _profiled(args, "fetch"):
            async for update in node.fetch_progress(blob_id, None):
                result = update
        result["seconds"] = time.perf_counter() - start
        result["cpu"] = cpu_seconds() - cpu
        result["loop_cpu"] = time.thread_time() - loop_cpu
    result["rss_mb"] = peak_rss_mb()
    result["sources"] = len(result.get("sources", []))
    print(json.dumps({k: v for k, v in result.items() if k not in ("blob", "path")}),
          flush=True)


# -- our transfer -------------------------------------------------------------------------------
def prepare_holders(root: Path, source: Path, count: int) -> tuple[list[Path], bytes]:
    """Homes that hold the file, each added with `add_file` as a user would (not hard-linked:
    a new link moves the file's ctime, which voids its ``.verified`` sidecar, so the servers
    would hash every chunk on their first serve)."""
    homes = [root / f"holder{i}" for i in range(count)]
    blob_id = b""
    for home in homes:
        Home.create(home).close()
        blob_id = BlobStore(home / "blobs").add_file(source).blob_id
    return homes, blob_id


async def multi_process(root: Path, holders: list[Path], blob_id: bytes,
                        args: argparse.Namespace) -> dict[str, Any]:
    extra = ["--profile", args.profile] if args.profile else []
    extra += [a for item in args.set for a in ("--set", item)]
    if args.frame_rate:
        extra += ["--frame-rate", str(args.frame_rate)]
    if getattr(args, "upload_rate", None):  # bench/swarm.py: holders on a slow link
        extra += ["--upload-rate", str(args.upload_rate)]
    servers = []
    try:
        for home in holders:
            child = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--role", "serve", "--home", str(home), *extra,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            )
            servers.append(child)
        ports = []
        for child in servers:
            assert child.stdout is not None
            ports.append(json.loads(await asyncio.wait_for(child.stdout.readline(), 30))["port"])
        peer_args = [a for p in ports for a in ("--peer", str(p))]
        # --serves N: the same servers serve N fresh downloaders one after the other; the
        # figures are the last one's (a server that served the file before)
        for serve in range(args.serves):
            marks = await _server_figures(servers)  # resets the servers' CPU counters
            fetch_home = root / f"fetch-mp-{len(holders)}-{serve}"
            fetcher = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--role", "fetch", "--home", str(fetch_home),
                "--blob", node_id_text(blob_id), *peer_args, *extra,
                stdout=asyncio.subprocess.PIPE,
            )
            try:
                out, _ = await asyncio.wait_for(fetcher.communicate(), args.timeout)
            except TimeoutError:
                fetcher.kill()
                await fetcher.wait()
                raise
            result = json.loads(out.decode().strip().splitlines()[-1])
            shutil.rmtree(fetch_home, ignore_errors=True)
            marks = await _server_figures(servers)
    finally:
        tails = [await _stop(child) for child in servers]
    result["server_rss_mb"] = [json.loads(t)["rss_mb"] for t in tails if t.startswith("{")]
    result["served"] = [m["served"] for m in marks]
    result["server_cpu"] = [m["cpu"] for m in marks]
    result["server_loop_cpu"] = [m["loop_cpu"] for m in marks]
    return result


async def _server_figures(servers: list[asyncio.subprocess.Process]) -> list[dict[str, Any]]:
    """Each server's chunks served and CPU seconds since the previous call."""
    figures = []
    for child in servers:
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(b"figures\n")
        await child.stdin.drain()
        figures.append(json.loads(await asyncio.wait_for(child.stdout.readline(), 30)))
    return figures


async def in_process(root: Path, holders: list[Path], blob_id: bytes,
                     args: argparse.Namespace) -> dict[str, Any]:
    from p2pnode.node import Node

    servers = [Node(h, port=0, host="127.0.0.1", mdns=False, control=False,
                    session_limits=_limits(args)) for h in holders]
    fetch_home = root / f"fetch-ip-{len(holders)}"
    fetcher = None
    try:
        for node in servers:
            await node.start()
        fetcher = Node(fetch_home, port=0, host="127.0.0.1", mdns=False, control=False,
                       peers=[f"127.0.0.1:{n.port}" for n in servers],
                       session_limits=_limits(args))
        await fetcher.start()
        deadline = time.monotonic() + 10
        while len(fetcher.blobs.holders(blob_id)) < len(servers):
            assert time.monotonic() < deadline, "the peers did not announce the blob"
            await asyncio.sleep(0.01)
        start = time.perf_counter()
        result: dict[str, Any] = {}
        async with asyncio.timeout(args.timeout):
            async for update in fetcher.fetch_progress(blob_id, None):
                result = update
        result["seconds"] = time.perf_counter() - start
        return result
    finally:
        if fetcher is not None:
            await fetcher.close()
        for node in servers:
            await node.close()
        shutil.rmtree(fetch_home, ignore_errors=True)


# -- main ---------------------------------------------------------------------------------------
def _limits(args: argparse.Namespace) -> dict[str, float] | None:
    if not args.frame_rate:
        return None
    return {"frame_rate": args.frame_rate, "frame_burst": 2 * args.frame_rate}


#: Where a bare NAME is looked up: the blob exchange's modules, each holding the constants it
#: reads (download first: `transfer` also shows `_BAD_CHUNK_PENALTY`, which `download` reads).
_SETTING_MODULES = ("blobs.download", "blobs.serving", "blobs.requests", "blobs.service")


def _apply_settings(settings: list[str]) -> None:
    import importlib

    for item in settings:
        name, _, value = item.partition("=")
        module_name, _, name = name.rpartition(".")
        candidates = [module_name] if module_name else list(_SETTING_MODULES)
        modules = [importlib.import_module(f"p2pnode.{m}") for m in candidates]
        module = next((m for m in modules if hasattr(m, name)), None)
        if module is None:
            raise SystemExit(f"{' or '.join(m.__name__ for m in modules)} has no {name}")
        setattr(module, name, type(getattr(module, name))(value))


def _median_run(results: list[dict[str, Any]]) -> dict[str, Any]:
    done = [r for r in results if r.get("done")]
    if not done:
        return results[-1]
    done.sort(key=lambda r: r["seconds"])
    return done[len(done) // 2]


def _line(label: str, result: dict[str, Any], size: int, baselines: dict[str, float]) -> str:
    if not result.get("done"):
        return f"{label}: FAILED {result.get('error')}"
    rate = size / result["seconds"] / 1e6
    bound, static, floor = baselines["bound"], baselines["static"], baselines["minimal"]
    return (f"{label}: {rate:.1f} MB/s ({rate / bound:.2f} × crypto+hash bound "  # noqa: RUF001
            f"{bound:.1f} MB/s; {rate / floor:.2f} × minimal pipeline {floor:.0f} MB/s; "  # noqa: RUF001
            f"{rate / static:.2f} × aiohttp static {static:.0f} MB/s)")  # noqa: RUF001


async def run(args: argparse.Namespace) -> None:
    size = args.size_mib * MiB
    with tempfile.TemporaryDirectory(prefix="p2pnode-bench-", dir=args.dir) as tmp:
        root = Path(tmp)
        source = root / "file.bin"
        make_file(source, size)
        print(f"file: {args.size_mib} MiB in {root} ({os.cpu_count()} cores)")
        bound, dec, sha = crypto_hash_bound(source)
        print(f"crypto+hash bound: {bound:.1f} MB/s (ChaCha20-Poly1305 decrypt {dec:.0f} MB/s,"
              f" SHA-256 {sha:.0f} MB/s, one core)")
        static = await aiohttp_static(source, args.timeout)
        print(f"aiohttp static (FileResponse, separate process): {static:.0f} MB/s")
        disk = max(disk_write(root, size) for _ in range(2))
        print(f"disk: {disk:.0f} MB/s writing and fsyncing {args.size_mib} MiB in {root.parent}"
              f" ({disk / bound:.2f} × crypto+hash bound)")  # noqa: RUF001
        raw = await minimal(root, source, args)
        floor = size / raw["seconds"] / 1e6
        print(f"minimal pipeline (no protocol: aiohttp WebSocket + ChaCha20-Poly1305, SHA-256 +"
              f" pwritev; bench/minimal_pipeline.py, processes): {floor:.1f} MB/s"
              f" ({floor / bound:.2f} × crypto+hash bound) [runs: "  # noqa: RUF001
              + ", ".join(f"{size / t / 1e6:.0f}" for t in raw["runs"])
              + f"]; CPU seconds: receiver {raw['cpu']:.2f}, sender {raw['server_cpu']:.2f}")
        baselines = {"bound": bound, "static": static, "minimal": floor}
        holders, blob_id = prepare_holders(root, source, 2)
        if args.untrusted:
            for home in holders:
                for sidecar in (home / "blobs").glob("*.verified"):
                    sidecar.unlink()
        cases = [(None, f"session limits as shipped ({FRAME_RATE:g} frames/s per peer)")]
        if not args.frame_rate:
            cases.append((_RAISED_RATE, f"frame rate raised to {_RAISED_RATE:g}/s (blob_get "
                                        "not rate-limited)"))
        else:
            cases = [(args.frame_rate, f"frame rate {args.frame_rate:g}/s")]
        for rate, title in cases:
            args.frame_rate = rate
            print(f"-- {title}")
            await _transfers(root, holders, blob_id, args, size, baselines)


async def _transfers(root: Path, holders: list[Path], blob_id: bytes, args: argparse.Namespace,
                     size: int, baselines: dict[str, float]) -> None:
    for peers in (1, 2):
        runs = [await multi_process(root, holders[:peers], blob_id, args)
                for _ in range(args.repeat)]
        result = _median_run(runs)
        spread = sorted(size / r["seconds"] / 1e6 for r in runs if r.get("done"))
        print(_line(f"transfer {peers} peer{'s' if peers > 1 else ''} (processes)", result,
                    size, baselines)
              + (f" [runs: {', '.join(f'{x:.0f}' for x in spread)}]" if spread else ""))
        print(f"    peak RSS: downloader {result.get('rss_mb', float('nan')):.0f} MB, "
              "serving " + ", ".join(f"{r:.0f} MB" for r in result["server_rss_mb"])
              + f"; chunks served {result['served']}")
        print(f"    CPU seconds (event loop thread + blob I/O threads): downloader "
              f"{result.get('cpu', float('nan')):.2f} ({result.get('loop_cpu', 0):.2f} + "
              f"{result.get('cpu', 0) - result.get('loop_cpu', 0):.2f}), serving "
              + ", ".join(f"{c:.2f} ({lc:.2f} + {c - lc:.2f})" for c, lc in
                          zip(result["server_cpu"], result["server_loop_cpu"], strict=True))
              + f"; wall {result.get('seconds', float('nan')):.2f} s")
    if not args.no_in_process:
        for peers in (1, 2):
            result = _median_run([await in_process(root, holders[:peers], blob_id, args)
                                  for _ in range(args.repeat)])
            print(_line(f"transfer {peers} peer{'s' if peers > 1 else ''} (one process)",
                        result, size, baselines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--dir", default=None, help="where temp files go (default: $TMPDIR)")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--profile", default=None, help="write cProfile stats here")
    parser.add_argument("--no-in-process", action="store_true")
    parser.add_argument("--untrusted", action="store_true",
                        help="remove the holders' .verified sidecars: servers hash every chunk")
    parser.add_argument("--frame-rate", type=float, default=None,
                        help="per-peer frame rate for every node (default: run as shipped, then"
                             f" at {_RAISED_RATE:g})")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (median shown)")
    parser.add_argument("--serves", type=int, default=1,
                        help="downloads served by the same server processes per run; the last"
                             " one is shown (2: a server that served the file before)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override a constant of the blob exchange (p2pnode.blobs.download,"
                             " serving, requests or service), e.g. _WINDOW=16, or another"
                             " module's, e.g. blobs.partial._FLUSH_EVERY_CHUNKS=64 (tuning)")
    parser.add_argument("--role", choices=["static", "serve", "fetch", "raw-serve", "raw-fetch"],
                        help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--upload-rate", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--blob", help=argparse.SUPPRESS)
    parser.add_argument("--peer", action="append", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING,
                        format=f"[{args.role or 'bench'} %(process)d] %(name)s: %(message)s")
    _apply_settings(args.set)
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    roles = {"static": role_static, "serve": role_serve, "fetch": role_fetch,
             "raw-serve": role_raw_serve, "raw-fetch": role_raw_fetch}
    asyncio.run(roles[args.role](args) if args.role else run(args))


if __name__ == "__main__":
    main()
