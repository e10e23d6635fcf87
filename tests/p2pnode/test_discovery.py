"""Discovery over real mDNS, always inside network namespaces the tests make themselves.

Multicast never leaves the machine: the zeroconf code runs in child processes, either in a
loopback-only ``unshare -rn`` namespace (bound to 127.0.0.1) or in `tests.netns.Bridge` hosts
(root). Children print one JSON line of what they saw; the assertions are made here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from netns import (
    Bridge,
    Host,
    LineReader,
    child_env,
    loopback_unavailable_reason,
    netns_unavailable_reason,
    run_python_in_loopback_netns,
)
from zeroconf import InterfaceChoice

from p2pnode.net.discovery import (
    Discovery,
    InvalidAdvertisementError,
    UnknownInterfaceError,
    network_tag,
    peer_id_from_txt,
    resolve_interfaces,
    txt_properties,
)
from protocol.identity import Identity, node_id_text

_CHILD_TIMEOUT = 60.0  # s, for a whole child process
_DISCOVERY_TIMEOUT = 20.0  # s, for a child to see its peers

needs_loopback_netns = pytest.mark.skipif(
    loopback_unavailable_reason() is not None,
    reason=f"needs a loopback-only namespace: {loopback_unavailable_reason()}",
)
needs_bridge = pytest.mark.skipif(
    netns_unavailable_reason() is not None,
    reason=f"needs bridged namespaces: {netns_unavailable_reason()}",
)


def _run_loopback(code: str, *args: str) -> dict:
    """Run a child in a loopback-only namespace and return the JSON of its last stdout line."""
    result = run_python_in_loopback_netns(code, *args, timeout=_CHILD_TIMEOUT)
    assert result.returncode == 0, f"child failed:\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def _txt(properties: dict[str, str]) -> dict[bytes, bytes | None]:
    return {k.encode(): v.encode() for k, v in properties.items()}


# -- pure parts: TXT and interface names ----------------------------------------------------


def test_txt_roundtrip() -> None:
    """The TXT we advertise parses back to our id under our network tag, and not another's."""
    ident = Identity.generate()
    txt = _txt(txt_properties(ident.node_id, b"key"))
    assert txt[b"v"] == b"1"
    assert txt[b"id"] == node_id_text(ident.node_id).encode()
    assert peer_id_from_txt(txt, network_tag(b"key")) == ident.node_id
    with pytest.raises(InvalidAdvertisementError, match="net"):
        peer_id_from_txt(txt, network_tag(b"other key"))


@pytest.mark.parametrize(
    ("txt", "reason"),
    [
        ({b"v": b"1", b"net": b"NET", b"id": b"not an id!"}, "id"),
        ({b"v": b"1", b"net": b"NET", b"id": b"mfrgg"}, "id"),
        ({b"v": b"1", b"net": b"NET", b"id": None}, "id"),
        ({b"v": b"1", b"net": b"NET", b"id": b"\xff\xfe"}, "id"),
        ({b"v": b"1", b"net": b"NET", b"id": b"a" * 4000}, "id"),
        ({b"net": b"NET", b"id": b"ID"}, "v"),
        ({b"v": b"2", b"net": b"NET", b"id": b"ID"}, "v"),
        ({b"v": b"1", b"id": b"ID"}, "net"),
        ({b"v": b"1", b"net": b"00000000", b"id": b"ID"}, "net"),
        ({}, "v"),
    ],
)
def test_malformed_txt_is_rejected(txt: dict[bytes, bytes | None], reason: str) -> None:
    """Each malformed or foreign TXT record is one typed rejection naming the bad key."""
    ident = Identity.generate()
    net = network_tag(b"key")
    subst = {b"NET": net.encode(), b"ID": node_id_text(ident.node_id).encode()}
    txt = {k: subst.get(v, v) if v is not None else None for k, v in txt.items()}
    with pytest.raises(InvalidAdvertisementError, match=reason):
        peer_id_from_txt(txt, net)


