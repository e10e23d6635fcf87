"""Throwaway network namespaces for tests that need real multicast (mDNS).

Multicast must never leave this machine, so every test that runs zeroconf runs it in a network
namespace the test made itself:

- `run_python_in_loopback_netns` runs a Python snippet under ``unshare -rn``: a private
  namespace holding only loopback (no root needed where user namespaces are allowed); zeroconf
  inside binds to 127.0.0.1.
- `Bridge(n)` (root only) makes one namespace holding a bridge and ``n`` host namespaces, each
  with an ``eth0`` veth whose peer sits on that bridge. Both ends of every veth are created
  directly inside namespaces (never in the host's), and `Bridge` deletes exactly the namespaces
  it made, in a ``finally``, also on KeyboardInterrupt.

Names are ``p2pt-<pid>-<k>`` (``k`` unique within the process), and the subnet
``10.99.<x>.0/24`` has ``x`` derived from the pid, so parallel runs neither clash nor touch
each other's namespaces. Tests skip with the reason from `netns_unavailable_reason` /
`loopback_unavailable_reason` when the machine cannot do this.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import IO, Any

#: Prefix of every namespace this process creates (and the only ones it ever deletes).
NETNS_PREFIX = f"p2pt-{os.getpid()}-"
#: Repository root, put on PYTHONPATH of child processes so they import this checkout.
REPO_ROOT = Path(__file__).resolve().parent.parent

_IP_TIMEOUT = 10.0  # s, for one `ip` command
_KILL_GRACE = 3.0  # s between SIGTERM and SIGKILL for processes left running at teardown
_counter = itertools.count(1)


def _subnet_octet() -> int:
    """Third octet of 10.99.x.0/24, from the pid so parallel runs use different subnets."""
    return os.getpid() % 250 + 1


@cache
def netns_unavailable_reason() -> str | None:
    """Why `Bridge` cannot work here, or None when it can (root and a working `ip netns`)."""
    if sys.platform != "linux":
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "creating bridged network namespaces needs root"
    if shutil.which("ip") is None:
        return "`ip` (iproute2) is not installed"
    try:
        subprocess.run(
            ["ip", "netns", "list"], check=True, capture_output=True, timeout=_IP_TIMEOUT
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"`ip netns` is unavailable: {exc}"
    return None


@cache
def loopback_unavailable_reason() -> str | None:
    """Why `run_python_in_loopback_netns` cannot work here, or None when it can."""
    if sys.platform != "linux":
        return "network namespaces need Linux"
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed"
    try:
        subprocess.run(
            ["unshare", "-rn", "ip", "link", "set", "lo", "up"],
            check=True,
            capture_output=True,
            timeout=_IP_TIMEOUT,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"`unshare -rn` does not work here (user namespaces disabled?): {exc}"
    return None


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for child Pythons: this checkout first on PYTHONPATH, unbuffered output."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    if extra:
        env.update(extra)
    return env


def run_in_netns(netns: str, argv: Sequence[str], **popen_kwargs: Any) -> subprocess.Popen:
    """Start `argv` inside network namespace `netns` (``ip netns exec``).

    The process gets its own session (so `stop_process` can end its whole group) unless the
    caller says otherwise. The caller owns the process; see `Host.popen` for a tracked one.
    """
    popen_kwargs.setdefault("start_new_session", True)
    return subprocess.Popen(["ip", "netns", "exec", netns, *argv], **popen_kwargs)


def stop_process(proc: subprocess.Popen, grace: float = _KILL_GRACE) -> None:
    """End a process we started, and its process group when it leads one: TERM, then KILL."""
    if proc.poll() is not None:
        return

    def _signal(sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.getpgid(proc.pid) == proc.pid:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)

    _signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        _signal(signal.SIGKILL)
        proc.wait(grace)


def run_python_in_loopback_netns(
    code: str,
    *args: str,
    timeout: float,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a Python snippet in a fresh namespace that has only loopback (``unshare -rn``).

    The namespace lives exactly as long as the child, so nothing needs deleting; on timeout the
    child is killed and `subprocess.TimeoutExpired` is raised.

    Args:
        code: the program (run with ``python -c``); `args` become its ``sys.argv[1:]``.
        timeout: seconds before the child is killed.
        env: extra environment variables.
    """
    argv = [
        "unshare", "-rn", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
        sys.executable, "-c", code, *args,
    ]  # fmt: skip
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(env),
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        stop_process(proc, grace=1.0)
        stdout, stderr = proc.communicate()
        exc.output, exc.stderr = stdout, stderr
        raise
    finally:
        stop_process(proc, grace=1.0)
    return subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)


