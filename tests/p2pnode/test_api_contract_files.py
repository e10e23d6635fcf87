"""`NodeAPI`'s files-and-checks members (issue 11: the resources, peers and me screens), the same
assertions against a `Node` here and a `RemoteNode` attached to `p2pnode run` (fixtures of
test_api_contract): share, transfers and cancel_fetch (a paused download resumes), sneakernet
export and import with progress and the import's report, doctor, peers' bytes transferred, and
whether quitting stops the node.
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from builders import DAY_MS, Feed, identity_from_seed
from test_api_contract import record, soon, subject  # noqa: F401 - fixtures

from p2pnode import actions
from p2pnode.blobs.resources import Shared
from p2pnode.errors import InvalidInput, NotFound
from p2pnode.net.remote import RemoteNode
from p2pnode.store.exchange import FORMAT, VERSION, ImportReport
from protocol.codec import pack

_CHUNK = 256 * 1024


async def test_share_publishes_a_resource_held_here(subject, tmp_path):  # noqa: F811
    """share copies the file, returns Shared with the signed resource entry, and the resource
    is listed as held here; a missing file or unknown circle is refused, writing nothing."""
    api = subject.api
    await api.perform(actions.set_profile, "Ana")
    data = os.urandom(300_000)
    (tmp_path / "slides.pdf").write_bytes(data)
    shared = await api.share(tmp_path / "slides.pdf", title="Week 1 slides", licence="CC-BY")
    assert isinstance(shared, Shared) and shared.entry.kind == "resource"
    assert shared.entry.author == api.node_id and shared.body["size"] == len(data)
    (listed,) = await api.resources()
    assert listed.blob == shared.blob_id and listed.title == "Week 1 slides"
    assert listed.held is True and listed.licence == "CC-BY" and listed.format == "book"
    with pytest.raises(InvalidInput, match="is not a file"):
        await api.share(tmp_path / "missing.pdf")
    with pytest.raises(NotFound, match="no circle"):
        await api.share(tmp_path / "slides.pdf", circle=b"\x05" * 32)
    assert (await api.status())["entries_by_kind"] == {"profile": 1, "resource": 1}


async def test_cancel_keeps_a_paused_download_that_resumes(subject, nodes, eventually,  # noqa: F811
                                                           tmp_path):
    """A slow download shows in transfers with its peers; cancel_fetch stops it for its
    follower (a last dict with the error), transfers then lists it paused with the bytes
    kept, and fetching again completes it with identical bytes."""
    api = subject.api
    ben = await nodes.start("ben", peers=[subject.peer_address], upload_rate=600_000)
    await ben.perform(actions.set_profile, "Ben")
    data = os.urandom(12 * _CHUNK)
    (tmp_path / "video.mp4").write_bytes(data)
    shared = await ben.share(tmp_path / "video.mp4")
    await eventually(lambda: _held_by(api, ben.node_id), timeout=10)
    updates: list[dict] = []

    async def follow() -> None:
        async for update in api.fetch_progress(shared.blob_id, None):
            updates.append(update)

    follower = asyncio.get_running_loop().create_task(follow())
    try:
        async def moving() -> list[dict]:
            return [t for t in await api.transfers()
                    if t["blob"] == shared.blob_id and t["done_bytes"] >= _CHUNK]

        (running,) = await eventually(moving, timeout=20)
        assert running["state"] == "downloading" and running["peers"] == 1
        assert running["total_bytes"] == len(data)
        assert await api.cancel_fetch(shared.blob_id) is True
        await asyncio.wait_for(follower, 10)
    finally:
        follower.cancel()
    assert "cancelled" in updates[-1]["error"]
    (paused,) = await api.transfers()
    assert paused["state"] == "paused" and paused["blob"] == shared.blob_id
    assert 0 < paused["done_bytes"] < len(data)
    assert await api.cancel_fetch(shared.blob_id) is False
    final = [u async for u in api.fetch_progress(shared.blob_id, None)][-1]
    assert final["done"] is True
    with open(final["path"], "rb") as fetched:
        assert fetched.read() == data
    assert await api.transfers() == []
    (peer,) = await api.peers_info()
    assert peer["bytes_received"] == len(data) and peer["bytes_sent"] == 0


async def _held_by(api, node_id: bytes) -> bool:
    return any(node_id in r.holders for r in await api.resources())


async def test_export_then_import_reports_what_it_did(subject, tmp_path):  # noqa: F811
    """export_progress writes a new file (never over an existing one) and says how many
    entries; import_progress of another author's file reports accepted, already held and
    refused with reasons, and the accepted entries are stored."""
    api = subject.api
    await api.perform(actions.set_profile, "Ana")
    await api.perform(actions.set_profile, "Ana B")
    target = tmp_path / "stick" / "circles.p2pu"
    target.parent.mkdir()
    steps = [s async for s in api.export_progress(target)]
    assert steps[-1] == {"done": True, "entries": 2, "total": 2, "path": str(target)}
    before = target.read_bytes()
    with pytest.raises(InvalidInput, match="already exists"):
        [s async for s in api.export_progress(target)]
    assert target.read_bytes() == before

    other = Feed(identity_from_seed("sneakernet author"),
                 start_ms=int(time.time() * 1000) - DAY_MS)
    other.fill(5)
    tampered = other.entries[4].wire()
    tampered = [tampered[0], bytes(64), tampered[2]]  # a signature that cannot verify
    path = tmp_path / "from-a-friend.p2pu"
    path.write_bytes(pack({"format": FORMAT, "version": VERSION})
                     + b"".join(pack(e.wire()) for e in other.entries[:4]) + pack(tampered)
                     + target.read_bytes()[len(pack({"format": FORMAT, "version": VERSION})):])
    steps = [s async for s in api.import_progress(path)]
    report = steps[-1]["report"]
    assert steps[-1]["done"] is True and isinstance(report, ImportReport)
    assert (report.new, report.known, report.rejected) == (4, 2, 1)
    assert report.reasons and "seq 5" in report.reasons[0]
    assert steps[0]["total_bytes"] == path.stat().st_size
    assert (await api.status())["entries"] == 6
    with pytest.raises(InvalidInput, match="not a p2pnode export"):
        [s async for s in api.import_progress(_garbage(tmp_path))]


def _garbage(tmp_path):
    path = tmp_path / "holiday.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0 not an export")
    return path


async def test_doctor_checks_the_running_node(subject, nodes, eventually):  # noqa: F811
    """doctor's checklist for the node itself: identity, network, interfaces, its own port
    answering, discovery off (mDNS is off here, as information), and a connected peer."""
    api = subject.api
    status = await api.status()
    ben = await nodes.start("ben", peers=[subject.peer_address])
    await eventually(lambda: _connected(api), timeout=10)
    report = await api.doctor()
    checks = {c["check"]: c for c in report["checks"]}
    assert checks["identity"]["ok"] is True and status["fingerprint"] in checks["identity"][
        "detail"]
    assert checks["network"]["ok"] is True and report["network"] == status["network"]
    assert checks["port"]["ok"] is True and str(status["port"]) in checks["port"]["detail"]
    assert checks["discovery"]["ok"] is None and "mDNS off" in checks["discovery"]["detail"]
    assert not any(name.startswith("mdns ") for name in checks)  # no probe with mDNS off
    (peer_check,) = [c for name, c in checks.items() if name.startswith("peer")]
    assert peer_check["ok"] is True and ben.identity.fingerprint in next(
        name for name in checks if name.startswith("peer"))


async def _connected(api) -> bool:
    return any(p["connected"] for p in await api.peers_info())


async def test_quitting_stops_only_an_in_process_node(subject):  # noqa: F811
    """The app reads whether quitting stops the node from the interface itself."""
    assert subject.api.quitting_stops_node is (not isinstance(subject.api, RemoteNode))
