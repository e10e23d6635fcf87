"""Find peers on the local network with mDNS/DNS-SD (zeroconf's asyncio API).

A node advertises one instance of `SERVICE_TYPE`, named after its fingerprint
(``p2pnode-<fingerprint>._p2pu._tcp.local.``), on its port and the addresses of the interfaces
it is confined to, with the TXT record ``id=<node id, base32>``, ``v=1`` and
``net=<first 8 hex of SHA-256(network key)>``. It browses the same type and reports, through
one callback, a `PeerFound` for every instance of our network (same ``net``, ``v=1``, an id that
parses and is not ours) and a `PeerLost` when it goes away.

Rules this module keeps:

- Nothing another host advertises can crash us: a malformed, foreign or hostile advertisement is
  logged at debug level and ignored. What the TXT says is only a claim; the session handshake
  checks that the peer really holds the key for the id announced here.
- Discovery can be confined: ``interfaces`` takes IP addresses (zeroconf does not take names);
  `resolve_interfaces` turns ``--interface NAME`` into them.
- `Discovery` owns every task it starts (resolutions, the announcement) and cancels and awaits
  them on `Discovery.close`, which is idempotent and sends goodbye packets.
- No query schedule of our own: browsing is zeroconf's `AsyncServiceBrowser` with its default
  back-off (startup queries at 0, 1, 4 and 9 s, then only refreshes of records near expiry,
  with known-answer suppression), and a peer is resolved once per change of its records, from
  the cache when the announcement carried them. Twenty nodes starting together send about
  six queries each, then next to none (tests/p2pnode/test_peer_selection_netns.py counts them).
- Timing constants that tests shorten are the module-level ``_NAMES`` below.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import ifaddr
from zeroconf import (
    DNSCache,
    DNSRecord,
    InterfaceChoice,
    IPVersion,
    NotRunningException,
    ServiceStateChange,
    Zeroconf,
    current_time_millis,
)
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from p2pnode.errors import NodeError
from protocol.errors import MalformedError
from protocol.identity import NODE_ID_SIZE, fingerprint, node_id_text, parse_id

_log = logging.getLogger(__name__)

SERVICE_TYPE = "_p2pu._tcp.local."
#: The ``v`` TXT value this code speaks; instances announcing another are ignored.
DISCOVERY_VERSION = "1"
INSTANCE_PREFIX = "p2pnode-"

#: How long one resolution (SRV, TXT, A/AAAA of a browsed instance) may take, in milliseconds.
_RESOLVE_TIMEOUT_MS = 3000
#: Resolutions running at once; more instances wait their turn (a flood cannot fork unboundedly).
_MAX_CONCURRENT_RESOLVES = 32
#: How long zeroconf may take to open its sockets, in seconds (its own default, 9 s, is too short
#: on a machine starting many programs at once: the node then failed with a bare
#: NotRunningException).
_START_TIMEOUT = 30.0
#: Upper bound, in seconds, on sending goodbyes and shutting zeroconf down in `close()`.
_CLOSE_TIMEOUT = 5.0
#: Resolution timeout for `probe_multicast`, in milliseconds.
_PROBE_RESOLVE_TIMEOUT_MS = 1000
#: Longest TXT value we look at; an id is 52 base32 characters (or 64 hex digits).
_MAX_TXT_VALUE = 128

_DNS_TYPE_TXT = 16  # RFC 1035
_DNS_TYPE_SRV = 33  # RFC 2782
_DNS_CLASS_IN = 1

InterfacesSpec = Sequence[str] | InterfaceChoice


class DiscoveryError(NodeError):
    """Base of the errors this module raises."""


class UnknownInterfaceError(DiscoveryError):
    """``--interface`` named no interface of this host.

    Attributes:
        name: what was asked for.
        available: the names of the interfaces that do exist.
    """

    def __init__(self, name: str, available: Sequence[str]) -> None:
        self.name = name
        self.available = list(available)
        super().__init__(
            f"no network interface named {name!r}; available: {', '.join(self.available) or 'none'}"
        )


class InvalidAdvertisementError(DiscoveryError):
    """A DNS-SD instance whose TXT record is not one of our network's nodes (says why)."""