def test_resolve_interfaces() -> None:
    """'lo' gives 127.0.0.1 (not ::1), an address passes through, None means all interfaces."""
    loopback = resolve_interfaces("lo")
    assert "127.0.0.1" in loopback and "::1" not in loopback
    assert resolve_interfaces("10.1.2.3") == ["10.1.2.3"]
    assert resolve_interfaces("fe80::1%eth0") == ["fe80::1%eth0"]
    assert resolve_interfaces(None) is InterfaceChoice.All


def test_resolve_unknown_interface_names_the_real_ones() -> None:
    """An unknown interface name is a typed error that lists the interfaces that exist."""
    with pytest.raises(UnknownInterfaceError) as caught:
        resolve_interfaces("p2pt-no-such-if0")
    assert caught.value.name == "p2pt-no-such-if0"
    assert "lo" in caught.value.available
    assert "lo" in str(caught.value)


async def test_close_unstarted_twice() -> None:
    """close() on a Discovery that never started is a no-op, and safe to repeat."""
    discovery = Discovery(Identity.generate().node_id, 4000, b"key", interfaces=["127.0.0.1"])
    await discovery.close()
    await discovery.close()


# -- one host: a loopback-only namespace -----------------------------------------------------

_PAIR_SCRIPT = r"""
import asyncio, json, time
from protocol.identity import Identity, node_id_text
from p2pnode.net.discovery import Discovery, PeerFound

async def wait_until(predicate, timeout):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)

async def main():
    ids = {k: Identity.generate().node_id for k in "abc"}
    events = {k: [] for k in "abc"}
    t0 = time.monotonic()

    def recorder(k):
        def record(event):
            events[k].append({
                "t": round(time.monotonic() - t0, 3),
                "type": type(event).__name__,
                "id": node_id_text(event.node_id),
                "port": getattr(event, "port", None),
                "addresses": getattr(event, "addresses", None),
            })
        return record

    def saw(k, other, kind):
        return any(e["type"] == kind and e["id"] == node_id_text(ids[other]) for e in events[k])

    ports = {"a": 4001, "b": 4002, "c": 4003}
    keys = {"a": b"circle key", "b": b"circle key", "c": b"another key"}
    nodes = {
        k: Discovery(ids[k], ports[k], keys[k], interfaces=["127.0.0.1"],
                     on_event=recorder(k), cooperating_responders=True)
        for k in "abc"
    }
    try:
        for node in nodes.values():
            await node.start()
        await wait_until(lambda: saw("a", "b", "PeerFound") and saw("b", "a", "PeerFound"), 10)
        found_at = time.monotonic() - t0
        await asyncio.sleep(1.0)  # time for c to be (wrongly) reported, were it to be
        await nodes["b"].close()
        await nodes["b"].close()  # twice is fine
        await wait_until(lambda: saw("a", "b", "PeerLost"), 10)
    finally:
        for node in nodes.values():
            await node.close()
    print(json.dumps({"ids": {k: node_id_text(v) for k, v in ids.items()},
                      "found_s": found_at, "events": events}))

asyncio.run(main())
"""


@needs_loopback_netns
@pytest.mark.timeout(90)
def test_two_nodes_find_each_other_and_ignore_other_networks() -> None:
    """Same-network nodes find each other, another network's node is ignored, a closed one lost."""
    out = _run_loopback(_PAIR_SCRIPT)
    ids, events = out["ids"], out["events"]
    print(f"loopback, cooperating responders: both found after {out['found_s']:.3f} s")

    a_found = [e for e in events["a"] if e["type"] == "PeerFound"]
    b_found = [e for e in events["b"] if e["type"] == "PeerFound"]
    assert a_found and a_found[0]["id"] == ids["b"], events
    assert a_found[0]["port"] == 4002 and "127.0.0.1" in a_found[0]["addresses"]
    assert b_found and b_found[0]["id"] == ids["a"], events
    assert b_found[0]["port"] == 4001 and "127.0.0.1" in b_found[0]["addresses"]
    assert {e["id"] for e in events["a"]} == {ids["b"]}, events
    assert {e["id"] for e in events["b"]} == {ids["a"]}, events
    assert events["c"] == [], "a node of another network saw ours"
    assert (events["a"][-1]["type"], events["a"][-1]["id"]) == ("PeerLost", ids["b"]), events
    assert out["found_s"] < 5


