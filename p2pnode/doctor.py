""""Why can't I see peers?": the checks of `p2pnode doctor`, as one library function that the CLI
(on a home, a node running or not) and a running node (`Node.doctor`, the app's checklist) both
call.

`diagnose` returns a report: ``{"checks": [{"check", "ok", "detail", "hint"}, ...], "network",
"interfaces", "addresses", "peers"}``. ``ok`` is True (fine), False (a failure the learner can
fix: the CLI exits 1) or None (information). Rules it keeps:

- It never creates a home and never writes anything.
- Blocking probes (binding the port, knocking on the peer endpoint) run in a thread; the
  multicast probe only when asked (`probe_mdns`), because it sends mDNS queries on the chosen
  interfaces: tests and nodes with mDNS off never ask.
- A peer that is away now, or an error remembered from an earlier run, is information, never a
  failure: it says nothing about this network.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from pathlib import Path
from typing import Any

from p2pnode import config
from p2pnode.errors import NodeError
from p2pnode.home import Home
from protocol.identity import fingerprint

#: what doctor says to try when a peer is not connected now
_PEER_HINT = ("check the other laptop runs p2pnode on the same network id and that no firewall"
              " blocks its port")


class Report:
    """The checks in order, and what they found (see the module docstring)."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {"checks": []}

    def check(self, name: str, ok: bool | None, detail: str, hint: str = "") -> None:
        self.data["checks"].append({"check": name, "ok": ok, "detail": detail, "hint": hint})


_CONNECT = re.compile(
    r"Cannot connect to host (?P<host>\S+?):(?P<port>\d+) ssl:\S+ \[(?P<why>.*)\]")


def plain_error(text: str | None) -> str:
    """A library's error message as a person would say it (aiohttp, asyncio, socket)."""
    if not text:
        return "not seen yet"
    found = _CONNECT.search(text)
    if found:
        where, why = f"{found['host']}:{found['port']}", found["why"].lower()
        if "refused" in why or "connect call failed" in why:
            return f"nothing accepts connections at {where} (is p2pnode running there?)"
        if "name or service not known" in why or "nodename nor servname" in why \
                or "temporary failure in name resolution" in why:
            return f"the name {found['host']} is not known on this network"
        if "unreachable" in why:
            return f"{where} cannot be reached from this network"
        if "timed out" in why or "timeout" in why:
            return f"{where} did not answer in time (a firewall may be dropping it)"
        return f"cannot connect to {where}"
    lowered = text.lower()
    if "timeout" in lowered or "timed out" in lowered:
        return "no answer in time (a firewall may be dropping the connection)"
    if "handshake" in lowered or "psk" in lowered or "decrypt" in lowered:
        return "the handshake failed: the other node may use a different network key"
    return " ".join(text.split())


def ago(ms: int | None, now: float | None = None) -> str:
    """``5m``, ``3h``, ``2d``: how long ago `ms` was; ``-`` for never."""
    if not ms:
        return "-"
    seconds = max(0, int((time.time() if now is None else now) - ms / 1000))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def home_facts(home_path: Path, report: Report) -> list[dict[str, Any]]:
    """Identity check, and the peers the home remembers; never creates a home."""
    if not Home.exists(home_path):
        report.check("identity", None, f"no node home at {home_path} yet",
                     "p2pnode run (or p2pnode init) creates one")
        return []
    try:
        with Home.open(home_path) as home:
            report.check("identity", True, f"{home.identity.text} ({home.identity.fingerprint})")
            return home.store.known_peers()
    except NodeError as exc:
        report.check("identity", False, str(exc))
        return []