@dataclass(frozen=True)
class DiscoveryEvent:
    """Base of the events `Discovery` reports."""


@dataclass(frozen=True)
class PeerFound(DiscoveryEvent):
    """A node of our network is advertised (again, when its addresses or port changed).

    ``node_id`` is what the advertisement claims; the handshake proves it.
    """

    node_id: bytes
    addresses: list[str]
    port: int
    name: str


@dataclass(frozen=True)
class PeerLost(DiscoveryEvent):
    """The node is no longer advertised (goodbye packet or records expired)."""

    node_id: bytes


@dataclass(frozen=True)
class SeenService:
    """One instance of `SERVICE_TYPE` that answered `probe_multicast`, whoever it is."""

    name: str
    addresses: list[str]
    port: int | None
    txt: dict[str, str | None]


def network_tag(network_key: bytes) -> str:
    """The ``net`` TXT value: first 8 hex digits of SHA-256(network key)."""
    return hashlib.sha256(network_key).hexdigest()[:8]


def instance_name(node_id: bytes) -> str:
    """The DNS-SD instance name a node advertises: ``p2pnode-<fingerprint>._p2pu._tcp.local.``."""
    return f"{INSTANCE_PREFIX}{fingerprint(node_id)}.{SERVICE_TYPE}"


def txt_properties(node_id: bytes, network_key: bytes) -> dict[str, str]:
    """The TXT record a node advertises."""
    return {"id": node_id_text(node_id), "v": DISCOVERY_VERSION, "net": network_tag(network_key)}


def _txt_text(properties: Mapping[bytes, bytes | None], key: bytes) -> str:
    value = properties.get(key)
    if value is None:
        raise InvalidAdvertisementError(f"TXT {key.decode()} is missing or has no value")
    if len(value) > _MAX_TXT_VALUE:
        raise InvalidAdvertisementError(f"TXT {key.decode()} is {len(value)} bytes long")
    try:
        return value.decode("ascii")
    except UnicodeDecodeError:
        raise InvalidAdvertisementError(f"TXT {key.decode()} is not ASCII") from None


def peer_id_from_txt(properties: Mapping[bytes, bytes | None], net: str) -> bytes:
    """Check an instance's TXT record against our network and return the node id it announces.

    Args:
        properties: the TXT record as zeroconf parses it (first value wins for a repeated key).
        net: our `network_tag`.

    Raises:
        InvalidAdvertisementError: wrong or missing ``v`` or ``net``, or an ``id`` that is not a
            32-byte id in base32 or hex.
    """
    version = _txt_text(properties, b"v")
    if version != DISCOVERY_VERSION:
        raise InvalidAdvertisementError(f"TXT v is {version!r}, we speak {DISCOVERY_VERSION!r}")
    their_net = _txt_text(properties, b"net")
    if their_net.lower() != net:
        raise InvalidAdvertisementError(f"TXT net is {their_net!r}, ours is {net!r}")
    try:
        return parse_id(_txt_text(properties, b"id"), "id")
    except MalformedError as exc:
        raise InvalidAdvertisementError(f"TXT id: {exc.reason}") from None


def resolve_interfaces(spec: str | None) -> list[str] | InterfaceChoice:
    """Turn ``--interface`` into what zeroconf's ``interfaces=`` takes.

    Args:
        spec: None for every interface, an IP address (returned as is), or an interface name,
            resolved to its IPv4 and IPv6 addresses. Link-local IPv6 addresses are kept with
            their scope (``fe80::1%eth0``) and dropped when they have none; ``::1`` is dropped
            (zeroconf cannot multicast on it).

    Returns:
        ``InterfaceChoice.All`` for None, else a list of address strings.

    Raises:
        UnknownInterfaceError: no interface has that name (the message lists those that exist).
        DiscoveryError: the interface exists but has no usable address.
    """
    if spec is None:
        return InterfaceChoice.All
    spec = spec.strip()
    with contextlib.suppress(ValueError):
        return [str(ipaddress.ip_address(spec))]
    adapters = ifaddr.get_adapters()
    for adapter in adapters:
        if spec in (adapter.name, adapter.nice_name):
            addresses = _adapter_addresses(adapter)
            if not addresses:
                raise DiscoveryError(f"network interface {spec!r} has no usable IP address")
            return addresses
    raise UnknownInterfaceError(spec, sorted({a.nice_name for a in adapters}))