_MALFORMED_SCRIPT = r"""
import asyncio, base64, json, logging, time
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf
from protocol.identity import Identity, node_id_text
from p2pnode.net.discovery import SERVICE_TYPE, Discovery, network_tag

messages, problems = [], []

class Collect(logging.Handler):
    def emit(self, record):
        (problems if record.levelno >= logging.WARNING else messages).append(record.getMessage())

logging.getLogger().addHandler(Collect())
logging.getLogger().setLevel(logging.DEBUG)

async def main():
    asyncio.get_running_loop().set_exception_handler(
        lambda loop, ctx: problems.append(str(ctx.get("exception") or ctx["message"])))
    me = Identity.generate().node_id
    net = network_tag(b"circle key")
    other = lambda: node_id_text(Identity.generate().node_id)
    good = lambda **kw: {"id": other(), "v": "1", "net": net, **kw}
    raw = lambda *items: b"".join(bytes([len(i)]) + i for i in items)
    bad = {
        "bad-id": good(id="not-a-node-id!"),
        "short-id": good(id=base64.b32encode(b"x" * 16).decode().rstrip("=")),
        "no-v": {"id": other(), "net": net},
        "v2": good(v="2"),
        "wrong-net": good(net="deadbeef"),
        "no-net": {"id": other(), "v": "1"},
        "empty-txt": {},
        "id-flag": raw(b"id", b"v=1", b"net=" + net.encode()),
        "binary-id": raw(b"id=\xff\xfe\x00\x01", b"v=1", b"net=" + net.encode()),
        "garbled": raw(b"v=1", b"net=" + net.encode()) + b"\x7fid=abc",
        "port-zero": good(),
    }
    seen = []
    zc = AsyncZeroconf(interfaces=["127.0.0.1"])
    async with Discovery(me, 4001, b"circle key", interfaces=["127.0.0.1"],
                         on_event=seen.append, cooperating_responders=True):
        infos = [
            AsyncServiceInfo(SERVICE_TYPE, f"{name}.{SERVICE_TYPE}", port=0 if name == "port-zero"
                             else 4100, properties=props, parsed_addresses=["127.0.0.1"])
            for name, props in bad.items()
        ]
        infos.append(AsyncServiceInfo(SERVICE_TYPE, f"impostor.{SERVICE_TYPE}", port=4200,
            properties={"id": node_id_text(me), "v": "1", "net": net},
            parsed_addresses=["127.0.0.1"]))
        good_id = other()
        infos.append(AsyncServiceInfo(SERVICE_TYPE, f"good.{SERVICE_TYPE}", port=4300,
            properties={"id": good_id, "v": "1", "net": net}, parsed_addresses=["127.0.0.1"]))
        for info in infos:
            await zc.async_register_service(info, cooperating_responders=True)
        deadline = time.monotonic() + 10
        def ignored(name):
            return any(m.startswith(f"ignoring {name}.") for m in messages)
        while time.monotonic() < deadline and not (seen and all(map(ignored, bad))):
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
    await zc.async_close()
    print(json.dumps({
        "found": [node_id_text(e.node_id) for e in seen if type(e).__name__ == "PeerFound"],
        "good": good_id,
        "not_ignored": [name for name in bad if not ignored(name)],
        "problems": problems,
    }))

asyncio.run(main())
"""


@needs_loopback_netns
@pytest.mark.timeout(90)
def test_malformed_advertisements_are_ignored() -> None:
    """Malformed, foreign or self-naming adverts give no PeerFound and no error; a good one does."""
    out = _run_loopback(_MALFORMED_SCRIPT)
    assert out["found"] == [out["good"]]
    assert out["not_ignored"] == []
    assert out["problems"] == []


