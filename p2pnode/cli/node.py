"""CLI commands that need the network: run the node, and talk to a running one.

`run` is the headless node. `status` and `peers` ask the node running on the same home through
the control API. `doctor` explains, in plain words, why peers may not be seen.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import logging.handlers
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from p2pnode import config
from p2pnode.errors import NotRunning
from p2pnode.home import Home
from p2pnode.net import control_client as control
from protocol.identity import node_id_text

EXIT_OK, EXIT_ERROR = 0, 1


def _port(text: str) -> int:
    """argparse type for --port: 0 (any free port) to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0-65535, not {value}")
    return value


def _peer_address(text: str) -> str:
    """argparse type for --peer: HOST:PORT (or [IPv6]:PORT)."""
    from p2pnode.net.server import split_host_port

    try:
        split_host_port(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


class _LogFile(logging.handlers.RotatingFileHandler):
    """The node's log file; a line that cannot be written (a full disk) is lost quietly,
    with one note on stderr, rather than a traceback per line."""

    failing = False

    def handleError(self, record: logging.LogRecord) -> None:
        if not self.failing:
            self.failing = True
            print(f"p2pnode: cannot write the log {self.baseFilename} (is the disk full?);"
                  " log lines are dropped until it can", file=sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)
        if self.failing and self.stream is not None and not self.stream.closed:
            with contextlib.suppress(OSError):
                self.stream.flush()
                self.failing = False


def _configure_logging(home: Path, verbose: bool) -> None:
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    handler = _LogFile(
        home / config.LOG_FILE, maxBytes=2_000_000, backupCount=3
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    if verbose:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(stream)


def cmd_run(args: argparse.Namespace) -> int:
    from p2pnode.node import Node

    network_key = config.load_network_key(args.network_key)
    Home.open(args.home, create=True).close()  # create the home before logging into it
    _configure_logging(args.home, args.verbose)
    node = Node(
        args.home,
        port=args.port,
        host=args.listen,
        peers=args.peer or [],
        mdns=not args.no_mdns,
        interface=args.interface,
        network_key=network_key,
        cooperating_responders=args.fast_mdns,
    )

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with node:
            print(
                f"p2pnode {node.identity.fingerprint} running: port {node.port}, network "
                f"{config.network_id(network_key)}, mDNS {'on' if node.mdns else 'off'}"
                f"{' (' + args.interface + ')' if args.interface else ''}. Ctrl-C stops it.",
                flush=True,
            )
            await stop.wait()
            print("stopping…", flush=True)

    asyncio.run(serve())
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    info = control.request(args.home, "GET", "/v1/status")
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK
    print(f"{info['name'] or '(no name)'} ({info['fingerprint']})  {info['node_id']}")
    print(f"  network {info['network']}, port {info['port']}, "
          f"mDNS {'on' if info['mdns'] else 'off'}")
    print(f"  peers connected: {info['peers_connected']}")
    print(f"  entries: {info['entries']} from {info['feeds']} feeds")
    if info.get("recovery_pending"):
        print("  recovering this identity's earlier entries from peers…")
    return EXIT_OK


def _ago(ms: int | None) -> str:
    if not ms:
        return "-"
    seconds = max(0, int(time.time() - ms / 1000))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def cmd_peers(args: argparse.Namespace) -> int:
    peers = control.request(args.home, "GET", "/v1/peers")
    if args.json:
        print(json.dumps(peers, indent=2))
        return EXIT_OK
    if not peers:
        print("No peers yet. Nodes on the same network find each other by mDNS; elsewhere add "
              "one with: p2pnode run --peer HOST:PORT   (p2pnode doctor explains more)")
    for p in peers:
        who = f"{p['name'] or 'unknown'} ({p['node_id'][:8]})" if p["node_id"] else "?"
        state = f"connected {_ago(p['connected_since_ms'])}" if p["connected"] else "not connected"
        print(f"{who:30} {p['address'] or '-':24} {p['how']:8} {state}")
        print(f"{'':30} sent {p['entries_sent']}, received {p['entries_received']}, "
              f"score {p['score']:.0f}" + (f", last error: {p['last_error']}"
                                          if p["last_error"] else ""))
    return EXIT_OK


# -- doctor --------------------------------------------------------------------------------
def _check_port(port: int) -> tuple[bool, str]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))
        except OSError as exc:
            return False, f"port {port} is in use ({exc.strerror})"
    return True, f"port {port} is free"