def _adapter_addresses(adapter: ifaddr.Adapter) -> list[str]:
    v4: list[str] = []
    v6: list[str] = []
    for ip in adapter.ips:
        if isinstance(ip.ip, str):
            v4.append(ip.ip)
            continue
        address, _flowinfo, scope_id = ip.ip
        address = address.split("%", 1)[0]
        parsed = ipaddress.IPv6Address(address)
        if parsed.is_loopback:
            continue  # zeroconf cannot multicast on ::1 ("Network is unreachable")
        if parsed.is_link_local:
            if not scope_id:
                continue
            address = f"{address}%{adapter.name}"
        v6.append(address)
    return v4 + v6


def _advertised_addresses(interfaces: InterfacesSpec, ip_version: IPVersion) -> list[str]:
    """The A/AAAA addresses to announce: the confined interfaces', or every non-loopback one."""
    if isinstance(interfaces, InterfaceChoice):
        candidates = [
            address for adapter in ifaddr.get_adapters() for address in _adapter_addresses(adapter)
        ]
        usable = [a for a in candidates if not ipaddress.ip_address(a.split("%")[0]).is_loopback]
        candidates = usable or candidates
    else:
        candidates = list(interfaces)
    result: list[str] = []
    for address in candidates:
        bare = address.split("%", 1)[0]  # zeroconf encodes addresses without a scope
        version = ipaddress.ip_address(bare).version
        if ip_version is IPVersion.V4Only and version != 4:
            continue
        if ip_version is IPVersion.V6Only and version != 6:
            continue
        if bare not in result:
            result.append(bare)
    return result


def _dialable(address: str) -> bool:
    """False for a link-local IPv6 address without a scope (as avahi announces over IPv4)."""
    if "%" in address:
        return True
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    return not (parsed.version == 6 and parsed.is_link_local)


def _newest(cache: DNSCache, name: str, type_: int, now: float) -> DNSRecord | None:
    """The most recently received live record; one marked to expire (TTL 1 s: flushed by a
    newer record, or a goodbye) only when there is nothing else, since marking it reset its
    ``created``."""
    records = [
        r for r in cache.async_all_by_details(name, type_, _DNS_CLASS_IN) if not r.is_expired(now)
    ]
    current = [r for r in records if r.ttl > 1] or records
    return max(current, key=lambda r: r.created, default=None)


def _newest_txt_and_port(
    cache: DNSCache, info: AsyncServiceInfo
) -> tuple[dict[bytes, bytes | None], int | None]:
    """The TXT properties and port from the most recently received TXT and SRV records.

    Unique records received less than a second apart are not flushed from the cache (RFC 6762
    §10.2), so after two quick updates it holds the old TXT/SRV beside the new one, and
    `ServiceInfo` loads whichever entered the cache first: the stale one.
    """
    now = current_time_millis()
    txt = _newest(cache, info.name, _DNS_TYPE_TXT, now)
    srv = _newest(cache, info.name, _DNS_TYPE_SRV, now)
    properties = info.properties
    if txt is not None:
        properties = AsyncServiceInfo(SERVICE_TYPE, info.name, properties=txt.text).properties
    port = srv.port if srv is not None else info.port
    return properties, port


def _ip_version_for(interfaces: InterfacesSpec, ip_version: IPVersion | None) -> IPVersion:
    if ip_version is not None:
        return ip_version
    if isinstance(interfaces, InterfaceChoice):
        return IPVersion.V4Only  # zeroconf's own default for "all interfaces"
    versions = {ipaddress.ip_address(a.split("%")[0]).version for a in interfaces}
    if versions == {6}:
        return IPVersion.V6Only
    return IPVersion.All if versions == {4, 6} else IPVersion.V4Only