def check_port(port: int) -> tuple[bool, str]:
    """Whether a node could listen on `port` (no other program holds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))
        except OSError as exc:
            return False, f"port {port} is in use ({exc.strerror})"
    return True, f"port {port} is free"


def probe_endpoint(port: int) -> tuple[bool, str]:
    """Whether the peer endpoint answers on 127.0.0.1:`port` (an HTTP 426 for a plain GET)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(b"GET /p2pu/v1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            answer = sock.recv(200)
    except OSError as exc:
        return False, f"nothing answers on 127.0.0.1:{port} ({exc.strerror or exc})"
    ok = b"426" in answer.split(b"\r\n", 1)[0]
    return ok, (f"the peer endpoint answers on 127.0.0.1:{port}" if ok
                else f"something else answers on port {port}")


def interfaces(interface: str | None) -> list[dict[str, Any]]:
    """The machine's interfaces and their addresses (only `interface` when given)."""
    import ifaddr

    from p2pnode.net.discovery import resolve_interfaces

    chosen = resolve_interfaces(interface) if interface else None
    found = []
    for adapter in ifaddr.get_adapters():
        ips = [
            ip.ip if isinstance(ip.ip, str)
            else (f"{ip.ip[0]}%{adapter.nice_name}" if ip.ip[0].startswith("fe80") else ip.ip[0])
            for ip in adapter.ips
        ]
        if chosen is not None and not any(ip in chosen for ip in ips):
            continue
        found.append({"name": adapter.nice_name, "addresses": ips})
    return found


def addresses_for_others(found: list[dict[str, Any]], port: int) -> list[str]:
    """HOST:PORT forms others can give to `--peer` (IPv4 first, no loopback or link-local)."""
    v4 = [a for i in found for a in i["addresses"] if ":" not in a and not a.startswith("127.")]
    v6 = [a for i in found for a in i["addresses"] if ":" in a and "%" not in a and a != "::1"]
    return [f"{a}:{port}" for a in v4] + [f"[{a}]:{port}" for a in v6]


async def diagnose(
    report: Report,
    *,
    running: dict[str, Any] | None,
    peers: list[dict[str, Any]],
    known: list[dict[str, Any]] = (),  # type: ignore[assignment]
    network_key_file: Path | None = None,
    interface: str | None = None,
    port: int = config.DEFAULT_PORT,
    probe_mdns: bool = False,
    timeout: float = 2.0,
) -> dict[str, Any]:
    """Run every check after the identity one (already in `report`); returns the report.

    Args:
        running: the running node's status (`Node.status()`), or None when none runs.
        peers: the running node's `peers_info()` (ids as bytes or text); ignored when
            `running` is None, where the peers the home remembers (`known`) are listed instead.
        network_key_file: the key file the learner named (checked against the running node).
        port: the peer port to check when no node runs.
        probe_mdns: send mDNS queries on the interfaces and list who answers.
    """
    given_network = config.network_id(config.load_network_key(network_key_file))
    if running:
        network = running["network"]
        if network_key_file is not None and network != given_network:
            report.check("network", False, f"the running node uses network id {network}, but"
                         f" {network_key_file} gives {given_network}",
                         "restart the node with the key your group uses: p2pnode run"
                         " --network-key FILE")
        else:
            report.check("network", True, f"the running node uses network id {network}",
                         "only nodes showing the same network id can connect to each other")
    else:
        network = given_network
        report.check("network", True, f"network id {network} ("
                     + (f"from {network_key_file}" if network_key_file else "the open network")
                     + ")", "only nodes showing the same network id can connect to each other"
                     + ("" if network_key_file else
                        "; give --network-key FILE if your group uses one"))
    report.data["network"] = network

    found = await asyncio.to_thread(interfaces, interface)
    report.data["interfaces"] = found
    if not any(not i["name"].startswith("lo") for i in found) and not interface:
        report.check("interfaces", False, "only the loopback interface is up",
                     "connect to the Wi-Fi or LAN the other learners use")
    else:
        report.check("interfaces", True, ", ".join(f"{i['name']} {' '.join(i['addresses'])}"
                                                   for i in found))

    port = running["port"] if running else port
    if running:
        ok, detail = await asyncio.to_thread(probe_endpoint, port)
        report.check("node", True, f"a node is running for this home on port {port}")
        report.check("port", ok, detail,
                     "" if ok else "another program holds the port: use --port")
        mdns = running.get("mdns")
        report.check("discovery", True if mdns else None,
                     "the running node finds and announces peers by mDNS" if mdns
                     else "the running node has mDNS off (--no-mdns): it finds peers only by"
                     " address", "" if mdns else "restart it without --no-mdns to find nodes"
                     " on this network by themselves")
    else:
        ok, detail = await asyncio.to_thread(check_port, port)
        report.check("node", None, "no node is running for this home",
                     "start one with: p2pnode run")
        report.check("port", ok, detail, "" if ok else "use p2pnode run --port N with a free port")

    addresses = addresses_for_others(found, port)
    report.data["addresses"] = addresses
    if addresses:
        report.check("address", True, "others can add this node with: p2pnode run --peer"
                     f" {addresses[0]}"
                     + (f" (or {', '.join(addresses[1:3])})" if len(addresses) > 1 else ""),
                     "if they cannot connect, a firewall on this machine may block port"
                     f" {port}/tcp")
    else:
        report.check("address", None,
                     f"no address others can reach; on this machine: 127.0.0.1:{port}")

    if probe_mdns:
        await _multicast_checks(report, found, network, timeout)
    _peer_checks(report, running, peers, known)
    return report.data


async def _multicast_checks(report: Report, found: list[dict[str, Any]], network: str,
                            timeout: float) -> None:
    from p2pnode.net.discovery import probe_multicast

    for name, addrs in [(i["name"], [a for a in i["addresses"] if "%" not in a and a != "::1"])
                        for i in found]:
        if not addrs:
            continue
        try:
            seen = await probe_multicast(addrs, timeout=timeout)
        except Exception as exc:
            report.check(f"mdns {name}", False, f"cannot use multicast: {plain_error(str(exc))}",
                         "the interface may not support multicast (some VPNs and guest Wi-Fi"
                         " networks block it); add peers by address with --peer HOST:PORT")
            continue
        ours = [s for s in seen if s.txt.get("net") == network]
        detail = (f"{len(seen)} p2pnode services answered ({len(ours)} of our network): "
                  + ", ".join(s.name.split(".")[0] for s in seen)) if seen else \
            "no p2pnode service answered"
        hint = "" if seen else ("if another learner runs a node on this network, multicast"
                                " is being blocked: ask for the router's 'client isolation'"
                                " or 'multicast filtering' to be turned off, or add peers by"
                                " address")
        report.check(f"mdns {name}", bool(seen) or None, detail, hint)


def _short(node_id: bytes | str | None) -> str:
    if isinstance(node_id, bytes):
        return fingerprint(node_id)
    return (node_id or "?")[:8]


def _peer_checks(report: Report, running: dict[str, Any] | None,
                 peers: list[dict[str, Any]], known: list[dict[str, Any]]) -> None:
    """One line per peer: connected is ok; anything else is information (module docstring)."""
    if not running:
        peers = [{"node_id": p["node_id"], "address": p["address"], "connected": False,
                  "last_error": p["last_error"], "last_seen_ms": p["last_seen_ms"]}
                 for p in known]
    report.data["peers"] = peers
    for p in peers:
        who = " " + " ".join(part for part in (p.get("name"), _short(p.get("node_id"))) if part)
        where = p.get("address") or "?"
        if p.get("connected"):
            report.check(f"peer{who}", True, f"connected at {where}")
        elif running:
            report.check(f"peer{who}", None, f"not connected now ({where}): "
                         f"{plain_error(p.get('last_error'))}", _PEER_HINT)
        else:
            seen = p.get("last_seen_ms")
            report.check(f"peer{who}", None, f"last known at {where}"
                         + (f", seen {ago(seen)} ago" if seen else "")
                         + "; not checked: no node is running", "")