class LineReader:
    """Read a child's output line by line with a timeout (a daemon thread drains the pipe)."""

    def __init__(self, stream: IO[str]) -> None:
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[str]) -> None:
        with contextlib.suppress(ValueError, OSError):
            for line in stream:
                self._lines.put(line)
        self._lines.put(None)

    def next(self, timeout: float) -> str:
        """The next line (without its newline).

        Raises:
            TimeoutError: no line within `timeout` seconds.
            EOFError: the child closed its output.
        """
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no output within {timeout} s") from None
        if line is None:
            self._lines.put(None)
            raise EOFError("the child closed its output")
        return line.rstrip("\n")


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=_IP_TIMEOUT)
    if result.returncode != 0:
        raise RuntimeError(f"`ip {' '.join(args)}` failed: {result.stderr.strip()}")


@dataclass
class Host:
    """One namespace on a `Bridge`: ``eth0`` holds `address` (/24), multicast routed to it."""

    netns: str
    address: str
    interface: str = "eth0"
    _procs: list[subprocess.Popen] = field(default_factory=list, repr=False)

    def popen(self, argv: Sequence[str], **popen_kwargs: Any) -> subprocess.Popen:
        """Start `argv` in this namespace; the `Bridge` ends it at teardown if still running."""
        proc = run_in_netns(self.netns, argv, **popen_kwargs)
        self._procs.append(proc)
        return proc

    def python(self, code: str, *args: str, **popen_kwargs: Any) -> subprocess.Popen:
        """Start ``python -c code args…`` in this namespace (tracked, pipes for stdout/err)."""
        popen_kwargs.setdefault("stdout", subprocess.PIPE)
        popen_kwargs.setdefault("stderr", subprocess.PIPE)
        popen_kwargs.setdefault("text", True)
        popen_kwargs.setdefault("env", child_env())
        return self.popen([sys.executable, "-c", code, *args], **popen_kwargs)


class Bridge:
    """`n` host namespaces joined by a bridge that itself lives in a namespace.

    ``with Bridge(3) as hosts:`` gives a list of `Host`; on exit (normal, exception or
    KeyboardInterrupt) it ends the processes started through `Host.popen` and deletes exactly the
    namespaces it created.
    """

    def __init__(self, n: int) -> None:
        if not 1 <= n <= 250:
            raise ValueError(f"a bridge holds 1 to 250 hosts, not {n}")
        self.n = n
        self.bridge_netns = ""
        self.hosts: list[Host] = []
        self._created: list[str] = []

    def __enter__(self) -> list[Host]:
        try:
            self._setup()
        except BaseException:
            self.close()
            raise
        return self.hosts

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _add_netns(self, stem: str) -> tuple[str, int]:
        """Create ``p2pt-<pid>-<stem><k>`` for the next free k; return its name and k.

        A name that exists already (this module imported twice, as ``netns`` and
        ``tests.netns``, has two counters) is skipped, never reused or deleted.
        """
        for _ in range(1000):
            k = next(_counter)
            name = f"{NETNS_PREFIX}{stem}{k}"
            if os.path.exists(f"/run/netns/{name}"):
                continue
            try:
                _ip("netns", "add", name)
            except RuntimeError:
                if os.path.exists(f"/run/netns/{name}"):
                    continue  # lost a race for the name: it is someone else's
                raise
            self._created.append(name)
            return name, k
        raise RuntimeError(f"no free namespace name {NETNS_PREFIX}{stem}<k>")

    def _setup(self) -> None:
        reason = netns_unavailable_reason()
        if reason:
            raise RuntimeError(reason)
        br, _ = self._add_netns("br")
        self.bridge_netns = br
        _ip("-n", br, "link", "add", "br0", "type", "bridge")
        _ip("-n", br, "link", "set", "br0", "up")
        x = _subnet_octet()
        for i in range(1, self.n + 1):
            name, k = self._add_netns("")
            peer = f"v{k}"
            address = f"10.99.{x}.{i}"
            # Both veth ends are born inside namespaces: never one in the host's.
            _ip("link", "add", "eth0", "netns", name, "type", "veth", "peer", "name", peer,
                "netns", br)  # fmt: skip
            _ip("-n", br, "link", "set", peer, "master", "br0", "up")
            _ip("-n", name, "link", "set", "lo", "up")
            _ip("-n", name, "addr", "add", f"{address}/24", "dev", "eth0")
            # No duplicate address detection: the link-local IPv6 address is usable at once
            # (otherwise zeroconf, bound to `--interface eth0`, finds it still "tentative").
            _ip("netns", "exec", name, "sh", "-c",
                "echo 0 > /proc/sys/net/ipv6/conf/eth0/accept_dad || true")  # fmt: skip
            _ip("-n", name, "link", "set", "eth0", "multicast", "on", "up")
            _ip("-n", name, "route", "add", "224.0.0.0/4", "dev", "eth0")
            self.hosts.append(Host(name, address))

    def close(self) -> None:
        """End tracked processes, then delete the namespaces this bridge created (idempotent)."""
        for host in self.hosts:
            for proc in host._procs:
                stop_process(proc)
        failures = []
        # Hosts first (deleting one takes its veth pair with it), the bridge namespace last.
        for name in reversed(self._created):
            try:
                _ip("netns", "del", name)
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                failures.append(f"{name}: {exc}")
        self._created.clear()
        if failures:
            warnings.warn(f"could not delete test namespaces: {failures}", stacklevel=2)