def _probe_endpoint(port: int) -> tuple[bool, str]:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(b"GET /p2pu/v1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            answer = sock.recv(200)
    except OSError as exc:
        return False, f"nothing answers on 127.0.0.1:{port} ({exc.strerror or exc})"
    ok = b"426" in answer.split(b"\r\n", 1)[0]
    return ok, (f"the peer endpoint answers on 127.0.0.1:{port}" if ok
                else f"something else answers on port {port}")


def cmd_doctor(args: argparse.Namespace) -> int:
    from p2pnode.net.discovery import probe_multicast, resolve_interfaces

    report: dict[str, Any] = {"checks": []}

    def check(name: str, ok: bool | None, detail: str, hint: str = "") -> None:
        report["checks"].append({"check": name, "ok": ok, "detail": detail, "hint": hint})

    home = Home.open(args.home, create=True)
    try:
        network_key = config.load_network_key(args.network_key)
        check("identity", True, f"{home.identity.text} ({home.identity.fingerprint})")
        check("network", True, f"network id {config.network_id(network_key)}",
              "only nodes showing the same network id can connect to each other")
        known = home.store.known_peers()
    finally:
        home.close()

    import ifaddr

    chosen = resolve_interfaces(args.interface) if args.interface else None
    interfaces = []
    for adapter in ifaddr.get_adapters():
        ips = [
            ip.ip if isinstance(ip.ip, str)
            else (f"{ip.ip[0]}%{adapter.nice_name}" if ip.ip[0].startswith("fe80") else ip.ip[0])
            for ip in adapter.ips
        ]
        if chosen is not None and not any(ip in chosen for ip in ips):
            continue
        interfaces.append({"name": adapter.nice_name, "addresses": ips})
    report["interfaces"] = interfaces
    if not any(not i["name"].startswith("lo") for i in interfaces) and chosen is None:
        check("interfaces", False, "only the loopback interface is up",
              "connect to the Wi-Fi or LAN the other learners use")
    else:
        check("interfaces", True, ", ".join(f"{i['name']} {' '.join(i['addresses'])}"
                                            for i in interfaces))

    try:
        running = control.request(args.home, "GET", "/v1/status", timeout=3)
    except NotRunning:
        running = None
    port = running["port"] if running else args.port
    if running:
        ok, detail = _probe_endpoint(port)
        check("node", True, f"a node is running for this home on port {port}")
        check("port", ok, detail, "" if ok else "another program holds the port: use --port")
    else:
        ok, detail = _check_port(port)
        check("node", None, "no node is running for this home", "start one with: p2pnode run")
        check("port", ok, detail, "" if ok else "use p2pnode run --port N with a free port")

    if not args.no_mdns:
        targets = [(i["name"], [a for a in i["addresses"] if "%" not in a and a != "::1"])
                   for i in interfaces]
        for name, addresses in targets:
            if not addresses:
                continue
            try:
                seen = asyncio.run(probe_multicast(addresses, timeout=args.timeout))
            except Exception as exc:
                check(f"mdns {name}", False, f"cannot use multicast: {exc}",
                      "the interface may not support multicast (some VPNs and guest Wi-Fi"
                      " networks block it); add peers by address with --peer HOST:PORT")
                continue
            ours = [s for s in seen if s.txt.get("net") == config.network_id(network_key)]
            detail = (f"{len(seen)} p2pnode services answered ({len(ours)} of our network): "
                      + ", ".join(s.name.split(".")[0] for s in seen)) if seen else \
                "no p2pnode service answered"
            hint = "" if seen else ("if another learner runs a node on this network, multicast"
                                    " is being blocked: ask for the router's 'client isolation'"
                                    " or 'multicast filtering' to be turned off, or use --peer")
            check(f"mdns {name}", bool(seen) or None, detail, hint)

    peers = []
    if running:
        with contextlib.suppress(Exception):
            peers = control.request(args.home, "GET", "/v1/peers", timeout=3)
    else:
        peers = [{"node_id": node_id_text(p["node_id"]), "address": p["address"],
                  "connected": False, "last_error": p["last_error"]} for p in known]
    report["peers"] = peers
    for p in peers:
        who = (p["node_id"] or "?")[:8]
        if p.get("connected"):
            check(f"peer {who}", True, f"connected at {p['address']}")
        else:
            check(f"peer {who}", False, f"{p['address'] or '?'}: {p['last_error'] or 'not seen'}",
                  "check the other laptop runs p2pnode on the same network id and that no"
                  " firewall blocks its port")

    if args.json:
        print(json.dumps(report, indent=2))
        return EXIT_OK
    marks = {True: "ok  ", False: "FAIL", None: "--  "}
    for c in report["checks"]:
        print(f"[{marks[c['ok']]}] {c['check']}: {c['detail']}")
        if c["hint"] and c["ok"] is not True:
            print(f"       hint: {c['hint']}")
    return EXIT_OK


def add_commands(sub: Any, command: Callable[..., argparse.ArgumentParser],
                 json_flag: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register `run`, `status`, `peers`, `doctor` (and the resource commands)."""
    p = command("run", cmd_run, "run the node: find peers, sync circles, share resources")
    p.add_argument("--port", type=_port, default=config.DEFAULT_PORT,
                   help=f"TCP port for peers (default {config.DEFAULT_PORT}; 0: any free port)")
    p.add_argument("--listen", default="0.0.0.0", help="address to listen on (default: all)")
    p.add_argument("--peer", action="append", metavar="HOST:PORT", type=_peer_address,
                   help="a peer to connect to (repeatable), for networks without multicast")
    p.add_argument("--no-mdns", action="store_true", help="do not advertise or browse by mDNS")
    p.add_argument("--interface", metavar="NAME|ADDR", help="confine mDNS to one interface")
    p.add_argument("--network-key", type=Path, metavar="FILE",
                   help="private network key (32 bytes or 64 hex digits); default: open network")
    p.add_argument("--fast-mdns", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(needs_home=False)

    p = command("status", cmd_status, "what the running node is doing")
    json_flag(p)
    p.set_defaults(needs_home=False)
    p = command("peers", cmd_peers, "peers of the running node")
    json_flag(p)
    p.set_defaults(needs_home=False)

    p = command("doctor", cmd_doctor, "why can't I see peers? checks and plain-language hints")
    p.add_argument("--interface", metavar="NAME|ADDR", help="check only this interface")
    p.add_argument("--port", type=_port, default=config.DEFAULT_PORT)
    p.add_argument("--network-key", type=Path, metavar="FILE")
    p.add_argument("--no-mdns", action="store_true", help="skip the multicast test")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for mDNS answers")
    json_flag(p)
    p.set_defaults(needs_home=False)

    try:
        from p2pnode.cli import blobs as cli_blobs
    except ImportError:
        return
    cli_blobs.add_commands(sub, command, json_flag)