def _open_zeroconf(interfaces: InterfacesSpec, ip_version: IPVersion) -> AsyncZeroconf:
    choice = interfaces if isinstance(interfaces, InterfaceChoice) else list(interfaces)
    try:
        return AsyncZeroconf(interfaces=choice, ip_version=ip_version)
    except (OSError, RuntimeError, ValueError) as exc:
        raise DiscoveryError(f"cannot open mDNS sockets on {interfaces}: {exc}") from exc


class Discovery:
    """Advertise this node and report the peers of its network seen on the local network.

    Use as ``async with Discovery(...) as discovery:`` or call `start` and `close` yourself.

    Args:
        node_id: our 32-byte node id.
        port: the TCP port our peer endpoint listens on.
        network_key: the network key; only peers announcing the same ``net`` tag are reported.
        interfaces: IP addresses to confine mDNS to (see `resolve_interfaces`); None for all.
        on_event: called (in the event loop) with every `PeerFound` / `PeerLost`; an
            ``asyncio.Queue``'s ``put_nowait`` fits. When None, events go to `events`.
        cooperating_responders: skip the ~1.2 s probing for name conflicts (RFC 6762 §8.1);
            only for tests and networks where every responder is known to cooperate.
        ip_version: which IP versions to use; by default derived from `interfaces` (IPv4 only
            when unconfined, as zeroconf does).
    """

    def __init__(
        self,
        node_id: bytes,
        port: int,
        network_key: bytes,
        *,
        interfaces: InterfacesSpec | None = None,
        on_event: Callable[[DiscoveryEvent], object] | None = None,
        cooperating_responders: bool = False,
        ip_version: IPVersion | None = None,
    ) -> None:
        if len(node_id) != NODE_ID_SIZE:
            raise ValueError(f"a node id is {NODE_ID_SIZE} bytes, got {len(node_id)}")
        if not 0 < port < 65536:
            raise ValueError(f"port must be 1-65535, got {port}")
        self.node_id = node_id
        self.port = port
        self.net = network_tag(network_key)
        self._properties = txt_properties(node_id, network_key)
        self._interfaces: InterfacesSpec = InterfaceChoice.All if interfaces is None else interfaces
        if not isinstance(self._interfaces, InterfaceChoice):
            if not self._interfaces:
                raise ValueError("interfaces is empty; pass None for all interfaces")
            for address in self._interfaces:
                try:
                    ipaddress.ip_address(address)
                except ValueError:
                    raise ValueError(
                        f"interfaces takes IP addresses, not {address!r}: "
                        "see resolve_interfaces() for names"
                    ) from None
        self._ip_version = _ip_version_for(self._interfaces, ip_version)
        self._cooperating = cooperating_responders
        #: Where events go when no `on_event` callback was given.
        self.events: asyncio.Queue[DiscoveryEvent] = asyncio.Queue()
        self._on_event = on_event if on_event is not None else self.events.put_nowait
        self._aiozc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._info: AsyncServiceInfo | None = None
        self._registered = False
        self._announce: asyncio.Future | None = None
        self._resolving: dict[str, asyncio.Task] = {}
        self._resolve_slots = asyncio.Semaphore(_MAX_CONCURRENT_RESOLVES)
        self._peers: dict[str, PeerFound] = {}
        self._started = False
        self._closed = False
        self._close_lock = asyncio.Lock()

    @property
    def name(self) -> str:
        """Our instance name (zeroconf appends ``-2``… if another host holds the first choice)."""
        return self._info.name if self._info is not None else instance_name(self.node_id)

    @property
    def addresses(self) -> list[str]:
        """The addresses we advertise."""
        return self._info.parsed_addresses() if self._info is not None else []

    @property
    def peers(self) -> list[PeerFound]:
        """The peers currently advertised, as last reported."""
        return list(self._peers.values())

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Open the mDNS sockets, start browsing and register our instance.

        Returns once the name is ours (after probing, unless `cooperating_responders`); the
        announcements go on in the background. Peers may be reported before it returns.

        Raises:
            DiscoveryError: the sockets cannot be opened on the chosen interfaces, or there is
                no address to advertise.
        """
        if self._started or self._closed:
            raise DiscoveryError("a Discovery starts once, and not after close()")
        self._started = True
        addresses = _advertised_addresses(self._interfaces, self._ip_version)
        if not addresses:
            raise DiscoveryError(f"no address to advertise on {self._interfaces}")
        fp = fingerprint(self.node_id)
        self._info = AsyncServiceInfo(
            SERVICE_TYPE,
            instance_name(self.node_id),
            port=self.port,
            properties=self._properties,
            server=f"{INSTANCE_PREFIX}{fp}.local.",
            parsed_addresses=addresses,
        )
        self._aiozc = _open_zeroconf(self._interfaces, self._ip_version)
        try:
            try:
                await self._aiozc.zeroconf.async_wait_for_start(timeout=_START_TIMEOUT)
            except NotRunningException:
                raise DiscoveryError(
                    f"mDNS did not start within {_START_TIMEOUT:.0f} s on {self._interfaces}"
                ) from None
            # zeroconf's browser sends its own back-off series of queries (RFC 6762 5.2: at
            # 0, 1, 4 and 9 s, then only to refresh records near expiry) and suppresses known
            # answers: we never query on a schedule of our own, so many nodes do not storm
            self._browser = AsyncServiceBrowser(
                self._aiozc.zeroconf, SERVICE_TYPE, handlers=[self._on_service_state_change]
            )
            self._announce = await self._aiozc.async_register_service(
                self._info, allow_name_change=True, cooperating_responders=self._cooperating
            )
            self._registered = True
        except BaseException:
            await self.close()
            raise
        _log.debug("advertising %s on %s port %d", self.name, addresses, self.port)

    async def close(self) -> None:
        """Say goodbye, stop browsing and close the sockets. Safe to call twice, or unstarted."""
        async with self._close_lock:
            if self._closed:
                return
            self._closed = True
            tasks = list(self._resolving.values())
            self._resolving.clear()
            if self._announce is not None:
                tasks.append(self._announce)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            aiozc = self._aiozc
            if aiozc is None:
                return
            try:
                async with asyncio.timeout(_CLOSE_TIMEOUT):
                    if self._registered and self._info is not None:
                        self._registered = False
                        goodbye = await aiozc.async_unregister_service(self._info)
                        await goodbye
                    if self._browser is not None:
                        await self._browser.async_cancel()
                    await aiozc.async_close()
            except TimeoutError:
                _log.warning("mDNS shutdown took over %.1f s; closing sockets", _CLOSE_TIMEOUT)
                aiozc.zeroconf.close()
            except BaseException:  # cancelled mid-goodbye: still release the sockets
                aiozc.zeroconf.close()
                raise
            finally:
                self._peers.clear()

    # -- browsing ---------------------------------------------------------------------------

    def _on_service_state_change(
        self,
        zeroconf: Zeroconf,
        service_type: str,
        name: str,
        state_change: ServiceStateChange,
    ) -> None:
        """zeroconf's handler, called in the event loop; must never raise into zeroconf."""
        try:
            if self._closed:
                return
            if state_change is ServiceStateChange.Removed:
                self._forget(name)
            elif name != self.name:
                self._schedule_resolve(name)
        except Exception:
            _log.exception("error handling %s of %s", state_change, name)

    def _schedule_resolve(self, name: str) -> None:
        previous = self._resolving.pop(name, None)
        if previous is not None:
            previous.cancel()  # superseded: resolve the newest records instead
        task = asyncio.get_running_loop().create_task(
            self._resolve(name), name=f"p2pnode.discovery resolve {name}"
        )
        self._resolving[name] = task
        task.add_done_callback(lambda t: self._resolve_done(name, t))

    def _resolve_done(self, name: str, task: asyncio.Task) -> None:
        if self._resolving.get(name) is task:
            del self._resolving[name]
        if not task.cancelled() and task.exception() is not None:
            _log.debug("resolving %s failed", name, exc_info=task.exception())

    async def _resolve(self, name: str) -> None:
        assert self._aiozc is not None
        info = AsyncServiceInfo(SERVICE_TYPE, name)
        async with self._resolve_slots:
            complete = await info.async_request(self._aiozc.zeroconf, _RESOLVE_TIMEOUT_MS)
        if not complete:
            _log.debug("ignoring %s: no complete answer within %d ms", name, _RESOLVE_TIMEOUT_MS)
            return
        try:
            found = self._peer_from_info(info)
        except InvalidAdvertisementError as exc:
            _log.debug("ignoring %s: %s", name, exc)
            self._forget(name)  # it may have been valid before this update
            return
        if found is None:
            return
        if self._peers.get(name) == found:
            return  # a record refresh with nothing new for the peer manager
        self._peers[name] = found
        self._emit(found)

    def _peer_from_info(self, info: AsyncServiceInfo) -> PeerFound | None:
        assert self._aiozc is not None
        properties, port = _newest_txt_and_port(self._aiozc.zeroconf.cache, info)
        node_id = peer_id_from_txt(properties, self.net)
        if node_id == self.node_id:
            return None  # ourselves, seen through the loop (or a clone of our key)
        if port is None or not 0 < port < 65536:
            raise InvalidAdvertisementError(f"SRV port is {port}")
        addresses = [a for a in info.parsed_scoped_addresses() if _dialable(a)]
        if not addresses:
            raise InvalidAdvertisementError("no address")
        return PeerFound(node_id=node_id, addresses=addresses, port=port, name=info.name)

    def _forget(self, name: str) -> None:
        task = self._resolving.pop(name, None)
        if task is not None:
            task.cancel()
        gone = self._peers.pop(name, None)
        if gone is None:
            return
        others = [p for p in self._peers.values() if p.node_id == gone.node_id]
        if others:
            self._emit(others[-1])  # the same node is still advertised under another name
        else:
            self._emit(PeerLost(gone.node_id))

    def _emit(self, event: DiscoveryEvent) -> None:
        try:
            self._on_event(event)
        except Exception:
            _log.exception("discovery event handler failed on %r", event)