#: A node for many-node tests: ``python -c NODE_DRIVER HOME NAME MAX_PEERS`` runs a `Node` with
#: mDNS on ``eth0`` (and its control API, so the CLI works in its namespace), sets the profile
#: NAME, and every 0.5 s replaces ``HOME/netns-status.json`` with what it discovered, its open
#: sessions and its clock, so that a test can watch twenty nodes without a CLI call per look.
#: SIGTERM closes the node (goodbyes and all).
NODE_DRIVER = r"""
import asyncio, contextlib, json, os, signal, sys
from pathlib import Path
from p2pnode.node import Node

async def main(home, name, max_peers):
    node = Node(home, interface="eth0", max_peers=int(max_peers))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    out = Path(home) / "netns-status.json"
    async with node:
        await node.set_profile(name)
        while not stop.is_set():
            status = {
                "id": node.identity.node_id.hex(),
                "discovered": sorted({p.node_id.hex() for p in node.discovery.peers}),
                "known": len(node.peers.selection.known_ids()),
                "sessions": [{"peer": c.peer_id.hex(), "dialled": c.initiator}
                             for c in node.peers.open_connections()],
                "clock": {a.hex(): s for a, s in node.clock_snapshot().items()},
            }
            tmp = out.with_suffix(".tmp")
            tmp.write_text(json.dumps(status))
            os.replace(tmp, out)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)

asyncio.run(main(*sys.argv[1:]))
"""

#: An mDNS packet counter: ``python -c MDNS_COUNTER ADDRESS OUT`` joins 224.0.0.251 (on the
#: interface holding ADDRESS) and ff02::fb (on eth0), and appends one JSON line per packet seen
#: to OUT: seconds since it started, query or response, IP version, sender. It runs until
#: ended; it only listens.
MDNS_COUNTER = r"""
import json, select, socket, struct, sys, time
address, out_path = sys.argv[1], sys.argv[2]
s4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
s4.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s4.bind(("", 5353))
s4.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
              socket.inet_aton("224.0.0.251") + socket.inet_aton(address))
s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
s6.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
s6.bind(("", 5353))
s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP,
              socket.inet_pton(socket.AF_INET6, "ff02::fb")
              + struct.pack("@I", socket.if_nametoindex("eth0")))
start = time.monotonic()
with open(out_path, "a") as out:
    print(json.dumps({"t": 0.0, "kind": "start"}), file=out, flush=True)
    while True:
        ready, _, _ = select.select([s4, s6], [], [], 1.0)
        for sock in ready:
            data, sender = sock.recvfrom(9000)
            if len(data) < 12:
                continue
            flags = struct.unpack("!H", data[2:4])[0]
            kind = "response" if flags & 0x8000 else "query"
            line = {"t": round(time.monotonic() - start, 3), "kind": kind,
                    "v": 6 if sock is s6 else 4, "from": sender[0]}
            print(json.dumps(line), file=out, flush=True)
"""


def mdns_packets(path: Path) -> list[dict[str, Any]]:
    """The packets an `MDNS_COUNTER` wrote to `path` (empty until it has started)."""
    import json

    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]