_UPDATE_SCRIPT = r"""
import asyncio, json, time
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf
from protocol.identity import Identity, node_id_text
from p2pnode.net.discovery import SERVICE_TYPE, Discovery, network_tag

async def main():
    me, peer = Identity.generate().node_id, Identity.generate().node_id
    seen = []
    zc = AsyncZeroconf(interfaces=["127.0.0.1"])

    def advert(port, net=network_tag(b"k"), addresses=("127.0.0.1",)):
        properties = {"id": node_id_text(peer), "v": "1", "net": net}
        return AsyncServiceInfo(SERVICE_TYPE, f"peer.{SERVICE_TYPE}", port=port,
                                properties=properties, parsed_addresses=list(addresses),
                                server="peer.local.")

    async def step(action, count):
        await action
        deadline = time.monotonic() + 5
        while len(seen) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    async with Discovery(me, 4001, b"k", interfaces=["127.0.0.1"], on_event=seen.append,
                         cooperating_responders=True):
        await step(zc.async_register_service(advert(4100), cooperating_responders=True), 1)
        await step(zc.async_update_service(advert(4101)), 2)
        await step(zc.async_update_service(advert(4101, addresses=["127.0.0.2"])), 3)
        await step(zc.async_update_service(advert(4101, net="00000000")), 4)
        await step(zc.async_update_service(advert(4102)), 5)
        await step(zc.async_unregister_service(advert(4102)), 6)
        await asyncio.sleep(0.3)
    await zc.async_close()
    print(json.dumps({"peer": node_id_text(peer), "events": [
        [type(e).__name__, node_id_text(e.node_id), getattr(e, "port", None),
         getattr(e, "addresses", None)] for e in seen]}))

asyncio.run(main())
"""


@needs_loopback_netns
@pytest.mark.timeout(60)
def test_updates_are_reported() -> None:
    """Port/address updates (even <1 s apart) re-report PeerFound; net change or goodbye: lost."""
    out = _run_loopback(_UPDATE_SCRIPT)
    events = out["events"]
    assert {e[1] for e in events} == {out["peer"]}
    assert [e[:3] for e in events] == [
        ["PeerFound", out["peer"], 4100],
        ["PeerFound", out["peer"], 4101],
        ["PeerFound", out["peer"], 4101],
        ["PeerLost", out["peer"], None],
        ["PeerFound", out["peer"], 4102],
        ["PeerLost", out["peer"], None],
    ], events
    assert events[0][3] == ["127.0.0.1"] and "127.0.0.2" in events[2][3]


_SQUAT_SCRIPT = r"""
import asyncio, json
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf
from p2pnode.net.discovery import SERVICE_TYPE, Discovery, instance_name, probe_multicast
from protocol.identity import Identity

async def main():
    me = Identity.generate().node_id
    zc = AsyncZeroconf(interfaces=["127.0.0.1"])
    squatter = AsyncServiceInfo(SERVICE_TYPE, instance_name(me), port=9,
                                properties={"junk": "1"}, parsed_addresses=["127.0.0.1"])
    await zc.async_register_service(squatter, cooperating_responders=True)
    async with Discovery(me, 4001, b"k", interfaces=["127.0.0.1"]) as discovery:
        seen = await probe_multicast(["127.0.0.1"], timeout=2.5)
        name = discovery.name
    await zc.async_close()
    print(json.dumps({"wanted": instance_name(me), "got": name,
                      "seen": sorted(s.name for s in seen)}))

asyncio.run(main())
"""


@needs_loopback_netns
@pytest.mark.timeout(60)
def test_squatted_instance_name_is_renamed() -> None:
    """If another host holds our instance name, probing takes ``<name>-2`` instead of failing."""
    out = _run_loopback(_SQUAT_SCRIPT)
    base = out["wanted"].removesuffix("._p2pu._tcp.local.")
    assert out["got"] == f"{base}-2._p2pu._tcp.local."
    assert out["seen"] == sorted([out["wanted"], out["got"]])


_PROBE_SCRIPT = r"""
import asyncio, json
from protocol.identity import Identity, node_id_text
from p2pnode.net.discovery import Discovery, probe_multicast

async def main():
    me = Identity.generate().node_id
    async with Discovery(me, 4001, b"k", interfaces=["127.0.0.1"], cooperating_responders=True):
        seen = await probe_multicast(["127.0.0.1"], timeout=2.0)
    print(json.dumps({"id": node_id_text(me), "seen": [s.__dict__ for s in seen]}))

asyncio.run(main())
"""