async def probe_multicast(
    interfaces: InterfacesSpec | None = None,
    timeout: float = 3.0,
    *,
    ip_version: IPVersion | None = None,
) -> list[SeenService]:
    """Ask the network which `SERVICE_TYPE` instances exist (for ``p2pnode doctor``).

    Sends mDNS queries on `interfaces` for `timeout` seconds and returns every instance that
    answered, ours or not, of any network, with its raw TXT decoded for display. Give it two
    seconds or more: a responder multicasts a record at most once a second (RFC 6762 §6), so
    the first query can go unanswered by one that just answered someone else; the second goes
    out about a second after the first.
    """
    interfaces = InterfaceChoice.All if interfaces is None else interfaces
    aiozc = _open_zeroconf(interfaces, _ip_version_for(interfaces, ip_version))
    names: set[str] = set()

    def on_change(
        zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change is not ServiceStateChange.Removed:
            names.add(name)

    try:
        browser = AsyncServiceBrowser(aiozc.zeroconf, SERVICE_TYPE, handlers=[on_change])
        try:
            await asyncio.sleep(timeout)
        finally:
            await browser.async_cancel()
        infos = [AsyncServiceInfo(SERVICE_TYPE, name) for name in sorted(names)]
        await asyncio.gather(
            *(info.async_request(aiozc.zeroconf, _PROBE_RESOLVE_TIMEOUT_MS) for info in infos)
        )
    finally:
        await aiozc.async_close()
    return [
        SeenService(
            name=info.name,
            addresses=info.parsed_scoped_addresses(),
            port=info.port,
            txt=dict(info.decoded_properties),
        )
        for info in infos
    ]
