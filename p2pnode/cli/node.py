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
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from p2pnode import config, doctor
from p2pnode.cli.display import WIDTH, fit, pad, plain_error
from p2pnode.errors import NodeError, NotRunning
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


def _rate(text: str) -> float:
    """argparse type for --upload-limit: megabytes a second, more than 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of MB/s: {text!r}") from None
    if not 0 < value <= 100_000:
        raise argparse.ArgumentTypeError(f"an upload limit is more than 0 MB/s, not {text}")
    return value


def _max_peers(text: str) -> int:
    """argparse type for --max-peers: sessions with discovered peers, 1 to 1000."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of peers: {text!r}") from None
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"--max-peers is 1-1000, not {value}")
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
        upload_rate=args.upload_limit * 1e6 if args.upload_limit else None,
        max_peers=args.max_peers,
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
        state = (f"connected {doctor.ago(p['connected_since_ms'])}" if p["connected"]
                 else "not connected")
        print(fit(f"{pad(who, 30)} {pad(p['address'] or '-', 24)} {pad(p['how'] or '-', 8)}"
                  f" {state}", WIDTH))
        print(f"{'':8}sent {p['entries_sent']}, received {p['entries_received']}, "
              f"score {p['score']:.0f}")
        if p["last_error"] and not p["connected"]:
            print(fit(f"{'':8}last error: {plain_error(p['last_error'])}", WIDTH))
    return EXIT_OK


# -- doctor --------------------------------------------------------------------------------
def cmd_doctor(args: argparse.Namespace) -> int:
    """The checks of `p2pnode.doctor` on this home, asking the running node when one runs."""
    report = doctor.Report()
    known = doctor.home_facts(args.home, report)
    running: dict[str, Any] | None = None
    peers: list[dict[str, Any]] = []
    if Home.exists(args.home):
        try:
            running = control.request(args.home, "GET", "/v1/status", timeout=3)
        except NotRunning:
            running = None
        except NodeError as exc:
            report.check("node", False, f"the node of this home does not answer properly: {exc}")
    if running:
        with contextlib.suppress(NodeError):
            peers = control.request(args.home, "GET", "/v1/peers", timeout=3)
    data = asyncio.run(doctor.diagnose(
        report, running=running, peers=peers, known=[
            {**p, "node_id": node_id_text(p["node_id"])} for p in known],
        network_key_file=args.network_key, interface=args.interface, port=args.port,
        probe_mdns=not args.no_mdns, timeout=args.timeout))
    failed = any(c["ok"] is False for c in data["checks"])
    if args.json:
        print(json.dumps(data, indent=2))
        return EXIT_ERROR if failed else EXIT_OK
    marks = {True: "ok  ", False: "FAIL", None: "--  "}
    for c in data["checks"]:
        print(f"[{marks[c['ok']]}] {c['check']}: {c['detail']}")
        if c["hint"] and c["ok"] is not True:
            print(f"       hint: {c['hint']}")
    return EXIT_ERROR if failed else EXIT_OK


def cmd_tui(args: argparse.Namespace) -> int:
    """The terminal app, attached to the node serving the home or on a node of its own. The UI
    package is imported here, lazily: this is the one place the command line starts it, and no
    p2pnode module loads textual."""
    from tui.run import main as run_app

    network_key = config.load_network_key(args.network_key)
    return run_app(args.home, verbose=args.verbose, port=args.port, host=args.listen,
                   peers=args.peer or [], mdns=not args.no_mdns, interface=args.interface,
                   network_key=network_key, cooperating_responders=args.fast_mdns,
                   max_peers=args.max_peers)


def _node_options(p: argparse.ArgumentParser) -> None:
    """The options of a node that runs here: `run` and `tui` take the same ones."""
    p.add_argument("--port", type=_port, default=config.DEFAULT_PORT,
                   help=f"TCP port for peers (default {config.DEFAULT_PORT}; 0: any free port)")
    p.add_argument("--listen", default="0.0.0.0", help="address to listen on (default: all)")
    p.add_argument("--peer", action="append", metavar="HOST:PORT", type=_peer_address,
                   help="a peer to connect to (repeatable), for networks without multicast")
    p.add_argument("--no-mdns", action="store_true", help="do not advertise or browse by mDNS")
    p.add_argument("--interface", metavar="NAME|ADDR", help="confine mDNS to one interface")
    p.add_argument("--network-key", type=Path, metavar="FILE",
                   help="private network key (32 bytes or 64 hex digits); default: open network")
    p.add_argument("--upload-limit", type=_rate, metavar="MB/S",
                   help="serve resources to peers at no more than this many megabytes a second"
                        " (keeps a shared Wi-Fi usable); default: no limit")
    p.add_argument("--max-peers", type=_max_peers, metavar="N",
                   help="sessions to keep with peers found on the network, a quarter of them"
                        " dialled by this node (default 32: 8 dialled, 24 dialling in);"
                        " --peer peers come on top")
    p.add_argument("--fast-mdns", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(needs_home=False)


def add_commands(sub: Any, command: Callable[..., argparse.ArgumentParser],
                 json_flag: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register `run`, `tui`, `status`, `peers`, `doctor` (and the resource commands)."""
    _node_options(command("run", cmd_run,
                          "run the node: find peers, sync circles, share resources"))
    _node_options(command("tui", cmd_tui, "the terminal app (the default when no command is"
                                          " given); attaches to `p2pnode run` if one serves"
                                          " the home"))

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
    p.epilog = "Exit status 1 when a check fails (FAIL); -- marks information."
    json_flag(p)
    p.set_defaults(needs_home=False)

    try:
        from p2pnode.cli import blobs as cli_blobs
    except ImportError:
        return
    cli_blobs.add_commands(sub, command, json_flag)