@needs_loopback_netns
@pytest.mark.timeout(60)
def test_probe_multicast_lists_what_answers() -> None:
    """probe_multicast returns the instances that answered, with address, port and TXT."""
    out = _run_loopback(_PROBE_SCRIPT)
    [seen] = out["seen"]
    assert seen["txt"]["id"] == out["id"]
    assert seen["port"] == 4001 and seen["addresses"] == ["127.0.0.1"]


_BAD_ADDRESS_SCRIPT = r"""
import asyncio, json
from protocol.identity import Identity
from p2pnode.net.discovery import Discovery, DiscoveryError

async def main():
    discovery = Discovery(Identity.generate().node_id, 4001, b"k", interfaces=["10.1.2.3"])
    try:
        await discovery.start()
        outcome = "started"
    except DiscoveryError as exc:
        outcome = str(exc)
    await discovery.close()
    print(json.dumps({"outcome": outcome}))

asyncio.run(main())
"""


@needs_loopback_netns
@pytest.mark.timeout(60)
def test_address_not_on_this_host_is_a_clear_error() -> None:
    """Confining to an address no interface holds fails start() with a DiscoveryError."""
    out = _run_loopback(_BAD_ADDRESS_SCRIPT)
    assert "10.1.2.3" in out["outcome"]


def test_interfaces_must_be_addresses() -> None:
    """Passing an interface name where addresses belong is refused up front, with a hint."""
    with pytest.raises(ValueError, match="resolve_interfaces"):
        Discovery(Identity.generate().node_id, 4000, b"key", interfaces=["eth0"])


# -- several hosts: namespaces on a bridge (root) ---------------------------------------------

_NODE_SCRIPT = r"""
import asyncio, contextlib, json, sys, time
from protocol.identity import Identity, node_id_text
from p2pnode.net.discovery import Discovery, PeerFound, resolve_interfaces

async def main(cfg):
    ident = Identity.from_private_bytes(bytes.fromhex(cfg["seed"]))
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    print(json.dumps({"ready": True}), flush=True)
    await asyncio.wait_for(stdin.readline(), cfg["timeout"])  # "go": start together
    expect, found, events = set(cfg["expect"]), {}, []
    all_found = asyncio.Event()
    t0 = time.monotonic()

    def on_event(event):
        record = {"t": round(time.monotonic() - t0, 3), "type": type(event).__name__,
                  "id": node_id_text(event.node_id)}
        if isinstance(event, PeerFound):
            record.update(addresses=event.addresses, port=event.port, name=event.name)
            found.setdefault(record["id"], record["t"])
        events.append(record)
        if expect <= found.keys():
            all_found.set()

    if not expect:
        all_found.set()
    discovery = Discovery(ident.node_id, cfg["port"], cfg["key"].encode(),
                          interfaces=resolve_interfaces(cfg["interface"]), on_event=on_event,
                          cooperating_responders=cfg["cooperating"])
    async with discovery:
        started = time.monotonic() - t0
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_found.wait(), cfg["timeout"])
        all_found_s = time.monotonic() - t0 if all_found.is_set() else None
        print(json.dumps({"id": ident.text, "start_s": started, "all_found_s": all_found_s,
                          "found_s": found, "events": events}), flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stdin.read(), cfg["timeout"])  # until the test lets us go

asyncio.run(main(json.loads(sys.argv[1])))
"""


class _Node:
    """A Discovery child process in a `Host`, driven line by line."""

    def __init__(self, host: Host, cfg: dict, log_dir: Path) -> None:
        self.host = host
        self.stderr_path = log_dir / f"{host.netns}.stderr"
        with self.stderr_path.open("w") as stderr:
            self.proc = host.python(
                _NODE_SCRIPT, json.dumps(cfg), stdin=subprocess.PIPE, stderr=stderr
            )
        assert self.proc.stdout is not None
        self.lines = LineReader(self.proc.stdout)

    def read(self, timeout: float) -> dict:
        try:
            return json.loads(self.lines.next(timeout))
        except (TimeoutError, EOFError) as exc:
            raise AssertionError(f"{self.host.netns}: {exc}\n{self.stderr()}") from None

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def finish(self, timeout: float = 15.0) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return self.proc.wait(timeout)

    def stderr(self) -> str:
        return self.stderr_path.read_text()


def _node_cfg(seed: bytes, host: Host, port: int, expect: list[str], cooperating: bool) -> dict:
    return {
        "seed": seed.hex(),
        "port": port,
        "key": "circle key",
        "interface": host.address,
        "expect": expect,
        "cooperating": cooperating,
        "timeout": _DISCOVERY_TIMEOUT,
    }


@needs_bridge
@pytest.mark.timeout(120)
def test_three_hosts_discover_each_other_with_real_probing(tmp_path: Path) -> None:
    """Three confined, really probing nodes on a bridge all find each other (times printed)."""
    idents = [Identity.generate() for _ in range(3)]
    with Bridge(3) as hosts:
        nodes = [
            _Node(
                host,
                _node_cfg(
                    ident.private_bytes(),
                    host,
                    4001 + i,
                    [other.text for other in idents if other is not ident],
                    cooperating=False,
                ),
                tmp_path,
            )
            for i, (host, ident) in enumerate(zip(hosts, idents, strict=True))
        ]
        for node in nodes:
            assert node.read(30.0) == {"ready": True}
        for node in nodes:
            node.send("go")
        results = [node.read(_DISCOVERY_TIMEOUT + 15.0) for node in nodes]
        codes = [node.finish() for node in nodes]
        errors = [node.stderr() for node in nodes]
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10)
    assert not {host.netns for host in hosts} & set(listing.stdout.split()), "namespace left"

    for i, result in enumerate(results):
        print(
            f"bridge, real probing: node {i} start() took {result['start_s']:.3f} s, "
            f"found both peers after {result['all_found_s'] or float('nan'):.3f} s "
            f"({', '.join(f'{t:.3f}' for t in result['found_s'].values())})"
        )
    assert codes == [0, 0, 0], errors
    assert not any("Traceback" in e for e in errors), errors
    by_id = {ident.text: (host.address, 4001 + i) for i, (ident, host) in
             enumerate(zip(idents, hosts, strict=True))}  # fmt: skip
    for ident, result in zip(idents, results, strict=True):
        assert result["all_found_s"] is not None, result
        found = [e for e in result["events"] if e["type"] == "PeerFound"]
        assert {e["id"] for e in found} == set(by_id) - {ident.text}, result
        for event in found:
            address, port = by_id[event["id"]]
            assert event["addresses"] == [address] and event["port"] == port, event


# -- an independent implementation: avahi ---------------------------------------------------

_AVAHI_TOOLS = ("avahi-daemon", "avahi-browse", "avahi-publish", "dbus-daemon")
_missing_avahi = [tool for tool in _AVAHI_TOOLS if shutil.which(tool) is None]
needs_avahi = pytest.mark.skipif(
    bool(_missing_avahi),
    reason=f"needs Debian avahi-daemon, avahi-utils and dbus (missing: {_missing_avahi})",
)

_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>{address}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"""

# Confined to the namespace's eth0 and IPv4; publishes its host name (for avahi-publish) only.
_AVAHI_CONFIG = """[server]
host-name=p2pt-avahi
use-ipv4=yes
use-ipv6=no
allow-interfaces=eth0
enable-dbus=yes
[wide-area]
enable-wide-area=no
[publish]
disable-publishing=no
publish-addresses=yes
publish-hinfo=no
publish-workstation=no
publish-domain=no
[reflector]
enable-reflector=no
"""

# avahi-daemon keeps a pid file and socket in /run/avahi-daemon: give it a private, empty one
# (a mount namespace of its own), so it neither clashes with another avahi nor leaves files.
_AVAHI_LAUNCH = (
    "mkdir -p /run/avahi-daemon && mount -t tmpfs p2pt-avahi /run/avahi-daemon && "
    'exec avahi-daemon -f "$1" --no-drop-root --no-chroot --no-rlimits --no-proc-title'
)


@pytest.fixture(scope="module")
def avahi() -> Iterator[tuple[Host, Host, dict[str, str]]]:
    """A private dbus and avahi-daemon in one bridge namespace; yields (avahi host, other host,
    environment for avahi clients)."""
    with tempfile.TemporaryDirectory(prefix="p2pt-avahi-") as tmp, Bridge(2) as hosts:
        avahi_host, other = hosts
        address = f"unix:path={tmp}/bus"
        Path(tmp, "bus.conf").write_text(_BUS_CONFIG.format(address=address))
        Path(tmp, "avahi.conf").write_text(_AVAHI_CONFIG)
        env = child_env({"DBUS_SYSTEM_BUS_ADDRESS": address})
        bus = avahi_host.popen(
            ["dbus-daemon", f"--config-file={tmp}/bus.conf", "--nofork", "--print-address"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert bus.stdout is not None
        assert LineReader(bus.stdout).next(10.0).startswith(address)
        daemon = avahi_host.popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", _AVAHI_LAUNCH, "sh",
             f"{tmp}/avahi.conf"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        assert daemon.stderr is not None
        log = LineReader(daemon.stderr)
        lines: list[str] = []
        while not any("Server startup complete" in line for line in lines):
            try:
                lines.append(log.next(15.0))
            except (TimeoutError, EOFError) as exc:
                pytest.fail(f"avahi-daemon did not start ({exc}):\n" + "\n".join(lines))
        yield avahi_host, other, env


@needs_bridge
@needs_avahi
@pytest.mark.timeout(90)
def test_avahi_browse_lists_our_node(avahi: tuple[Host, Host, dict[str, str]]) -> None:
    """avahi-browse in another namespace resolves our advertisement, TXT id and address included."""
    avahi_host, node_host, env = avahi
    ident = Identity.generate()
    cfg = _node_cfg(ident.private_bytes(), node_host, 4100, [], cooperating=False)
    with tempfile.TemporaryDirectory(prefix="p2pt-") as tmp:
        node = _Node(node_host, cfg, Path(tmp))
        assert node.read(30.0) == {"ready": True}
        node.send("go")
        node.read(_DISCOVERY_TIMEOUT)  # registered
        browse = subprocess.run(
            ["ip", "netns", "exec", avahi_host.netns, "avahi-browse", "-rtp", "_p2pu._tcp"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert node.finish() == 0, node.stderr()
    resolved = [line.split(";") for line in browse.stdout.splitlines() if line.startswith("=")]
    assert resolved, f"avahi-browse saw nothing:\n{browse.stdout}\n{browse.stderr}"
    fields = resolved[0]
    assert fields[3] == f"p2pnode-{ident.fingerprint}" and fields[4] == "_p2pu._tcp"
    assert fields[7] == node_host.address and fields[8] == "4100"
    assert f'"id={ident.text}"' in fields[9] and '"v=1"' in fields[9]
    assert f'"net={network_tag(b"circle key")}"' in fields[9]


@needs_bridge
@needs_avahi
@pytest.mark.timeout(90)
def test_node_finds_a_peer_published_by_avahi(
    avahi: tuple[Host, Host, dict[str, str]], tmp_path: Path
) -> None:
    """A service published with avahi-publish is reported as a PeerFound by our browser."""
    avahi_host, node_host, env = avahi
    peer = Identity.generate()
    txt = txt_properties(peer.node_id, b"circle key")
    publish = avahi_host.popen(
        ["avahi-publish", "-s", f"p2pnode-{peer.fingerprint}", "_p2pu._tcp", "4200",
         *(f"{k}={v}" for k, v in txt.items())],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert publish.stderr is not None
        assert "Established" in LineReader(publish.stderr).next(15.0)
        me = Identity.generate()
        cfg = _node_cfg(me.private_bytes(), node_host, 4100, [peer.text], cooperating=True)
        node = _Node(node_host, cfg, tmp_path)
        assert node.read(30.0) == {"ready": True}
        node.send("go")
        result = node.read(_DISCOVERY_TIMEOUT + 10)
        assert node.finish() == 0, node.stderr()
    finally:
        publish.terminate()
        publish.wait(5)
    print(f"avahi-published peer found after {result['all_found_s']:.3f} s")
    [found] = [e for e in result["events"] if e["type"] == "PeerFound"]
    assert found["id"] == peer.text and found["port"] == 4200
    assert found["addresses"] == [avahi_host.address]
